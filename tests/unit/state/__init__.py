"""The state machine and the store."""
