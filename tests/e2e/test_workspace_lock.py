"""One coordinator per workspace: a second ``coord run`` exits 3 naming the holder, even when both start at
the same instant."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import coord, coord_env, db_rows, start_coord, wait_until, write_plan

pytestmark = pytest.mark.slow


def test_D1_second_coordinator_exits_3_naming_the_holder(workspace: Path) -> None:
    """One writer per workspace: a second `coord run` is refused with exit 3 naming the holder (I1)."""
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "slow", "instructions": "[[fake:hang]]"},
    ])
    first = start_coord(workspace, "run", str(plan))
    try:
        wait_until(lambda: (workspace / "tmp/PLAN-T/P01/1/identity.json").exists())
        second = coord(workspace, "run", str(plan))
        assert second.returncode == 3
        assert f"pid {first.pid}" in second.stderr
    finally:
        stop = coord(workspace, "stop")
        assert stop.returncode == 0, stop.stderr
        assert first.wait(timeout=30) == 1


def test_D2_two_coordinators_started_at_the_same_instant_one_wins_every_time(tmp_path: Path) -> None:
    import subprocess
    import sys

    racer = ("import os, sys, time\n"
             "while not os.path.exists(sys.argv[1]): time.sleep(0.001)\n"
             "os.execv(sys.executable, [sys.executable, '-m', 'coordinator', 'run', sys.argv[2], '--headless'])\n")
    for round_number in range(3):
        workspace = tmp_path / f"ws{round_number}"
        workspace.mkdir()
        # The winner's worker hangs for ten 0.2 s cycles, so the loser always meets a held workspace.
        plan = write_plan(workspace, [{"id": "P01", "kind": "stub", "title": "x", "instructions": "[[fake:hang]]"}],
                          policy={"poll_interval": "0.2s", "max_cycles": 10, "max_attempts": 1,
                                  "kill_grace": "0.2s"})
        go = tmp_path / f"go{round_number}"
        racers = [subprocess.Popen([sys.executable, "-c", racer, str(go), str(plan)], cwd=workspace,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   env=coord_env(workspace, None)) for _ in range(2)]
        go.touch()
        results = [(process.wait(timeout=60), *process.communicate()) for process in racers]

        assert sorted(code for code, _, _ in results) == [1, 3], results  # one ran (its worker hung), one refused
        refused = next(err for code, _, err in results if code == 3)
        assert "another coordinator holds" in refused and "`coord status`" in refused, refused
        assert len(db_rows(workspace, "SELECT * FROM attempts")) == 1
