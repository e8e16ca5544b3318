"""Crash-point sweep: the coordinator SIGKILLs itself at each named protocol step; a restart must lose no
result and never run two workers for one phase (RELIABILITY A2)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from coordinator.util import failpoints
from tests.helpers import coord, db_rows, write_plan

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


def test_no_module_outside_tui_imports_textual() -> None:
    """The engine must stay usable without the dashboard: importing every non-TUI module loads no textual."""
    root = Path(__file__).resolve().parent.parent / "coordinator"
    modules = sorted(
        "coordinator." + ".".join(path.relative_to(root).with_suffix("").parts)
        for path in root.rglob("*.py")
        if "tui" not in path.relative_to(root).parts and path.name != "__main__.py"
    )
    code = "import sys\n" + "".join(f"import {m.removesuffix('.__init__')}\n" for m in modules) + (
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'textual'))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(result.stdout.strip().replace("'", '"')) == []


def test_attempt_from_an_earlier_boot_is_lost_and_its_recorded_pid_never_signalled(tmp_path: Path) -> None:
    import os
    import signal

    from tests.helpers import start_coord, wait_until

    workspace = tmp_path / "ws"
    workspace.mkdir()
    plan = write_plan(workspace, [{"id": "P01", "kind": "impl", "title": "x", "instructions": "[[fake:hang,pass]]"}])
    first = start_coord(workspace, "run", str(plan))
    identity_path = workspace / "tmp/PLAN-T/P01/1/identity.json"
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
