"""The fake ``codex`` CLI speaks the ``codex exec --json`` protocol (docs/codex-exec.md) and misbehaves on request.

Every test runs the real script as a subprocess, in its own process group, with its own CODEX_HOME.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import processes_with_cookie, wait_until

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A workspace with the engine's COORD_* variables set for phase P01, attempt 1."""
    ws = tmp_path / "ws"
    ws.mkdir()
    monkeypatch.delenv("FAKE_CODEX_SCENARIO", raising=False)
    monkeypatch.delenv("FAKE_CODEX_WRITE", raising=False)
    monkeypatch.setenv("CODEX_HOME", str(tmp_path / "codex-home"))
    monkeypatch.setenv("COORD_ATTEMPT_ID", str(uuid.uuid4()))
    monkeypatch.setenv("COORD_PLAN_ID", "PLAN-T")
    monkeypatch.setenv("COORD_PHASE_ID", "P01")
    monkeypatch.setenv("COORD_ATTEMPT", "1")
    monkeypatch.setenv("COORD_REMEDIATION", "0")
    monkeypatch.setenv("COORD_WORKSPACE", str(ws))
    monkeypatch.setenv("COORD_REPORT_PATH", str(ws / "reports" / "P01-worker.md"))
    monkeypatch.setenv("COORD_COMPLETED_PATH", str(ws / ".completed" / "P01.md"))
    return ws


