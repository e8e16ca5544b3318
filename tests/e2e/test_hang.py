"""The hang policy and stops through the real ``coord`` CLI: workers hung by ``max_cycles`` or
``max_silent_cycles``, killed with their process group and escaped grandchildren after ``kill_grace``, and a
phase stopped by a person."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from tests.helpers import (
    coord,
    db_rows,
    events,
    fake_agent,
    phase_state,
    phase_status,
    processes_with_cookie,
    records_file,
    start_coord,
    wait_until,
    write_plan,
)

pytestmark = pytest.mark.slow

# Parts of fault-matrix rows (../shared/RELIABILITY.md) that cannot run on this machine:
# C3 (a real clock step): stepping the system clock needs CAP_SYS_TIME and moves the clock of every process on the
#     host, so only a pause of the coordinator (SIGSTOP, then SIGCONT) is injected.
# B5 (a worker that survives SIGKILL, recorded as unkillable, I5): that takes a process in uninterruptible sleep
#     (D state: a hung NFS or FUSE mount, a failing disk), which a test cannot make here.


def test_B6_hung_worker_is_killed_with_its_escaped_grandchild(workspace: Path) -> None:
    """A kill covers the whole tree and is verified: no process with the attempt's cookie is left (I5)."""
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "hangs", "instructions": "[[fake:fork_escape]]"},
    ], policy={"poll_interval": "0.2s", "max_cycles": 3, "max_attempts": 1, "kill_grace": "0.3s"})

    result = coord(workspace, "run", str(plan))

    assert result.returncode == 1
    assert "poll cycle 1/3" in result.stdout and "poll cycle 3/3" in result.stdout
    evidence = json.loads((workspace / "tmp/PLAN-T/P01/1/evidence.json").read_text())
    assert evidence["verdict"] == "FAIL" and "hung" in evidence["reason"]
    exit_record = json.loads((workspace / "tmp/PLAN-T/P01/1/exit.json").read_text())
    assert exit_record["stop_request"] == "hung"
    assert exit_record["signal"] in (signal.SIGTERM, signal.SIGKILL)
    assert exit_record["stragglers"], "the grandchild that left the process group was found and killed"
    attempt_id = db_rows(workspace, "SELECT attempt_id FROM attempts")[0]["attempt_id"]
    assert processes_with_cookie("COORD_ATTEMPT_ID", attempt_id) == []
    assert phase_status(workspace, "P01")["state"] == "blocked"


def test_B3_silent_worker_is_hung_sooner_with_max_silent_cycles(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "silent", "instructions": "[[fake:hang]]"},
    ], policy={"poll_interval": "0.2s", "max_cycles": 100, "max_silent_cycles": 2, "max_attempts": 1,
               "kill_grace": "0.3s"})

    result = coord(workspace, "run", str(plan))

    assert result.returncode == 1
    assert "hung: no output for 2 poll cycles" in result.stdout
    assert "nothing came back from the model" in phase_status(workspace, "P01")["reason"]


def test_B4_chatty_worker_is_still_hung_after_max_cycles(workspace: Path) -> None:
    # Output every 50 ms never resets max_cycles: it bounds the attempt's whole run, whatever the worker prints.
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "chatty", "instructions": "[[fake:chatty]]"},
    ], policy={"poll_interval": "0.2s", "max_cycles": 3, "max_silent_cycles": 2, "max_attempts": 1,
               "kill_grace": "0.3s"})

    result = coord(workspace, "run", str(plan))

    assert result.returncode == 1
    assert "hung: still running after 3 poll cycles" in phase_status(workspace, "P01")["reason"]


def test_B5_worker_ignoring_sigterm_is_killed_after_the_grace(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "stubborn", "instructions": "[[fake:ignore_term]]"},
    ], policy={"poll_interval": "0.2s", "max_cycles": 2, "max_attempts": 1, "kill_grace": "0.3s"})

    result = coord(workspace, "run", str(plan))

    assert result.returncode == 1
    exit_record = json.loads((workspace / "tmp/PLAN-T/P01/1/exit.json").read_text())
    assert exit_record["signal"] == signal.SIGKILL


def test_stop_one_phase_blocks_it_and_kills_its_group(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "hangs", "instructions": "[[fake:hang]]"},
    ])
    running = start_coord(workspace, "run", str(plan))
    wait_until(lambda: (workspace / "tmp/PLAN-T/P01/1/identity.json").exists())

    result = coord(workspace, "stop", "P01")

    assert result.returncode == 0 and "stopping P01" in result.stdout
    assert running.wait(timeout=30) == 1
    phase = phase_status(workspace, "P01")
    assert phase["state"] == "blocked" and "stopped by a person" in phase["reason"]


def test_B11_stopped_worker_is_declared_hung_and_killed(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "frozen", "instructions": "[[fake:slow]]"},
    ], policy={"poll_interval": "0.2s", "max_cycles": 100, "max_silent_cycles": 3, "max_attempts": 1,
               "kill_grace": "0.5s"}, agents=fake_agent(FAKE_CODEX_SLOW_SECONDS="60"))
    run = start_coord(workspace, "run", str(plan), "--headless")
    wait_until(lambda: (workspace / "tmp/PLAN-T/P01/1/identity.json").exists())
    worker_pid = json.loads((workspace / "tmp/PLAN-T/P01/1/identity.json").read_text())["worker_pid"]
    os.kill(worker_pid, signal.SIGSTOP)

    out, err = run.communicate(timeout=60)

    assert run.returncode == 1, out + err
    assert "hung: no output for 3 poll cycles" in phase_status(workspace, "P01")["reason"]
    exit_record = json.loads((workspace / "tmp/PLAN-T/P01/1/exit.json").read_text())
    assert exit_record["stop_request"] == "hung" and exit_record["signal"] in (signal.SIGTERM, signal.SIGKILL)


