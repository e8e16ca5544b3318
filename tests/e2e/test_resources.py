"""Resources that run out or are held, through the real ``coord`` CLI: a full disk under stdout and under the
store, a corrupt store, a store locked by another process, and a worker log over its size cap."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers import (
    coord,
    coord_env,
    db_rows,
    fake_agent,
    phase_state,
    phase_status,
    start_coord,
    status,
    store_file,
    wait_until,
    write_plan,
)

pytestmark = pytest.mark.slow


def test_B15_huge_worker_log_is_capped_keeping_head_and_tail_without_losing_appends(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "spew", "instructions": "[[fake:spew]]"},
    ], policy={"max_attempts": 1, "log_cap_mib": 1},
        agents=fake_agent(FAKE_CODEX_SPEW_BYTES=str(30 * 1024 * 1024)))

    result = coord(workspace, "run", str(plan), "--headless")

    exit_record = json.loads((workspace / "tmp/PLAN-T/P01/1/exit.json").read_text())
    if exit_record["log_cap"]["not_enforced"]:
        pytest.skip(f"log cap unsupported here: {exit_record['log_cap']['not_enforced']}")
    assert result.returncode == 0, result.stdout + result.stderr
    log = workspace / "tmp/PLAN-T/P01/1/worker.log"
    assert log.stat().st_size <= 1024 * 1024
    assert exit_record["log_cap"]["dropped_bytes"] > 25 * 1024 * 1024
    head, marker, tail = log.read_text().partition(" MiB of worker output dropped here; the log is capped at 1 MiB]\n")
    assert marker, "no truncation marker in the log"
    assert head.startswith('{"type":"thread.started"')
    # Every event appended after the cut is there, in order: the trim lost none of the worker's writes.
    item_numbers = list(dict.fromkeys(  # item.started and item.completed share an id
        int(json.loads(line)["item"]["id"].split("_")[1])
        for line in tail.splitlines()[1:] if line.startswith('{"type":"item.')))
    assert len(item_numbers) > 50
    assert item_numbers == list(range(item_numbers[0], item_numbers[0] + len(item_numbers)))
    assert '"type":"turn.completed"' in tail.splitlines()[-1]
    assert phase_status(workspace, "P01")["session_id"]


def test_D8_corrupt_store_exits_4_and_is_never_recreated(workspace: Path) -> None:
    plan = write_plan(workspace, [{"id": "P01", "kind": "stub", "title": "x", "instructions": "[[fake:pass]]"}])
    store = store_file(workspace)
    store.parent.mkdir(parents=True)
    garbage = os.urandom(4096)
    store.write_bytes(garbage)

    result = coord(workspace, "run", str(plan))

    assert result.returncode == 4
    assert result.stderr.count("\n") == 1 and "coord.db: cannot" in result.stderr and "state store" in result.stderr
    assert "move it aside" in result.stderr and "Traceback" not in result.stderr
    assert store.read_bytes() == garbage
    assert not (workspace / "tmp" / "PLAN-T").exists(), "nothing was launched"


def test_D4_store_held_by_another_process_delays_writes_without_losing_them(workspace: Path, tmp_path: Path) -> None:
    import sqlite3
    import time

    go = tmp_path / "go"
    os.mkfifo(go)
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "waits", "instructions": "[[fake:barrier]]"},
    ], agents=fake_agent(FAKE_CODEX_BARRIER=str(go)))
    run = start_coord(workspace, "run", str(plan))
    wait_until(lambda: phase_state(workspace, "P01") == "running")

    # A person's sqlite3 shell inside a write transaction while the worker finishes.
    holder = sqlite3.connect(store_file(workspace), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    with open(go, "w") as barrier:
        barrier.write("go\n")
    time.sleep(2.0)  # the injected fault: the lock is held this long
    holder.execute("COMMIT")
    holder.close()
    out, err = run.communicate(timeout=60)

    assert run.returncode == 0, out + err
    assert "Traceback" not in err and "database is locked" not in out + err
    assert phase_status(workspace, "P01")["state"] == "passed"


def test_a_full_disk_under_stdout_is_one_line_not_a_crash(workspace: Path) -> None:
    import subprocess
    import sys

    plan = write_plan(workspace, [{"id": "P01", "kind": "stub", "title": "x", "instructions": "[[fake:pass]]"}])
    assert coord(workspace, "run", str(plan)).returncode == 0

    with open("/dev/full", "w") as full:
        result = subprocess.run([sys.executable, "-m", "coordinator", "status"], cwd=workspace, stdout=full,
                                stderr=subprocess.PIPE, text=True, timeout=60, env=coord_env(workspace, None))

    assert result.returncode == 1
    assert result.stderr == "coord: cannot write standard output: No space left on device\n"
    assert not (workspace / "tmp" / "crashes").exists()


def test_D7_disk_full_under_the_store_exits_4_and_a_later_run_loses_nothing(workspace: Path) -> None:
    import subprocess
    import sys

    plan = write_plan(workspace, [
        {"id": f"P0{n}", "kind": "impl", "title": "x" * 200, "instructions": "[[fake:slow]]", "depends_on": []}
        for n in range(1, 4)
    ], agents=fake_agent(FAKE_CODEX_SLOW_SECONDS="5"))
    # RLIMIT_FSIZE makes every write past 300 blocks of 512 bytes fail (EFBIG): the start's writes fit, and the
    # store's WAL, one commit per 0.2 s poll cycle of each worker, passes it well before the workers end.
    full = subprocess.run(
        ["/bin/sh", "-c", 'ulimit -f 300; exec "$0" -m coordinator run "$1" --headless', sys.executable, str(plan)],
        cwd=workspace, capture_output=True, text=True, timeout=90, env=coord_env(workspace, None))

    assert full.returncode == 4, full.stdout + full.stderr
    assert "cannot write the state store" in full.stderr and "picks up their results" in full.stderr
    assert "Traceback" not in full.stderr

    again = coord(workspace, "run", str(plan), "--headless")

    assert again.returncode == 0, again.stdout + again.stderr
    attempts = db_rows(workspace, "SELECT phase_id, number, state FROM attempts ORDER BY phase_id, number")
    launched = [line.split()[0] for line in (workspace / "tmp/PLAN-T/worker-pids.txt").read_text().splitlines()]
    assert sorted(launched) == sorted(row["phase_id"] for row in attempts), "every launch is recorded once"
    assert all(row["state"] in ("passed", "lost") for row in attempts)
    assert all(phase["state"] == "passed" for phase in status(workspace)["phases"])


def _interrupted_writes(workspace: Path) -> list[Path]:
    """Run a plan whose coordinator dies right after reading P01's exit record, then leave behind the temporary
    files an atomic write interrupted at that moment would have left: a torn evidence.json beside the attempt's
    folder and a torn lock.info in the state directory. Returns the temporary files."""
    from coordinator.paths import WorkspacePaths

    plan = write_plan(workspace, [{"id": "P01", "kind": "stub", "title": "x", "instructions": "[[fake:pass]]"}])
    crashed = coord(workspace, "run", str(plan), env={"COORD_FAILPOINTS": "finish.after_exit_read=kill"})
    assert crashed.returncode == -9, crashed.stdout + crashed.stderr
    leftovers = [workspace / "tmp/PLAN-T/P01/1/.evidence.json.0123456789ab.tmp",
                 WorkspacePaths(workspace).state_dir / ".lock.info.0123456789ab.tmp"]
    for leftover in leftovers:
        leftover.write_text('{"verdict": "FA')
    return leftovers


def test_D5_a_torn_temporary_file_of_an_interrupted_write_is_never_read(workspace: Path) -> None:
    _interrupted_writes(workspace)

    resumed = coord(workspace, "run", "plans/PLAN-T.yaml")

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    evidence = json.loads((workspace / "tmp/PLAN-T/P01/1/evidence.json").read_text())
    assert evidence["verdict"] == "PASS"
    assert phase_status(workspace, "P01")["state"] == "passed"


def test_D5_temporary_files_of_interrupted_writes_are_cleaned_at_start(workspace: Path) -> None:
    leftovers = _interrupted_writes(workspace)

    resumed = coord(workspace, "run", "plans/PLAN-T.yaml")

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert [path for path in leftovers if path.exists()] == []


def _run_with_tmp_on_a_full_disk(workspace: Path) -> subprocess.CompletedProcess[str]:
    """Run a plan with the workspace's ``tmp/`` (the worker logs and coord's copies for people) on a 512 KiB tmpfs,
    in a mount namespace of its own (``unshare -rm``, no root needed where user namespaces are on). P01's worker
    writes 4 MiB of output, which fills it; P02 is independent and starts afterwards. The store is elsewhere."""
    import shutil
    import sys

    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode:
        pytest.skip("unprivileged user and mount namespaces (unshare -rm) are not available here")
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "spews", "instructions": "[[fake:spew]]"},
        {"id": "P02", "kind": "impl", "title": "independent", "instructions": "[[fake:pass]]", "depends_on": []},
    ], policy={"max_attempts": 1, "log_cap_mib": 64}, agents=fake_agent(FAKE_CODEX_SPEW_BYTES=str(4 * 1024 * 1024)))
    (workspace / "tmp").mkdir()
    script = 'mount -t tmpfs -o size=512k tmpfs "$0/tmp" && exec "$1" -m coordinator run "$2" --headless'
    result = subprocess.run(["unshare", "-rm", "sh", "-c", script, str(workspace), sys.executable, str(plan)],
                            cwd=workspace, env=coord_env(workspace, None), capture_output=True, text=True, timeout=90)
    return result


def test_D6_a_full_disk_under_the_worker_logs_is_a_warning_not_a_crash(workspace: Path) -> None:
    result = _run_with_tmp_on_a_full_disk(workspace)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr and "Logging error" not in result.stdout + result.stderr
    assert "! cannot write tmp/PLAN-T/P01/1/evidence.json: [Errno 28] No space left on device" in result.stdout
    assert "the verdict is in the state store" in result.stdout
    rows = {row["phase_id"]: row for row in db_rows(workspace, "SELECT phase_id, state, reason FROM attempts")}
    assert rows["P01"]["state"] == rows["P02"]["state"] == "failed"
    assert rows["P02"]["reason"] == "could not start the worker: [Errno 28] No space left on device"
    assert {phase["state"] for phase in status(workspace)["phases"]} == {"blocked"}


def test_D6_a_worker_whose_output_cannot_be_written_fails_saying_so(workspace: Path) -> None:
    result = _run_with_tmp_on_a_full_disk(workspace)

    assert result.returncode == 1, result.stdout + result.stderr
    [row] = db_rows(workspace, "SELECT reason FROM attempts WHERE phase_id='P01'")
    assert "the disk holding its output (tmp/PLAN-T/P01/1) was full when it ended" in row["reason"], row["reason"]
    assert "No space left on device" in row["reason"]


def test_D7_a_full_filesystem_under_the_store_is_exit_4_leaving_the_workers_running(workspace: Path) -> None:
    """The second injection of D7: the state directory on a 256 KiB tmpfs in a mount namespace of its own, so
    SQLite reports SQLITE_FULL (not the I/O error of the file-size limit)."""
    import shutil
    import sys

    from tests.helpers import processes_with_cookie

    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode:
        pytest.skip("unprivileged user and mount namespaces (unshare -rm) are not available here")
    plan = write_plan(workspace, [
        {"id": f"P0{n}", "kind": "impl", "title": "x" * 200, "instructions": "[[fake:slow]]", "depends_on": []}
        for n in range(1, 4)
    ], agents=fake_agent(FAKE_CODEX_SLOW_SECONDS="2"))
    script = 'mount -t tmpfs -o size=256k tmpfs "$COORD_STATE_HOME" && exec "$0" -m coordinator run "$1" --headless'
    os.makedirs(os.environ["COORD_STATE_HOME"], exist_ok=True)

    full = subprocess.run(["unshare", "-rm", "sh", "-c", script, sys.executable, str(plan)], cwd=workspace,
                          env=coord_env(workspace, None), capture_output=True, text=True, timeout=90)

    assert full.returncode == 4, full.stdout + full.stderr
    assert "cannot write the state store: database or disk is full" in full.stderr
    assert "keep running and finish on their own" in full.stderr and "Traceback" not in full.stderr
    # The workers finish on their own (the tmpfs goes with the last of them).
    wait_until(lambda: not processes_with_cookie("COORD_TEST_RUN", os.environ["COORD_TEST_RUN"]), timeout=30)
