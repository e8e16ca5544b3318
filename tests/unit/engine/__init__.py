"""The engine's rules and loop, without processes."""
