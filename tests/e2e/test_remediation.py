"""Remediation through the real ``coord`` CLI: a failed attempt retried with its evidence (a new session or
the same one resumed), and ``coord remediate`` of a blocked phase with or without a running coordinator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import (
    VERIFY_FIXED,
    coord,
    db_rows,
    fake_agent,
    phase_state,
    phase_status,
    start_coord,
    wait_until,
    write_plan,
)

pytestmark = pytest.mark.slow


def test_B8_worker_that_lies_is_judged_fail_and_remediated_with_the_evidence(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "impl", "instructions": "[[fake:lie,pass]] implement it",
         "verify": [VERIFY_FIXED]},
    ], agents=fake_agent(FAKE_CODEX_WRITE="fixed.txt=yes"))

    result = coord(workspace, "run", str(plan))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "worker reported PASS; verification `test -f fixed.txt` exited 1" in result.stdout
    first = json.loads((workspace / "tmp/PLAN-T/P01/1/evidence.json").read_text())
    assert first["verdict"] == "FAIL"
    remediation_prompt = (workspace / "tmp/PLAN-T/P01/2/prompt.md").read_text()
    assert "test -f fixed.txt" in remediation_prompt
    assert "tmp/PLAN-T/P01/1/worker.log" in remediation_prompt
    phase = phase_status(workspace, "P01")
    assert phase["state"] == "passed" and phase["attempts"] == 2 and phase["remediations"] == 1


def test_remediate_without_a_coordinator_runs_to_a_verdict(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "x", "instructions": "[[fake:fail,fail,pass]]"},
        {"id": "P02", "kind": "verify", "title": "after", "instructions": "[[fake:pass]]"},
    ])
    assert coord(workspace, "run", str(plan)).returncode == 1
    assert phase_status(workspace, "P01")["state"] == "blocked"

    result = coord(workspace, "remediate", "P01", "--note", "look at the report")

    assert result.returncode == 0, result.stdout + result.stderr
    assert phase_status(workspace, "P01")["state"] == "passed"
    assert "look at the report" in (workspace / "tmp/PLAN-T/P01/3/prompt.md").read_text()
    assert phase_status(workspace, "P02")["state"] == "pending"
    again = coord(workspace, "run", str(plan))
    assert again.returncode == 0 and phase_status(workspace, "P02")["state"] == "passed"


def test_remediate_that_fails_exits_1(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "x", "instructions": "[[fake:fail]]"},
    ], policy={"max_attempts": 1})
    assert coord(workspace, "run", str(plan)).returncode == 1

    result = coord(workspace, "remediate", "P01")

    assert result.returncode == 1
    assert len(db_rows(workspace, "SELECT * FROM attempts")) == 2


def test_G2_remediate_goes_through_the_running_coordinator(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "fails once", "instructions": "[[fake:fail,pass]]"},
        {"id": "P02", "kind": "impl", "title": "long", "instructions": "[[fake:slow]]", "depends_on": []},
    ], policy={"max_attempts": 1}, agents=fake_agent(FAKE_CODEX_SLOW_SECONDS="4"))
    running = start_coord(workspace, "run", str(plan), "--max-parallel", "2")
    try:
        wait_until(lambda: phase_state(workspace, "P01") == "blocked")

        result = coord(workspace, "remediate", "P01")

        assert result.returncode == 0, result.stderr
        assert f"launched by the running coordinator (pid {running.pid})" in result.stdout
        assert running.wait(timeout=60) == 0
    finally:
        if running.poll() is None:
            coord(workspace, "stop")
            running.wait(timeout=30)
    rows = db_rows(workspace, "SELECT number, state FROM attempts WHERE phase_id='P01' ORDER BY number")
    assert [(r["number"], r["state"]) for r in rows] == [(1, "failed"), (2, "passed")]


def test_resume_policy_remediates_in_the_same_agent_session(workspace: Path, tmp_path: Path) -> None:
    record = tmp_path / "record"
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "x", "instructions": "[[fake:fail,pass]]"},
    ], policy={"remediation": "resume"}, agents=fake_agent(FAKE_CODEX_RECORD_DIR=str(record)))

    result = coord(workspace, "run", str(plan))

    assert result.returncode == 0, result.stdout + result.stderr
    first, second = (json.loads((workspace / f"tmp/PLAN-T/P01/{n}/summary.json").read_text()) for n in (1, 2))
    assert second["session_id"] == first["session_id"]
    calls = [json.loads(p.read_text()) for p in record.glob("*.json")]
    resumed = [c for c in calls if "resume" in c["argv"]]
    assert len(resumed) == 1 and first["session_id"] in resumed[0]["argv"]
    # codex reports thread-cumulative usage; each attempt keeps only its own tokens
    assert 0 < second["input_tokens"] <= first["input_tokens"] * 2
    assert second["cumulative_usage"]["input_tokens"] == first["input_tokens"] + second["input_tokens"]


def test_G1_a_worker_killed_on_every_attempt_stops_at_max_attempts_across_restarts(workspace: Path) -> None:
    """Every attempt's worker is SIGKILLed (an OOM loop) and the coordinator itself dies right after the first
    verdict: the restarted run counts that attempt, stops at ``max_attempts`` and blocks the phase (I7)."""
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "oom loop", "instructions": "[[fake:crash]]"},
        {"id": "P02", "kind": "verify", "title": "after", "instructions": "[[fake:pass]]"},
    ], policy={"max_attempts": 3})

    crashed = coord(workspace, "run", str(plan), env={"COORD_FAILPOINTS": "finish.after_verdict_commit=kill"})
    assert crashed.returncode == -9, crashed.stdout + crashed.stderr
    assert len(db_rows(workspace, "SELECT * FROM attempts")) == 1

    resumed = coord(workspace, "run", str(plan))

    assert resumed.returncode == 1, resumed.stdout + resumed.stderr
    rows = db_rows(workspace, "SELECT number, state, reason FROM attempts WHERE phase_id='P01' ORDER BY number")
    assert [(r["number"], r["state"]) for r in rows] == [(1, "failed"), (2, "failed"), (3, "failed")]
    assert all("SIGKILL" in r["reason"] for r in rows)
    assert phase_status(workspace, "P01")["state"] == "blocked"
    assert phase_status(workspace, "P02")["state"] == "pending"
    again = coord(workspace, "run", str(plan))
    assert again.returncode == 1 and len(db_rows(workspace, "SELECT * FROM attempts")) == 3, "no poison-pill loop"


def test_G3_a_rejected_session_resume_falls_back_to_a_fresh_worker(workspace: Path, tmp_path: Path) -> None:
    """Remediation by ``resume``: the agent refuses to resume the session (exit 2); the next remediation is a fresh
    session given the evidence, and the run says so."""
    record = tmp_path / "record"
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "x", "instructions": "[[fake:fail,resume_reject]]"},
    ], policy={"remediation": "resume", "max_attempts": 3}, agents=fake_agent(FAKE_CODEX_RECORD_DIR=str(record)))

    result = coord(workspace, "run", str(plan))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "P01: cannot resume (no session id from attempt 2); remediating with a fresh worker" in result.stdout
    assert phase_status(workspace, "P01")["state"] == "passed"
    calls = [json.loads(p.read_text()) for p in record.glob("*.json")]
    assert sorted("resume" in c["argv"] for c in calls) == [False, False, True], [c["argv"] for c in calls]
    assert "worker exited 2" in (workspace / "tmp/PLAN-T/P01/3/prompt.md").read_text()


def test_G3_a_rejected_resume_falls_back_within_the_remediation_budget(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "x", "instructions": "[[fake:fail,resume_reject]]"},
    ], policy={"remediation": "resume", "max_attempts": 2})

    result = coord(workspace, "run", str(plan))

    assert result.returncode == 0, result.stdout + result.stderr
    assert phase_status(workspace, "P01")["state"] == "passed"
    rows = db_rows(workspace, "SELECT number, state, resume_session, reason FROM attempts ORDER BY number")
    assert [(r["number"], r["state"], r["resume_session"] is not None) for r in rows] == [
        (1, "failed", False), (2, "failed", True), (3, "passed", False)]
    assert "(the agent rejected the resume)" in rows[1]["reason"]
    assert "attempt 2 is not counted: a fresh worker follows (attempt 3, 2/2)" in result.stdout
    assert "P01 attempt 3 (2/2): remediation" in result.stdout
    [phase] = db_rows(workspace, "SELECT attempts, uncounted_attempts FROM phases")
    assert (phase["attempts"], phase["uncounted_attempts"]) == (3, 1)


def test_a_resume_answered_in_another_session_falls_back_to_a_fresh_worker(workspace: Path) -> None:
    """Attempt 2 resumes attempt 1's thread but the agent silently answers in a new one: attempt 2 fails for it,
    and attempt 3 is a fresh worker, not a resume of the stray thread; the run says so."""
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "x", "instructions": "[[fake:fail,resume_elsewhere,pass]]"},
    ], policy={"remediation": "resume", "max_attempts": 3})

    result = coord(workspace, "run", str(plan))

    assert result.returncode == 0, result.stdout + result.stderr
    rows = db_rows(workspace, "SELECT number, state, resume_session, session_id, reason FROM attempts ORDER BY number")
    assert [(r["number"], r["state"]) for r in rows] == [(1, "failed"), (2, "failed"), (3, "passed")]
    assert rows[1]["resume_session"] == rows[0]["session_id"] != rows[1]["session_id"]
    assert f"resumed session returned thread {rows[1]['session_id']}, expected {rows[0]['session_id']}" in (
        rows[1]["reason"])
    assert rows[2]["resume_session"] is None
    assert (f"P01: attempt 2 did not resume session {rows[0]['session_id']} (the agent answered in "
            f"{rows[1]['session_id']}); remediating with a fresh worker") in result.stdout
