"""Usage limits park, they do not fail: the phase waits for the reset (not counted against max_attempts), every
phase on the same agent profile waits with it, and at the reset coord continues the same session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import (
    coord,
    db_rows,
    fake_agent,
    phase_status,
    start_coord,
    status,
    status_if_recorded,
    wait_until,
    write_plan,
)

pytestmark = pytest.mark.slow


def test_a_usage_limit_waits_for_the_reset_then_resumes_the_same_session(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "limited", "instructions": "[[fake:usage_limit,pass]]"},
        {"id": "P02", "kind": "impl", "title": "same agent", "instructions": "[[fake:pass]]", "depends_on": []},
    ], policy={"max_attempts": 1})

    result = coord(workspace, "run", str(plan), "--max-parallel", "1")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "P01 waiting for the fake usage limit to reset at" in result.stdout
    assert "every phase on agent 'fake' waits with it" in result.stdout
    assert "P01: the fake usage limit has reset; continuing" in result.stdout
    rows = db_rows(workspace, "SELECT phase_id, number, state, resume_session, session_id, reason, started_at "
                   "FROM attempts ORDER BY started_at, number")
    first, *rest = rows
    assert (first["phase_id"], first["state"]) == ("P01", "failed")
    assert first["reason"].startswith("usage limit: You've hit your usage limit")
    # with max_attempts 1 the limited attempt did not count: P01 passed on attempt 2, resuming its session
    [again] = [row for row in rest if row["phase_id"] == "P01"]
    assert (again["number"], again["state"], again["resume_session"]) == (2, "passed", first["session_id"])
    # P02 shares the agent profile: it waited too, so it launched after the reset, not during the wait
    launches = [(row["phase_id"], row["attempt"]) for row in db_rows(
        workspace, "SELECT phase_id, attempt FROM events WHERE type='attempt_launched' ORDER BY seq")]
    assert launches == [("P01", 1), ("P01", 2), ("P02", 1)], launches
    assert [p["state"] for p in status(workspace)["phases"]] == ["passed", "passed"]


def test_a_waiting_phase_shows_its_reset_time_in_status(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "limited", "instructions": "[[fake:usage_limit,pass]]"},
    ], agents=fake_agent(FAKE_CODEX_LIMIT_TEXT="You've hit your usage limit. Try again in 1 hour."))
    run = start_coord(workspace, "run", str(plan), "--headless")
    try:
        wait_until(lambda: "waiting" in [p["state"] for p in (status_if_recorded(workspace) or {"phases": []})[
            "phases"]], timeout=30)
        entry = phase_status(workspace, "P01")
        table = coord(workspace, "status").stdout
    finally:
        run.terminate()
        run.communicate(timeout=30)

    assert entry["reason"].startswith("waiting for the fake usage limit to reset at "), entry["reason"]
    assert "(in 59m)" in entry["reason"] or "(in 1h00m)" in entry["reason"], entry["reason"]
    assert "0/1 passed · 0 running · 0 blocked · 1 waiting on a usage limit ·" in table, table


def test_a_limit_without_a_reset_time_waits_limit_wait_and_says_so(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "limited", "instructions": "[[fake:usage_limit,pass]]"},
    ], policy={"limit_wait": "1s"},
        agents=fake_agent(FAKE_CODEX_LIMIT_TEXT="unexpected status 429: Quota exceeded. Check your billing."))

    result = coord(workspace, "run", str(plan))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "the agent named no reset time coord can read: waiting `limit_wait`" in result.stdout
