"""Git: each attempt's work as commits and refs (checkpoints per passed phase, every attempt's trees, the files it
changed), through the git CLI with argv lists and an index of coord's own.

Owns: ``repo`` (the git commands coord runs) and ``checkpoints`` (the run's branch, refs and their names). May
import ``errors`` and ``util``; the engine and ``coord diff`` use it.
"""
