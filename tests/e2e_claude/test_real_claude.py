"""End-to-end runs of ``coord run --headless`` with the REAL Claude Code CLI as the worker, against a scripted model.

The binary is npm ``@anthropic-ai/claude-code`` (pinned 2.1.331 by ``.ci/run``, which installs it into ``.ci/node``;
the package's postinstall puts the native linux-x64 build at ``bin/claude.exe``); ``COORD_CLAUDE_BIN`` names
another one. The model is ``ScriptedMessagesServer`` on 127.0.0.1: the plan's agent profile points claude at it with
``ANTHROPIC_BASE_URL`` and a dummy ``ANTHROPIC_API_KEY``, turns off telemetry, error reporting, the auto-updater and
every non-essential request, and claude's own API retries (``CLAUDE_CODE_MAX_RETRIES=0``, so a failing model fails
the attempt at once). Under ``strace -f -e connect,sendto`` such runs connect to 127.0.0.1 only, with no DNS query.
``HOME`` is a folder of the test's workspace, so neither the machine's ``~/.claude`` nor its credentials are read.
Each phase's instructions carry ``[[mock:NAME]]``, so the server answers that phase's claude session from script NAME.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e_claude.messages_server import Bash, HttpError, Say, ScriptedMessagesServer, Stall, Step, Usage
from tests.helpers import REPO_ROOT, coord, db_rows, processes_with_cookie, status, write_plan

CLAUDE_BIN_VAR = "COORD_CLAUDE_BIN"
DEFAULT_CLAUDE_BIN = REPO_ROOT / ".ci" / "node" / "node_modules" / ".bin" / "claude"
API_KEY = "sk-ant-test-key-not-secret"
MODEL = "claude-sonnet-4-5"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _claude_version(binary: Path) -> str | None:
    """``claude --version`` (``2.1.331 (Claude Code)``), or None when the binary cannot run."""
    try:
        done = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL)
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 and "Claude Code" in done.stdout else None


def _find_claude() -> tuple[Path, str]:
    explicit = os.environ.get(CLAUDE_BIN_VAR)
    binary = Path(explicit) if explicit else DEFAULT_CLAUDE_BIN
    version = _claude_version(binary) if binary.is_file() else None
    if version is None and explicit:
        # CI sets the variable after installing: a broken install must fail the suite, not skip it.
        pytest.fail(f"{CLAUDE_BIN_VAR}={explicit} does not run (`claude --version` failed)", pytrace=False)
    if version is None:
        pytest.skip(f"real Claude Code CLI not installed at {DEFAULT_CLAUDE_BIN.relative_to(REPO_ROOT)} "
                    "(`npm install --prefix .ci/node @anthropic-ai/claude-code@2.1.331`, or set COORD_CLAUDE_BIN)",
                    allow_module_level=True)
    return binary, version


CLAUDE_BIN, CLAUDE_VERSION = _find_claude()

pytestmark = pytest.mark.slow


# --- the plan and the claude profile -------------------------------------------------------------------------


def claude_profile(server: ScriptedMessagesServer, home: Path) -> dict[str, Any]:
    """An agent profile running the real claude against ``server``.

    ``--permission-mode bypassPermissions`` lets claude run its tools unattended; as root claude refuses it unless
    ``IS_SANDBOX=1`` says the machine is a deliberate sandbox (it is harmless for other users).
    ``claude-sonnet-4-5`` is in claude's price table ($3 input, $0.30 cache read, $3.75 cache write, $15 output
    per 1M tokens), so ``total_cost_usd`` can be checked exactly.
    """
    return {
        "base": "claude",
        "binary": str(CLAUDE_BIN),
        "model": MODEL,
        "args": ["--permission-mode", "bypassPermissions"],
        "env": {
            "HOME": str(home),
            "ANTHROPIC_BASE_URL": server.base_url,
            "ANTHROPIC_API_KEY": API_KEY,
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_ERROR_REPORTING": "1",
            "DISABLE_AUTOUPDATER": "1",
            "CLAUDE_CODE_MAX_RETRIES": "0",
            "IS_SANDBOX": "1",
        },
    }


def real_plan(workspace: Path, server: ScriptedMessagesServer, phases: list[dict[str, Any]], **top: Any) -> Path:
    """Write ``plans/PLAN-T.yaml`` whose phases run the real claude against ``server``; returns its relative path."""
    home = workspace / ".claude-home"
    home.mkdir(exist_ok=True)
    top.setdefault("policy", {"poll_interval": "5s", "max_cycles": 12, "max_attempts": 2, "kill_grace": "1s"})
    return write_plan(workspace, phases, agent="real", agents={"real": claude_profile(server, home)}, **top)


def phase(phase_id: str, kind: str, script: str, **extra: Any) -> dict[str, Any]:
    """A phase whose claude session is answered from ``script`` (the tag goes into the prompt)."""
    return {"id": phase_id, "kind": kind, "title": f"{phase_id} {kind}",
            "instructions": f"Do the {kind} work of {phase_id}. [[mock:{script}]]", **extra}


def evidence_cmd(status_word: str = "PASS") -> str:
    """The shell command a worker runs to leave its evidence: the report and the completion marker.

    It uses the variables coord gives every worker (``COORD_REPORT_PATH``, ``COORD_COMPLETED_PATH``,
    ``COORD_PHASE_ID``), so this also shows they reach commands claude's Bash tool runs.
    """
    return (
        'mkdir -p "$(dirname "$COORD_REPORT_PATH")" "$(dirname "$COORD_COMPLETED_PATH")" && '
        f"printf '# Worker report\\n\\nStatus: {status_word}\\n' > \"$COORD_REPORT_PATH\" && "
        "printf '# %s completed\\n\\nattempt %s, by claude\\n' \"$COORD_PHASE_ID\" \"$COORD_ATTEMPT\" "
        '> "$COORD_COMPLETED_PATH"'
    )


def sonnet_cost(*usages: Usage) -> float:
    """What claude charges for these responses of ``claude-sonnet-4-5``, in USD."""
    return sum(u.input_tokens * 3.0 + u.cache_read_input_tokens * 0.3 + u.cache_creation_input_tokens * 3.75
               + u.output_tokens * 15.0 for u in usages) / 1e6


@pytest.fixture(autouse=True)
def no_outside_claude_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the machine's Anthropic/Claude variables (real tokens, Bedrock/Vertex switches, a model) from coord."""
    for name in list(os.environ):
        if name.startswith(("ANTHROPIC_", "CLAUDE_", "CLAUDECODE")) or name in ("IS_SANDBOX", "DISABLE_TELEMETRY"):
            monkeypatch.delenv(name)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    return root


