"""Agent adapters: argv for codex/claude/shell, and summaries parsed from logs the fake codex really wrote."""

from __future__ import annotations

import dataclasses
import json
import marshal
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from coordinator.agents import get_agent
from coordinator.agents.base import LaunchRequest, WorkerCommand
from coordinator.agents.claude import ClaudeAgent
from coordinator.agents.codex import CodexAgent, CodexSummary
from coordinator.agents.jsonl import parse_event_line
from coordinator.agents.shell import ShellAgent
from coordinator.errors import UsageError
from coordinator.plan.allow_list import parse_entry
from coordinator.plan.model import AgentProfile
from tests.helpers import alive

THREAD = "01a20c94-8cbe-77a1-98f0-d36b7f2783ed"


def make_request(tmp_path: Path, profile: AgentProfile, *, script: tuple[str, ...] = (),
                 resume: str | None = None, prompt: str = "do the phase", attempt: int = 1) -> LaunchRequest:
    workspace = tmp_path / "ws"
    workspace.mkdir(exist_ok=True)
    attempt_dir = workspace / "tmp" / "PLAN-T" / "P01" / str(attempt)
    attempt_dir.mkdir(parents=True, exist_ok=True)
    prompt_path = attempt_dir / "prompt.md"
    prompt_path.write_text(prompt, encoding="utf-8")
    return LaunchRequest(prompt_path=prompt_path, attempt_dir=attempt_dir, workdir=workspace, resume_session=resume,
                         script=script, phase_id="P01")


def launch(command: WorkerCommand, request: LaunchRequest, timeout: float = 20, **extra_env: str) -> int:
    """Run a worker the way the supervisor does: stdin from the prompt file, stdout+stderr into worker.log,
    cwd = workdir, env = os.environ + COORD_* + command.env; returns the exit code."""
    workspace = request.workdir
    attempt = int(request.attempt_dir.name)
    env = {
        **os.environ,
        "COORD_ATTEMPT_ID": str(uuid.uuid4()),
        "COORD_PLAN_ID": "PLAN-T",
        "COORD_PHASE_ID": request.phase_id,
        "COORD_ATTEMPT": str(attempt),
        "COORD_REMEDIATION": "1" if attempt > 1 else "0",
        "COORD_WORKSPACE": str(workspace),
        "COORD_REPORT_PATH": str(workspace / "reports" / "P01-worker.md"),
        "COORD_COMPLETED_PATH": str(workspace / ".completed" / "P01.md"),
        "COORD_PROMPT_FILE": str(request.prompt_path),
        **extra_env,
        **command.env,
    }
    stdin = open(command.stdin_path, "rb") if command.stdin_path else subprocess.DEVNULL
    try:
        with open(request.attempt_dir / "worker.log", "wb") as log:
            process = subprocess.Popen(command.argv, cwd=request.workdir, stdin=stdin, stdout=log,
                                       stderr=subprocess.STDOUT, env=env, start_new_session=True)
    finally:
        if stdin is not subprocess.DEVNULL:
            stdin.close()
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise


@pytest.fixture(autouse=True)
def isolated_codex_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODEX_HOME", str(tmp_path / "codex-home"))
    monkeypatch.delenv("FAKE_CODEX_SCENARIO", raising=False)
    monkeypatch.delenv("FAKE_CODEX_WRITE", raising=False)


# ---- codex argv ----------------------------------------------------------------------------------------------


def test_codex_fresh_argv(tmp_path: Path) -> None:
    profile = AgentProfile(name="codex", base="codex")
    request = make_request(tmp_path, profile)
    command = CodexAgent(profile).build_command(request)
    # With no sandbox named, workspace-write: codex's own default for exec (read-only) cannot write a report.
    assert command.argv == ("codex", "exec", "--json", "--skip-git-repo-check", "-C", str(request.workdir),
                            "-s", "workspace-write", "-o", str(request.attempt_dir / "last-message.txt"), "-")
    assert command.stdin_path == str(request.prompt_path)
    assert command.env == {}


def test_codex_resume_keeps_the_default_sandbox(tmp_path: Path) -> None:
    profile = AgentProfile(name="codex", base="codex")
    argv = CodexAgent(profile).build_command(make_request(tmp_path, profile, resume=THREAD)).argv
    assert argv[argv.index("-s"):argv.index("resume") + 2] == ("-s", "workspace-write", "resume", THREAD)


