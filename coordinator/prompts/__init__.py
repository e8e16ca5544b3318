"""Prompts out: Jinja2 templates rendered in a sandbox with strict undefined values, where a phase's report and
marker go, and the plan checks that need templates.

Owns: ``PromptRenderer`` (template lookup: the workspace's ``templates/`` first, then the packaged ones),
``RemediationContext``, the artifact paths, and ``validate`` (``load_checked_plan``: the plan loader with the
template checks plugged in). May import ``plan.model`` (and, in ``validate`` only, ``plan.loader`` and
``plan.yaml_source``), ``judge.verdict``, ``errors``, ``paths`` and ``util``; nothing in ``plan`` imports it.
"""
