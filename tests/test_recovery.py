"""Crash-point sweep: the coordinator SIGKILLs itself at each named protocol step; a restart must lose no
result and never run two workers for one phase (RELIABILITY A2)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from coordinator import failpoints
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
