"""End-to-end runs of ``coord run --headless`` with the REAL codex CLI as the worker, against a scripted model.

The binary is npm ``@openai/codex`` (pinned 0.169.0 by ``.ci/run``, which installs it into ``.ci/node``);
``COORD_CODEX_BIN`` names another one. The model is ``ScriptedResponsesServer`` on 127.0.0.1; the plan's agent
profile points codex at it with ``-c`` overrides (a custom provider, no retries, no plugin sync, no analytics:
the offline configuration of ``shared/codex-cli.md`` §1, which made no non-loopback connection under strace, §8).
Each phase's instructions carry ``[[mock:NAME]]``, so the server answers that phase's codex thread from script NAME.
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

from tests.e2e_codex.responses_server import (
    Drop,
    Exec,
    HttpError,
    Patch,
    Say,
    ScriptedResponsesServer,
    Stall,
    Step,
    Usage,
)
from tests.helpers import REPO_ROOT, coord, db_rows, processes_with_cookie, status, write_plan

CODEX_BIN_VAR = "COORD_CODEX_BIN"
DEFAULT_CODEX_BIN = REPO_ROOT / ".ci" / "node" / "node_modules" / ".bin" / "codex"
API_KEY_VAR = "COORD_E2E_MODEL_KEY"
API_KEY = "test-key-not-secret"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _codex_version(binary: Path) -> str | None:
    """``codex --version`` (``codex-cli 0.169.0``), or None when the binary cannot run."""
    try:
        done = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL)
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _find_codex() -> tuple[Path, str]:
    explicit = os.environ.get(CODEX_BIN_VAR)
    binary = Path(explicit) if explicit else DEFAULT_CODEX_BIN
    version = _codex_version(binary) if binary.is_file() else None
    if version is None and explicit:
        # CI sets the variable after installing: a broken install must fail the suite, not skip it.
        pytest.fail(f"{CODEX_BIN_VAR}={explicit} does not run (`codex --version` failed)", pytrace=False)
    if version is None:
        pytest.skip(f"real codex CLI not installed at {DEFAULT_CODEX_BIN.relative_to(REPO_ROOT)} "
                    "(`npm install --prefix .ci/node @openai/codex@0.169.0`, or set COORD_CODEX_BIN)",
                    allow_module_level=True)
    return binary, version


CODEX_BIN, CODEX_VERSION = _find_codex()

pytestmark = pytest.mark.slow


# --- the plan and the codex profile --------------------------------------------------------------------------


def codex_profile(server: ScriptedResponsesServer, codex_home: Path, *, model: str = "gpt-5.5",
                  idle_timeout_ms: int | None = None) -> dict[str, Any]:
    """An agent profile running the real codex against ``server``.

    ``-c`` overrides (codex-cli.md §1): a custom provider ``scripted`` speaking ``wire_api = "responses"`` to
    ``server``, with codex's own retries off (``request_max_retries``/``stream_max_retries`` 0 and no unbounded
    reconnects, so a failing model fails the attempt at once instead of retrying for ever); no plugin sync (it
    would ``git ls-remote`` github.com) and no analytics (DNS for ab.chatgpt.com); no update check; commands by
    ``bash -c`` rather than a login shell, so the machine's profile scripts stay out of the tests.
    ``gpt-5.5`` is in codex 0.169's model catalog: no "model metadata not found" warning, and ``apply_patch`` is
    offered to the model.
    """
    provider = ("model_providers.scripted={name=\"Scripted Responses API\", "
                f"base_url=\"{server.base_url}\", env_key=\"{API_KEY_VAR}\", wire_api=\"responses\", "
                "request_max_retries=0, stream_max_retries=0"
                + (f", stream_idle_timeout_ms={idle_timeout_ms}" if idle_timeout_ms else "") + "}")
    return {
        "base": "codex",
        "binary": str(CODEX_BIN),
        "model": model,
        "sandbox": "danger-full-access",  # codex's own sandbox (bwrap/landlock) is not what these tests are about
        "dangerous": True,
        "config": [
            'model_provider="scripted"',
            provider,
            "features.unbounded_connection_retries=false",
            "features.plugins=false",
            "analytics.enabled=false",
            "check_for_update_on_startup=false",
            "allow_login_shell=false",
        ],
        "env": {API_KEY_VAR: API_KEY, "CODEX_HOME": str(codex_home)},
    }


def real_plan(workspace: Path, server: ScriptedResponsesServer, phases: list[dict[str, Any]], *,
              idle_timeout_ms: int | None = None, **top: Any) -> Path:
    """Write ``plans/PLAN-T.yaml`` whose phases run the real codex against ``server``; returns its relative path."""
    codex_home = workspace / ".codex-home"  # codex refuses a CODEX_HOME that does not exist
    codex_home.mkdir(exist_ok=True)
    profile = codex_profile(server, codex_home, idle_timeout_ms=idle_timeout_ms)
    top.setdefault("policy", {"poll_interval": "5s", "max_cycles": 12, "max_attempts": 2, "kill_grace": "1s"})
    return write_plan(workspace, phases, agent="real", agents={"real": profile}, **top)


def phase(phase_id: str, kind: str, script: str, **extra: Any) -> dict[str, Any]:
    """A phase whose codex thread is answered from ``script`` (the tag goes into the prompt)."""
    return {"id": phase_id, "kind": kind, "title": f"{phase_id} {kind}",
            "instructions": f"Do the {kind} work of {phase_id}. [[mock:{script}]]", **extra}


def evidence_cmd(status_word: str = "PASS") -> str:
    """The shell command a worker runs to leave its evidence: the report and the completion marker.

    It uses the variables coord gives every worker (``COORD_REPORT_PATH``, ``COORD_COMPLETED_PATH``,
    ``COORD_PHASE_ID``), so this also shows they reach commands codex runs.
    """
    return (
        'mkdir -p "$(dirname "$COORD_REPORT_PATH")" "$(dirname "$COORD_COMPLETED_PATH")" && '
        f"printf '# Worker report\\n\\nStatus: {status_word}\\n' > \"$COORD_REPORT_PATH\" && "
        "printf '# %s completed\\n\\nattempt %s, by codex\\n' \"$COORD_PHASE_ID\" \"$COORD_ATTEMPT\" "
        '> "$COORD_COMPLETED_PATH"'
    )


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    return root


@pytest.fixture
def serve() -> Iterator[Any]:
    """Start a ``ScriptedResponsesServer`` for the given scripts; closed at teardown (stalled streams released)."""
    servers: list[ScriptedResponsesServer] = []

    def start(scripts: dict[str, list[Step]]) -> ScriptedResponsesServer:
        server = ScriptedResponsesServer(scripts).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def attempt_file(workspace: Path, phase_id: str, number: int, name: str) -> dict[str, Any]:
    return json.loads((workspace / "tmp" / "PLAN-T" / phase_id / str(number) / name).read_text(encoding="utf-8"))


def run(workspace: Path, plan: Path) -> subprocess.CompletedProcess[str]:
    return coord(workspace, "run", str(plan), "--headless", timeout=120)


# --- the tests -----------------------------------------------------------------------------------------------


def test_real_codex_runs_every_phase_to_pass_and_what_it_said_is_kept(workspace: Path, serve: Any) -> None:
    small, big = Usage(1000, 100, 20), Usage(3000, 2000, 200)
    server = serve({
        "stub": [Exec("mkdir -p src && printf 'def add(a, b):\\n    raise NotImplementedError\\n' > src/calc.py",
                      small),
                 Exec(evidence_cmd(), small), Say("Stub written. Status: PASS", small)],
        "test": [Patch("*** Begin Patch\n*** Add File: tests/test_calc.py\n+from src.calc import add\n"
                       "+assert add(1, 2) == 3\n*** End Patch\n", big),
                 Exec(evidence_cmd(), big), Say("Test added. Status: PASS", big)],
        "impl": [Exec("printf 'def add(a, b):\\n    return a + b\\n' > src/calc.py", small),
                 Exec(evidence_cmd(), small), Say("Implemented. Status: PASS", small)],
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
    # Each script was answered in full, by one thread each, and every request came with the profile's key.
    assert [len(server.requests_of(name)) for name in ("stub", "test", "impl")] == [3, 3, 3]
    assert {r.headers.get("authorization") for r in server.requests} == {f"Bearer {API_KEY}"}
    assert {r.body.get("model") for r in server.requests} == {"gpt-5.5"}
    rows = {r["phase_id"]: r for r in db_rows(workspace, "SELECT * FROM attempts")}
    for phase_id, script, usage, changes in (("P01", "stub", small, 0), ("P02", "test", big, 1),
                                             ("P03", "impl", small, 0)):
        summary = attempt_file(workspace, phase_id, 1, "summary.json")
        threads = {r.conversation for r in server.requests_of(script)}
        assert threads == {summary["session_id"]} and UUID_RE.match(summary["session_id"])
        assert summary["completed"] is True and summary["error"] is None
        assert summary["last_message"] == server.scripts[script][-1].text
        assert (summary["commands"], summary["file_changes"]) == (3 - 1 - changes, changes)
        # codex adds up the usage of the thread's three responses (codex-cli.md §4)
        assert (summary["input_tokens"], summary["cached_input_tokens"], summary["output_tokens"]) == (
            3 * usage.input_tokens, 3 * usage.cached_tokens, 3 * usage.output_tokens)
        # gpt-5.5 is priced by the packaged defaults: $5 input, $0.50 cached input, $30 output per 1M tokens
        expected = (3 * (usage.input_tokens - usage.cached_tokens) * 5.0 + 3 * usage.cached_tokens * 0.5
                    + 3 * usage.output_tokens * 30.0) / 1e6
        assert summary["cost_usd"] == pytest.approx(expected)
        assert summary["price"] == {"model": "gpt-5.5", "source": "default", "input": 5.0, "cached_input": 0.5,
                                    "output": 30.0, "unit": "USD per 1M tokens"}
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


def test_failed_verification_is_remediated_by_resuming_the_same_codex_thread(workspace: Path, serve: Any) -> None:
    first, second = Usage(2000, 500, 40), Usage(3000, 1000, 60)
    server = serve({
        "stub": [Exec(evidence_cmd()), Say("Status: PASS")],
        # Attempt 1 claims PASS without the fix; attempt 2 (the same thread, resumed) makes it.
        "impl": [Exec(evidence_cmd(), first), Say("Done. Status: PASS", first),
                 Exec("echo fixed > fixed.txt && " + evidence_cmd(), second), Say("Fixed it. Status: PASS", second)],
        "verify": [Exec(evidence_cmd()), Say("Verified. Status: PASS")],
    })
    plan = real_plan(workspace, server, [
        phase("P01", "stub", "stub"),
        phase("P02", "impl", "impl", verify=[{"run": "test -f fixed.txt"}]),
        phase("P03", "verify", "verify"),
    ], policy={"remediation": "resume"}, prices={"gpt-5.5": {"input": 2.0, "cached_input": 1.0, "output": 8.0}})

    result = run(workspace, plan)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "verification `test -f fixed.txt` exited 1" in result.stdout
    evidence = attempt_file(workspace, "P02", 1, "evidence.json")
    assert evidence["verdict"] == "FAIL" and "test -f fixed.txt" in evidence["reason"]
    one, two = (attempt_file(workspace, "P02", n, "summary.json") for n in (1, 2))
    assert UUID_RE.match(one["session_id"]) and two["session_id"] == one["session_id"]
    spec = attempt_file(workspace, "P02", 2, "spec.json")
    assert spec["argv"][spec["argv"].index("resume") + 1] == one["session_id"]
    assert attempt_file(workspace, "P02", 2, "evidence.json")["verdict"] == "PASS"
    # The model saw one conversation: the resumed turn carried the first turn's tool call and its output.
    requests = server.requests_of("impl")
    assert [r.conversation for r in requests] == [one["session_id"]] * 4
    assert any(item.get("type") == "function_call_output" for item in requests[2].body["input"])
    # Each attempt keeps its own tokens although codex reports thread totals; cost uses the plan's price.
    for summary, usage in ((one, first), (two, second)):
        assert (summary["input_tokens"], summary["cached_input_tokens"], summary["output_tokens"]) == (
            2 * usage.input_tokens, 2 * usage.cached_tokens, 2 * usage.output_tokens)
        expected = (2 * (usage.input_tokens - usage.cached_tokens) * 2.0 + 2 * usage.cached_tokens * 1.0
                    + 2 * usage.output_tokens * 8.0) / 1e6
        assert summary["cost_usd"] == pytest.approx(expected) and summary["price"]["source"] == "plan"
    assert two["cumulative_usage"]["input_tokens"] == 2 * first.input_tokens + 2 * second.input_tokens
    rows = db_rows(workspace, "SELECT number, state, input_tokens, output_tokens, cost_usd FROM attempts "
                   "WHERE phase_id='P02' ORDER BY number")
    assert [(r["number"], r["state"], r["input_tokens"], r["output_tokens"]) for r in rows] == [
        (1, "failed", one["input_tokens"], one["output_tokens"]), (2, "passed", two["input_tokens"],
                                                                   two["output_tokens"])]
    p02 = next(p for p in status(workspace)["phases"] if p["id"] == "P02")
    assert p02["attempts"] == 2 and p02["remediations"] == 1
    assert p02["cost_usd"] == pytest.approx(one["cost_usd"] + two["cost_usd"], abs=1e-6)


def test_stalled_model_stream_is_hung_and_the_worker_group_killed(workspace: Path, serve: Any) -> None:
    server = serve({
        "stub": [Exec(evidence_cmd()), Say("Status: PASS")],
        "impl": [Stall()],
        "verify": [Exec(evidence_cmd()), Say("Status: PASS")],
    })
    plan = real_plan(workspace, server, [
        phase("P01", "stub", "stub"),
        # codex's own idle timeout is 5 min by default: coord's hang policy must end this one.
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
    assert exit_record["signal"] in (signal.SIGTERM, signal.SIGKILL)
    [request] = server.requests_of("impl")
    summary = attempt_file(workspace, "P02", 1, "summary.json")
    assert summary["session_id"] == request.conversation and summary["completed"] is False
    attempt_id = db_rows(workspace, "SELECT attempt_id FROM attempts WHERE phase_id='P02'")[0]["attempt_id"]
    assert processes_with_cookie("COORD_ATTEMPT_ID", attempt_id) == []
    states = {p["id"]: p["state"] for p in status(workspace)["phases"]}
    assert states == {"P01": "passed", "P02": "blocked", "P03": "pending"}
    assert server.requests_of("verify") == []


@pytest.mark.parametrize(("step", "idle_timeout_ms", "message"), [
    pytest.param(HttpError(500, "overloaded"), None,
                 "We\u2019re currently experiencing high demand, which may cause temporary errors.", id="http500"),
    pytest.param(HttpError(401, "Incorrect API key provided"), None,
                 "unexpected status 401 Unauthorized: Incorrect API key provided", id="http401"),
    pytest.param(Drop(), None, "stream disconnected before completion: stream closed before response.completed",
                 id="dropped_stream"),
    pytest.param(Stall(), 1000, "stream disconnected before completion: idle timeout waiting for SSE",
                 id="idle_stream"),
])
def test_model_errors_fail_the_attempt_with_codex_message_and_the_run_ends(
    workspace: Path, serve: Any, step: Step, idle_timeout_ms: int | None, message: str
) -> None:
    server = serve({
        "stub": [Exec(evidence_cmd()), Say("Status: PASS")],
        "impl": [step],
        "verify": [Exec(evidence_cmd()), Say("Status: PASS")],
    })
    plan = real_plan(workspace, server, [
        phase("P01", "stub", "stub"),
        phase("P02", "impl", "impl"),
        phase("P03", "verify", "verify"),
    ], idle_timeout_ms=idle_timeout_ms)

    result = run(workspace, plan)

    assert result.returncode == 1, result.stdout + result.stderr
    # Two attempts (max_attempts 2, fresh threads), one request each: codex retried nothing.
    requests = server.requests_of("impl")
    assert len(requests) == 2 and len({r.conversation for r in requests}) == 2
    for number in (1, 2):
        summary = attempt_file(workspace, "P02", number, "summary.json")
        assert summary["completed"] is False and message in summary["error"]
        evidence = attempt_file(workspace, "P02", number, "evidence.json")
        exit_check = next(c for c in evidence["checks"] if c["name"] == "exit")
        assert evidence["verdict"] == "FAIL" and exit_check["status"] == "fail"
        assert exit_check["detail"].startswith("worker exited 1: ") and message in exit_check["detail"]
        log = (workspace / "tmp/PLAN-T/P02" / str(number) / "worker.log").read_text(encoding="utf-8")
        assert '"type":"turn.failed"' in log
    states = {p["id"]: p["state"] for p in status(workspace)["phases"]}
    assert states == {"P01": "passed", "P02": "blocked", "P03": "pending"}
    assert message in next(p for p in status(workspace)["phases"] if p["id"] == "P02")["reason"]
