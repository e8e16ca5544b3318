"""Fake agent CLIs (the ``codex`` script) and the tests that hold them to the real protocol."""
