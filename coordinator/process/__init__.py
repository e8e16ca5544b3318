"""Operating-system processes of one attempt: the stdlib-only supervisor, starting and finding it again by identity,
signals and sweeps, and the coordinator's control socket.

Owns: everything that touches a pid. May import ``util`` (and ``psutil``); never the engine, the store or the plan.
``supervisor.py`` imports nothing but the standard library and runs by path.
"""
