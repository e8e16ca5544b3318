"""Restarts through the real ``coord`` CLI: the crash-point sweep (the coordinator SIGKILLs itself at each named
protocol step; a restart must lose no result and never run two workers for one phase, docs/reliability.md, A2), an
internal error, Ctrl-C and reattach, workers that ended or live on while no coordinator ran (adopted, judged,
lost), a deleted store, a reboot, a plan edited under a running worker and a torn audit line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from coordinator.util import failpoints
from tests.helpers import (
    VERIFY_FIXED,
    coord,
    coord_env,
    db_rows,
    events,
    fake_agent,
    phase_state,
    phase_status,
    records_file,
    start_coord,
    status,
    store_file,
    wait_until,
    write_plan,
)

pytestmark = pytest.mark.slow


# The git steps' points are only reached in a git working tree: tests/e2e/test_git_checkpoints.py sweeps them.
@pytest.mark.parametrize("failpoint", [name for name in failpoints.NAMES if not name.startswith("git.")])
def test_A2_restart_after_a_crash_at_each_failpoint_finishes_the_plan(tmp_path: Path, failpoint: str) -> None:
    """Durable before act: whatever protocol step the coordinator dies at, a restart finishes the plan with no
    lost result and never two workers for one phase (I2)."""
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


def test_A6_internal_error_exits_70_with_a_crash_log_and_no_traceback(tmp_path: Path) -> None:
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


def strand_an_attempt(workspace: Path) -> tuple[Path, Path, dict[str, Any]]:
    """A one-phase run whose coordinator, then whose attempt's supervisor and worker, are SIGKILLed: the store
    still records the attempt as running. Returns (plan, the attempt's identity.json, its identity)."""
    from tests.helpers import start_coord, wait_until

    plan = write_plan(workspace, [{"id": "P01", "kind": "impl", "title": "x", "instructions": "[[fake:hang,pass]]"}])
    first = start_coord(workspace, "run", str(plan))
    identity_path = records_file(workspace, "P01", 1, "identity.json")
    wait_until(identity_path.exists)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    identity = json.loads(identity_path.read_text())
    os.killpg(identity["supervisor_pid"], signal.SIGKILL)
    os.killpg(identity["worker_pid"], signal.SIGKILL)
    return plan, identity_path, identity


def test_A5_attempt_from_an_earlier_boot_is_lost_and_its_recorded_pid_never_signalled(tmp_path: Path) -> None:
    """Identity before signal: a pid recorded in an earlier boot is never signalled (I4)."""


    workspace = tmp_path / "ws"
    workspace.mkdir()
    plan, identity_path, identity = strand_an_attempt(workspace)  # the "reboot": the attempt's processes are gone
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


def test_A7_a_torn_last_line_in_events_jsonl_does_not_break_the_next_append(tmp_path: Path) -> None:
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


def test_A4_ctrl_c_detaches_and_a_new_run_reattaches_without_relaunching(workspace: Path) -> None:
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


def test_A3_coordinator_killed_while_worker_finishes_loses_no_result(workspace: Path) -> None:
    """The supervisor, not the coordinator, records the worker's end: a result reached while no coordinator ran
    is judged exactly once (I3)."""
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


def test_D10_live_worker_missing_from_a_deleted_store_is_adopted_not_launched_twice(
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


def test_B12_supervisor_killed_means_lost_attempt_and_a_new_one(workspace: Path) -> None:
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


def test_E14_plan_edit_that_would_orphan_a_running_worker_is_refused(workspace: Path) -> None:
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


def test_A1_coordinator_killed_while_three_workers_run_reattaches_them_without_a_new_attempt(
        workspace: Path, tmp_path: Path) -> None:
    """Also D3: the moment the lock holder is SIGKILLed the workspace lock is free, though its workers live on
    (none of them inherited it)."""
    import fcntl

    from coordinator.paths import WorkspacePaths

    barriers = {f"P0{n}": tmp_path / f"go{n}" for n in (1, 2, 3)}
    for fifo in barriers.values():
        os.mkfifo(fifo)
    agents = {f"fake{n}": fake_agent(FAKE_CODEX_BARRIER=str(barriers[f"P0{n}"]))["fake"] for n in (1, 2, 3)}
    plan = write_plan(workspace, [
        {"id": f"P0{n}", "kind": "impl", "title": "waits", "instructions": "[[fake:barrier]]", "agent": f"fake{n}",
         "depends_on": []} for n in (1, 2, 3)
    ], agents=agents)

    def release(phase: str) -> None:
        with open(barriers[phase], "w") as barrier:
            barrier.write("go\n")

    first = start_coord(workspace, "run", str(plan), "--headless", "--max-parallel", "3")
    wait_until(lambda: [phase_state(workspace, p) for p in barriers] == ["running"] * 3
               and all(records_file(workspace, p, 1, "identity.json").exists() for p in barriers))
    identities = {p: json.loads(records_file(workspace, p, 1, "identity.json").read_text()) for p in barriers}
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=10)

    for identity in identities.values():
        os.kill(identity["worker_pid"], 0)  # every worker outlived its coordinator
    # D3: nobody holds the lock any more, though the workers still run.
    with open(WorkspacePaths(workspace).lock, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(lock, fcntl.LOCK_UN)
    release("P01")  # one worker ends while no coordinator runs
    wait_until(records_file(workspace, "P01", 1, "exit.json").exists)

    second = start_coord(workspace, "run", str(plan), "--headless", "--max-parallel", "3")
    wait_until(lambda: sum("reattached" in event.get("message", "") for event in events(workspace)) >= 2)
    release("P02")
    release("P03")
    out, err = second.communicate(timeout=60)

    assert second.returncode == 0, out + err
    assert "P01 attempt 1 ended while no coordinator watched" in out
    assert "P02 attempt 1 reattached" in out and "P03 attempt 1 reattached" in out, out
    rows = db_rows(workspace, "SELECT phase_id, number, state FROM attempts ORDER BY phase_id")
    assert [(r["phase_id"], r["number"], r["state"]) for r in rows] == [
        ("P01", 1, "passed"), ("P02", 1, "passed"), ("P03", 1, "passed")]
    pid_lines = (workspace / "tmp/PLAN-T/worker-pids.txt").read_text().splitlines()
    assert sorted(line.split()[0] for line in pid_lines) == ["P01", "P02", "P03"], "no phase got a second worker"


def test_C1_a_recorded_pid_reused_by_an_unrelated_process_is_never_signalled(workspace: Path) -> None:
    """The attempt's supervisor and worker are gone and an unrelated process now has the recorded pid (same boot,
    another start time): neither ``coord stop`` nor the restart's recovery signals it (I4)."""
    plan, identity_path, identity = strand_an_attempt(workspace)  # they end while nobody watches
    impostor = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        # The impostor holds the recorded pid; its start time is not the recorded one (the boot id still is).
        identity.update(supervisor_pid=impostor.pid, worker_pid=impostor.pid)
        identity_path.write_text(json.dumps(identity))

        coord(workspace, "stop", "P01")
        resumed = coord(workspace, "run", str(plan))

        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert impostor.poll() is None, "a reused pid was signalled"
        rows = db_rows(workspace, "SELECT number, state, reason FROM attempts ORDER BY number")
        assert (rows[0]["state"], rows[1]["state"]) == ("lost", "passed"), [dict(r) for r in rows]
        assert "no supervisor and no exit record" in rows[0]["reason"]
    finally:
        impostor.kill()
        impostor.wait()


def test_D9_a_stale_socket_left_by_a_killed_coordinator_is_replaced(workspace: Path) -> None:
    """The SIGKILLed coordinator leaves its control socket file behind; the next one binds afresh under the lock,
    and a worker it launches pushes its end to it (no fall back to polling)."""
    from coordinator.paths import WorkspacePaths

    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "slow", "instructions": "[[fake:slow]]"},
        {"id": "P02", "kind": "verify", "title": "after", "instructions": "[[fake:pass]]"},
    ], agents=fake_agent(FAKE_CODEX_SLOW_SECONDS="1"))
    first = start_coord(workspace, "run", str(plan), "--headless")
    wait_until(lambda: (workspace / "tmp/PLAN-T/P01/1/identity.json").exists())
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    socket_path = WorkspacePaths(workspace).socket_path()
    assert socket_path.exists(), "the killed coordinator left its socket"

    second = coord(workspace, "run", str(plan), "--headless")

    assert second.returncode == 0, second.stdout + second.stderr
    assert "polling" not in second.stdout + second.stderr
    log = (workspace / "tmp/PLAN-T/P02/1/worker.log").read_text()
    assert "polling" not in log, "the push of a worker the new coordinator launched did not reach it"


