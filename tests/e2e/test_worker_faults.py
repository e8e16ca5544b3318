"""Workers that end badly, through the real ``coord`` CLI: a crash, a report half written, a grandchild left
holding stdout, an exit code a launcher could lose, and an agent program that is missing or vanishes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT, coord, db_rows, phase_status, write_plan

pytestmark = pytest.mark.slow

# Parts of fault-matrix rows (../shared/RELIABILITY.md) that cannot run on this machine:
# B14 (spawn failing with EAGAIN): making fork fail needs RLIMIT_NPROC, which does not bind root (these tests may
#     run as root) and would starve the user's other processes; a program gone at launch (ENOENT) is tested instead.


def test_B7_grandchild_holding_stdout_does_not_delay_completion(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "leaves a sleeper", "instructions": "[[fake:hold_stdout]]"},
    ], policy={"max_attempts": 1})

    result = coord(workspace, "run", str(plan))

    assert result.returncode == 0, result.stdout + result.stderr
    exit_record = json.loads((workspace / "tmp/PLAN-T/P01/1/exit.json").read_text())
    assert exit_record["exit_code"] == 0 and exit_record["stragglers"], "the sleeper was found and killed"
    assert exit_record["duration_s"] < 30, "completion came from the exit, not from EOF on the log"
    evidence = json.loads((workspace / "tmp/PLAN-T/P01/1/evidence.json").read_text())
    exit_check = next(check for check in evidence["checks"] if check["name"] == "exit")
    assert exit_check["status"] == "pass"
    assert "killed 1 process(es) it left running: sleep (pid " in exit_check["detail"]


def test_B9_half_written_report_is_a_fail(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "dies mid-write", "instructions": "[[fake:half_report]]"},
    ], policy={"max_attempts": 1})

    result = coord(workspace, "run", str(plan))

    assert result.returncode == 1
    evidence = json.loads((workspace / "tmp/PLAN-T/P01/1/evidence.json").read_text())
    assert evidence["verdict"] == "FAIL"
    # The half that was written still reads "Status: PASS": the worker's death decides, not its report.
    assert "killed by SIGKILL" in evidence["reason"]


def test_B1_crashing_worker_fails_with_the_signal_named(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "oom", "instructions": "[[fake:crash]]"},
    ], policy={"max_attempts": 1})

    result = coord(workspace, "run", str(plan))

    assert result.returncode == 1
    assert "SIGKILL" in phase_status(workspace, "P01")["reason"]


def test_worker_exit_code_survives_an_ignored_sigchld(workspace: Path) -> None:
    """A launcher that ignores SIGCHLD must not turn a failing worker into exit code 0: the supervisor
    records the real wait status (I3)."""
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "fails", "agent": "shell", "script": ["exit 3"]},
    ], policy={"max_attempts": 1}, checks={"report": False, "completed": False})
    wrapper = ["-c", "import os, signal, sys; signal.signal(signal.SIGCHLD, signal.SIG_IGN); "
                     "os.execv(sys.executable, [sys.executable, '-m', 'coordinator', 'run', sys.argv[1]])",
               str(plan)]
    import subprocess
    import sys

    result = subprocess.run([sys.executable, *wrapper], cwd=workspace, capture_output=True, text=True, timeout=60)

    assert result.returncode == 1, result.stdout + result.stderr
    assert json.loads((workspace / "tmp/PLAN-T/P01/1/exit.json").read_text())["exit_code"] == 3


def test_missing_agent_program_is_refused_before_anything_runs(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "stub", "title": "x", "instructions": "[[fake:pass]]"},
        {"id": "P02", "kind": "impl", "title": "y", "instructions": "[[fake:pass]]", "agent": "claude"},
    ], agents={"fake": {"base": "codex", "binary": "/nonexistent/codex"}})

    result = coord(workspace, "run", str(plan), env={"PATH": "/usr/bin:/bin"})

    assert result.returncode == 2
    assert "plans/PLAN-T.yaml: agents.fake.binary: '/nonexistent/codex' is not an executable file" in result.stderr
    assert "agents.claude.binary: 'claude' was not found on PATH" in result.stderr
    assert "nothing was launched" in result.stderr
    assert not (workspace / "tmp" / "PLAN-T").exists()


def test_B14_agent_program_gone_at_launch_fails_the_attempt_saying_why(workspace: Path) -> None:
    program = workspace / "bin" / "codex"
    program.parent.mkdir()
    shutil.copy(REPO_ROOT / "tests" / "fakes" / "codex", program)
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "removes the agent", "agent": "shell", "script": ["rm bin/codex"]},
        {"id": "P02", "kind": "impl", "title": "needs it", "instructions": "[[fake:pass]]"},
    ], agents={"fake": {"base": "codex", "binary": str(program)}}, policy={"max_attempts": 1},
        checks={"report": False, "completed": False})

    result = coord(workspace, "run", str(plan))

    assert result.returncode == 1
    reason = phase_status(workspace, "P02")["reason"]
    assert f"the worker did not start: cannot start '{program}': [Errno 2] No such file or directory" in reason
    assert json.loads((workspace / "tmp/PLAN-T/P02/1/exit.json").read_text())["exit_code"] == 127


def test_a_passed_phase_does_not_need_its_agent_program_any_more(workspace: Path) -> None:
    program = workspace / "bin" / "old-codex"
    program.parent.mkdir()
    shutil.copy(REPO_ROOT / "tests" / "fakes" / "codex", program)
    first = [{"id": "P01", "kind": "stub", "title": "x", "instructions": "[[fake:pass]]", "agent": "old"}]
    agents = {"old": {"base": "codex", "binary": str(program)}}
    plan = write_plan(workspace, first, agents=agents)
    assert coord(workspace, "run", str(plan)).returncode == 0
    program.unlink()

    plan = write_plan(workspace, [*first, {"id": "P02", "kind": "impl", "title": "y", "instructions": "[[fake:pass]]"}],
                      agents=agents)
    result = coord(workspace, "run", str(plan))

    assert result.returncode == 0, result.stdout + result.stderr
    assert [row["phase_id"] for row in db_rows(workspace, "SELECT phase_id FROM attempts ORDER BY rowid")] == [
        "P01", "P02"]


def test_C2_workers_that_ended_leave_no_zombie_under_the_coordinator(workspace: Path, tmp_path: Path) -> None:
    """Twenty attempts end while the run goes on; once they are judged, no process whose parent is the
    coordinator is a zombie (I10: no zombie has the coordinator as its parent)."""
    import os

    import psutil

    from tests.helpers import fake_agent, phase_state, start_coord, wait_until

    go = tmp_path / "go"
    os.mkfifo(go)
    quick = [{"id": f"P{n:02d}", "kind": "impl", "title": "quick", "instructions": "[[fake:pass]]", "depends_on": []}
             for n in range(1, 21)]
    plan = write_plan(workspace, [
        *quick,
        {"id": "P99", "kind": "verify", "title": "last", "instructions": "[[fake:barrier]]",
         "depends_on": [phase["id"] for phase in quick]},
    ], agents=fake_agent(FAKE_CODEX_BARRIER=str(go)))
    run = start_coord(workspace, "run", str(plan), "--headless", "--max-parallel", "4")
    try:
        wait_until(lambda: phase_state(workspace, "P99") == "running", timeout=60)
        coordinator = psutil.Process(run.pid)

        def zombies() -> list[int]:
            found = []
            for child in coordinator.children():
                try:
                    if child.status() == psutil.STATUS_ZOMBIE:
                        found.append(child.pid)
                except psutil.NoSuchProcess:
                    continue
            return found

        assert [phase_state(workspace, phase["id"]) for phase in quick] == ["passed"] * 20
        wait_until(lambda: not zombies(), timeout=5)
    finally:
        with open(go, "w") as barrier:
            barrier.write("go\n")
        out, err = run.communicate(timeout=60)
    assert run.returncode == 0, out + err


def test_B10_a_marker_forged_for_another_phase_is_not_trusted(workspace: Path) -> None:
    """P01's worker also writes P02's completion marker; P02's own worker writes its PASS report but no marker.
    The forged marker must not complete P02 (I9)."""
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "forges", "instructions": "[[fake:forge_marker]]"},
        {"id": "P02", "kind": "impl", "title": "no marker", "agent": "shell",
         "script": ["mkdir -p reports", "printf '# P02\\n\\nStatus: PASS\\n' > reports/P02-worker.md"]},
    ], policy={"max_attempts": 1})

    result = coord(workspace, "run", str(plan))

    assert result.returncode == 1, result.stdout + result.stderr
    assert ("P01 attempt 1: the worker wrote .completed/P02.md, the completion marker of P02; it will not count as "
            "P02's evidence") in result.stdout
    second = phase_status(workspace, "P02")
    assert second["state"] == "blocked"
    assert "completion marker .completed/P02.md was written by the worker of P01 attempt 1" in second["reason"]
