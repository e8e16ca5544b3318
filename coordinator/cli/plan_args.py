"""What the commands share about plans: loading one (with its templates checked), the run-wide overrides and
scope from the command line, finding the plan a recorded run belongs to, and refusing a run whose agent program
is missing.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coordinator.errors import PlanError, UsageError
from coordinator.paths import WorkspacePaths
from coordinator.states import DONE_PHASE_STATES

if TYPE_CHECKING:  # the plan layer loads on first use, so `coord --help` does not pay for pydantic
    from coordinator.plan.model import Plan


def load(plan_path: Path, workspace: Path) -> Plan:
    """Load and check ``plan_path`` (templates included).

    Raises:
        UsageError: the file does not exist.
        PlanError: every problem found, with ``file:line:column``.
    """
    from coordinator.prompts.validate import load_checked_plan

    if not plan_path.exists():
        raise UsageError(f"{plan_path}: no such plan file")
    return load_checked_plan(plan_path, workspace)


def with_overrides(plan: Plan, args: argparse.Namespace) -> Plan:
    """Apply ``--poll-interval``, ``--max-cycles``, ``--max-attempts`` and ``--agent`` to every phase."""
    from coordinator.util.timefmt import parse_duration

    changes: dict[str, Any] = {}
    if args.poll_interval is not None:
        try:
            changes["poll_interval"] = parse_duration(args.poll_interval)
        except ValueError as exc:
            raise UsageError(f"--poll-interval: {exc}") from None
        if changes["poll_interval"] <= 0:
            raise UsageError("--poll-interval must be more than 0 seconds")
    for name in ("max_cycles", "max_attempts"):
        value = getattr(args, name)
        if value is not None:
            if value < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
            changes[name] = value
    if args.agent is not None and args.agent not in plan.agents:
        raise UsageError(f"--agent {args.agent!r}: no such agent profile (known: {', '.join(sorted(plan.agents))})")
    phases = []
    for phase in plan.phases:
        updates: dict[str, Any] = {}
        if changes:
            updates["policy"] = dataclasses.replace(phase.policy, **changes)
        if args.agent is not None:
            updates["agent"] = args.agent
        phases.append(dataclasses.replace(phase, **updates) if updates else phase)
    return dataclasses.replace(plan, phases=tuple(phases))


def run_scope(plan: Plan, args: argparse.Namespace) -> frozenset[str] | None:
    """The phases ``--only`` and ``--from`` leave in the run (None: all).

    Raises:
        UsageError: an unknown phase id.
    """
    ids = [phase.id for phase in plan.phases]
    scope: set[str] | None = None
    if args.only:
        wanted = [item.strip() for item in args.only.split(",") if item.strip()]
        if not wanted:
            raise UsageError("--only needs at least one phase id, e.g. --only P05,P05a")
        unknown = [item for item in wanted if item not in ids]
        if unknown:
            raise UsageError(f"--only: no such phase {', '.join(unknown)} in {plan.id}")
        scope = set(wanted)
    if args.from_phase:
        if args.from_phase not in ids:
            raise UsageError(f"--from: no such phase {args.from_phase} in {plan.id}")
        tail = set(ids[ids.index(args.from_phase):])
        scope = tail if scope is None else scope & tail
    return frozenset(scope) if scope is not None else None


def resolve_plan_ref(ref: str | None, workspace: Path) -> tuple[str, str]:
    """Map a plan file, a plan id or None (the latest run) to (plan id, plan path).

    Raises:
        UsageError: no run is recorded, or the reference matches nothing.
    """
    from coordinator.state.store import Store

    paths = WorkspacePaths(workspace)
    store = Store.open_readonly(paths)
    if store is None:
        raise UsageError(f"no run recorded in {workspace} (start one with `coord run plans/PLAN.yaml`)")
    try:
        if ref is None:
            plan_id = store.latest_plan_id()
            if plan_id is None:
                raise UsageError("no run recorded yet")
        elif store.plan(ref) is not None:
            plan_id = ref
        else:
            candidate = Path(ref)
            if not candidate.exists():
                raise UsageError(f"{ref}: neither a plan file nor a plan id with a recorded run")
            plan_id = load(candidate, workspace).id
            if store.plan(plan_id) is None:
                raise UsageError(f"{plan_id} has no recorded run yet")
        plan = store.plan(plan_id)
        assert plan is not None
        return plan_id, plan.path
    finally:
        store.close()


def refuse_unready_agents(plan: Plan, phase_ids: Iterable[str] | None, workspace: Path,
                               include_done: bool = False) -> None:
    """Stop before anything is launched when an agent profile that a phase still to run needs cannot work: its
    program is missing, does not say its version, or has no credentials (``agents.unready_agents``).

    Args:
        plan: the validated plan.
        phase_ids: the phases in scope (None: all).
        workspace: the workspace, whose store says which phases already passed (their agents are not needed).
        include_done: check passed phases too (a person's remediation of a passed phase).

    Raises:
        PlanError: one problem per profile that is not ready, with its fix (exit 2).
    """
    from coordinator.agents import unready_agents
    from coordinator.state.store import Store

    wanted = set(phase_ids) if phase_ids is not None else {phase.id for phase in plan.phases}
    store = None if include_done else Store.open_readonly(WorkspacePaths(workspace))
    if store is not None:
        try:
            wanted -= {phase.phase_id for phase in store.phases(plan.id) if phase.state in DONE_PHASE_STATES}
        finally:
            store.close()
    problems = unready_agents(plan, wanted)
    if problems:
        raise PlanError(problems)