def test_B12_supervisor_killed_under_a_running_coordinator_loses_the_attempt_and_kills_its_worker(
        workspace: Path) -> None:
    """The coordinator watches when the supervisor is SIGKILLed: the attempt is lost (policy (b)), its worker is
    killed by cookie, and one new attempt runs; never a hang, never two workers at once."""
    from tests.helpers import processes_with_cookie

    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "x", "instructions": "[[fake:hang,pass]]"},
    ])
    run = start_coord(workspace, "run", str(plan), "--headless")
    wait_until(lambda: (workspace / "tmp/PLAN-T/P01/1/identity.json").exists())
    identity = json.loads(records_file(workspace, "P01", 1, "identity.json").read_text())
    attempt_id = db_rows(workspace, "SELECT attempt_id FROM attempts")[0]["attempt_id"]

    os.kill(identity["supervisor_pid"], signal.SIGKILL)
    out, err = run.communicate(timeout=60)

    assert run.returncode == 0, out + err
    rows = db_rows(workspace, "SELECT number, state, reason FROM attempts ORDER BY number")
    assert [(r["number"], r["state"]) for r in rows] == [(1, "lost"), (2, "passed")]
    assert "supervisor" in rows[0]["reason"]
    assert processes_with_cookie("COORD_ATTEMPT_ID", attempt_id) == [], "the orphaned worker was left running"