def test_codex_full_profile_argv(tmp_path: Path) -> None:
    profile = AgentProfile(
        name="x", base="codex", binary="/opt/codex", model="gpt-5.5", sandbox="danger-full-access", dangerous=True,
        config=("model_provider=mock", "features.plugins=false"), args=("--ephemeral",),
        env=(("MOCK_API_KEY", "k"), ("A", "1")),
    )
    request = make_request(tmp_path, profile)
    command = CodexAgent(profile).build_command(request)
    assert command.argv == (
        "/opt/codex", "-c", "model_provider=mock", "-c", "features.plugins=false", "exec", "--json",
        "--skip-git-repo-check", "-C", str(request.workdir), "-m", "gpt-5.5", "-s", "danger-full-access",
        "--dangerously-bypass-approvals-and-sandbox", "-o", str(request.attempt_dir / "last-message.txt"),
        "--ephemeral", "-",
    )
    assert command.env == {"MOCK_API_KEY": "k", "A": "1"}


def test_codex_dangerous_flag_only_when_set(tmp_path: Path) -> None:
    profile = AgentProfile(name="c", base="codex", sandbox="danger-full-access")
    argv = CodexAgent(profile).build_command(make_request(tmp_path, profile)).argv
    assert "--dangerously-bypass-approvals-and-sandbox" not in argv
    assert argv[argv.index("-s") + 1] == "danger-full-access"


def test_codex_resume_argv_puts_exec_flags_before_resume(tmp_path: Path) -> None:
    profile = AgentProfile(name="c", base="codex", model="m1", sandbox="workspace-write", dangerous=True,
                           config=("k=v",))
    request = make_request(tmp_path, profile, resume=THREAD)
    argv = CodexAgent(profile).build_command(request).argv
    assert argv == (
        "codex", "-c", "k=v", "exec", "-C", str(request.workdir), "-s", "workspace-write", "resume", THREAD,
        "--json", "--skip-git-repo-check", "-m", "m1", "--dangerously-bypass-approvals-and-sandbox",
        "-o", str(request.attempt_dir / "last-message.txt"), "-",
    )


@pytest.mark.parametrize("session", ["my-session", "", "01a20c94-8cbe-77a1-98f0", f"{THREAD} ", "--last"])
def test_codex_refuses_non_uuid_resume(tmp_path: Path, session: str) -> None:
    profile = AgentProfile(name="c", base="codex")
    request = make_request(tmp_path, profile, resume=session or "x")
    with pytest.raises(UsageError, match="not a thread UUID"):
        CodexAgent(profile).build_command(request)


def test_get_agent_picks_the_adapter() -> None:
    assert isinstance(get_agent(AgentProfile(name="a", base="codex")), CodexAgent)
    assert isinstance(get_agent(AgentProfile(name="b", base="claude")), ClaudeAgent)
    assert isinstance(get_agent(AgentProfile(name="c", base="shell")), ShellAgent)
    assert get_agent(AgentProfile(name="a", base="codex")).requires_completed_turn is True
    assert get_agent(AgentProfile(name="c", base="shell")).requires_completed_turn is False


# ---- codex against the fake ---------------------------------------------------------------------------------


def test_summarize_a_real_fake_run(tmp_path: Path, fake_codex: Path) -> None:
    profile = AgentProfile(name="fake", base="codex", binary=str(fake_codex))
    agent = CodexAgent(profile)
    request = make_request(tmp_path, profile)
    rc = launch(agent.build_command(request), request, FAKE_CODEX_WRITE="built.txt=ok")
    assert rc == 0, (request.attempt_dir / "worker.log").read_text()
    summary = agent.summarize(request.attempt_dir / "worker.log", request.attempt_dir)
    assert isinstance(summary, CodexSummary)
    log = (request.attempt_dir / "worker.log").read_text()
    first = json.loads(log.splitlines()[0])
    assert summary.session_id == first["thread_id"]
    assert summary.completed is True and summary.error is None
    assert summary.commands == 2  # `ls` and the report write
    assert summary.file_changes == 2  # built.txt and the marker
    assert summary.failed_commands == ()
    assert summary.last_message == "Wrote " + str(request.workdir / "reports" / "P01-worker.md") \
        + ". Status: PASS"
    assert summary.input_tokens == 1200 + len("do the phase") // 4
    assert summary.cached_input_tokens == 200 and summary.output_tokens == 34 and summary.reasoning_tokens == 8
    assert summary.cumulative_usage["input_tokens"] == summary.input_tokens
    assert summary.cost_usd is None
    assert summary.last_event is not None and '"turn.completed"' in summary.last_event
    data = summary.to_dict()
    assert data["cumulative_usage"] == summary.cumulative_usage and data["total_tokens"] == summary.total_tokens


