"""The coordinator's loop: schedule phases, launch attempts, watch them, hand them to the judge, commit verdicts,
remediate, reattach after a restart.

Owns: the rules (scheduling, budget, the hang policy, the phase-state rule) and the order in which things are
committed and acted on. May import ``process``, ``judge``, ``agents``, ``prompts``, ``plan``, ``state`` and
``util``; never ``cli`` or ``tui``.
"""
