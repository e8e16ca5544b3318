"""Agent adapters, what a worker log says (summaries, last activity), and prices."""
