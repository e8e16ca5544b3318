"""The engine's pure decisions: what may start, when the budget stops launches, where a phase goes after a verdict."""

from __future__ import annotations

import dataclasses

import pytest

from coordinator.engine.hang_policy import decide_cycle
from coordinator.engine.rules import Action, budget_reason, phase_after_verdict, runnable, shared_workdir_warning
from coordinator.plan.model import Budget, Phase, Policy
from coordinator.state.records import PhaseRecord
from coordinator.states import PhaseState


def phase(phase_id: str, *deps: str, max_attempts: int = 3) -> Phase:
    return Phase(id=phase_id, kind="impl", title=phase_id, index=0, depends_on=tuple(deps),
                 policy=Policy(max_attempts=max_attempts))


def record(phase_id: str, state: PhaseState, attempts: int = 0, uncounted: int = 0) -> PhaseRecord:
    return PhaseRecord(plan_id="P", phase_id=phase_id, position=0, kind="impl", title=phase_id, state=state,
                       attempts=attempts, uncounted_attempts=uncounted, waiting_until=None, verdict=None,
                       verdict_source=None,
                       reason=None, updated_at=None)


def decide(phases: list[Phase], records: list[PhaseRecord], active: frozenset[str] = frozenset(),
           scope: set[str] | None = None, now: float = 0.0) -> list[tuple[str, Action]]:
    by_id = {item.phase_id: item for item in records}
    return [(item.phase.id, item.action) for item in
            runnable(phases, by_id, set(active), lambda phase_id: scope is None or phase_id in scope, now)]


def test_a_pending_phase_waits_for_its_dependencies_to_pass() -> None:
    phases = [phase("P01"), phase("P02", "P01"), phase("P03")]
    assert decide(phases, [record("P01", PhaseState.PENDING), record("P02", PhaseState.PENDING),
                           record("P03", PhaseState.PENDING)]) == [("P01", Action.FRESH), ("P03", Action.FRESH)]
    assert decide(phases, [record("P01", PhaseState.PASSED, 1), record("P02", PhaseState.PENDING),
                           record("P03", PhaseState.RUNNING, 1)]) == [("P02", Action.FRESH)]


@pytest.mark.parametrize("blocker", [PhaseState.FAILED, PhaseState.BLOCKED, PhaseState.RUNNING, PhaseState.CHECKING])
def test_a_dependency_not_passed_keeps_its_dependents_waiting(blocker: PhaseState) -> None:
    phases = [phase("P01"), phase("P02", "P01")]
    assert ("P02", Action.FRESH) not in decide(phases, [record("P01", blocker, 1), record("P02", PhaseState.PENDING)])


def test_a_dependency_outside_the_runs_scope_counts_as_met() -> None:
    phases = [phase("P01"), phase("P02", "P01")]
    records = [record("P01", PhaseState.PENDING), record("P02", PhaseState.PENDING)]
    assert decide(phases, records, scope={"P02"}) == [("P02", Action.FRESH)]


def test_a_failed_phase_is_remediated_until_its_attempts_are_used_up_then_blocked() -> None:
    phases = [phase("P01", max_attempts=3)]
    assert decide(phases, [record("P01", PhaseState.FAILED, 2)]) == [("P01", Action.REMEDIATE)]
    assert decide(phases, [record("P01", PhaseState.FAILED, 3)]) == [("P01", Action.BLOCK)]


def test_a_rejected_session_resume_does_not_use_up_an_attempt() -> None:
    phases = [phase("P01", max_attempts=3)]
    assert decide(phases, [record("P01", PhaseState.FAILED, 3, uncounted=1)]) == [("P01", Action.REMEDIATE)]
    assert decide(phases, [record("P01", PhaseState.FAILED, 4, uncounted=1)]) == [("P01", Action.BLOCK)]


def test_a_phase_with_an_attempt_under_way_is_left_alone() -> None:
    assert decide([phase("P01")], [record("P01", PhaseState.FAILED, 1)], active={"P01"}) == []