@pytest.fixture
def serve() -> Iterator[Any]:
    """Start a ``ScriptedMessagesServer`` for the given scripts; closed at teardown (stalled streams released)."""
    servers: list[ScriptedMessagesServer] = []

    def start(scripts: dict[str, list[Step]]) -> ScriptedMessagesServer:
        server = ScriptedMessagesServer(scripts).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def attempt_file(workspace: Path, phase_id: str, number: int, name: str) -> dict[str, Any]:
    return json.loads((workspace / "tmp" / "PLAN-T" / phase_id / str(number) / name).read_text(encoding="utf-8"))


def result_event(workspace: Path, phase_id: str, number: int) -> dict[str, Any]:
    """The ``result`` event claude printed in that attempt's ``worker.log``."""
    log = (workspace / "tmp" / "PLAN-T" / phase_id / str(number) / "worker.log").read_text(encoding="utf-8")
    events = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    return [event for event in events if event.get("type") == "result"][-1]


def run(workspace: Path, plan: Path) -> subprocess.CompletedProcess[str]:
    return coord(workspace, "run", str(plan), "--headless", timeout=120)


# --- the tests -----------------------------------------------------------------------------------------------


def test_real_claude_runs_every_phase_to_pass_and_what_it_said_is_kept(workspace: Path, serve: Any) -> None:
    small, cached = Usage(1000, 0, 0, 20), Usage(800, 2000, 500, 200)
    server = serve({
        "stub": [Bash("mkdir -p src && printf 'def add(a, b):\\n    raise NotImplementedError\\n' > src/calc.py",
                      small),
                 Bash(evidence_cmd(), small), Say("Stub written. Status: PASS", small)],
        "test": [Bash("mkdir -p tests && printf 'from src.calc import add\\nassert add(1, 2) == 3\\n' "
                      "> tests/test_calc.py", cached),
                 Bash(evidence_cmd(), cached), Say("Test added. Status: PASS", cached)],
        "impl": [Bash("printf 'def add(a, b):\\n    return a + b\\n' > src/calc.py", small),
                 Bash(evidence_cmd(), small), Say("Implemented. Status: PASS", small)],
    })
    plan = real_plan(workspace, server, [
        phase("P01", "stub", "stub", verify=[{"run": "test -f src/calc.py"}]),
        phase("P02", "test", "test"),
        phase("P03", "impl", "impl", verify=[{"run": "grep -q 'return a + b' src/calc.py"}]),
    ])

    result = run(workspace, plan)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "return a + b" in (workspace / "src/calc.py").read_text()
    assert (workspace / "tests/test_calc.py").read_text().startswith("from src.calc import add")
    report = status(workspace)
    assert [p["state"] for p in report["phases"]] == ["passed"] * 3
    # Each script was answered in full, one session each; nothing but streamed /v1/messages was asked for.
    assert [len(server.requests_of(name)) for name in ("stub", "test", "impl")] == [3, 3, 3]
    assert all(r.script is not None for r in server.requests)
    assert {r.headers.get("x-api-key") for r in server.requests} == {API_KEY}
    assert {r.body.get("model") for r in server.requests} == {MODEL}
    rows = {r["phase_id"]: r for r in db_rows(workspace, "SELECT * FROM attempts")}
    for phase_id, script, usage in (("P01", "stub", small), ("P02", "test", cached), ("P03", "impl", small)):
        summary = attempt_file(workspace, phase_id, 1, "summary.json")
        sessions = {r.conversation for r in server.requests_of(script)}
        assert sessions == {summary["session_id"]} and UUID_RE.match(summary["session_id"])
        assert summary["completed"] is True and summary["error"] is None
        assert summary["last_message"] == server.scripts[script][-1].text
        assert (summary["commands"], summary["file_changes"], summary["tool_uses"]) == (2, 0, {"Bash": 2})
        # result.usage adds up the run's three responses; coord's input tokens include the cache's.
        assert (summary["input_tokens"], summary["cached_input_tokens"], summary["output_tokens"]) == (
            3 * (usage.input_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens),
            3 * usage.cache_read_input_tokens, 3 * usage.output_tokens)
        # The cost is claude's own figure (its price table), not coord's: no `price` basis is recorded.
        expected = sonnet_cost(usage, usage, usage)
        assert summary["cost_usd"] == pytest.approx(expected)
        assert result_event(workspace, phase_id, 1)["total_cost_usd"] == pytest.approx(expected)
        assert summary["price"] is None
        row = rows[phase_id]
        assert (row["session_id"], row["input_tokens"], row["cached_input_tokens"], row["output_tokens"]) == (
            summary["session_id"], summary["input_tokens"], summary["cached_input_tokens"],
            summary["output_tokens"])
        assert row["cost_usd"] == pytest.approx(expected)
        shown = next(p for p in report["phases"] if p["id"] == phase_id)
        assert shown["tokens"] == summary["input_tokens"] + summary["output_tokens"]
        assert shown["cost_usd"] == pytest.approx(expected, abs=1e-6)
    total = sum(r["cost_usd"] for r in rows.values())
    assert report["totals"]["cost_usd"] == pytest.approx(total, abs=1e-6) and total > 0
    human = coord(workspace, "status")
    assert human.returncode == 0 and f"${total:.2f}" in human.stdout