def test_summarize_resume_counts_only_this_attempts_tokens(tmp_path: Path, fake_codex: Path) -> None:
    profile = AgentProfile(name="fake", base="codex", binary=str(fake_codex))
    agent = CodexAgent(profile)
    first_request = make_request(tmp_path, profile)
    assert launch(agent.build_command(first_request), first_request) == 0
    first = agent.summarize(first_request.attempt_dir / "worker.log", first_request.attempt_dir)
    second_request = make_request(tmp_path, profile, resume=first.session_id, attempt=2, prompt="fix [[fake:fail]]")
    assert launch(agent.build_command(second_request), second_request) == 0
    log = second_request.attempt_dir / "worker.log"
    second = agent.summarize(log, second_request.attempt_dir, previous_usage=first.cumulative_usage)
    assert second.session_id == first.session_id
    assert second.cumulative_usage["output_tokens"] == 2 * 34
    assert second.output_tokens == 34
    assert second.input_tokens == 1200 + len("fix [[fake:fail]]") // 4
    [failure] = second.failed_commands  # the fail scenario's `npm test`, shown without codex's bash wrapper
    assert failure.describe() == "`npm test` → exit 1: expected 2, got 3"
    unadjusted = agent.summarize(log, second_request.attempt_dir)
    assert unadjusted.output_tokens == 2 * 34


def test_summarize_a_failed_turn(tmp_path: Path, fake_codex: Path) -> None:
    profile = AgentProfile(name="fake", base="codex", binary=str(fake_codex))
    agent = CodexAgent(profile)
    request = make_request(tmp_path, profile, prompt="[[fake:error]]")
    assert launch(agent.build_command(request), request) == 1
    summary = agent.summarize(request.attempt_dir / "worker.log", request.attempt_dir)
    assert summary.completed is False
    assert summary.error == "stream disconnected before completion: synthetic failure"
    assert summary.last_message is None  # the -o file exists but is empty
    assert (request.attempt_dir / "last-message.txt").read_text() == ""
    assert summary.input_tokens == 0 and summary.cumulative_usage == {}


def test_summarize_a_crashed_worker(tmp_path: Path, fake_codex: Path) -> None:
    profile = AgentProfile(name="fake", base="codex", binary=str(fake_codex))
    agent = CodexAgent(profile)
    request = make_request(tmp_path, profile, prompt="[[fake:crash]]")
    assert launch(agent.build_command(request), request) == -signal.SIGKILL
    summary = agent.summarize(request.attempt_dir / "worker.log", request.attempt_dir)
    assert summary.session_id is not None
    assert summary.completed is False and summary.error is None and summary.commands == 0


def test_resume_of_unknown_thread_via_adapter_fails(tmp_path: Path, fake_codex: Path) -> None:
    profile = AgentProfile(name="fake", base="codex", binary=str(fake_codex))
    agent = CodexAgent(profile)
    request = make_request(tmp_path, profile, resume=THREAD)
    assert launch(agent.build_command(request), request) == 1
    summary = agent.summarize(request.attempt_dir / "worker.log", request.attempt_dir)
    assert summary.session_id is None and summary.completed is False