def run(fake: Path, args: list[str], cwd: Path, prompt: str = "do the phase", timeout: float = 20,
        **env: str) -> subprocess.CompletedProcess[str]:
    """Run the fake to completion with ``prompt`` on stdin; kills its group if it overruns."""
    process = subprocess.Popen(
        [str(fake), *args], cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env={**os.environ, **env}, start_new_session=True,
    )
    try:
        out, err = process.communicate(prompt, timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def fresh(workdir: Path, *extra: str) -> list[str]:
    return ["exec", "--json", "--skip-git-repo-check", "-C", str(workdir), *extra, "-"]


def resume(workdir: Path, thread_id: str, *extra: str) -> list[str]:
    return ["exec", "-C", str(workdir), "resume", thread_id, "--json", "--skip-git-repo-check", *extra, "-"]


@pytest.fixture
def background(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts in the background; their groups are SIGKILLed at teardown."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()


def start(fake: Path, args: list[str], cwd: Path, log: Path, started: list, prompt: str = "go", **env: str):
    prompt_file = log.with_suffix(".prompt")
    prompt_file.write_text(prompt)
    with open(prompt_file, "rb") as stdin, open(log, "wb") as out:
        process = subprocess.Popen([str(fake), *args], cwd=cwd, stdin=stdin, stdout=out, stderr=subprocess.STDOUT,
                                   env={**os.environ, **env}, start_new_session=True)
    started.append(process)
    return process


def test_pass_speaks_the_protocol(fake_codex: Path, workspace: Path) -> None:
    last = workspace / "last.txt"
    result = run(fake_codex, fresh(workspace, "-o", str(last)), workspace)
    assert result.returncode == 0, result.stderr
    stream = events(result.stdout)
    types = [event["type"] for event in stream]
    assert types[0] == "thread.started" and types[-1] == "turn.completed"
    assert "turn.started" in types
    assert UUID_RE.match(stream[0]["thread_id"])
    items = [event["item"] for event in stream if event["type"] == "item.completed"]
    assert {"error", "reasoning", "command_execution", "file_change", "agent_message", "web_search"} <= {
        item["type"] for item in items}
    usage = stream[-1]["usage"]
    assert set(usage) == {"input_tokens", "cached_input_tokens", "cache_write_input_tokens", "output_tokens",
                          "reasoning_output_tokens"}
    assert (workspace / "reports" / "P01-worker.md").read_text().count("Status: PASS") == 1
    marker = (workspace / ".completed" / "P01.md").read_text()
    assert "Phase: P01" in marker and "@plan:PLAN-T.P01" in marker
    assert last.read_text() == items[-1]["text"]  # the -o file: final message, no trailing newline


def test_web_search_line_has_the_duplicate_id_key(fake_codex: Path, workspace: Path) -> None:
    result = run(fake_codex, fresh(workspace), workspace)
    line = next(line for line in result.stdout.splitlines() if '"web_search"' in line)
    assert len(re.findall(r'"id":', line)) == 2  # like codex 0.169: item id first, search id second


def test_resume_keeps_the_thread_and_usage_is_cumulative(fake_codex: Path, workspace: Path,
                                                         tmp_path: Path) -> None:
    first = events(run(fake_codex, fresh(workspace), workspace).stdout)
    thread_id = first[0]["thread_id"]
    assert (tmp_path / "codex-home" / "sessions" / f"{thread_id}.json").exists()
    second_run = run(fake_codex, resume(workspace, thread_id), workspace, prompt="fix it")
    assert second_run.returncode == 0, second_run.stderr
    second = events(second_run.stdout)
    assert second[0] == {"type": "thread.started", "thread_id": thread_id}
    before, after = first[-1]["usage"], second[-1]["usage"]
    for key in ("input_tokens", "cached_input_tokens", "output_tokens", "reasoning_output_tokens"):
        assert after[key] > before[key]
    third = events(run(fake_codex, resume(workspace, thread_id), workspace, prompt="fix it").stdout)
    # each turn adds the same amount for the same prompt: totals grow linearly
    assert third[-1]["usage"]["output_tokens"] - after["output_tokens"] == after["output_tokens"] - before[
        "output_tokens"]


def test_resume_of_an_unknown_uuid_fails_like_codex(fake_codex: Path, workspace: Path) -> None:
    missing = "01a20c94-8cbe-77a1-98f0-d36b7f2783ed"
    result = run(fake_codex, resume(workspace, missing), workspace)
    assert result.returncode == 1
    assert result.stdout == ""
    assert f"no rollout found for thread id {missing}" in result.stderr


def test_resume_of_a_non_uuid_name_silently_starts_a_new_thread(fake_codex: Path, workspace: Path) -> None:
    result = run(fake_codex, resume(workspace, "my-old-session"), workspace)
    assert result.returncode == 0
    thread_id = events(result.stdout)[0]["thread_id"]
    assert UUID_RE.match(thread_id)  # a brand-new thread: why coord refuses non-UUID resume ids


def test_resume_last_picks_the_newest_thread_of_this_cwd(fake_codex: Path, workspace: Path) -> None:
    first = events(run(fake_codex, fresh(workspace), workspace).stdout)[0]["thread_id"]
    result = run(fake_codex, ["exec", "-C", str(workspace), "resume", "--last", "--json",
                              "--skip-git-repo-check", "-"], workspace)
    assert events(result.stdout)[0]["thread_id"] == first


@pytest.mark.parametrize("args", [
    ["exec", "resume", "01a20c94-8cbe-77a1-98f0-d36b7f2783ed", "-C", "/tmp", "--json", "-"],
    ["exec", "resume", "01a20c94-8cbe-77a1-98f0-d36b7f2783ed", "-s", "read-only", "--json", "-"],
    ["exec", "--json", "--full-auto", "-"],
    ["exec", "--json", "-s", "everything", "-"],
    ["--json", "exec", "-"],
])
def test_usage_errors_exit_2_like_clap(fake_codex: Path, workspace: Path, args: list[str]) -> None:
    result = run(fake_codex, args, workspace)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ")
    assert result.stdout == ""


def test_outside_git_without_skip_flag_fails(fake_codex: Path, workspace: Path) -> None:
    result = run(fake_codex, ["exec", "--json", "-C", str(workspace), "-"], workspace)
    assert result.returncode == 1
    assert "--skip-git-repo-check was not specified" in result.stderr
    dangerous = run(fake_codex, ["exec", "--json", "--dangerously-bypass-approvals-and-sandbox", "-C",
                                 str(workspace), "-"], workspace)
    assert dangerous.returncode == 0


def test_positional_prompt_also_reads_stdin(fake_codex: Path, workspace: Path, tmp_path: Path) -> None:
    record = tmp_path / "calls"
    result = run(fake_codex, ["exec", "--json", "--skip-git-repo-check", "hello"], workspace, prompt="more",
                 FAKE_CODEX_RECORD_DIR=str(record))
    assert result.returncode == 0
    assert "Reading additional input from stdin..." in result.stderr
    (call,) = [json.loads(path.read_text()) for path in record.iterdir()]
    assert call["prompt"] == "hello\n\n<stdin>\nmore\n</stdin>"


def test_error_scenario_fails_the_turn(fake_codex: Path, workspace: Path) -> None:
    last = workspace / "last.txt"
    result = run(fake_codex, fresh(workspace, "-o", str(last)), workspace, FAKE_CODEX_SCENARIO="error")
    assert result.returncode == 1
    stream = events(result.stdout)
    assert stream[-1] == {"type": "turn.failed", "error": {"message": "stream disconnected before completion: "
                                                                      "synthetic failure"}}
    errors = [event["message"] for event in stream if event["type"] == "error"]
    assert errors[0].startswith("Reconnecting...") and len(errors) == 2
    assert last.exists() and last.read_text() == ""  # codex creates the -o file EMPTY on a failed turn
    assert not (workspace / "reports").exists()


def test_fail_scenario_completes_the_turn_with_exit_0(fake_codex: Path, workspace: Path) -> None:
    result = run(fake_codex, fresh(workspace), workspace, prompt="work [[fake:fail]]")
    assert result.returncode == 0
    stream = events(result.stdout)
    assert stream[-1]["type"] == "turn.completed"
    failed = [event["item"] for event in stream
              if event["type"] == "item.completed" and event["item"].get("status") == "failed"]
    assert failed and failed[0]["exit_code"] == 1
    assert "Status: FAIL - " in (workspace / "reports" / "P01-worker.md").read_text()


def test_no_report_writes_nothing(fake_codex: Path, workspace: Path) -> None:
    result = run(fake_codex, fresh(workspace), workspace, FAKE_CODEX_SCENARIO="no_report", FAKE_CODEX_EXIT="3")
    assert result.returncode == 3
    assert events(result.stdout)[-1]["type"] == "turn.completed"
    assert not (workspace / "reports").exists() and not (workspace / ".completed").exists()


def test_per_attempt_scenario_list(fake_codex: Path, workspace: Path) -> None:
    report = workspace / "reports" / "P01-worker.md"
    seen = []
    for attempt in ("1", "2", "3"):
        run(fake_codex, fresh(workspace), workspace, prompt="x [[fake:fail,pass]]", COORD_ATTEMPT=attempt)
        seen.append("PASS" if "Status: PASS" in report.read_text() else "FAIL")
    assert seen == ["FAIL", "PASS", "PASS"]


def test_prompt_tag_overrides_the_environment(fake_codex: Path, workspace: Path) -> None:
    result = run(fake_codex, fresh(workspace), workspace, prompt="[[fake:no_report]]", FAKE_CODEX_SCENARIO="fail")
    assert not (workspace / "reports").exists()
    assert result.returncode == 0


def test_write_files_and_lie(fake_codex: Path, workspace: Path) -> None:
    write = "built.txt=ok\\n\nsub/dir/x.txt=two"
    run(fake_codex, fresh(workspace), workspace, FAKE_CODEX_WRITE=write)
    assert (workspace / "built.txt").read_text() == "ok\n"
    assert (workspace / "sub" / "dir" / "x.txt").read_text() == "two"
    other = workspace / "other"
    other.mkdir()
    run(fake_codex, fresh(other), other, FAKE_CODEX_WRITE=write, FAKE_CODEX_SCENARIO="lie",
        COORD_REPORT_PATH=str(other / "r.md"), COORD_COMPLETED_PATH=str(other / "c.md"))
    assert "Status: PASS" in (other / "r.md").read_text()
    assert (other / "c.md").exists()
    assert not (other / "built.txt").exists()


def test_record_dir_captures_argv_stdin_cwd_and_env(fake_codex: Path, workspace: Path, tmp_path: Path) -> None:
    record = tmp_path / "calls"
    args = fresh(workspace, "-m", "gpt-5.5")
    run(fake_codex, ["-c", "model_provider=mock", *args], tmp_path, prompt="the prompt\n",
        FAKE_CODEX_RECORD_DIR=str(record))
    call = json.loads((record / f"{os.environ['COORD_ATTEMPT_ID']}.json").read_text())
    assert call["argv"][1:] == ["-c", "model_provider=mock", *args]
    assert call["stdin"] == "the prompt\n"
    assert call["cwd"] == str(workspace)
    assert call["start_cwd"] == str(tmp_path)
    assert call["config"] == ["model_provider=mock"]
    assert call["env"]["COORD_PHASE_ID"] == "P01"
    assert UUID_RE.match(call["thread_id"])


def test_resume_reject(fake_codex: Path, workspace: Path) -> None:
    thread_id = events(run(fake_codex, fresh(workspace), workspace, prompt="[[fake:resume_reject]]").stdout)[0][
        "thread_id"]
    record = workspace / "calls"
    result = run(fake_codex, resume(workspace, thread_id), workspace, prompt="[[fake:resume_reject]]",
                 FAKE_CODEX_RECORD_DIR=str(record))
    assert result.returncode == 2
    assert result.stdout == ""
    (call,) = [json.loads(path.read_text()) for path in record.iterdir()]
    assert call["resume"] is True and call["thread_id"] is None


def test_slow_emits_events_then_passes(fake_codex: Path, workspace: Path) -> None:
    began = time.monotonic()
    result = run(fake_codex, fresh(workspace), workspace, FAKE_CODEX_SCENARIO="slow", FAKE_CODEX_SLOW_SECONDS="0.3")
    assert result.returncode == 0
    assert time.monotonic() - began >= 0.3
    stream = events(result.stdout)
    assert sum(1 for event in stream if event.get("item", {}).get("text", "").startswith("working")) >= 2
    assert stream[-1]["type"] == "turn.completed"


def test_crash_kills_itself(fake_codex: Path, workspace: Path) -> None:
    result = run(fake_codex, fresh(workspace), workspace, FAKE_CODEX_SCENARIO="crash")
    assert result.returncode == -signal.SIGKILL
    assert events(result.stdout)[-1]["type"] == "item.started"


def test_hang_prints_thread_started_then_nothing(fake_codex: Path, workspace: Path, background: list) -> None:
    log = workspace / "hang.log"
    process = start(fake_codex, fresh(workspace), workspace, log, background, FAKE_CODEX_SCENARIO="hang")
    wait_until(lambda: log.read_text().endswith("\n"))
    size = log.stat().st_size
    time.sleep(0.3)
    assert process.poll() is None and log.stat().st_size == size
    assert [event["type"] for event in events(log.read_text())] == ["thread.started"]
    os.killpg(process.pid, signal.SIGKILL)
    assert process.wait(5) == -signal.SIGKILL


def test_chatty_keeps_talking(fake_codex: Path, workspace: Path, background: list) -> None:
    log = workspace / "chatty.log"
    process = start(fake_codex, fresh(workspace), workspace, log, background, FAKE_CODEX_SCENARIO="chatty")
    wait_until(lambda: log.read_text().count("\n") >= 5)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(5)


def test_ignore_term_survives_sigterm(fake_codex: Path, workspace: Path, background: list) -> None:
    log = workspace / "term.log"
    process = start(fake_codex, fresh(workspace), workspace, log, background, FAKE_CODEX_SCENARIO="ignore_term")
    wait_until(lambda: "thread.started" in log.read_text())
    os.killpg(process.pid, signal.SIGTERM)
    time.sleep(0.2)
    assert process.poll() is None
    os.killpg(process.pid, signal.SIGKILL)
    assert process.wait(5) == -signal.SIGKILL


def test_fork_escape_leaves_a_grandchild_in_its_own_session(fake_codex: Path, workspace: Path,
                                                            background: list) -> None:
    log = workspace / "escape.log"
    process = start(fake_codex, fresh(workspace), workspace, log, background, FAKE_CODEX_SCENARIO="fork_escape")
    wait_until(lambda: "escaped pid" in log.read_text())
    cookie = os.environ["COORD_ATTEMPT_ID"]
    carriers = wait_until(lambda: [p for p in processes_with_cookie("COORD_ATTEMPT_ID", cookie)
                                   if p.pid != process.pid])
    escaped = carriers[0]
    try:
        assert os.getsid(escaped.pid) != os.getsid(process.pid)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)
        assert escaped.is_running()  # the group kill did not reach it
    finally:
        for leftover in processes_with_cookie("COORD_ATTEMPT_ID", cookie):
            leftover.kill()
        wait_until(lambda: not processes_with_cookie("COORD_ATTEMPT_ID", cookie))