def test_C3_a_stopped_coordinator_counts_its_pause_as_one_poll_cycle(workspace: Path) -> None:
    """Silence is counted in observed poll cycles, not wall time (I6)."""
    # Hung means observed cycles, not wall time: ten cycles' worth of a stopped coordinator add one cycle.
    import time

    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "silent", "instructions": "[[fake:hang]]"},
    ], policy={"poll_interval": "0.2s", "max_cycles": 100, "max_silent_cycles": 3, "max_attempts": 1,
               "kill_grace": "0.3s"})
    run = start_coord(workspace, "run", str(plan), "--headless")
    wait_until(lambda: phase_state(workspace, "P01") == "running")
    os.kill(run.pid, signal.SIGSTOP)
    time.sleep(2.0)  # the injected fault: the coordinator is stopped for ten poll cycles
    os.kill(run.pid, signal.SIGCONT)
    out, err = run.communicate(timeout=60)

    assert run.returncode == 1, out + err
    cycles = [event["data"]["cycle"] for event in events(workspace) if event["type"] == "poll_cycle"]
    assert cycles == list(range(1, len(cycles) + 1)) and len(cycles) <= 5, cycles
    assert "hung: no output for 3 poll cycles" in phase_status(workspace, "P01")["reason"]


def test_hung_worker_whose_last_line_is_odd_json_is_still_stopped(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "odd", "agent": "shell",
         "script": ["""printf '{"type":"turn.failed","error":"boom"}\\n'; sleep 30"""]},
    ], policy={"poll_interval": "0.2s", "max_cycles": 3, "max_attempts": 1, "kill_grace": "0.3s"},
        checks={"report": False, "completed": False})

    result = coord(workspace, "run", str(plan))

    assert result.returncode == 1, result.stdout + result.stderr
    assert 'its last output: {"type":"turn.failed","error":"boom"}' in phase_status(workspace, "P01")["reason"]


def test_B4_a_chatty_worker_is_stopped_at_its_deadline(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "chatty", "instructions": "[[fake:chatty]]"},
    ], policy={"poll_interval": "0.2s", "max_cycles": 1000, "max_silent_cycles": 3, "max_attempts": 1,
               "kill_grace": "0.3s", "deadline": "2s"})

    result = coord(workspace, "run", str(plan))

    assert result.returncode == 1, result.stdout + result.stderr
    reason = phase_status(workspace, "P01")["reason"]
    assert "deadline: still running after 2 s (deadline 2 s)" in reason, reason


def test_B4_a_deadline_shorter_than_the_poll_interval_still_holds(workspace: Path) -> None:
    """The deadline is checked on every pass of the loop, not at the end of a five-minute poll cycle."""
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "chatty", "instructions": "[[fake:chatty]]"},
    ], policy={"poll_interval": "5m", "max_attempts": 1, "kill_grace": "0.3s", "deadline": "1s"})

    result = coord(workspace, "run", str(plan))

    assert result.returncode == 1, result.stdout + result.stderr
    assert "deadline: still running after" in phase_status(workspace, "P01")["reason"]
    assert json.loads(records_file(workspace, "P01", 1, "exit.json").read_text())["duration_s"] < 60


def test_a_long_quiet_command_is_alive_not_silent(workspace: Path) -> None:
    """A command the worker started runs without output for longer than max_silent_cycles: not hung."""
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "slow tests", "instructions": "[[fake:long_command]]"},
    ], policy={"poll_interval": "0.2s", "max_cycles": 100, "max_silent_cycles": 3, "max_attempts": 1,
               "kill_grace": "0.3s"}, agents=fake_agent(FAKE_CODEX_SLOW_SECONDS="2.5"))

    result = coord(workspace, "run", str(plan))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "a command is still running: /bin/bash -lc 'make test'" in result.stdout


def test_one_command_is_bounded_by_max_command_cycles(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "slow tests", "instructions": "[[fake:long_command]]"},
    ], policy={"poll_interval": "0.2s", "max_cycles": 100, "max_silent_cycles": 3, "max_command_cycles": 4,
               "max_attempts": 1, "kill_grace": "0.3s"}, agents=fake_agent(FAKE_CODEX_SLOW_SECONDS="30"))

    result = coord(workspace, "run", str(plan))

    assert result.returncode == 1, result.stdout + result.stderr
    reason = phase_status(workspace, "P01")["reason"]
    assert "hung: one command (or model retry) ran for 4 poll cycles" in reason, reason
    assert "a command was still running: /bin/bash -lc 'make test'" in reason


def test_a_worker_waiting_on_stdin_is_reported_at_once(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "asks", "instructions": "[[fake:stdin_wait]]"},
    ], policy={"poll_interval": "0.3s", "max_cycles": 100, "max_attempts": 1, "kill_grace": "0.3s"})

    result = coord(workspace, "run", str(plan))

    assert result.returncode == 1, result.stdout + result.stderr
    reason = phase_status(workspace, "P01")["reason"]
    assert reason.startswith("blocked after 1 attempt(s); hung: stuck on stdin"), reason
    [row] = db_rows(workspace, "SELECT cycle FROM attempts")
    assert row["cycle"] == 1, "it waited more than one poll cycle"