def test_the_budget_stops_launches_once_tokens_or_cost_reach_the_limit() -> None:
    assert budget_reason(Budget(max_tokens=1000), 999, 0.0) is None
    assert budget_reason(Budget(max_tokens=1000), 1000, 0.0) == "token budget reached: 1000 of max_tokens 1000"
    assert budget_reason(Budget(max_cost=2.0), 0, 2.5) == "cost budget reached: $2.5000 of max_cost $2"
    assert budget_reason(Budget(), 10**9, 10**6) is None


def test_phase_state_rule() -> None:
    rule = phase_after_verdict
    assert rule(True, "ok", 3, 3, stopped_by_person=False, standalone_remediation=False).state == PhaseState.PASSED
    assert rule(False, "bad", 1, 3, stopped_by_person=False, standalone_remediation=False).state == PhaseState.FAILED
    blocked = rule(False, "bad", 3, 3, stopped_by_person=False, standalone_remediation=False)
    assert (blocked.state, blocked.reason) == (PhaseState.BLOCKED, "blocked after 3 attempt(s); bad")
    stopped = rule(False, "bad", 1, 3, stopped_by_person=True, standalone_remediation=False)
    assert (stopped.state, stopped.reason) == (PhaseState.BLOCKED, "blocked: stopped by a person; bad")
    # A person's stand-alone remediation leaves a failure for the next `coord run`, whatever the count.
    assert rule(False, "bad", 5, 3, stopped_by_person=False, standalone_remediation=True).state == PhaseState.FAILED


def test_hang_policy_waits_then_declares_hung_after_max_cycles_or_silent_cycles() -> None:
    policy = Policy(poll_interval=300, max_cycles=6, max_silent_cycles=2)
    assert not decide_cycle(policy, 5, 1).hung
    assert decide_cycle(policy, 6, 0).reason == "hung: still running after 6 poll cycles (30 min)"
    assert decide_cycle(policy, 2, 2).reason == "hung: no output for 2 poll cycles (10 min)"
    assert not decide_cycle(Policy(max_cycles=6), 5, 5).hung  # no silence limit unless the plan sets one


def test_a_usage_limit_holds_every_phase_of_that_agent_until_it_resets() -> None:
    other = Phase(id="P03", kind="impl", title="P03", index=2, agent="claude", policy=Policy())
    phases = [phase("P01"), phase("P02"), other]
    waiting = dataclasses.replace(record("P01", PhaseState.WAITING, 1, uncounted=1), waiting_until=1000.0)
    records = [waiting, record("P02", PhaseState.PENDING), record("P03", PhaseState.PENDING)]

    assert decide(phases, records, now=999.0) == [("P01", Action.WAIT), ("P02", Action.WAIT), ("P03", Action.FRESH)]
    assert decide(phases, records, now=1000.0) == [("P01", Action.AFTER_LIMIT), ("P02", Action.FRESH),
                                                  ("P03", Action.FRESH)]


def test_a_run_with_parallel_phases_in_one_workdir_is_warned_and_a_chain_is_not() -> None:
    everything = lambda phase_id: True  # noqa: E731
    chain = [phase(f"P{index:04d}", *([f"P{index - 1:04d}"] if index else [])) for index in range(1200)]
    assert shared_workdir_warning(chain, everything, max_parallel=4) is None  # deeper than Python's stack
    fan = [phase("P01"), phase("P02", "P01"), phase("P03", "P01"), phase("P04", "P02", "P03")]
    warning = shared_workdir_warning(fan, everything, max_parallel=2)
    assert warning is not None and warning.startswith("--max-parallel 2: P02 and P03 do not depend on each other")
    assert shared_workdir_warning(fan, everything, max_parallel=1) is None
    apart = [fan[0], dataclasses.replace(fan[1], workdir="a"), dataclasses.replace(fan[2], workdir="b"), fan[3]]
    assert shared_workdir_warning(apart, everything, max_parallel=2) is None
    assert shared_workdir_warning(fan, lambda phase_id: phase_id != "P03", max_parallel=2) is None
