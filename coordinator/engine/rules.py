"""The engine's decisions, as pure functions of what the store recorded: which phases may start, whether the
budget is spent, and where a phase goes after a verdict.

Nothing here reads a file, a clock or a process; ``tests/unit/engine/test_rules.py`` tests them directly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

from coordinator.plan.model import Budget, Phase
from coordinator.state.records import PhaseRecord
from coordinator.states import DONE_PHASE_STATES, RETRYABLE_PHASE_STATES, PhaseState


class Action(StrEnum):
    """What to do with a phase that may move now."""

    FRESH = "fresh"
    """Launch its first attempt."""
    REMEDIATE = "remediate"
    """Launch a remediation attempt."""
    BLOCK = "block"
    """Its attempts are used up: block it."""
    AFTER_LIMIT = "after_limit"
    """Its agent's usage limit has reset: continue it (resuming the session the limit stopped)."""
    WAIT = "wait"
    """It waits for its agent's usage limit to reset: launch nothing, but the run is not over."""


@dataclass(frozen=True)
class Runnable:
    phase: Phase
    action: Action


def runnable(phases: Iterable[Phase], records: dict[str, PhaseRecord], active_phases: set[str],
             in_scope: Callable[[str], bool], now: float = 0.0) -> list[Runnable]:
    """Phases that may move now, in plan order, with what to do.

    Args:
        phases: the plan's phases.
        records: the store's phase records by phase id.
        active_phases: ids of phases with an attempt under way (they are left alone).
        in_scope: whether this run may start a phase; a dependency out of scope counts as met.
        now: the time (seconds since the epoch), for usage-limit waits.

    Returns:
        A pending phase whose dependencies passed starts fresh; a retryable one is remediated while it has
        attempts left (``policy.max_attempts``) and blocked once it has none; a ``WAITING`` phase continues once
        its ``waiting_until`` passed. While an agent profile's limit has not reset, every phase that would launch
        on that profile waits instead (limits are per account): ``WAIT``.
    """
    phase_list = list(phases)
    resets = limit_resets(phase_list, records)
    result = []
    for phase in phase_list:
        action = phase_action(phase, records, active_phases, in_scope, resets, now)
        if action is not None:
            result.append(Runnable(phase, action))
    return result


def limit_resets(phases: Iterable[Phase], records: dict[str, PhaseRecord]) -> dict[str, float]:
    """Agent profile -> when its latest known usage limit resets (epoch seconds), from the ``WAITING`` phases."""
    resets: dict[str, float] = {}
    for phase in phases:
        record = records.get(phase.id)
        if record is not None and record.state == PhaseState.WAITING and record.waiting_until is not None:
            resets[phase.agent] = max(resets.get(phase.agent, 0.0), record.waiting_until)
    return resets


def phase_action(phase: Phase, records: dict[str, PhaseRecord], active_phases: set[str],
                 in_scope: Callable[[str], bool], resets: dict[str, float], now: float) -> Action | None:
    """What ``runnable`` does with one phase (None: nothing now); ``resets`` as ``limit_resets`` gives them."""
    record = records.get(phase.id)
    if record is None or not in_scope(phase.id) or phase.id in active_phases:
        return None
    action: Action | None = None
    if record.state == PhaseState.PENDING:
        if all(records[dep].state in DONE_PHASE_STATES or not in_scope(dep) for dep in phase.depends_on):
            action = Action.FRESH
    elif record.state in RETRYABLE_PHASE_STATES:
        action = Action.REMEDIATE if record.counted_attempts < phase.policy.max_attempts else Action.BLOCK
    elif record.state == PhaseState.WAITING:
        action = Action.AFTER_LIMIT
    if action is not None and action != Action.BLOCK and resets.get(phase.agent, 0.0) > now:
        action = Action.WAIT
    return action


class RunnableTracker:
    """``runnable`` over and over for one plan, at the cost of what changed since the last call.

    The engine asks on every pass of its loop. The store hands back the very record objects it handed before
    for phases it did not write since (``Store.phases``), so a changed phase is one whose record is another
    object, or whose attempt started or ended; only those and the phases that depend on them are decided
    again. While any phase waits for a usage limit the whole plan is decided again (the clock matters then).

    Args:
        phases: the plan's phases, in plan order.
        in_scope: as for ``runnable``; fixed for the tracker's life.
    """

    def __init__(self, phases: Iterable[Phase], in_scope: Callable[[str], bool]) -> None:
        self.phases = list(phases)
        self.in_scope = in_scope
        self.position = {phase.id: index for index, phase in enumerate(self.phases)}
        self.dependents: dict[str, list[Phase]] = {}
        for phase in self.phases:
            for dependency in phase.depends_on:
                self.dependents.setdefault(dependency, []).append(phase)
        self._records: list[PhaseRecord] | None = None
        self._active: set[str] = set()
        self._actions: dict[str, Action] = {}

    def runnable(self, records: list[PhaseRecord], active_phases: set[str], now: float) -> list[Runnable]:
        """The same list as ``runnable(phases, {r.phase_id: r for r in records}, active_phases, ...)``."""
        by_id = {record.phase_id: record for record in records}
        previous = self._records
        self._records = records
        if previous is None or len(previous) != len(records) or any(
                record.state == PhaseState.WAITING for record in records):
            changed = set(self.position)
        else:
            changed = {new.phase_id for new, old in zip(records, previous, strict=True) if new is not old}
            changed |= active_phases ^ self._active
        self._active = set(active_phases)
        resets = limit_resets(self.phases, by_id) if previous is None or changed == set(self.position) else {}
        for phase_id in changed | {dependent.id for changed_id in changed
                                   for dependent in self.dependents.get(changed_id, ())}:
            index = self.position.get(phase_id)
            if index is None:
                continue
            action = phase_action(self.phases[index], by_id, active_phases, self.in_scope, resets, now)
            if action is None:
                self._actions.pop(phase_id, None)
            else:
                self._actions[phase_id] = action
        return [Runnable(self.phases[self.position[phase_id]], action) for phase_id, action in
                sorted(self._actions.items(), key=lambda item: self.position[item[0]])]


