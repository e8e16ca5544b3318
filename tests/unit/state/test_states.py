"""The state machine: every state has its moves written down, and the store refuses any other."""

from __future__ import annotations

import pytest

from coordinator.states import (
    ACTIVE_ATTEMPT_STATES,
    ATTEMPT_MOVES,
    PHASE_MOVES,
    PLAN_MOVES,
    TERMINAL_ATTEMPT_STATES,
    AttemptState,
    IllegalTransition,
    PhaseState,
    PlanState,
    check_move,
)


@pytest.mark.parametrize(("table", "states"), [(ATTEMPT_MOVES, AttemptState), (PHASE_MOVES, PhaseState),
                                               (PLAN_MOVES, PlanState)])
def test_every_state_has_its_moves_and_every_move_names_a_state(table: dict, states: type) -> None:
    assert set(table) == {None, *states}
    for targets in table.values():
        assert all(isinstance(target, states) for target in targets)


def test_terminal_attempts_never_move_and_active_ones_can_end() -> None:
    for state in TERMINAL_ATTEMPT_STATES:
        assert ATTEMPT_MOVES[state] == frozenset()
    assert ACTIVE_ATTEMPT_STATES.isdisjoint(TERMINAL_ATTEMPT_STATES)
    # From every active state there is a way to an end.
    for state in ACTIVE_ATTEMPT_STATES:
        reachable, frontier = set(), {state}
        while frontier:
            current = frontier.pop()
            for target in ATTEMPT_MOVES[current] - reachable:
                reachable.add(target)
                frontier.add(target)
        assert reachable & TERMINAL_ATTEMPT_STATES, state


def test_a_move_outside_the_table_is_refused_with_what_was_allowed() -> None:
    check_move("attempt 1 of P01", ATTEMPT_MOVES, AttemptState, "checking", "passed")
    with pytest.raises(IllegalTransition, match="cannot move from passed to running; allowed: nothing"):
        check_move("attempt 1 of P01", ATTEMPT_MOVES, AttemptState, "passed", "running")
    with pytest.raises(IllegalTransition, match="phase P01 cannot move from pending to checking"):
        check_move("phase P01", PHASE_MOVES, PhaseState, "pending", "checking")
    with pytest.raises(IllegalTransition, match="unknown state 'skipped'"):
        check_move("phase P01", PHASE_MOVES, PhaseState, "skipped", "running")
