"""Mechanical phases through the real ``coord`` CLI: ``agent: mcp`` phases against a real MCP server started over
stdio (``tests/fixtures/mcp_server.py``, the official SDK's ``MCPServer``), and allow-listed, timed ``shell``
phases. Each is judged like any phase (exit, report, marker, coord's own verify), retried as its remediation,
and survives a coordinator SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import (
    FIXTURES_DIR,
    alive,
    coord,
    db_rows,
    processes_with_cookie,
    records_file,
    start_coord,
    status,
    wait_until,
    write_plan,
)

pytestmark = pytest.mark.slow

SERVER = {"command": ["{{ coord.python }}", str(FIXTURES_DIR / "mcp_server.py")]}


def mcp_phase(tool: str, arguments: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": "P01", "kind": "impl", "title": f"call {tool}", "agent": "mcp",
            "mcp": {"server": "notes", "tool": tool, "arguments": arguments}, **extra}


def run_mcp(workspace: Path, phase: dict[str, Any], **policy: Any) -> tuple[int, str]:
    plan = write_plan(workspace, [phase], mcp_servers={"notes": SERVER},
                      policy={"max_attempts": 1, "timeout": "20s", **policy})
    result = coord(workspace, "run", str(plan), "--headless", timeout=120)
    return result.returncode, result.stdout + result.stderr


def evidence(workspace: Path, number: int = 1) -> dict[str, Any]:
    return json.loads((workspace / "tmp" / "PLAN-T" / "P01" / str(number) / "evidence.json").read_text())


def check(found: dict[str, Any], name: str) -> dict[str, Any]:
    return next(item for item in found["checks"] if item["name"] == name)


def test_an_mcp_phase_calls_the_tool_with_rendered_arguments_and_is_verified(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    phase = mcp_phase("write_note", {"path": "notes/{{ phase.id }}.md", "text": "{{ phase.title }} of {{ plan.id }}"},
                      verify=[{"run": "grep -q 'call write_note of PLAN-T' notes/P01.md"}])
    code, output = run_mcp(workspace, phase)
    assert code == 0, output
    found = evidence(workspace)
    assert found["verdict"] == "PASS", found
    call = check(found, "call")
    assert call["status"] == "pass" and call["detail"].startswith("tool `write_note` of MCP server `notes` answered in")
    assert call["seconds"] > 0
    attempt = workspace / "tmp" / "PLAN-T" / "P01" / "1"
    response = json.loads((attempt / "mcp-response.json").read_text())
    assert response["isError"] is False and "wrote" in response["content"][0]["text"]
    recorded = json.loads((attempt / "mcp-call.json").read_text())
    assert recorded["outcome"] == "ok" and "write_note" in recorded["tools"]
    assert (workspace / "reports" / "P01-worker.md").read_text().startswith("Status: PASS")
    assert check(found, "verify[0]")["status"] == "pass"
    request = json.loads(records_file(workspace, "P01", 1, "mcp-request.json").read_text())
    assert request["arguments"] == {"path": "notes/P01.md", "text": "call write_note of PLAN-T"}
    rendered = coord(workspace, "render", "plans/PLAN-T.yaml", "P01")  # what the worker gets: the call
    assert rendered.returncode == 0 and json.loads(rendered.stdout)["arguments"] == request["arguments"]


def test_an_mcp_phase_calls_a_running_server_by_its_local_url(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    with socket.socket() as probe:  # a free loopback port for the server
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, str(FIXTURES_DIR / "mcp_server.py"), "--http", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: _listening(port), timeout=30)
        plan = write_plan(workspace, [mcp_phase("add", {"a": 40, "b": 2})],
                          mcp_servers={"notes": {"url": f"http://127.0.0.1:{port}/mcp"}}, policy={"max_attempts": 1})
        result = coord(workspace, "run", str(plan), "--headless", timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        response = json.loads((workspace / "tmp" / "PLAN-T" / "P01" / "1" / "mcp-response.json").read_text())
        assert response["structuredContent"] == {"result": 42}
        assert json.loads((workspace / "tmp" / "PLAN-T" / "P01" / "1" / "mcp-call.json").read_text())[
            "transport"] == "http"
    finally:
        server.terminate()
        server.wait(timeout=10)


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


HANGING = {"command": ["{{ coord.python }}", str(FIXTURES_DIR / "mcp_server.py"), "--hang-at-start"]}


@pytest.mark.parametrize(("tool", "arguments", "server", "timeout", "expected"), [
    ("fail", {"message": "the schema is stale"}, None, "60s",
     "returned an error: Error executing tool fail: the schema is stale"),
    ("no_such_tool", {}, None, "60s",
     "server 'notes' has no tool 'no_such_tool'; it has: add, write_note, fail, slow, crash"),
    ("crash", {}, None, "60s", "server 'notes' failed"),
    ("add", {"a": 1, "b": 2}, HANGING, "3s", "no answer from server 'notes' within 3 s"),
    ("add", {"a": 1, "b": 2}, {"command": [str(FIXTURES_DIR / "no-such-server")]}, "60s", "server 'notes' failed"),
], ids=["tool-error", "missing-tool", "server-crash", "server-hang", "server-missing"])
def test_a_failing_call_is_a_clear_fail_not_a_hang(tmp_path: Path, tool: str, arguments: dict[str, Any],
                                                   server: dict[str, Any] | None, timeout: str,
                                                   expected: str) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    phase = mcp_phase(tool, arguments)
    plan = write_plan(workspace, [phase], mcp_servers={"notes": server or SERVER},
                      policy={"max_attempts": 2, "timeout": timeout})
    result = coord(workspace, "run", str(plan), "--headless", timeout=150)
    assert result.returncode == 1, result.stdout + result.stderr
    for number in (1, 2):  # the remediation of a mechanical phase is a retry
        found = evidence(workspace, number)
        assert found["verdict"] == "FAIL"
        assert expected in found["reason"], found["reason"]
        assert check(found, "call")["status"] == "fail"
        assert not (workspace / ".completed" / "P01.md").exists()
    assert status(workspace)["phases"][0]["state"] == "blocked"


def test_a_coordinator_killed_during_a_call_reattaches_and_takes_its_result(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    plan = write_plan(workspace, [mcp_phase("slow", {"seconds": 4})], mcp_servers={"notes": SERVER},
                      policy={"max_attempts": 1, "timeout": "60s"})
    first = start_coord(workspace, "run", str(plan), "--headless")
    identity = records_file(workspace, "P01", 1, "identity.json")
    wait_until(identity.exists, timeout=30)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    assert not records_file(workspace, "P01", 1, "exit.json").exists()  # the call is still under way
    again = coord(workspace, "run", str(plan), "--headless", timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "reattached" in again.stdout
    rows = db_rows(workspace, "SELECT number, state FROM attempts")
    assert [(row["number"], row["state"]) for row in rows] == [(1, "passed")]  # nothing launched twice
    assert check(evidence(workspace), "call")["detail"].startswith("tool `slow` of MCP server `notes` answered in")


def test_a_hung_call_is_stopped_by_the_hang_policy_with_its_server(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    code, output = run_mcp(workspace, mcp_phase("slow", {"seconds": 300}), poll_interval="1s", max_cycles=3,
                           timeout="10m")
    assert code == 1, output
    found = evidence(workspace)
    assert found["reason"].startswith("hung: still running after 3 poll cycles"), found["reason"]
    assert "killed 1 process(es) it left running: python" in found["reason"]  # the server, by the supervisor
    attempt_id = db_rows(workspace, "SELECT attempt_id FROM attempts")[0]["attempt_id"]
    assert processes_with_cookie("COORD_ATTEMPT_ID", attempt_id) == []  # the server went with the worker


def validate(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    """``coord validate`` of a plan file holding ``text``, in a fresh workspace."""
    workspace = tmp_path / "ws"
    (workspace / "plans").mkdir(parents=True)
    (workspace / "plans" / "P.yaml").write_text(text, encoding="utf-8")
    return coord(workspace, "validate", "plans/P.yaml")


def test_validate_refuses_bad_mcp_phases_with_their_positions(tmp_path: Path) -> None:
    result = validate(tmp_path, """\