def budget_reason(budget: Budget, tokens: int, cost_usd: float) -> str | None:
    """Why the plan's budget stops further launches, or None while it does not.

    Args:
        budget: the plan's ``budget`` (``max_tokens``, ``max_cost`` in USD; None = no limit).
        tokens: input + output tokens spent by the plan's attempts so far.
        cost_usd: what they cost so far.
    """
    if budget.max_tokens is not None and tokens >= budget.max_tokens:
        return f"token budget reached: {tokens} of max_tokens {budget.max_tokens}"
    if budget.max_cost is not None and cost_usd >= budget.max_cost:
        return f"cost budget reached: ${cost_usd:.4f} of max_cost ${budget.max_cost:g}"
    return None


@dataclass(frozen=True)
class PhaseOutcome:
    """Where a phase goes after one of its attempts was judged, and the one line it then carries."""

    state: PhaseState
    reason: str


def phase_after_verdict(passed: bool, reason: str, number: int, max_attempts: int, *, stopped_by_person: bool,
                        standalone_remediation: bool) -> PhaseOutcome:
    """The phase-state rule.

    Args:
        passed: the attempt's verdict.
        reason: the verdict's one line.
        number: how many of the phase's attempts count against ``max_attempts``, this one included.
        max_attempts: the phase's ``policy.max_attempts``.
        stopped_by_person: a person's ``coord stop`` ended the worker: the phase waits for them (blocked).
        standalone_remediation: a stand-alone ``coord remediate``: a failure leaves the phase failed for the next
            ``coord run`` to remediate or block, whatever the count.

    Returns:
        ``PASSED``; ``FAILED`` while attempts remain; else ``BLOCKED`` with why in its reason.
    """
    if passed:
        return PhaseOutcome(PhaseState.PASSED, reason)
    if stopped_by_person:
        return PhaseOutcome(PhaseState.BLOCKED, "blocked: stopped by a person; " + reason)
    if standalone_remediation or number < max_attempts:
        return PhaseOutcome(PhaseState.FAILED, reason)
    return PhaseOutcome(PhaseState.BLOCKED, f"blocked after {number} attempt(s); {reason}")


def concurrent_pair_in_one_workdir(phases: Iterable[Phase],
                                   in_scope: Callable[[str], bool]) -> tuple[Phase, Phase] | None:
    """The first two phases (in plan order) that may run at the same time in the same workdir: neither depends
    on the other, directly or not. None when there are none (a chain, or every such pair in separate workdirs).

    With ``--max-parallel`` above 1 such phases edit one working tree at once (docs/design.md §17).
    """
    listed = [phase for phase in phases if in_scope(phase.id)]
    by_id = {phase.id: phase for phase in listed}
    ancestors: dict[str, set[str]] = {}

    def above(phase_id: str) -> set[str]:
        """Every phase ``phase_id`` builds on; iterative (a 1,000-phase chain is deeper than Python's stack)."""
        if phase_id in ancestors:
            return ancestors[phase_id]
        stack = [phase_id]
        while stack:
            current = stack[-1]
            pending = [dep for dep in (by_id[current].depends_on if current in by_id else ())
                       if dep not in ancestors and dep not in stack]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            found: set[str] = set()
            for dependency in by_id[current].depends_on if current in by_id else ():
                found |= {dependency} | ancestors.get(dependency, set())
            ancestors[current] = found
        return ancestors[phase_id]

    seen: dict[str, list[Phase]] = {}
    for phase in listed:
        for earlier in seen.get(phase.workdir, []):
            if earlier.id not in above(phase.id) and phase.id not in above(earlier.id):
                return earlier, phase
        seen.setdefault(phase.workdir, []).append(phase)
    return None


def shared_workdir_warning(phases: Iterable[Phase], in_scope: Callable[[str], bool], max_parallel: int) -> str | None:
    """The warning ``coord run`` gives, outside git (where no worktrees keep them apart), when ``max_parallel``
    lets two phases edit one workdir at once (:func:`concurrent_pair_in_one_workdir`), or None."""
    pair = concurrent_pair_in_one_workdir(phases, in_scope) if max_parallel > 1 else None
    if pair is None:
        return None
    first, second = pair
    return (f"--max-parallel {max_parallel}: {first.id} and {second.id} do not depend on each other and work in the "
            f"same workdir ({first.workdir}), so they can run at once and trample each other's edits; give them "
            "separate workdirs, run one at a time, or run in a git repository (each attempt gets a worktree there)")
