"""End-to-end runs of ``coord run --headless`` with the REAL Claude Code CLI as the worker, against a scripted model.

The binary is npm ``@anthropic-ai/claude-code`` (pinned 2.1.331 by ``.ci/run``, which installs it into ``.ci/node``;
the package's postinstall puts the native linux-x64 build at ``bin/claude.exe``); ``COORD_CLAUDE_BIN`` names
another one. The model is ``ScriptedMessagesServer`` on 127.0.0.1: the plan's agent profile points claude at it with
``ANTHROPIC_BASE_URL`` and a dummy ``ANTHROPIC_API_KEY``, turns off telemetry, error reporting, the auto-updater and
every non-essential request, and claude's own API retries (``CLAUDE_CODE_MAX_RETRIES=0``, so a failing model fails
the attempt at once). Under ``strace -f -e connect,sendto`` such runs connect to 127.0.0.1 only, with no DNS query.
``HOME`` is a folder of the test's workspace, so neither the machine's ``~/.claude`` nor its credentials are read.
Each phase's instructions carry ``[[mock:NAME]]``, so the server answers that phase's claude session from script NAME.
What the real-CLI suites share (finding the binary, plans, running, common checks) is
``tests.real_cli.common.real_runs``.
"""

from __future__ import annotations

import functools
import json
import os
import re
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import coord, db_rows, status
from tests.real_cli.claude.messages_server import Bash, HttpError, Say, ScriptedMessagesServer, Stall, Step, Usage
from tests.real_cli.common import real_runs as e2e

API_KEY = "sk-ant-test-key-not-secret"
MODEL = "claude-sonnet-4-5"

CLAUDE_BIN, CLAUDE_VERSION = e2e.find_cli("COORD_CLAUDE_BIN", "claude", label="Claude Code CLI",
                                      package="@anthropic-ai/claude-code@2.1.331", mark="Claude Code")

pytestmark = pytest.mark.slow

workspace, serve = e2e.fixtures(ScriptedMessagesServer)


# --- the plan and the claude profile -------------------------------------------------------------------------