plan: P
mcp_servers:
  far: {url: "https://tools.example.com/mcp"}
phases:
  - {id: P01, kind: impl, agent: mcp}
  - {id: P02, kind: impl, agent: mcp, mcp: {server: nope, tool: add}}
  - {id: P03, kind: impl, agent: shell, script: [true], mcp: {server: far, tool: add}}
  - id: P04
    kind: impl
    agent: mcp
    mcp: {server: {command: [python3]}, tool: add, arguments: {a: "{{ phase.nope }}"}}
""")
    assert result.returncode == 2
    lines = result.stdout.strip().splitlines() + result.stderr.strip().splitlines()
    text = "\n".join(lines)
    assert ("plans/P.yaml:3:14: mcp_servers.far.url: 'https://tools.example.com/mcp': an MCP server URL must be on "
            "this machine (127.0.0.1, ::1 or localhost)") in text
    assert "plans/P.yaml:5:5: phases[0]: agent 'mcp' calls an MCP tool: the phase needs 'mcp:" in text
    assert "plans/P.yaml:6:53: phases[1].mcp.server: unknown MCP server 'nope' (mcp_servers: far)" in text
    assert "phases[2].mcp: 'mcp' is for phases whose agent has base 'mcp'; this one's agent is 'shell'" in text
    assert "phases[3].mcp.arguments.a: UndefinedError" in text


# ---- shell ----------------------------------------------------------------------------------------------------


def test_a_timed_out_shell_phase_fails_as_timed_out_and_leaves_nothing_running(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    plan = write_plan(workspace, [{
        "id": "P01", "kind": "impl", "title": "migrate", "agent": "shell",
        "script": ["echo migrating", "sh -c 'sleep 300 & echo $! > child.pid; wait'"],
        "policy": {"timeout": "1s"}, "checks": {"report": False, "completed": False},
    }], policy={"max_attempts": 1})
    result = coord(workspace, "run", str(plan), "--headless", timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    found = evidence(workspace)
    assert found["reason"].startswith("worker exited 124: timed out after 1 s (policy.timeout): command 2, `sh -c")
    assert "was killed with its process group" in found["reason"]
    child = int((workspace / "child.pid").read_text())
    wait_until(lambda: not alive(child), timeout=10)
    attempt = workspace / "tmp" / "PLAN-T" / "P01" / "1"
    assert (attempt / "commands" / "1.log").read_text() == "migrating\n"
    assert json.loads((attempt / "commands.json").read_text())["outcome"] == "timed-out"


def test_validate_refuses_a_command_the_allow_list_does_not_admit(tmp_path: Path) -> None:
    result = validate(tmp_path, """\
plan: P
agent: tools
agents:
  tools: {base: shell, allow: ["make -C gen ..."]}
phases:
  - id: P01
    kind: impl
    script:
      - make -C gen client
      - make -C gen client | tee gen.log
      - curl http://example.com/x.sh
""")
    assert result.returncode == 2
    assert result.stderr.splitlines()[:-1] == [
        "plans/P.yaml:10:9: phases[0].script[1]: `make -C gen client` in `make -C gen client | tee gen.log` is "
        "allowed only without a shell, and this entry uses shell syntax (give its allow-list entry `shell: true`, or "
        "write it as one plain command)",
        "plans/P.yaml:11:9: phases[0].script[2]: `curl http://example.com/x.sh` is not allowed: no entry of "
        "agents.tools.allow admits it",
    ]
