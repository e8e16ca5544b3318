"""Restarts through the real ``coord`` CLI: the crash-point sweep (the coordinator SIGKILLs itself at each named
protocol step; a restart must lose no result and never run two workers for one phase, RELIABILITY A2), an
internal error, Ctrl-C and reattach, workers that ended or live on while no coordinator ran (adopted, judged,
lost), a deleted store, a reboot, a plan edited under a running worker and a torn audit line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from coordinator.util import failpoints
from tests.helpers import (
    VERIFY_FIXED,
    coord,
    db_rows,
    events,
    fake_agent,
    phase_status,
    records_file,
    start_coord,
    status,
    store_file,
    wait_until,
    write_plan,
)

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("failpoint", failpoints.NAMES)
def test_restart_after_a_crash_at_each_failpoint_finishes_the_plan(tmp_path: Path, failpoint: str) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "fails once", "instructions": "[[fake:fail,pass]]"},
        {"id": "P02", "kind": "verify", "title": "after", "instructions": "[[fake:pass]]"},
    ], policy={"max_attempts": 3})

    crashed = coord(workspace, "run", str(plan), env={"COORD_FAILPOINTS": f"{failpoint}=kill"})
    assert crashed.returncode == -9, f"failpoint {failpoint} was never reached: {crashed.stdout}"

    resumed = coord(workspace, "run", str(plan))

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    states = {r["phase_id"]: r["state"] for r in db_rows(workspace, "SELECT phase_id, state FROM phases")}
    assert states == {"P01": "passed", "P02": "passed"}
    for phase in ("P01", "P02"):
        rows = db_rows(workspace, "SELECT number, state FROM attempts WHERE phase_id=? ORDER BY number", phase)
        numbers = [r["number"] for r in rows]
        assert numbers == list(range(1, len(numbers) + 1)), "attempts are counted without gaps"
        assert [r["state"] for r in rows][-1] == "passed"
        assert all(r["state"] in ("passed", "failed", "lost") for r in rows)
    # Each worker process that started wrote one pid line; no phase ever had two workers at once.
    pid_lines = (workspace / "tmp/PLAN-T/worker-pids.txt").read_text().splitlines()
    launched = [(line.split()[0], line.split()[4]) for line in pid_lines]
    assert len(launched) == len(set(launched))
    # ... and every attempt whose worker started has its line, even if its coordinator died before writing it.
    started = {(r["phase_id"], str(r["number"]))
               for r in db_rows(workspace, "SELECT phase_id, number, attempt_dir FROM attempts")
               if (Path(r["attempt_dir"]) / "identity.json").exists()}
    assert started <= set(launched), started - set(launched)
    # ... and records who ran it, with its launch event, even when the kill fell between start and "running".
    for row in db_rows(workspace, "SELECT phase_id, number, worker_pid, started_at FROM attempts"):
        if (row["phase_id"], str(row["number"])) in started:
            assert row["worker_pid"] and row["started_at"], dict(row)
    launch_events = {(event["phase"], event["attempt"]) for event in events(workspace)
                     if event["type"] == "attempt_launched"}
    assert {(phase, int(number)) for phase, number in started} <= launch_events


def test_internal_error_exits_70_with_a_crash_log_and_no_traceback(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    plan = write_plan(workspace, [{"id": "P01", "kind": "stub", "title": "x", "instructions": "[[fake:pass]]"}])

    crashed = coord(workspace, "run", str(plan), env={"COORD_FAILPOINTS": "finish.after_exit_read=raise"})

    assert crashed.returncode == 70
    assert "Traceback" not in crashed.stderr
    [log] = list((workspace / "tmp" / "crashes").glob("crash-*.log"))
    assert str(log.relative_to(workspace)) in crashed.stderr or str(log) in crashed.stderr
    assert "failpoint finish.after_exit_read" in log.read_text()
    again = coord(workspace, "run", str(plan))
    assert again.returncode == 0, again.stdout + again.stderr


def test_attempt_from_an_earlier_boot_is_lost_and_its_recorded_pid_never_signalled(tmp_path: Path) -> None:
    import os
    import signal

    from tests.helpers import start_coord, wait_until

    workspace = tmp_path / "ws"
    workspace.mkdir()
    plan = write_plan(workspace, [{"id": "P01", "kind": "impl", "title": "x", "instructions": "[[fake:hang,pass]]"}])
    first = start_coord(workspace, "run", str(plan))
    identity_path = records_file(workspace, "P01", 1, "identity.json")
    wait_until(identity_path.exists)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    identity = json.loads(identity_path.read_text())
    os.killpg(identity["supervisor_pid"], signal.SIGKILL)  # the "reboot": every process of the attempt is gone
    os.killpg(identity["worker_pid"], signal.SIGKILL)
    bystander = subprocess.Popen(["sleep", "300"], start_new_session=True)  # now owns a recorded-looking pid
    try:
        identity.update(supervisor_pid=bystander.pid, worker_pid=bystander.pid, boot_id="0" * 32)
        identity_path.write_text(json.dumps(identity))

        resumed = coord(workspace, "run", str(plan))

        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert bystander.poll() is None, "a pid recorded in an earlier boot was signalled"
        rows = db_rows(workspace, "SELECT number, state, reason FROM attempts ORDER BY number")
        assert rows[0]["state"] == "lost" and "rebooted" in rows[0]["reason"]
        assert rows[1]["state"] == "passed"
    finally:
        bystander.kill()
        bystander.wait()


def test_a_torn_last_line_in_events_jsonl_does_not_break_the_next_append(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    plan = write_plan(workspace, [{"id": "P01", "kind": "stub", "title": "x", "instructions": "[[fake:pass]]"}])
    events_file = workspace / "tmp/PLAN-T/events.jsonl"
    events_file.parent.mkdir(parents=True)
    events_file.write_text('{"event": "launch", "pha')  # a crash in the middle of an append

    assert coord(workspace, "run", str(plan)).returncode == 0

    lines = events_file.read_text().splitlines()
    assert lines[0] == '{"event": "launch", "pha'
    assert all(json.loads(line) for line in lines[1:])


def test_ctrl_c_detaches_and_a_new_run_reattaches_without_relaunching(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "slow", "instructions": "[[fake:slow]]"},
        {"id": "P02", "kind": "verify", "title": "next", "instructions": "[[fake:pass]]"},
    ], agents=fake_agent(FAKE_CODEX_SLOW_SECONDS="3"))
    first = start_coord(workspace, "run", str(plan))
    wait_until(lambda: (workspace / "tmp/PLAN-T/P01/1/identity.json").exists())
    worker_pid = json.loads((workspace / "tmp/PLAN-T/P01/1/identity.json").read_text())["worker_pid"]

    os.killpg(first.pid, signal.SIGINT)  # what a terminal sends to its foreground job on Ctrl-C
    out, _ = first.communicate(timeout=10)

    assert first.returncode == 130
    assert "coord run plans/PLAN-T.yaml` reattaches" in out
    os.kill(worker_pid, 0)  # the worker survived the detach
    second = coord(workspace, "run", str(plan))
    assert second.returncode == 0, second.stdout + second.stderr
    assert "attempt 1 reattached" in second.stdout
    assert len(db_rows(workspace, "SELECT * FROM attempts WHERE phase_id='P01'")) == 1


def test_coordinator_killed_while_worker_finishes_loses_no_result(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "slow", "instructions": "[[fake:slow]]"},
    ], agents=fake_agent(FAKE_CODEX_SLOW_SECONDS="1"))
    first = start_coord(workspace, "run", str(plan))
    wait_until(lambda: (workspace / "tmp/PLAN-T/P01/1/identity.json").exists())

    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    wait_until(lambda: (workspace / "tmp/PLAN-T/P01/1/exit.json").exists())

    between = phase_status(workspace, "P01")  # nobody has judged it yet, and status says so
    assert (between["state"], between["pid"]) == ("ended", None)
    assert between["reason"] == ("its worker ended (exit code 0) while no coordinator ran; "
                                 "`coord run plans/PLAN-T.yaml` judges it")
    assert status(workspace)["totals"]["running"] == 0

    second = coord(workspace, "run", str(plan))
    assert second.returncode == 0, second.stdout + second.stderr
    assert "ended while no coordinator watched" in second.stdout
    assert len(db_rows(workspace, "SELECT * FROM attempts")) == 1
    third = coord(workspace, "run", str(plan))
    assert third.returncode == 0
    assert [e["type"] for e in events(workspace)].count("attempt_ended") == 1


def test_live_worker_missing_from_a_deleted_store_is_adopted_not_launched_twice(
        workspace: Path, tmp_path: Path) -> None:
    go = tmp_path / "go"
    os.mkfifo(go)
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "waits", "instructions": "[[fake:barrier]]"},
    ], agents=fake_agent(FAKE_CODEX_BARRIER=str(go)))
    first = start_coord(workspace, "run", str(plan))
    wait_until(lambda: (workspace / "tmp/PLAN-T/P01/1/identity.json").exists())
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    for suffix in ("", "-wal", "-shm"):
        store_file(workspace, suffix).unlink(missing_ok=True)

    second = start_coord(workspace, "run", str(plan))
    wait_until(lambda: any("adopting it instead of launching" in event["message"] for event in events(workspace)))
    with open(go, "w") as barrier:  # now let the first (and only) worker finish
        barrier.write("go\n")
    out, err = second.communicate(timeout=60)

    assert second.returncode == 0, out + err
    rows = db_rows(workspace, "SELECT number, state FROM attempts")
    assert [(row["number"], row["state"]) for row in rows] == [(1, "passed")]
    pid_lines = (workspace / "tmp/PLAN-T/worker-pids.txt").read_text().splitlines()
    assert len(pid_lines) == 1, "a second worker was launched for P01"


def test_supervisor_killed_means_lost_attempt_and_a_new_one(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "x", "instructions": "[[fake:hang,pass]]"},
    ])
    first = start_coord(workspace, "run", str(plan))
    wait_until(lambda: (workspace / "tmp/PLAN-T/P01/1/identity.json").exists())
    supervisor_pid = json.loads((workspace / "tmp/PLAN-T/P01/1/identity.json").read_text())["supervisor_pid"]
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    os.kill(supervisor_pid, signal.SIGKILL)

    second = coord(workspace, "run", str(plan))

    assert second.returncode == 0, second.stdout + second.stderr
    rows = db_rows(workspace, "SELECT number, state FROM attempts ORDER BY number")
    assert [(r["number"], r["state"]) for r in rows] == [(1, "lost"), (2, "passed")]


def test_plan_edit_that_would_orphan_a_running_worker_is_refused(workspace: Path) -> None:
    phases = [
        {"id": "P01", "kind": "impl", "title": "hangs", "instructions": "[[fake:hang]]"},
        {"id": "P02", "kind": "impl", "title": "later", "instructions": "[[fake:pass]]"},
    ]
    plan = write_plan(workspace, phases)
    first = start_coord(workspace, "run", str(plan))
    wait_until(lambda: (workspace / "tmp/PLAN-T/P01/1/identity.json").exists())
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    write_plan(workspace, phases[1:])

    edited = coord(workspace, "run", str(plan))

    assert edited.returncode == 2
    assert "plan changed: P01 removed" in edited.stderr
    stop = coord(workspace, "stop")
    assert stop.returncode == 0 and "stopping P01" in stop.stdout
    wait_until(lambda: (workspace / "tmp/PLAN-T/P01/1/exit.json").exists())


def test_leftover_attempt_folders_of_a_deleted_store_are_not_trusted(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "x", "instructions": "[[fake:pass]]", "verify": [VERIFY_FIXED]},
    ], agents=fake_agent(FAKE_CODEX_WRITE="fixed.txt=yes"))
    assert coord(workspace, "run", str(plan)).returncode == 0
    for suffix in ("", "-wal", "-shm"):
        store_file(workspace, suffix).unlink(missing_ok=True)
    old_identity = json.loads((workspace / "tmp/PLAN-T/P01/1/identity.json").read_text())

    again = coord(workspace, "run", str(plan))

    assert again.returncode == 0, again.stdout + again.stderr
    stale = [p.name for p in (workspace / "tmp/PLAN-T/P01").iterdir() if ".stale-" in p.name]
    assert len(stale) == 1, "the old attempt folder was set aside, not reused"
    [row] = db_rows(workspace, "SELECT attempt_id, state FROM attempts")
    assert row["state"] == "passed" and row["attempt_id"] != old_identity["attempt_id"]
    for name in ("identity.json", "exit.json"):
        record = json.loads((workspace / "tmp/PLAN-T/P01/1" / name).read_text())
        assert record["attempt_id"] == row["attempt_id"]