def test_failed_verification_is_remediated_by_resuming_the_same_claude_session(workspace: Path, serve: Any) -> None:
    first, second = Usage(2000, 500, 0, 40), Usage(3000, 1000, 100, 60)
    server = serve({
        "stub": [Bash(evidence_cmd()), Say("Status: PASS")],
        # Attempt 1 claims PASS without the fix; attempt 2 (the same session, resumed) makes it.
        "impl": [Bash(evidence_cmd(), first), Say("Done. Status: PASS", first),
                 Bash("echo fixed > fixed.txt && " + evidence_cmd(), second), Say("Fixed it. Status: PASS", second)],
        "verify": [Bash(evidence_cmd()), Say("Verified. Status: PASS")],
    })
    plan = real_plan(workspace, server, [
        phase("P01", "stub", "stub"),
        phase("P02", "impl", "impl", verify=[{"run": "test -f fixed.txt"}]),
        phase("P03", "verify", "verify"),
    ], policy={"remediation": "resume"})

    result = run(workspace, plan)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "verification `test -f fixed.txt` exited 1" in result.stdout
    evidence = attempt_file(workspace, "P02", 1, "evidence.json")
    assert evidence["verdict"] == "FAIL" and "test -f fixed.txt" in evidence["reason"]
    one, two = (attempt_file(workspace, "P02", n, "summary.json") for n in (1, 2))
    assert UUID_RE.match(one["session_id"]) and two["session_id"] == one["session_id"]
    spec = attempt_file(workspace, "P02", 2, "spec.json")
    assert spec["argv"][spec["argv"].index("--resume") + 1] == one["session_id"]
    assert attempt_file(workspace, "P02", 2, "evidence.json")["verdict"] == "PASS"
    assert [p["state"] for p in status(workspace)["phases"]] == ["passed"] * 3
    # The model saw one conversation: the resumed turn carried the first turn's tool call and its result.
    requests = server.requests_of("impl")
    assert [r.conversation for r in requests] == [one["session_id"]] * 4
    earlier = [block for message in requests[2].body["messages"] if isinstance(message.get("content"), list)
               for block in message["content"]]
    assert any(block.get("type") == "tool_result" for block in earlier)
    assert "fixed.txt" in json.dumps(requests[2].body["messages"][-1])  # coord's remediation prompt
    # Each attempt keeps its own tokens and cost, although claude's total_cost_usd is the session's total.
    for summary, usage in ((one, first), (two, second)):
        assert (summary["input_tokens"], summary["cached_input_tokens"], summary["output_tokens"]) == (
            2 * (usage.input_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens),
            2 * usage.cache_read_input_tokens, 2 * usage.output_tokens)
        assert summary["cost_usd"] == pytest.approx(sonnet_cost(usage, usage)) and summary["cost_usd"] > 0
    assert result_event(workspace, "P02", 2)["total_cost_usd"] == pytest.approx(
        sonnet_cost(first, first, second, second))
    rows = db_rows(workspace, "SELECT number, state, session_id, cost_usd FROM attempts WHERE phase_id='P02' "
                   "ORDER BY number")
    assert [(r["number"], r["state"], r["session_id"]) for r in rows] == [
        (1, "failed", one["session_id"]), (2, "passed", one["session_id"])]
    assert [r["cost_usd"] for r in rows] == [pytest.approx(one["cost_usd"]), pytest.approx(two["cost_usd"])]
    p02 = next(p for p in status(workspace)["phases"] if p["id"] == "P02")
    assert p02["attempts"] == 2 and p02["remediations"] == 1
    assert p02["cost_usd"] == pytest.approx(one["cost_usd"] + two["cost_usd"], abs=1e-6)


