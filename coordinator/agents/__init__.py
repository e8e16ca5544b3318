"""Agent adapters: turn a launch request into argv, and a worker's output into a summary.

``get_agent(profile)`` returns the adapter for a profile's ``base`` (codex, claude, shell).
"""

from __future__ import annotations

from coordinator.agents.base import Agent, AgentSummary, LaunchRequest, WorkerCommand
from coordinator.plan.model import AgentProfile


def get_agent(profile: AgentProfile) -> Agent:
    """Return the adapter for ``profile.base``.

    Raises:
        KeyError: unknown base (the plan loader rejects these before a run).
    """
    if profile.base == "codex":
        from coordinator.agents.codex import CodexAgent

        return CodexAgent(profile)
    if profile.base == "claude":
        from coordinator.agents.claude import ClaudeAgent

        return ClaudeAgent(profile)
    if profile.base == "shell":
        from coordinator.agents.shell import ShellAgent

        return ShellAgent(profile)
    raise KeyError(profile.base)


__all__ = ["Agent", "AgentSummary", "LaunchRequest", "WorkerCommand", "get_agent"]
