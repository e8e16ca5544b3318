"""The durable truth: the SQLite store with its audit mirrors, the workspace lock, and the status document read
from them.

Owns: the schema and every SQL statement. May import ``states``, ``paths``, ``errors``, ``util`` and
``process.records`` (to read exit records); never the engine.
"""