def claude_profile(server: ScriptedMessagesServer, home: Path, *, default_permissions: bool = False) -> dict[str, Any]:
    """An agent profile running the real claude against ``server``.

    ``--permission-mode bypassPermissions`` lets claude run its tools unattended; as root claude refuses it unless
    ``IS_SANDBOX=1`` says the machine is a deliberate sandbox (it is harmless for other users).
    ``claude-sonnet-4-5`` is in claude's price table ($3 input, $0.30 cache read, $3.75 cache write, $15 output
    per 1M tokens), so ``total_cost_usd`` can be checked exactly. ``default_permissions`` leaves the permission
    flags to coord, as a new user's plan does.
    """
    return {
        "base": "claude",
        "binary": str(CLAUDE_BIN),
        "model": MODEL,
        "args": [] if default_permissions else ["--permission-mode", "bypassPermissions"],
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


def real_plan(workspace: Path, server: ScriptedMessagesServer, phases: list[dict[str, Any]], *,
              default_permissions: bool = False, **top: Any) -> Path:
    """Write ``plans/PLAN-T.yaml`` whose phases run the real claude against ``server``; returns its relative path."""
    home = workspace / ".claude-home"
    home.mkdir(exist_ok=True)
    profile = claude_profile(server, home, default_permissions=default_permissions)
    return e2e.write_real_plan(workspace, phases, profile, **top)


evidence_cmd = functools.partial(e2e.evidence_cmd, by="claude")


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


def result_event(workspace: Path, phase_id: str, number: int) -> dict[str, Any]:
    """The ``result`` event claude printed in that attempt's ``worker.log``."""
    log = e2e.attempt_path(workspace, phase_id, number, "worker.log").read_text(encoding="utf-8")
    events = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    return [event for event in events if event.get("type") == "result"][-1]


# --- the tests -----------------------------------------------------------------------------------------------


def test_real_claude_runs_every_phase_to_pass_and_what_it_said_is_kept(workspace: Path, serve: Any) -> None:
    small, cached = Usage(1000, 0, 0, 20), Usage(800, 2000, 500, 200)
    server = serve(e2e.calc_scripts(Bash, Say, evidence_cmd(), Bash(
        "mkdir -p tests && printf 'from src.calc import add\\nassert add(1, 2) == 3\\n' > tests/test_calc.py", cached),
        small, cached))
    plan = real_plan(workspace, server, e2e.calc_phases())

    result = e2e.run(workspace, plan)

    # Each script was answered in full, one session each; nothing but streamed /v1/messages was asked for.
    report = e2e.assert_calc_built(workspace, server, result)
    assert all(r.script is not None for r in server.requests)
    assert {r.headers.get("x-api-key") for r in server.requests} == {API_KEY}
    assert {r.body.get("model") for r in server.requests} == {MODEL}
    for phase_id, script, usage in (("P01", "stub", small), ("P02", "test", cached), ("P03", "impl", small)):
        summary = e2e.attempt_file(workspace, phase_id, 1, "summary.json")
        e2e.assert_one_conversation(server, script, summary)
        assert (summary["commands"], summary["file_changes"], summary["tool_uses"]) == (2, 0, {"Bash": 2})
        # result.usage adds up the e2e.run's three responses; coord's input tokens include the cache's.
        assert (summary["input_tokens"], summary["cached_input_tokens"], summary["output_tokens"]) == (
            3 * (usage.input_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens),
            3 * usage.cache_read_input_tokens, 3 * usage.output_tokens)
        # The cost is claude's own figure (its price table), not coord's: no `price` basis is recorded.
        expected = sonnet_cost(usage, usage, usage)
        assert summary["cost_usd"] == pytest.approx(expected)
        assert result_event(workspace, phase_id, 1)["total_cost_usd"] == pytest.approx(expected)
        assert summary["price"] is None
        e2e.assert_recorded(workspace, report, phase_id, summary, expected)
    e2e.assert_total_cost(workspace, report)


def test_failed_verification_is_remediated_by_resuming_the_same_claude_session(workspace: Path, serve: Any) -> None:
    first, second = Usage(2000, 500, 0, 40), Usage(3000, 1000, 100, 60)
    # Attempt 1 claims PASS without the fix; attempt 2 (the same session, resumed) makes it.
    server = serve(e2e.impl_scripts([Bash(evidence_cmd(), first), Say("Done. Status: PASS", first),
                                 Bash("echo fixed > fixed.txt && " + evidence_cmd(), second),
                                 Say("Fixed it. Status: PASS", second)],
                                Bash(evidence_cmd()), Say, verified="Verified. Status: PASS"))
    plan = real_plan(workspace, server, e2e.impl_phases(verify=[{"run": "test -f fixed.txt"}]),
                     policy={"remediation": "resume"})

    result = e2e.run(workspace, plan)

    one, two, requests = e2e.assert_resumed(workspace, server, result, "--resume")
    assert [p["state"] for p in status(workspace)["phases"]] == ["passed"] * 3
    # The resumed turn carried the first turn's tool call and its result.
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
    e2e.assert_remediated_once(workspace, one, two)


def test_stalled_model_stream_is_hung_and_the_worker_group_killed(workspace: Path, serve: Any) -> None:
    server = serve(e2e.impl_scripts([Stall()], Bash(evidence_cmd()), Say))
    plan = real_plan(workspace, server, e2e.impl_phases(policy=e2e.HANG_POLICY))

    result = e2e.run(workspace, plan)

    exit_record = e2e.assert_hung(workspace, result)
    # claude handles SIGTERM itself and exits 143 (128 + SIGTERM), unless the grace ran out and SIGKILL came
    assert exit_record["exit_code"] == 128 + signal.SIGTERM or exit_record["signal"] == signal.SIGKILL
    e2e.assert_hung_worker_gone(workspace, server)


@pytest.mark.parametrize(("step", "message"), [
    pytest.param(HttpError(500, "overloaded"), "API Error: 500 overloaded", id="http500"),
    pytest.param(HttpError(401, "key revoked"), "Failed to authenticate. API Error: 401 key revoked", id="http401"),
])
def test_model_errors_fail_the_attempt_with_claude_message_and_the_run_ends(
    workspace: Path, serve: Any, step: Step, message: str
) -> None:
    server = serve(e2e.impl_scripts([step], Bash(evidence_cmd()), Say))
    plan = real_plan(workspace, server, e2e.impl_phases())

    result = e2e.run(workspace, plan)

    for number, summary, exit_check in e2e.failed_attempts(workspace, server, result):
        assert summary["completed"] is False and summary["error"].startswith(message)
        assert summary["cost_usd"] == 0
        assert exit_check["detail"].startswith(f"worker exited 1: {message}")
        event = result_event(workspace, "P02", number)
        assert event["is_error"] is True and event["subtype"] == "success"  # why `success` alone is not enough
    e2e.assert_blocked_at_impl(workspace, message)


def test_with_no_permission_settings_claude_edits_and_runs_commands_unattended(workspace: Path, serve: Any) -> None:
    """A new user's profile chooses no permission mode: coord's default lets claude run the phase's commands and
    leave its evidence without a question, fresh and resumed, and prints no bypass warning."""
    server = serve(e2e.impl_scripts([Bash(evidence_cmd()), Say("Done. Status: PASS"),
                                     Bash("echo fixed > fixed.txt && " + evidence_cmd()), Say("Fixed. Status: PASS")],
                                    Bash(evidence_cmd()), Say))
    plan = real_plan(workspace, server, e2e.impl_phases(verify=[{"run": "test -f fixed.txt"}]),
                     policy={"remediation": "resume", "max_attempts": 2, "poll_interval": "5s", "max_cycles": 12,
                             "kill_grace": "1s"}, default_permissions=True)

    result = e2e.run(workspace, plan)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stdout
    assert [p["state"] for p in status(workspace)["phases"]] == ["passed"] * 3
    for number in (1, 2):
        argv = e2e.attempt_file(workspace, "P02", number, "spec.json")["argv"]
        assert argv[argv.index("--permission-mode") + 1] == "acceptEdits"
        assert "bypassPermissions" not in argv
    assert "--resume" in e2e.attempt_file(workspace, "P02", 2, "spec.json")["argv"]


def test_a_failed_bash_command_is_the_evidence_and_the_claim_is_flagged(workspace: Path, serve: Any) -> None:
    """claude reports a failed command as a ``tool_result`` with ``is_error``: the verdict names it."""
    server = serve(e2e.impl_scripts([Bash("cat no-such-file.txt"), Say("Done. Status: PASS")] * 2,
                                    Bash(evidence_cmd()), Say))
    plan = real_plan(workspace, server, e2e.impl_phases())

    result = e2e.run(workspace, plan)

    assert result.returncode == 1, result.stdout + result.stderr
    [first, _] = db_rows(workspace, "SELECT reason FROM attempts WHERE phase_id='P02' ORDER BY number")
    assert "the worker's commands failed: `cat no-such-file.txt` → error: " in first["reason"], first["reason"]
    assert "No such file or directory" in first["reason"]
    evidence = e2e.attempt_file(workspace, "P02", 1, "evidence.json")
    [flagged] = [check for check in evidence["checks"] if check["name"] == "command[0]"]
    assert flagged["status"] == "warn" and flagged["detail"].startswith("the worker claimed success")


def test_doctor_proves_claude_works_unattended(workspace: Path, serve: Any) -> None:
    """``coord doctor --yes`` with coord's default permissions: the turn runs its command, and resumes."""
    from coordinator.cli.doctor_cmd import PROBE_COMMAND

    server = serve({"": [Bash(PROBE_COMMAND), Say("DOCTOR OK"), Say("DOCTOR RESUMED")]})
    plan = real_plan(workspace, server, e2e.impl_phases(), default_permissions=True)

    result = coord(workspace, "doctor", str(plan), "--yes", timeout=120)

    assert result.returncode == 0, result.stdout + result.stderr
    for check in ("program", "version", "credentials", "starts unattended", "writes and runs commands",
                  "returns a session id", "resumes its session"):
        assert re.search(rf"│ {re.escape(check)}\s*│ ✓", result.stdout), (check, result.stdout)
    assert "ANTHROPIC_API_KEY is set" in result.stdout
    [probe] = (workspace / "tmp/doctor").glob("real-*/coord-doctor-probe.txt")
    assert probe.read_text() == "coord doctor\n"


def test_a_long_quiet_command_of_the_real_claude_is_alive_not_silent(workspace: Path, serve: Any) -> None:
    """claude prints the ``tool_use`` before it runs Bash: its silence while the command runs is not a hang."""
    server = serve(e2e.impl_scripts([Bash("sleep 4 && echo slow-done"), Bash(evidence_cmd()), Say("Status: PASS")],
                                    Bash(evidence_cmd()), Say))
    plan = real_plan(workspace, server, e2e.impl_phases(policy=e2e.QUIET_COMMAND_POLICY))

    result = e2e.run(workspace, plan)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "a command is still running: sleep 4 && echo slow-done" in result.stdout


def test_claudes_retries_of_an_overloaded_model_are_seen_as_alive(workspace: Path, serve: Any) -> None:
    """With retries on, claude answers two 529s with ``system``/``api_retry`` events and goes on; coord's poll
    cycles say it is retrying (such cycles are not silence), and the phase passes."""
    server = serve(e2e.impl_scripts([HttpError(529, "overloaded"), HttpError(529, "overloaded"),
                                     Bash(evidence_cmd()), Say("Status: PASS")], Bash(evidence_cmd()), Say))
    plan = real_plan(workspace, server, e2e.impl_phases(policy=e2e.RETRY_POLICY))
    text = (workspace / plan).read_text()
    (workspace / plan).write_text(text.replace("CLAUDE_CODE_MAX_RETRIES: '0'", "CLAUDE_CODE_MAX_RETRIES: '3'"))

    result = e2e.run(workspace, plan)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "the agent is retrying the model (overloaded)" in result.stdout, result.stdout
    log = e2e.attempt_path(workspace, "P02", 1, "worker.log").read_text(encoding="utf-8")
    assert '"subtype":"api_retry"' in log.replace(" ", "")


def test_a_claude_key_out_of_credit_parks_the_phase_instead_of_failing_it(workspace: Path, serve: Any) -> None:
    """The Messages API's answer to a key with no credit left, through the real claude: the phase waits
    ``limit_wait`` (no reset time is given) instead of burning its attempts."""
    no_credit = ("Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to "
                 "upgrade or purchase credits.")
    server = serve(e2e.impl_scripts([HttpError(400, no_credit)], Bash(evidence_cmd()), Say))
    plan = real_plan(workspace, server, e2e.impl_phases(), policy={"max_attempts": 1, "limit_wait": "2h"})

    entry = e2e.run_until_parked(workspace, plan)

    assert "the agent named no reset time coord can read: waiting `limit_wait`" in entry["reason"]
    assert "credit balance is too low" in entry["reason"].lower()  # claude shortens it to "Credit balance …"