@pytest.mark.parametrize("sig, code", [
    pytest.param(signal.SIGTERM, 143, id="SIGTERM"),
    pytest.param(signal.SIGHUP, 129, id="SIGHUP"),
])
def test_A4_sigterm_and_sighup_detach_leaving_the_workers_running(workspace: Path, sig: int, code: int) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "slow", "instructions": "[[fake:slow]]"},
    ], agents=fake_agent(FAKE_CODEX_SLOW_SECONDS="3"))
    first = start_coord(workspace, "run", str(plan))
    wait_until(lambda: (workspace / "tmp/PLAN-T/P01/1/identity.json").exists())
    worker_pid = json.loads((workspace / "tmp/PLAN-T/P01/1/identity.json").read_text())["worker_pid"]

    os.kill(first.pid, sig)
    out, _ = first.communicate(timeout=10)

    os.kill(worker_pid, 0)  # the worker survived the detach
    second = coord(workspace, "run", str(plan))
    assert second.returncode == 0, second.stdout + second.stderr
    assert "attempt 1 reattached" in second.stdout or "ended while no coordinator watched" in second.stdout
    assert len(db_rows(workspace, "SELECT * FROM attempts")) == 1
    assert first.returncode == code, out


# Runs as pid 1 of a new pid namespace (test_C1_real_...): the coordinator is SIGKILLed, its attempt's processes end,
# and an unrelated ``sleep`` is given the supervisor's very pid through ns_last_pid; then a second coordinator runs.
REAL_PID_REUSE_DRIVER = '''\
import json
import os
import signal
import subprocess
import sys
import time

workspace, plan, identity_path = sys.argv[1:4]
coord = [sys.executable, "-m", "coordinator", "run", plan, "--headless"]

def reap() -> None:
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                return
        except ChildProcessError:
            return

def gone(pid: int) -> bool:
    reap()
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False

def wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        time.sleep(0.02)

first = subprocess.Popen(coord, cwd=workspace, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         start_new_session=True)


def recorded():
    try:
        return json.load(open(identity_path)).get("worker_pid")
    except (OSError, ValueError):
        return None


wait_for(recorded)
os.killpg(first.pid, signal.SIGKILL)
first.wait()
identity = json.load(open(identity_path))
for pid in (identity["supervisor_pid"], identity["worker_pid"]):
    os.killpg(pid, signal.SIGKILL)
wait_for(lambda: gone(identity["supervisor_pid"]) and gone(identity["worker_pid"]))
with open("/proc/sys/kernel/ns_last_pid", "w") as last:
    last.write(str(identity["supervisor_pid"] - 1))
impostor = subprocess.Popen(["sleep", "300"], start_new_session=True)
second = subprocess.run(coord, cwd=workspace, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=90)
alive = impostor.poll() is None
impostor.kill()
print(json.dumps({"reused": impostor.pid == identity["supervisor_pid"], "alive": alive,
                  "returncode": second.returncode, "output": second.stdout + second.stderr}))
'''


def test_C1_real_pid_reuse_in_a_pid_namespace_never_signals_the_new_owner(workspace: Path, tmp_path: Path) -> None:
    """The same fault with a pid really reused (RELIABILITY §2 E3): inside ``unshare -Urpf --mount-proc`` the
    supervisor's pid is handed to a ``sleep``; the restarted coordinator marks the attempt lost and leaves the sleep
    alone (I4)."""
    import shutil
    import sys

    if shutil.which("unshare") is None or subprocess.run(
            ["unshare", "-Urpf", "--mount-proc", "true"], capture_output=True).returncode:
        pytest.skip("unprivileged user and pid namespaces (unshare -Urpf --mount-proc) are not available here")
    plan = write_plan(workspace, [{"id": "P01", "kind": "impl", "title": "x", "instructions": "[[fake:hang,pass]]"}])
    driver = tmp_path / "reuse_driver.py"
    driver.write_text(REAL_PID_REUSE_DRIVER)

    ran = subprocess.run(["unshare", "-Urpf", "--mount-proc", sys.executable, str(driver), str(workspace), str(plan),
                          str(records_file(workspace, "P01", 1, "identity.json"))],
                         cwd=workspace, env=coord_env(workspace), capture_output=True, text=True, timeout=120)

    assert ran.returncode == 0, ran.stdout + ran.stderr
    outcome = json.loads(ran.stdout.splitlines()[-1])
    if not outcome["reused"]:
        pytest.skip("the kernel did not hand out the recorded pid again (ns_last_pid not honoured)")
    assert outcome["alive"], "the process that now owns the recorded pid was signalled"
    assert outcome["returncode"] == 0, outcome["output"]
    rows = db_rows(workspace, "SELECT number, state FROM attempts ORDER BY number")
    assert [(r["number"], r["state"]) for r in rows] == [(1, "lost"), (2, "passed")]