def test_large_prompt_reaches_the_fake_intact_via_stdin(tmp_path: Path, fake_codex: Path) -> None:
    profile = AgentProfile(name="fake", base="codex", binary=str(fake_codex))
    agent = CodexAgent(profile)
    line = "Ünïcode line with $(not expanded) and `ticks` and 'quotes' ;|&\n"
    prompt = line * (200 * 1024 // len(line))
    assert len(prompt.encode()) > 128 * 1024
    request = make_request(tmp_path, profile, prompt=prompt)
    record = tmp_path / "calls"
    assert launch(agent.build_command(request), request, FAKE_CODEX_RECORD_DIR=str(record)) == 0
    (call,) = [json.loads(path.read_text()) for path in record.iterdir()]
    assert call["stdin"] == prompt and call["prompt"] == prompt
    assert call["argv"][-1] == "-"
    assert all(len(arg) < 4096 for arg in call["argv"])  # the prompt never travels in argv


def test_summarize_tolerates_noise_torn_lines_and_duplicate_keys(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    lines = [
        "WARNING: proceeding, even though we could not create PATH aliases",
        json.dumps({"type": "thread.started", "thread_id": THREAD}),
        '{"type":"turn.started"}',
        'not json {"type": broken',
        '{"type":"item.completed","item":{"id":"item_1","type":"web_search","id":"ws_1","query":"q"}}',
        '{"type":"item.completed","item":{"id":"item_2","type":"command_execution","command":"x",'
        '"aggregated_output":"","exit_code":0,"status":"completed"}}',
        '{"type":"item.completed","item":{"id":"item_2","type":"command_execution","command":"x",'
        '"aggregated_output":"","exit_code":0,"status":"completed"}}',
        '{"type":"item.completed","item":{"id":"item_3","type":"command_execution","command":"y",'
        '"aggregated_output":"","exit_code":null,"status":"declined"}}',
        '{"type":"item.completed","item":{"id":"item_4","type":"file_change","changes":[],"status":"completed"}}',
        '{"type":"error","message":"Reconnecting... 1/5 (stream disconnected)"}',
        '2026-01-01 WARN something{"type":"item.completed","item":{"id":"item_5","type":"agent_message",'
        '"text":"first"}}',
        '{"type":"item.completed","item":{"id":"item_6","type":"agent_message","text":"final words"}}',
        '{"type":"turn.completed","usage":{"input_tokens":10,"cached_input_tokens":2,"output_tokens":3}}',
        '{"type":"turn.completed","usage":{"input_tokens":20,"cached_inp',
    ]
    log.write_text("\n".join(lines), encoding="utf-8")
    summary = CodexAgent(AgentProfile(name="c", base="codex")).summarize(log, tmp_path)
    assert summary.session_id == THREAD
    assert summary.commands == 1 and summary.file_changes == 1
    assert summary.last_message == "final words"
    assert summary.completed is True and summary.error is None
    assert (summary.input_tokens, summary.cached_input_tokens, summary.output_tokens) == (10, 2, 3)
    assert summary.reasoning_tokens == 0
    event = parse_event_line(lines[4])
    assert event is not None and event["item"]["id"] == "item_1"  # the first duplicate key wins


def test_summarize_turn_failed_after_completed_and_final_error(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    log.write_text("\n".join([
        json.dumps({"type": "thread.started", "thread_id": THREAD}),
        '{"type":"turn.completed","usage":{"input_tokens":1,"output_tokens":1}}',
        '{"type":"error","message":"Reconnecting... 2/5"}',
        '{"type":"error","message":"unexpected status 401 Unauthorized"}',
    ]) + "\n")
    summary = CodexAgent(AgentProfile(name="c", base="codex")).summarize(log, tmp_path)
    assert summary.error == "unexpected status 401 Unauthorized"
    log.write_text(log.read_text() + '{"type":"turn.failed","error":{"message":"boom"}}\n')
    summary = CodexAgent(AgentProfile(name="c", base="codex")).summarize(log, tmp_path)
    assert summary.completed is False and summary.error == "boom"


def test_summarize_missing_log_and_o_file_preferred(tmp_path: Path) -> None:
    agent = CodexAgent(AgentProfile(name="c", base="codex"))
    empty = agent.summarize(tmp_path / "absent.log", tmp_path)
    assert empty.session_id is None and empty.completed is False and empty.last_message is None
    (tmp_path / "last-message.txt").write_text("from -o")
    assert agent.summarize(tmp_path / "absent.log", tmp_path).last_message == "from -o"


def test_previous_usage_from_another_thread_is_not_subtracted(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    log.write_text('{"type":"turn.completed","usage":{"input_tokens":100,"output_tokens":10}}\n')
    agent = CodexAgent(AgentProfile(name="c", base="codex"))
    summary = agent.summarize(log, tmp_path, previous_usage={"input_tokens": 40, "output_tokens": 4})
    assert (summary.input_tokens, summary.output_tokens) == (60, 6)
    summary = agent.summarize(log, tmp_path, previous_usage={"input_tokens": 400, "output_tokens": 4})
    assert (summary.input_tokens, summary.output_tokens) == (100, 10)


# ---- shell --------------------------------------------------------------------------------------------------


def test_shell_runs_commands_literally_and_stops_at_the_first_failure(tmp_path: Path) -> None:
    profile = AgentProfile(name="shell", base="shell")
    script = (
        "printf '%s\\n' 'a;b' \"$0\" > out.txt",
        "echo '$HOME; echo injected' \"it's\" >> out.txt",
        "test -f out.txt; exit 3",
        "touch never.txt",
    )
    request = make_request(tmp_path, profile, script=script)
    agent = ShellAgent(profile)
    command = agent.build_command(request)
    assert command.stdin_path is None
    spec = marshal.loads(bytes.fromhex(command.argv[-1]))
    # each command is its own entry, never concatenated; without an allow-list each runs by /bin/sh -c
    assert [item["run"] for item in spec["commands"]] == list(script)
    assert all(item["argv"] is None for item in spec["commands"])
    assert launch(command, request) == 3
    workdir = request.workdir
    assert (workdir / "out.txt").read_text() == "a;b\n/bin/sh\n$HOME; echo injected it's\n"
    assert not (workdir / "never.txt").exists()
    log = (request.attempt_dir / "worker.log").read_text()
    assert log.splitlines()[0] == f"$ {script[0]}"
    assert f"$ {script[2]}" in log and f"$ {script[3]}" not in log
    summary = agent.summarize(request.attempt_dir / "worker.log", request.attempt_dir)
    assert summary.completed is True and summary.last_message == f"$ {script[2]}"


def test_shell_success_and_summary(tmp_path: Path) -> None:
    profile = AgentProfile(name="shell", base="shell", env=(("GREETING", "hi there"),))
    request = make_request(tmp_path, profile, script=('echo "$GREETING"', "echo done", "true"))
    agent = ShellAgent(profile)
    assert launch(agent.build_command(request), request) == 0
    summary = agent.summarize(request.attempt_dir / "worker.log", request.attempt_dir)
    assert summary.last_message == "$ true"
    assert "hi there\n" in (request.attempt_dir / "worker.log").read_text()


def test_allow_listed_plain_commands_run_as_argv_without_a_shell(tmp_path: Path) -> None:
    allowed = (tuple(parse_entry(text, shell, "test") for text, shell in
                     [("printf ...", False), ("touch ...", False), ("cat ...", True)]),)
    profile = AgentProfile(name="tools", base="shell", allow_lists=allowed)
    script = ("printf '%s|' 'a;b' '$HOME' '*.py'", "touch marker.txt", "cat marker.txt | cat")
    request = make_request(tmp_path, profile, script=script)
    agent = ShellAgent(profile)
    command = agent.build_command(request)
    spec = marshal.loads(bytes.fromhex(command.argv[-1]))
    assert [item["argv"] for item in spec["commands"]] == [["printf", "%s|", "a;b", "$HOME", "*.py"],
                                                         ["touch", "marker.txt"], None]
    assert launch(command, request) == 0
    log = (request.attempt_dir / "worker.log").read_text()
    assert "a;b|$HOME|*.py|" in log  # no shell: nothing expanded, nothing split at `;`
    record = json.loads((request.attempt_dir / "commands.json").read_text())
    assert record["outcome"] == "passed"
    assert [(item["index"], item["exit_code"]) for item in record["commands"]] == [(1, 0), (2, 0), (3, 0)]
    assert (request.attempt_dir / "commands" / "1.log").read_text() == "a;b|$HOME|*.py|"
    refused = AgentProfile(name="tools", base="shell", allow_lists=allowed)
    with pytest.raises(UsageError, match="`rm -rf /` is not allowed"):
        ShellAgent(refused).build_command(make_request(tmp_path, refused, script=("rm -rf /",)))


def test_a_timed_out_command_is_killed_with_its_children(tmp_path: Path) -> None:
    profile = AgentProfile(name="shell", base="shell")
    script = ("echo start", "sh -c 'sleep 300 & echo child $! > child.pid; sleep 300'", "touch never.txt")
    request = dataclasses.replace(make_request(tmp_path, profile, script=script), timeout=1.5, kill_grace=0.5)
    agent = ShellAgent(profile)
    assert launch(agent.build_command(request), request) == 124
    child = int((request.workdir / "child.pid").read_text().split()[1])
    # The background child went with the command's process group (at most a zombie waiting for its reaper).
    deadline = time.monotonic() + 5
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child)
    assert not (request.workdir / "never.txt").exists()
    record = json.loads((request.attempt_dir / "commands.json").read_text())
    assert record["outcome"] == "timed-out" and record["commands"][1]["timed_out"] is True
    assert record["commands"][1]["signal"] == signal.SIGTERM
    summary = agent.summarize(request.attempt_dir / "worker.log", request.attempt_dir)
    assert summary.error == ("timed out after 1.5 s (policy.timeout): command 2, `sh -c 'sleep 300 & echo child $! "
                             "> child.pid; sleep 300'` (output in commands/2.log) was killed with its process group")


def test_a_failed_command_is_named_in_the_summary(tmp_path: Path) -> None:
    profile = AgentProfile(name="shell", base="shell")
    request = make_request(tmp_path, profile, script=("true", "echo oops; exit 7", "true"))
    agent = ShellAgent(profile)
    assert launch(agent.build_command(request), request) == 7
    summary = agent.summarize(request.attempt_dir / "worker.log", request.attempt_dir)
    assert summary.error == "command 2, `echo oops; exit 7` (output in commands/2.log) exited 7"
    assert summary.commands == 2
    assert (request.attempt_dir / "commands" / "2.log").read_text() == "oops\n"


def test_shell_without_script_is_a_usage_error(tmp_path: Path) -> None:
    profile = AgentProfile(name="shell", base="shell")
    with pytest.raises(UsageError, match="no `script`"):
        ShellAgent(profile).build_command(make_request(tmp_path, profile))


# ---- claude -------------------------------------------------------------------------------------------------


def test_claude_argv_and_summary(tmp_path: Path) -> None:
    profile = AgentProfile(name="cl", base="claude", model="sonnet", args=("--permission-mode", "bypassPermissions"))
    request = make_request(tmp_path, profile, resume="abc-123")
    command = ClaudeAgent(profile).build_command(request)
    assert command.argv == ("claude", "-p", "--output-format", "stream-json", "--verbose", "--model", "sonnet",
                            "--resume", "abc-123", "--permission-mode", "bypassPermissions")
    assert command.stdin_path == str(request.prompt_path)
    log = tmp_path / "claude.log"
    log.write_text("\n".join([
        json.dumps({"type": "system", "subtype": "init", "session_id": "sess-1"}),
        "some stderr noise",
        json.dumps({"type": "assistant", "message": {"content": []}}),
        json.dumps({"type": "result", "subtype": "success", "is_error": False, "result": "All done",
                    "session_id": "sess-1", "total_cost_usd": 0.0123,
                    "usage": {"input_tokens": 5, "cache_read_input_tokens": 100, "output_tokens": 7}}),
    ]) + "\n")
    summary = ClaudeAgent(profile).summarize(log, tmp_path)
    assert summary.session_id == "sess-1" and summary.completed is True
    assert summary.cost_usd == pytest.approx(0.0123)
    assert (summary.input_tokens, summary.cached_input_tokens, summary.output_tokens) == (105, 100, 7)
    assert summary.last_message == "All done" and summary.error is None
    log.write_text(json.dumps({"type": "result", "subtype": "error_max_turns", "is_error": True}) + "\n")
    failed = ClaudeAgent(profile).summarize(log, tmp_path)
    assert failed.completed is False and failed.error == "error_max_turns"


def _claude_log(path: Path, *events: dict[str, object]) -> Path:
    path.write_text("\n".join(json.dumps(event) for event in events) + "\n", encoding="utf-8")
    return path


CLAUDE_SESSION = "49e75ad4-7630-4087-a4cd-798c08336e34"


def test_a_failed_command_run_again_successfully_is_not_a_failure() -> None:
    from coordinator.agents.base import unresolved_failures

    runs = [("pytest -q", 1, False, "1 failed"), ("mkdir /x", 1, False, "mkdir: Read-only file system"),
            ("pytest -q", 0, True, "1 passed")]
    assert [f.command for f in unresolved_failures(runs)] == ["mkdir /x"]


def test_claude_tool_errors_are_failed_commands(tmp_path: Path) -> None:
    def use(block_id: str, name: str, tool_input: dict[str, object]) -> dict[str, object]:
        return {"type": "assistant", "message": {"content": [
            {"type": "tool_use", "id": block_id, "name": name, "input": tool_input}]}}

    def result(block_id: str, text: str, error: bool) -> dict[str, object]:
        return {"type": "user", "message": {"content": [
            {"type": "tool_result", "tool_use_id": block_id, "is_error": error,
             "content": [{"type": "text", "text": text}]}]}}

    log = _claude_log(
        tmp_path / "worker.log",
        use("t1", "Bash", {"command": "mkdir reports"}), result("t1", "mkdir: Read-only file system", True),
        use("t2", "Write", {"file_path": "/ws/a.txt"}), result("t2", "ok", False),
        use("t3", "Write", {"file_path": "/ws/b.txt"}), result("t3", "EACCES: permission denied", True),
    )
    summary = ClaudeAgent(AgentProfile(name="cl", base="claude")).summarize(log, tmp_path)
    assert [f.describe() for f in summary.failed_commands] == [
        "`mkdir reports` → error: mkdir: Read-only file system", "`Write /ws/b.txt` → error: EACCES: permission denied"]


def test_claude_gets_the_least_permissions_that_work_unattended_unless_the_profile_chooses(tmp_path: Path) -> None:
    base = ("claude", "-p", "--output-format", "stream-json", "--verbose")
    plain = AgentProfile(name="cl", base="claude")
    assert ClaudeAgent(plain).build_command(make_request(tmp_path, plain)).argv == (
        *base, "--permission-mode", "acceptEdits", "--allowedTools", "Bash")
    assert ClaudeAgent(plain).bypass_warning() is None
    own = AgentProfile(name="cl", base="claude", args=("--allowedTools=Bash(pytest *),Edit",))
    assert ClaudeAgent(own).build_command(make_request(tmp_path, own)).argv == (*base,
                                                                                 "--allowedTools=Bash(pytest *),Edit")
    bypass = AgentProfile(name="cl", base="claude", dangerous=True)
    assert ClaudeAgent(bypass).build_command(make_request(tmp_path, bypass)).argv == (
        *base, "--permission-mode", "bypassPermissions")
    assert "every permission check bypassed" in (ClaudeAgent(bypass).bypass_warning() or "")
    in_args = AgentProfile(name="cl", base="claude", args=("--dangerously-skip-permissions",))
    assert ClaudeAgent(in_args).bypass_warning() is not None


def test_claude_may_edit_the_workspace_when_its_workdir_is_a_folder_inside(tmp_path: Path) -> None:
    profile = AgentProfile(name="cl", base="claude")
    request = make_request(tmp_path, profile)
    inner = dataclasses.replace(request, workdir=request.workdir / "sub", workspace=request.workdir)
    argv = ClaudeAgent(profile).build_command(inner).argv
    assert argv[argv.index("--add-dir") + 1] == str(request.workdir)


def test_claude_counts_tool_uses_and_takes_this_runs_cost_not_the_sessions(tmp_path: Path) -> None:
    # Shapes as claude 2.1.331 printed them on a resumed session (tests/real_cli/claude): total_cost_usd and modelUsage
    # are session totals, model_usage_since_last_result and usage are this run's.
    def use(block_id: str, name: str) -> dict[str, object]:
        return {"type": "assistant", "session_id": CLAUDE_SESSION, "message": {"content": [
            {"type": "tool_use", "id": block_id, "name": name, "input": {}}]}}

    log = _claude_log(
        tmp_path / "worker.log",
        {"type": "system", "subtype": "init", "session_id": CLAUDE_SESSION, "model": "claude-sonnet-4-5"},
        use("toolu_1", "Bash"), use("toolu_1", "Bash"), use("toolu_2", "Write"), use("toolu_3", "Read"),
        {"type": "assistant", "message": {"content": [{"type": "text", "text": "second done"}]}},
        {"type": "result", "subtype": "success", "is_error": False, "result": "second done",
         "session_id": CLAUDE_SESSION, "total_cost_usd": 0.01749,
         "usage": {"input_tokens": 2010, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0,
                   "output_tokens": 8, "output_tokens_details": {"thinking_tokens": 3}},
         "modelUsage": {"claude-sonnet-4-5": {"costUSD": 0.01749}},
         "model_usage_since_last_result": {"claude-sonnet-4-5": {"costUSD": 0.0082}}},
    )
    summary = ClaudeAgent(AgentProfile(name="cl", base="claude")).summarize(log, tmp_path)
    assert summary.completed is True and summary.session_id == CLAUDE_SESSION
    assert (summary.commands, summary.file_changes) == (1, 1)
    assert summary.tool_uses == {"Bash": 1, "Write": 1, "Read": 1}
    assert (summary.input_tokens, summary.output_tokens, summary.reasoning_tokens) == (2010, 8, 3)
    assert summary.cost_usd == pytest.approx(0.0082)
    assert summary.cumulative_usage == {"total_cost_usd": pytest.approx(0.01749)}


def test_claude_without_per_run_cost_subtracts_what_the_resumed_session_had_cost(tmp_path: Path) -> None:
    result = {"type": "result", "subtype": "success", "is_error": False, "result": "ok", "total_cost_usd": 0.5}
    log = _claude_log(tmp_path / "worker.log", result)
    agent = ClaudeAgent(AgentProfile(name="cl", base="claude"))
    assert agent.summarize(log, tmp_path).cost_usd == pytest.approx(0.5)
    assert agent.summarize(log, tmp_path, previous_usage={"total_cost_usd": 0.2}).cost_usd == pytest.approx(0.3)
    # a larger earlier total belongs to a session claude did not carry over: nothing is subtracted
    assert agent.summarize(log, tmp_path, previous_usage={"total_cost_usd": 0.9}).cost_usd == pytest.approx(0.5)


@pytest.mark.parametrize(("result", "error"), [
    # An API error: claude 2.1.331 says subtype "success" with is_error true.
    ({"subtype": "success", "is_error": True, "result": "API Error: 500 boom", "total_cost_usd": 0,
      "model_usage_since_last_result": {}}, "API Error: 500 boom"),
    # --resume of a session that does not exist (no init event at all).
    ({"subtype": "error_during_execution", "is_error": True, "num_turns": 0, "total_cost_usd": 0,
      "errors": ["No conversation found with session ID: " + CLAUDE_SESSION]},
     "error_during_execution: No conversation found with session ID: " + CLAUDE_SESSION),
    ({"subtype": "error_max_turns", "is_error": True, "errors": ["Reached maximum number of turns (1)"]},
     "error_max_turns: Reached maximum number of turns (1)"),
    # The subtype decides: a budget stop may come with is_error false and the last text as its result.
    ({"subtype": "error_max_budget_usd", "is_error": False, "result": "Done, all tests pass."},
     "error_max_budget_usd: Done, all tests pass."),
], ids=["api_error", "unknown_session", "max_turns", "max_budget"])
def test_claude_failed_results_are_not_completed_and_keep_claudes_message(
    tmp_path: Path, result: dict[str, object], error: str
) -> None:
    log = _claude_log(tmp_path / "worker.log", {"type": "result", "session_id": CLAUDE_SESSION, **result})
    summary = ClaudeAgent(AgentProfile(name="cl", base="claude")).summarize(log, tmp_path)
    assert summary.completed is False and summary.error == error
    assert summary.session_id == CLAUDE_SESSION


def test_claude_killed_before_its_result_has_the_session_and_last_text_only(tmp_path: Path) -> None:
    log = _claude_log(
        tmp_path / "worker.log",
        {"type": "system", "subtype": "init", "session_id": CLAUDE_SESSION},
        {"type": "assistant", "message": {"content": [{"type": "text", "text": "working on it"}]}},
    )
    summary = ClaudeAgent(AgentProfile(name="cl", base="claude")).summarize(log, tmp_path)
    assert (summary.session_id, summary.completed, summary.cost_usd, summary.error) == (
        CLAUDE_SESSION, False, None, None)
    assert summary.last_message == "working on it"
    missing = ClaudeAgent(AgentProfile(name="cl", base="claude")).summarize(tmp_path / "nope.log", tmp_path)
    assert missing.session_id is None and missing.completed is False


def test_codex_commands_missing_from_the_stream_are_read_from_the_threads_last_turn_in_its_rollout(
        tmp_path: Path) -> None:
    """codex -s read-only prints no command items; the rollout (measured shape, codex 0.169) still has them."""
    from coordinator.agents.codex_rollout import rollout_runs

    home = tmp_path / "codex-home"
    rollout = home / "sessions/2026/12/01" / f"rollout-2026-12-01T12-34-01-{THREAD}.jsonl"
    rollout.parent.mkdir(parents=True)

    def entry(kind: str, **payload: object) -> str:
        return json.dumps({"timestamp": "2026-12-01T12:34:01Z", "type": kind, "payload": payload})

    def call(call_id: str, cmd: str) -> str:
        return entry("response_item", type="function_call", name="exec_command", call_id=call_id,
                     arguments=json.dumps({"cmd": cmd}))

    def output(call_id: str, code: int, text: str) -> str:
        return entry("response_item", type="function_call_output", call_id=call_id,
                     output=f"Chunk ID: x\nWall time: 0.0 seconds\nProcess exited with code {code}\nOutput:\n{text}")

    rollout.write_text("\n".join([
        entry("session_meta", id=THREAD), entry("event_msg", type="task_started"),
        call("c1", "make old"), output("c1", 2, "an earlier attempt's failure\n"),
        entry("event_msg", type="task_started"),
        call("c2", "mkdir reports"),
        output("c2", 1, "mkdir: cannot create directory 'reports': Read-only file system\n"),
        call("c3", "ls"), output("c3", 0, "README.md\n"),
    ]) + "\n")

    runs = rollout_runs(home, THREAD)

    assert [(command, code, ok) for command, code, ok, _ in runs] == [("mkdir reports", 1, False), ("ls", 0, True)]
    assert "Read-only file system" in runs[0][3] and "Chunk ID" not in runs[0][3]
    assert rollout_runs(home, "01a23198-0000-0000-0000-000000000000") == []