def test_stalled_model_stream_is_hung_and_the_worker_group_killed(workspace: Path, serve: Any) -> None:
    server = serve({
        "stub": [Bash(evidence_cmd()), Say("Status: PASS")],
        "impl": [Stall()],
        "verify": [Bash(evidence_cmd()), Say("Status: PASS")],
    })
    plan = real_plan(workspace, server, [
        phase("P01", "stub", "stub"),
        phase("P02", "impl", "impl", policy={"poll_interval": "0.4s", "max_cycles": 3, "max_attempts": 1,
                                             "kill_grace": "1s"}),
        phase("P03", "verify", "verify"),
    ])

    result = run(workspace, plan)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "poll cycle 3/3" in result.stdout
    evidence = attempt_file(workspace, "P02", 1, "evidence.json")
    assert evidence["verdict"] == "FAIL" and "hung" in evidence["reason"]
    exit_record = attempt_file(workspace, "P02", 1, "exit.json")
    assert exit_record["stop_request"] == "hung"
    # claude handles SIGTERM itself and exits 143 (128 + SIGTERM), unless the grace ran out and SIGKILL came
    assert exit_record["exit_code"] == 128 + signal.SIGTERM or exit_record["signal"] == signal.SIGKILL
    [request] = server.requests_of("impl")
    summary = attempt_file(workspace, "P02", 1, "summary.json")
    assert summary["session_id"] == request.conversation and summary["completed"] is False
    attempt_id = db_rows(workspace, "SELECT attempt_id FROM attempts WHERE phase_id='P02'")[0]["attempt_id"]
    assert processes_with_cookie("COORD_ATTEMPT_ID", attempt_id) == []
    states = {p["id"]: p["state"] for p in status(workspace)["phases"]}
    assert states == {"P01": "passed", "P02": "blocked", "P03": "pending"}
    assert server.requests_of("verify") == []


