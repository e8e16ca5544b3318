"""``coord exec`` / ``coord wait``: fire-and-forget workers outside a plan, with the fake codex CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import FAKES, coord

pytestmark = pytest.mark.slow


def start(workspace: Path, *args: str, scenario: str = "pass", seconds: str = "1") -> dict:
    result = coord(workspace, "exec", "--binary", str(FAKES / "codex"), *args,
                   env={"FAKE_CODEX_SCENARIO": scenario, "FAKE_CODEX_SLOW_SECONDS": seconds})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_exec_returns_at_once_and_wait_prints_the_summary(workspace: Path) -> None:
    info = start(workspace, "--task", "write the report", scenario="slow", seconds="2")

    assert info["run_id"].startswith("exec-")
    assert not (workspace / info["summary"]).exists(), "exec returned before the worker ended"
    meta = json.loads((workspace / info["meta"]).read_text())
    assert meta["task"] == "write the report"

    waited = coord(workspace, "wait", "--expected", "1", "--timeout", "60")

    assert waited.returncode == 0, waited.stderr
    [summary] = [json.loads(line) for line in waited.stdout.splitlines()]
    assert summary["run_id"] == info["run_id"] and summary["status"] == "done"
    assert summary["exit_code"] == 0 and summary["session_id"]
    assert summary["input_tokens"] > 0 and summary["started_at"] and summary["ended_at"]
    assert json.loads((workspace / info["summary"]).read_text()) == summary


def test_wait_exits_1_when_a_worker_fails(workspace: Path) -> None:
    start(workspace, "--task", "ok")
    start(workspace, "--task", "breaks", scenario="error")

    waited = coord(workspace, "wait", "--timeout", "60")

    assert waited.returncode == 1
    statuses = sorted(json.loads(line)["status"] for line in waited.stdout.splitlines())
    assert statuses == ["done", "fail"]
    again = coord(workspace, "wait", "--timeout", "1")
    assert again.stdout == "", "each worker is reported once"
    assert again.returncode == 1 and "no `coord exec` worker to wait for" in again.stderr


def test_wait_times_out_with_exit_1(workspace: Path) -> None:
    start(workspace, "--task", "slow", scenario="slow", seconds="3")

    waited = coord(workspace, "wait", "--expected", "1", "--timeout", "0.5")

    assert waited.returncode == 1 and "timed out" in waited.stderr
    assert coord(workspace, "wait", "--expected", "1", "--timeout", "60").returncode == 0


def test_resume_without_task_continues_the_session(workspace: Path) -> None:
    start(workspace, "--task", "first")
    first = json.loads(coord(workspace, "wait", "--timeout", "60").stdout)

    start(workspace, "--resume", first["session_id"])
    second = json.loads(coord(workspace, "wait", "--timeout", "60").stdout)

    assert second["status"] == "done" and second["session_id"] == first["session_id"]
    assert second["resumed"] == first["session_id"]


def test_exec_without_task_or_resume_is_a_usage_error(workspace: Path) -> None:
    result = coord(workspace, "exec")
    assert result.returncode == 2 and "--task" in result.stderr


def test_exec_with_a_missing_agent_program_is_refused_before_anything_starts(workspace: Path) -> None:
    result = coord(workspace, "exec", "--binary", "/nonexistent/codex", "--task", "x")

    assert result.returncode == 2, result.stdout + result.stderr
    assert "cannot start the codex worker: '/nonexistent/codex' is not an executable file" in result.stderr
    assert result.stdout == "" and not list((workspace / "tmp").glob("exec/exec-*"))
    on_path = coord(workspace, "exec", "--task", "x", env={"PATH": "/nonexistent"})
    assert on_path.returncode == 2 and "set --binary to its full path" in on_path.stderr


def test_wait_with_nothing_to_wait_for_says_so(workspace: Path) -> None:
    result = coord(workspace, "wait", "--timeout", "1")
    assert result.returncode == 1 and "no `coord exec` worker to wait for" in result.stderr
