"""The store's named writes: each checks its state move, records its events in the same transaction, and hands
them to subscribers only once committed; rows come back as typed records matching the schema."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from coordinator.paths import WorkspacePaths
from coordinator.state.events import EngineEvent, Notice, VerdictReached
from coordinator.state.records import RECORD_COLUMNS, NewAttempt
from coordinator.state.store import Store
from coordinator.states import AttemptState, IllegalTransition, PhaseState, PlanState


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store.open(WorkspacePaths(tmp_path))
    store.record_plan("PLAN-T", "plans/PLAN-T.yaml", "t", [("P01", 0, "impl", "one"), ("P02", 1, "impl", "two")],
                      clear_pause=True)
    return store


def begin(store: Store, phase_id: str = "P01", number: int = 1) -> str:
    attempt_id = f"{phase_id}-{number}"
    store.begin_attempt(NewAttempt(attempt_id=attempt_id, plan_id="PLAN-T", phase_id=phase_id, number=number,
                                   remediation=number > 1, agent="shell", attempt_dir=f"/x/{phase_id}/{number}"),
                        PhaseState.RUNNING if number == 1 else PhaseState.REMEDIATING)
    return attempt_id


def test_records_have_exactly_the_schemas_columns(store: Store) -> None:
    for table, columns in RECORD_COLUMNS.items():
        present = tuple(row[1] for row in store.connection.execute(f"PRAGMA table_info({table})"))
        assert present == columns, table


def test_a_verdict_commits_attempt_phase_and_event_together(store: Store) -> None:
    seen: list[EngineEvent] = []
    store.subscribe(seen.append)
    attempt_id = begin(store)
    store.mark_running(attempt_id, 100, 101, "2026-11-24T08:00:00+0000")
    event = VerdictReached(plan_id="PLAN-T", phase_id="P01", attempt=1, passed=False, reason="bad", message="FAIL")
    with pytest.raises(IllegalTransition, match="attempt 1 of P01 cannot move from running to failed"):
        store.commit_verdict(attempt_id, AttemptState.FAILED, "FAIL", "bad", "checks", PhaseState.FAILED, "bad",
                             [event])
    # Refused as a whole: no state changed, no event recorded or delivered.
    attempt, phase = store.attempt(attempt_id), store.phase("PLAN-T", "P01")
    assert attempt is not None and attempt.state == AttemptState.RUNNING and attempt.worker_pid == 101
    assert phase is not None and phase.state == PhaseState.RUNNING
    assert [record.type for record in store.events("PLAN-T")] == [] and seen == []


def test_events_reach_subscribers_only_after_their_commit(store: Store) -> None:
    delivered: list[tuple[str, int]] = []

    def subscriber(event: EngineEvent) -> None:
        # Another connection sees the event already: the commit came first.
        with sqlite3.connect(store.paths.db) as other:
            delivered.append((event.message, other.execute("SELECT COUNT(*) FROM events").fetchone()[0]))

    store.subscribe(subscriber)
    store.record([Notice(plan_id="PLAN-T", message="hello")])
    assert delivered == [("hello", 1)]
    [record] = store.events("PLAN-T")
    assert (record.type, record.message, record.fields()) == ("notice", "hello", {"level": "info"})
    assert '"type": "notice"' in store.paths.events_file("PLAN-T").read_text()


def test_a_subscriber_that_raises_never_undoes_or_stops_a_write(store: Store) -> None:
    def broken(event: EngineEvent) -> None:
        raise RuntimeError("display problem")

    store.subscribe(broken)
    store.end_plan("PLAN-T", PlanState.FINISHED, [Notice(plan_id="PLAN-T", message="done")])
    plan = store.plan("PLAN-T")
    assert plan is not None and plan.state == PlanState.FINISHED


def test_the_phase_moves_follow_an_attempt_from_launch_to_blocked(store: Store) -> None:
    first = begin(store)
    store.mark_running(first, 1, 2, "t")
    store.request_stop(first, "hung", "hung: still running after 6 poll cycles")
    attempt = store.attempt(first)
    assert attempt is not None and (attempt.state, attempt.stop_reason) == (AttemptState.STOPPING, "hung")
    from coordinator.state.records import AttemptEnd

    store.mark_checking(first, AttemptEnd(ended_at="t", exit_code=None, signal=15, stop_reason="hung",
                                          session_id=None, input_tokens=5, cached_input_tokens=0, output_tokens=1,
                                          cost_usd=None, last_message="x" * 5000, commands=0, file_changes=0))
    assert store.phase("PLAN-T", "P01").state == PhaseState.CHECKING  # type: ignore[union-attr]
    store.commit_verdict(first, AttemptState.FAILED, "FAIL", "hung", "checks", PhaseState.FAILED, "hung")
    attempt = store.attempt(first)
    assert attempt is not None and attempt.last_message == "x" * 4000 and attempt.input_tokens == 5
    store.block_phase("PLAN-T", "P01", "blocked: attempts used up")
    assert store.phase("PLAN-T", "P01").state == PhaseState.BLOCKED  # type: ignore[union-attr]
    # Blocked waits for a person; it never starts fresh again.
    with pytest.raises(IllegalTransition, match="phase P01 cannot move from blocked to running"):
        begin(store, "P01", 1)
    begin(store, "P01", 2)
    assert store.phase("PLAN-T", "P01").state == PhaseState.REMEDIATING  # type: ignore[union-attr]
    assert store.spent("PLAN-T") == (6, 0.0)


def test_the_events_mirror_catches_up_with_the_store(store: Store) -> None:
    """A coordinator killed between a commit and its append leaves the mirror behind; a worker may delete it.
    The next coordinator appends what the store has after the mirror's last line (each line carries its seq)."""
    store.record([Notice(plan_id="PLAN-T", message=f"event {n}") for n in range(3)])
    mirror = store.paths.events_file("PLAN-T")
    lines = mirror.read_text().splitlines()
    mirror.write_text("\n".join(lines[:1]) + "\n")  # the last two were never appended

    assert store.catch_up_mirror("PLAN-T") == 2
    assert mirror.read_text().splitlines() == lines
    assert store.catch_up_mirror("PLAN-T") == 0

    mirror.unlink()  # a worker's rm -rf tmp
    assert store.catch_up_mirror("PLAN-T") == 3
    assert [json.loads(line)["message"] for line in mirror.read_text().splitlines()] == [
        "event 0", "event 1", "event 2"]