@pytest.mark.parametrize(("step", "message"), [
    pytest.param(HttpError(500, "overloaded"), "API Error: 500 overloaded", id="http500"),
    pytest.param(HttpError(401, "key revoked"), "Failed to authenticate. API Error: 401 key revoked", id="http401"),
])
def test_model_errors_fail_the_attempt_with_claude_message_and_the_run_ends(
    workspace: Path, serve: Any, step: Step, message: str
) -> None:
    server = serve({
        "stub": [Bash(evidence_cmd()), Say("Status: PASS")],
        "impl": [step],
        "verify": [Bash(evidence_cmd()), Say("Status: PASS")],
    })
    plan = real_plan(workspace, server, [
        phase("P01", "stub", "stub"),
        phase("P02", "impl", "impl"),
        phase("P03", "verify", "verify"),
    ])

    result = run(workspace, plan)

    assert result.returncode == 1, result.stdout + result.stderr
    # Two attempts (max_attempts 2, fresh sessions), one request each: claude retried nothing.
    requests = server.requests_of("impl")
    assert len(requests) == 2 and len({r.conversation for r in requests}) == 2
    for number in (1, 2):
        summary = attempt_file(workspace, "P02", number, "summary.json")
        assert summary["completed"] is False and summary["error"].startswith(message)
        assert summary["cost_usd"] == 0
        evidence = attempt_file(workspace, "P02", number, "evidence.json")
        exit_check = next(c for c in evidence["checks"] if c["name"] == "exit")
        assert evidence["verdict"] == "FAIL" and exit_check["status"] == "fail"
        assert exit_check["detail"].startswith(f"worker exited 1: {message}")
        event = result_event(workspace, "P02", number)
        assert event["is_error"] is True and event["subtype"] == "success"  # why `success` alone is not enough
    states = {p["id"]: p["state"] for p in status(workspace)["phases"]}
    assert states == {"P01": "passed", "P02": "blocked", "P03": "pending"}
    assert message in next(p for p in status(workspace)["phases"] if p["id"] == "P02")["reason"]
