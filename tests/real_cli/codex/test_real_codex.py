"""End-to-end runs of ``coord run --headless`` with the REAL codex CLI as the worker, against a scripted model.

The binary is npm ``@openai/codex`` (pinned 0.169.0 by ``.ci/run``, which installs it into ``.ci/node``);
``COORD_CODEX_BIN`` names another one. The model is ``ScriptedResponsesServer`` on 127.0.0.1; the plan's agent
profile points codex at it with ``-c`` overrides (a custom provider, no retries, no plugin sync, no analytics:
the offline configuration of docs/codex-exec.md §7, which made no non-loopback connection under strace, §8).
Each phase's instructions carry ``[[mock:NAME]]``, so the server answers that phase's codex thread from script NAME.
What the real-CLI suites share (finding the binary, plans, running, common checks) is
``tests.real_cli.common.real_runs``.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import coord, db_rows
from tests.real_cli.codex.responses_server import (
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
from tests.real_cli.common import real_runs as e2e

API_KEY_VAR = "COORD_E2E_MODEL_KEY"
API_KEY = "test-key-not-secret"

CODEX_BIN, CODEX_VERSION = e2e.find_cli("COORD_CODEX_BIN", "codex", label="codex CLI", package="@openai/codex@0.169.0")

pytestmark = pytest.mark.slow

workspace, serve = e2e.fixtures(ScriptedResponsesServer)


# --- the plan and the codex profile --------------------------------------------------------------------------


def codex_profile(server: ScriptedResponsesServer, codex_home: Path, *, model: str = "gpt-5.5",
                  idle_timeout_ms: int | None = None, default_sandbox: bool = False) -> dict[str, Any]:
    """An agent profile running the real codex against ``server``.

    ``-c`` overrides (docs/codex-exec.md §7): a custom provider ``scripted`` speaking ``wire_api = "responses"`` to
    ``server``, with codex's own retries off (``request_max_retries``/``stream_max_retries`` 0 and no unbounded
    reconnects, so a failing model fails the attempt at once instead of retrying for ever); no plugin sync (it
    would ``git ls-remote`` github.com) and no analytics (DNS for ab.chatgpt.com); no update check; commands by
    ``bash -c`` rather than a login shell, so the machine's profile scripts stay out of the tests.
    ``gpt-5.5`` is in codex 0.169's model catalog: no "model metadata not found" warning, and ``apply_patch`` is
    offered to the model. ``default_sandbox`` leaves ``sandbox`` and ``dangerous`` out, as a new user's plan does.
    """
    provider = ("model_providers.scripted={name=\"Scripted Responses API\", "
                f"base_url=\"{server.base_url}\", env_key=\"{API_KEY_VAR}\", wire_api=\"responses\", "
                "request_max_retries=0, stream_max_retries=0"
                + (f", stream_idle_timeout_ms={idle_timeout_ms}" if idle_timeout_ms else "") + "}")
    # Most tests are not about codex's own sandbox (landlock/seccomp); the default_sandbox ones are.
    unsandboxed = {} if default_sandbox else {"sandbox": "danger-full-access", "dangerous": True}
    return {
        "base": "codex",
        "binary": str(CODEX_BIN),
        "model": model,
        **unsandboxed,
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
              idle_timeout_ms: int | None = None, default_sandbox: bool = False, sandbox: str | None = None,
              **top: Any) -> Path:
    """Write ``plans/PLAN-T.yaml`` whose phases run the real codex against ``server``; returns its relative path."""
    codex_home = workspace / ".codex-home"  # codex refuses a CODEX_HOME that does not exist
    codex_home.mkdir(exist_ok=True)
    profile = codex_profile(server, codex_home, idle_timeout_ms=idle_timeout_ms,
                            default_sandbox=default_sandbox or sandbox is not None)
    if sandbox is not None:
        profile["sandbox"] = sandbox
    return e2e.write_real_plan(workspace, phases, profile, **top)


evidence_cmd = functools.partial(e2e.evidence_cmd, by="codex")


# --- the tests -----------------------------------------------------------------------------------------------


def test_real_codex_runs_every_phase_to_pass_and_what_it_said_is_kept(workspace: Path, serve: Any) -> None:
    small, big = Usage(1000, 100, 20), Usage(3000, 2000, 200)
    server = serve(e2e.calc_scripts(Exec, Say, evidence_cmd(), Patch(
        "*** Begin Patch\n*** Add File: tests/test_calc.py\n+from src.calc import add\n+assert add(1, 2) == 3\n"
        "*** End Patch\n", big), small, big))
    plan = real_plan(workspace, server, e2e.calc_phases())

    result = e2e.run(workspace, plan)

    # Each script was answered in full, by one thread each, and every request came with the profile's key.
    report = e2e.assert_calc_built(workspace, server, result)
    assert {r.headers.get("authorization") for r in server.requests} == {f"Bearer {API_KEY}"}
    assert {r.body.get("model") for r in server.requests} == {"gpt-5.5"}
    for phase_id, script, usage, changes in (("P01", "stub", small, 0), ("P02", "test", big, 1),
                                             ("P03", "impl", small, 0)):
        summary = e2e.attempt_file(workspace, phase_id, 1, "summary.json")
        e2e.assert_one_conversation(server, script, summary)
        assert (summary["commands"], summary["file_changes"]) == (3 - 1 - changes, changes)
        # codex adds up the usage of the thread's three responses (docs/codex-exec.md §5)
        assert (summary["input_tokens"], summary["cached_input_tokens"], summary["output_tokens"]) == (
            3 * usage.input_tokens, 3 * usage.cached_tokens, 3 * usage.output_tokens)
        # gpt-5.5 is priced by the packaged defaults: $5 input, $0.50 cached input, $30 output per 1M tokens
        expected = (3 * (usage.input_tokens - usage.cached_tokens) * 5.0 + 3 * usage.cached_tokens * 0.5
                    + 3 * usage.output_tokens * 30.0) / 1e6
        assert summary["cost_usd"] == pytest.approx(expected)
        assert summary["price"] == {"model": "gpt-5.5", "source": "default", "input": 5.0, "cached_input": 0.5,
                                    "output": 30.0, "unit": "USD per 1M tokens"}
        e2e.assert_recorded(workspace, report, phase_id, summary, expected)
    e2e.assert_total_cost(workspace, report)


def test_failed_verification_is_remediated_by_resuming_the_same_codex_thread(workspace: Path, serve: Any) -> None:
    first, second = Usage(2000, 500, 40), Usage(3000, 1000, 60)
    # Attempt 1 claims PASS without the fix; attempt 2 (the same thread, resumed) makes it.
    server = serve(e2e.impl_scripts([Exec(evidence_cmd(), first), Say("Done. Status: PASS", first),
                                 Exec("echo fixed > fixed.txt && " + evidence_cmd(), second),
                                 Say("Fixed it. Status: PASS", second)],
                                Exec(evidence_cmd()), Say, verified="Verified. Status: PASS"))
    plan = real_plan(workspace, server, e2e.impl_phases(verify=[{"run": "test -f fixed.txt"}]),
                     policy={"remediation": "resume"},
                     prices={"gpt-5.5": {"input": 2.0, "cached_input": 1.0, "output": 8.0}})

    result = e2e.run(workspace, plan)

    one, two, requests = e2e.assert_resumed(workspace, server, result, "resume")
    # The resumed turn carried the first turn's tool call and its output.
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
    e2e.assert_remediated_once(workspace, one, two)


def test_stalled_model_stream_is_hung_and_the_worker_group_killed(workspace: Path, serve: Any) -> None:
    server = serve(e2e.impl_scripts([Stall()], Exec(evidence_cmd()), Say))
    # codex's own idle timeout is 5 min by default: coord's hang policy must end this one.
    plan = real_plan(workspace, server, e2e.impl_phases(policy=e2e.HANG_POLICY))

    result = e2e.run(workspace, plan)

    exit_record = e2e.assert_hung(workspace, result)
    assert exit_record["signal"] in (signal.SIGTERM, signal.SIGKILL)
    e2e.assert_hung_worker_gone(workspace, server)


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
    server = serve(e2e.impl_scripts([step], Exec(evidence_cmd()), Say))
    plan = real_plan(workspace, server, e2e.impl_phases(), idle_timeout_ms=idle_timeout_ms)

    result = e2e.run(workspace, plan)

    for number, summary, exit_check in e2e.failed_attempts(workspace, server, result):
        assert summary["completed"] is False and message in summary["error"]
        assert exit_check["detail"].startswith("worker exited 1: ") and message in exit_check["detail"]
        log = e2e.attempt_path(workspace, "P02", number, "worker.log").read_text(encoding="utf-8")
        assert '"type":"turn.failed"' in log
    e2e.assert_blocked_at_impl(workspace, message)


@pytest.fixture
def outside() -> Iterator[Path]:
    """A folder outside the workspace and outside /tmp (which codex's workspace-write sandbox leaves writable)."""
    folder = Path(tempfile.mkdtemp(prefix="coord-sandbox-", dir="/var/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_with_no_agent_settings_codex_writes_in_the_workspace_and_nothing_outside(
        workspace: Path, serve: Any, outside: Path) -> None:
    """A new user's profile names no sandbox: coord gives codex workspace-write, on the first turn and on the
    resumed one (the sandbox of a resumed turn is that of its own command line)."""
    probe = outside / "escaped"
    escape = f"touch {probe} 2>/dev/null && echo ESCAPED || echo DENIED"
    server = serve(e2e.impl_scripts(
        [Exec(escape), Exec(evidence_cmd()), Say("Done. Status: PASS"),
         Exec(escape), Exec("echo fixed > fixed.txt && " + evidence_cmd()), Say("Fixed it. Status: PASS")],
        Exec(evidence_cmd()), Say))
    plan = real_plan(workspace, server, e2e.impl_phases(verify=[{"run": "test -f fixed.txt"}]),
                     policy={"remediation": "resume", "max_attempts": 2, "poll_interval": "5s", "max_cycles": 12,
                             "kill_grace": "1s"}, default_sandbox=True)

    result = e2e.run(workspace, plan)

    assert result.returncode == 0, result.stdout + result.stderr
    assert not probe.exists(), "codex wrote outside the workspace"
    assert (workspace / "fixed.txt").read_text() == "fixed\n"
    for number in (1, 2):
        log = e2e.attempt_path(workspace, "P02", number, "worker.log").read_text(encoding="utf-8")
        outputs = [event["item"]["aggregated_output"] for event in map(json.loads, filter(
            lambda line: line.startswith("{"), log.splitlines()))
            if event.get("type") == "item.completed" and "touch" in event["item"].get("command", "")]
        # The command's own last line; a line before it may be the host's shell start-up complaining, under the
        # same sandbox, that it cannot write either (pyenv's rehash).
        assert [output.splitlines()[-1:] for output in outputs] == [["DENIED"]], log[-2000:]
        argv = e2e.attempt_file(workspace, "P02", number, "spec.json")["argv"]
        assert argv[argv.index("-s") + 1] == "workspace-write"
    assert "resume" in e2e.attempt_file(workspace, "P02", 2, "spec.json")["argv"]


def test_commands_that_failed_in_a_read_only_sandbox_are_the_evidence_and_the_claim_is_flagged(
        workspace: Path, serve: Any) -> None:
    """codex's own default sandbox, read-only: the worker cannot leave its evidence and says PASS anyway. The
    verdict names the command that failed and why, and the remediation prompt shows it."""
    server = serve(e2e.impl_scripts([Exec(evidence_cmd()), Say("Done. Status: PASS")] * 2, Exec(evidence_cmd()), Say))
    plan = real_plan(workspace, server, e2e.impl_phases(), sandbox="read-only")

    result = e2e.run(workspace, plan)

    assert result.returncode == 1, result.stdout + result.stderr
    [first, second] = db_rows(workspace, "SELECT reason FROM attempts WHERE phase_id='P01' ORDER BY number")
    assert "the worker's commands failed: `mkdir -p" in first["reason"], first["reason"]
    assert "Read-only file system" in first["reason"], first["reason"]
    evidence = e2e.attempt_file(workspace, "P01", 1, "evidence.json")
    [flagged] = [check for check in evidence["checks"] if check["name"] == "command[0]"]
    assert flagged["status"] == "warn" and flagged["exit_code"] == 1
    assert flagged["detail"].startswith("the worker claimed success, but this command it ran failed: `mkdir -p")
    prompt = e2e.attempt_path(workspace, "P01", 2, "prompt.md").read_text(encoding="utf-8")
    assert "### command[0]: the worker claimed success" in prompt and "Read-only file system" in prompt


@pytest.mark.parametrize("sandbox, works", [(None, True), ("read-only", False)], ids=["default", "read-only"])
def test_doctor_proves_codex_works_unattended_or_names_the_fix(
        workspace: Path, serve: Any, sandbox: str | None, works: bool) -> None:
    """``coord doctor --yes``: one real turn (write a file by a command), then its resume, against the model."""
    from coordinator.cli.doctor_cmd import PROBE_COMMAND

    server = serve({"": [Exec(PROBE_COMMAND), Say("DOCTOR OK"), Say("DOCTOR RESUMED")]})
    plan = real_plan(workspace, server, e2e.impl_phases(), default_sandbox=True, sandbox=sandbox)

    result = coord(workspace, "doctor", str(plan), "--yes", timeout=120)

    table = result.stdout
    assert result.returncode == (0 if works else 1), table + result.stderr
    for check in ("program", "version", "credentials", "starts unattended", "returns a session id",
                  "resumes its session"):
        assert re.search(rf"│ {re.escape(check)}\s*│ ✓", table), (check, table)
    assert CODEX_VERSION.split()[-1] in table
    mark = "✓" if works else "✗"
    assert re.search(rf"│ writes and runs commands\s*│ {mark}", table), table
    if not works:
        assert "set agents.real.sandbox: workspace-write" in " ".join(table.split())
    probes = list((workspace / "tmp/doctor").glob("real-*/coord-doctor-probe.txt"))
    assert [p.read_text() for p in probes] == (["coord doctor\n"] if works else [])
    # Both turns were one conversation: the resume continued the thread.
    assert len({r.conversation for r in server.requests}) == 1 and len(server.requests) == 3


def test_coord_run_refuses_a_codex_profile_without_credentials(workspace: Path, serve: Any) -> None:
    server = serve({})
    plan = real_plan(workspace, server, e2e.impl_phases())
    text = (workspace / plan).read_text().replace(API_KEY_VAR + ": " + API_KEY, "UNRELATED: x")
    (workspace / plan).write_text(text)

    result = coord(workspace, "run", str(plan), "--headless")

    assert result.returncode == 2, result.stdout + result.stderr
    assert f"provider 'scripted' reads its key from {API_KEY_VAR}, which is not set" in result.stderr
    assert "nothing was launched" in result.stderr and server.requests == []


def test_a_long_quiet_command_of_the_real_codex_is_alive_not_silent(workspace: Path, serve: Any) -> None:
    """codex prints ``item.started`` when it starts a command: its silence while the command runs is not a hang."""
    server = serve(e2e.impl_scripts([Exec("sleep 4 && echo slow-done"), Exec(evidence_cmd()), Say("Status: PASS")],
                                    Exec(evidence_cmd()), Say))
    plan = real_plan(workspace, server, e2e.impl_phases(policy=e2e.QUIET_COMMAND_POLICY))

    result = e2e.run(workspace, plan)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "a command is still running: " in result.stdout and "sleep 4" in result.stdout


class UsageLimitedServer(ScriptedResponsesServer):
    """The scripted model answering an ``HttpError(429, …)`` the way ChatGPT's backend reports a spent quota:
    ``error.type`` ``usage_limit_reached`` with the reset as ``resets_at`` (epoch seconds), from which codex
    writes "You’ve hit your usage limit. … try again at 3:28 PM."."""

    resets_at = 0

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        if status != 429:
            return super().error_body(status, message)
        return {"error": {"type": "usage_limit_reached", "message": message, "plan_type": "plus",
                          "resets_at": self.resets_at}}


def test_a_real_codex_usage_limit_parks_the_phase_until_the_reset_it_names(workspace: Path) -> None:
    import time

    from tests.helpers import status

    with UsageLimitedServer(e2e.impl_scripts([HttpError(429, "quota")], Exec(evidence_cmd()), Say)) as server:
        server.resets_at = int(time.time()) + 2 * 3600
        plan = real_plan(workspace, server, e2e.impl_phases(), policy={"max_attempts": 1})
        entry = e2e.run_until_parked(workspace, plan)

    # codex names the reset to the minute ("try again at 4:22 AM"), so the wait is to the start of the minute
    # resets_at falls in: two hours less what the test took to get there, and at most 59 s of truncation.
    from datetime import datetime

    minute = datetime.fromtimestamp(server.resets_at).astimezone().strftime("%Y-%m-%d %H:%M")
    assert f"reset at {minute} " in entry["reason"], entry["reason"]
    assert any(f"(in {left})" in entry["reason"] for left in ("1h58m", "1h59m", "2h00m")), entry["reason"]
    assert "hit your usage limit" in entry["reason"]
    assert [p["state"] for p in status(workspace)["phases"]] == ["passed", "waiting", "pending"]


def test_codexs_reconnects_after_a_dropped_stream_are_seen_as_alive(workspace: Path, serve: Any) -> None:
    """With stream retries on, codex answers a dropped stream with ``Reconnecting… 1/N`` and goes on; coord's poll
    cycles say it is retrying, and the phase passes."""
    server = serve(e2e.impl_scripts([Drop(), Drop(), Exec(evidence_cmd()), Say("Status: PASS")],
                                    Exec(evidence_cmd()), Say))
    plan = real_plan(workspace, server, e2e.impl_phases(policy=e2e.RETRY_POLICY))
    text = (workspace / plan).read_text()
    (workspace / plan).write_text(text.replace("stream_max_retries=0", "stream_max_retries=3"))

    result = e2e.run(workspace, plan)

    assert result.returncode == 0, result.stdout + result.stderr
    log = e2e.attempt_path(workspace, "P02", 1, "worker.log").read_text(encoding="utf-8")
    assert '"message":"Reconnecting...' in log, log[-2000:]
    assert "the agent is retrying the model (Reconnecting..." in result.stdout, result.stdout
