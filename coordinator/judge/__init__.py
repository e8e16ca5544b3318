"""Verdicts from evidence: the exit record, the report, the completion marker, the protected files and coord's own
re-run of the phase's verification commands.

Owns: ``Verdict`` and ``CheckResult`` (what ``evidence.json`` holds) and every check. May import ``plan.model``,
``agents.base``, ``paths`` and ``util``; it never writes the store.
"""
