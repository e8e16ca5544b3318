"""What a hung worker was last doing, read from the end of its real log file (codex ``--json`` event lines)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coordinator.agents.logview import last_activity

THREAD = {"type": "thread.started", "thread_id": "0199a213-81c0-7800-8aa1-bbab2a035a53"}
COMMAND = {"id": "item_1", "type": "command_execution", "command": "/bin/bash -lc 'npm test'",
           "aggregated_output": "", "exit_code": None, "status": "in_progress"}


def lines(*events: dict | str) -> str:
    return "".join((event if isinstance(event, str) else json.dumps(event)) + "\n" for event in events)


@pytest.mark.parametrize(("log", "expected"), [
    ("", "the worker printed nothing at all"),
    (lines(THREAD, {"type": "turn.started"}), "nothing came back from the model"),
    (lines({"type": "system", "subtype": "init", "session_id": "5f1c0f9e-3a52-4c5e-9d1e-7b1b2b7d7f10"}),
     "nothing came back from the model"),  # Claude Code stream-json
    (lines(THREAD, {"type": "turn.started"}, {"type": "item.started", "item": COMMAND}),
     "a command was still running: /bin/bash -lc 'npm test'"),
    (lines(THREAD, {"type": "item.completed", "item": {"id": "item_2", "type": "agent_message",
                                                        "text": "Waiting for the build"}}),
     "its last event: Waiting for the build"),
    (lines("Reading prompt from stdin...", "Please log in: https://auth.example/device"),
     "its last output: Please log in: https://auth.example/device"),
])
def test_last_activity(tmp_path: Path, log: str, expected: str) -> None:
    path = tmp_path / "worker.log"
    path.write_text(log, encoding="utf-8")

    assert expected in last_activity(path)


def test_last_activity_of_a_missing_log(tmp_path: Path) -> None:
    assert "printed nothing" in last_activity(tmp_path / "worker.log")


@pytest.mark.parametrize("line", [
    '{"type":"turn.failed","error":"boom"}',
    '{"type":"item.completed","item":{"type":"file_change","changes":["a.py"]}}',
    'npm WARN {"type":"turn.completed","usage":7}',
    '{"type":"item.completed","item":"not a mapping"}',
])
def test_json_of_another_shape_is_shown_as_text_not_a_crash(tmp_path: Path, line: str) -> None:
    from coordinator.agents.logview import describe_line

    path = tmp_path / "worker.log"
    path.write_text(line + "\n", encoding="utf-8")

    assert last_activity(path).startswith("its last ")
    assert describe_line(line) is not None


@pytest.mark.parametrize("lines, kind", [
    # codex: a command started and not completed
    ([{"type": "item.started", "item": {"id": "item_1", "type": "command_execution", "command": "pytest"}}],
     "command"),
    ([{"type": "item.started", "item": {"id": "item_1", "type": "command_execution", "command": "pytest"}},
      {"type": "item.completed", "item": {"id": "item_1", "type": "command_execution", "exit_code": 0}}], None),
    # codex: a retry of the model stream
    ([{"type": "error", "message": "Reconnecting... 2/5 (stream disconnected before completion)"}], "retrying"),
    # Claude Code: Bash used, no result yet; then its result
    ([{"type": "assistant", "message": {"content": [{"type": "tool_use", "id": "t1", "name": "Bash",
                                                     "input": {"command": "npm test"}}]}}], "command"),
    ([{"type": "assistant", "message": {"content": [{"type": "tool_use", "id": "t1", "name": "Bash",
                                                     "input": {"command": "npm test"}}]}},
      {"type": "user", "message": {"content": [{"type": "tool_result", "tool_use_id": "t1"}]}}], None),
    ([{"type": "system", "subtype": "api_retry", "attempt": 1, "error": "overloaded_error"}], "retrying"),
    (["Reading additional input from stdin..."], "stdin"),
])
def test_what_keeps_a_quiet_worker_alive_is_read_from_its_log(tmp_path: Path, lines: list[object],
                                                              kind: str | None) -> None:
    from coordinator.agents.logview import busy_state

    log = tmp_path / "worker.log"
    log.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    found = busy_state(log)
    assert (found.kind if found else None) == kind
