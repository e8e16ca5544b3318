"""Prompts out: Jinja2 templates rendered in a sandbox with strict undefined values, and where a phase's report and
marker go.

Owns: ``PromptRenderer`` (template lookup: the workspace's ``templates/`` first, then the packaged ones),
``RemediationContext`` and the artifact paths. May import ``plan.model``, ``judge.verdict``, ``errors``,
``paths`` and ``util``.
"""
