"""Agent CLIs: how each one is started for an attempt and what its log says afterwards (session id, tokens, last
message, what it was doing), plus the price table that turns tokens into dollars.

Owns: one adapter per agent (``codex``, ``claude``, ``shell``) behind the ``Agent`` protocol, and the registry
that names them. May import ``plan.model``, ``errors`` and ``util``.
"""

from __future__ import annotations

import importlib
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from coordinator.agents.base import Agent, AgentBase, AgentSummary, LaunchRequest, WorkerCommand
from coordinator.errors import Problem
from coordinator.plan.model import BUILTIN_AGENTS, AgentProfile, Plan


def _load_adapters() -> dict[str, type[Agent]]:
    """Each name of ``plan.model.BUILTIN_AGENTS`` is a module of this package whose ``ADAPTER`` is its class.

    So adding an agent is its module (``agents/NAME.py`` with ``ADAPTER = NameAgent``) and its name in that
    one tuple, which is also what plan files are checked against.
    """
    adapters: dict[str, type[Agent]] = {}
    for name in BUILTIN_AGENTS:
        adapter = importlib.import_module(f"coordinator.agents.{name}").ADAPTER
        adapters[name] = adapter
    return adapters


AGENTS: dict[str, type[Agent]] = _load_adapters()
"""Every adapter by the profile ``base`` that selects it."""


def get_agent(profile: AgentProfile) -> Agent:
    """Return the adapter for ``profile.base``.

    Raises:
        KeyError: unknown base (the plan loader rejects these before a run).
    """
    return AGENTS[profile.base](profile)


def can_resume(profile: AgentProfile) -> bool:
    """True when the profile's agent can continue an earlier attempt's session."""
    return AGENTS[profile.base].can_resume


def unready_agents(plan: Plan, phase_ids: Iterable[str] | None = None) -> list[Problem]:
    """Find the agent profiles, among those the given phases use, that cannot work: the program cannot be
    started (:func:`program_problem`), or a free readiness check fails (``Agent.readiness``: version,
    credentials).

    Checked before a run launches anything, so a missing ``codex`` or login is one clear error instead of every
    phase burning its attempts on exit code 127 or a 401.

    Args:
        plan: the validated plan.
        phase_ids: the phases about to run; None means all.

    Returns:
        One Problem per failing profile (field ``agents.<name>.binary``, or ``agents.<name>`` for a readiness
        check, with its fix), empty when every profile is ready.
    """
    wanted = None if phase_ids is None else set(phase_ids)
    problems: list[Problem] = []
    checked: set[str] = set()
    for phase in plan.phases:
        if (wanted is not None and phase.id not in wanted) or phase.agent in checked:
            continue
        checked.add(phase.agent)
        problem = program_problem(plan.agents[phase.agent], Path(plan.workspace) / phase.workdir,
                                  f"agents.{phase.agent}.binary")
        if problem is not None:
            problems.append(Problem(plan.path, f"agents.{phase.agent}.binary", problem))
            continue
        for finding in get_agent(plan.agents[phase.agent]).readiness():
            if not finding.ok:
                problems.append(Problem(plan.path, f"agents.{phase.agent}",
                                        f"{finding.detail}; {finding.fix} (`coord doctor` checks every profile)"))
    return problems


def program_problem(profile: AgentProfile, workdir: Path, setting: str) -> str | None:
    """Why the profile's program cannot be started, or None when it can: a bare name is looked up on the worker's
    PATH (the profile's ``env`` may set one), a relative path in ``workdir`` (where the supervisor starts it).
    ``setting`` names where a person gives the full path (``agents.codex.binary``, ``--binary``)."""
    program = get_agent(profile).program
    if os.sep not in program:
        search_path = dict(profile.env).get("PATH", os.environ.get("PATH", os.defpath))
        if shutil.which(program, path=search_path) is None:
            return f"{program!r} was not found on PATH; install it, or set {setting} to its full path"
        return None
    location = Path(program) if os.path.isabs(program) else workdir / program
    if not (location.is_file() and os.access(location, os.X_OK)):
        return f"{program!r} is not an executable file"
    return None


__all__ = ["AGENTS", "Agent", "AgentBase", "AgentSummary", "LaunchRequest", "WorkerCommand", "can_resume",
           "get_agent", "program_problem", "unready_agents"]
