"""Workers that end badly, through the real ``coord`` CLI: a crash, a report half written, a grandchild left
holding stdout, an exit code a launcher could lose, and an agent program that is missing or vanishes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT, coord, db_rows, phase_status, write_plan

pytestmark = pytest.mark.slow


def test_grandchild_holding_stdout_does_not_delay_completion(workspace: Path) -> None:
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


def test_half_written_report_is_a_fail(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "dies mid-write", "instructions": "[[fake:half_report]]"},
    ], policy={"max_attempts": 1})

    result = coord(workspace, "run", str(plan))

    assert result.returncode == 1
    evidence = json.loads((workspace / "tmp/PLAN-T/P01/1/evidence.json").read_text())
    assert evidence["verdict"] == "FAIL"
    # The half that was written still reads "Status: PASS": the worker's death decides, not its report.
    assert "killed by SIGKILL" in evidence["reason"]


def test_crashing_worker_fails_with_the_signal_named(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "oom", "instructions": "[[fake:crash]]"},
    ], policy={"max_attempts": 1})

    result = coord(workspace, "run", str(plan))

    assert result.returncode == 1
    assert "SIGKILL" in phase_status(workspace, "P01")["reason"]


def test_worker_exit_code_survives_an_ignored_sigchld(workspace: Path) -> None:
    """A launcher that ignores SIGCHLD must not turn a failing worker into exit code 0."""
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


def test_agent_program_gone_at_launch_fails_the_attempt_saying_why(workspace: Path) -> None:
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
