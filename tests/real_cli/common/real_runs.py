"""Test helpers both real-CLI suites share: find the binary, write a plan whose phases run it against a scripted
model server, run ``coord run --headless``, and the checks every such run makes.

What differs between the suites (the agent profile, the step types, how usage and cost are counted, the error
texts) stays in ``tests/real_cli/codex/test_real_codex.py`` and ``tests/real_cli/claude/test_real_claude.py``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REPO_ROOT, coord, db_rows, processes_with_cookie, status, write_plan
from tests.real_cli.common.sse_server import ScriptedSSEServer

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
NODE_BIN = REPO_ROOT / ".ci" / "node" / "node_modules" / ".bin"
"""Where ``.ci/run`` installs the real CLIs (``npm install --prefix .ci/node``)."""
QUIET_COMMAND_POLICY = {"poll_interval": "0.5s", "max_cycles": 100, "max_silent_cycles": 3, "max_attempts": 1,
                        "kill_grace": "1s"}
"""A phase policy under which a command that runs quietly for 4 s would be hung, were it silence."""
RETRY_POLICY = {**QUIET_COMMAND_POLICY, "poll_interval": "0.1s", "max_silent_cycles": 10}
"""Poll cycles short enough that one falls between the agent's retry back-offs (about 0.2-1 s)."""
HANG_POLICY = {"poll_interval": "0.4s", "max_cycles": 3, "max_attempts": 1, "kill_grace": "1s"}
"""A phase policy that calls a silent worker hung after three short poll cycles."""


# --- the binary ----------------------------------------------------------------------------------------------


def cli_version(binary: Path, mark: str = "") -> str | None:
    """``BINARY --version`` when it runs and its output contains ``mark``, or None."""
    try:
        done = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL)
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 and mark in done.stdout else None


def find_cli(env_var: str, name: str, *, label: str, package: str, mark: str = "") -> tuple[Path, str]:
    """The real CLI ``name`` and its version: the one ``env_var`` names, else ``NODE_BIN / name``.

    When it does not run, the calling test module is skipped, unless ``env_var`` is set: CI sets the variable after
    installing, so a broken install must fail the suite, not skip it.
    """
    default = NODE_BIN / name
    explicit = os.environ.get(env_var)
    binary = Path(explicit) if explicit else default
    version = cli_version(binary, mark) if binary.is_file() else None
    if version is None and explicit:
        pytest.fail(f"{env_var}={explicit} does not run (`{name} --version` failed)", pytrace=False)
    if version is None:
        pytest.skip(f"real {label} not installed at {default.relative_to(REPO_ROOT)} "
                    f"(`npm install --prefix .ci/node {package}`, or set {env_var})", allow_module_level=True)
    return binary, version


# --- the plan ------------------------------------------------------------------------------------------------


def write_real_plan(workspace: Path, phases: list[dict[str, Any]], profile: dict[str, Any], **top: Any) -> Path:
    """Write ``plans/PLAN-T.yaml`` whose phases run the agent ``profile``; returns its relative path.

    The default policy leaves a real CLI time to think (5 s polls, 12 cycles) and allows one retry.
    """
    top.setdefault("policy", {"poll_interval": "5s", "max_cycles": 12, "max_attempts": 2, "kill_grace": "1s"})
    return write_plan(workspace, phases, agent="real", agents={"real": profile}, **top)


def phase(phase_id: str, kind: str, script: str, **extra: Any) -> dict[str, Any]:
    """A phase whose conversation (codex thread, claude session) is answered from ``script`` (the tag goes into
    the prompt)."""
    return {"id": phase_id, "kind": kind, "title": f"{phase_id} {kind}",
            "instructions": f"Do the {kind} work of {phase_id}. [[mock:{script}]]", **extra}


def calc_phases() -> list[dict[str, Any]]:
    """stub, test, impl of ``src/calc.py``'s ``add``, with verifications on the stub and the implementation."""
    return [
        phase("P01", "stub", "stub", verify=[{"run": "test -f src/calc.py"}]),
        phase("P02", "test", "test"),
        phase("P03", "impl", "impl", verify=[{"run": "grep -q 'return a + b' src/calc.py"}]),
    ]


def calc_scripts(command: Callable[[str, Any], Any], say: Callable[[str, Any], Any], evidence: str,
                 write_test: Any, usage: Any, test_usage: Any) -> dict[str, list[Any]]:
    """Scripts for ``calc_phases``: each phase writes its file (``write_test``, a step, for the test), leaves its
    evidence and says PASS; ``command(CMD, USAGE)`` and ``say(TEXT, USAGE)`` make the protocol's steps."""
    return {
        "stub": [command("mkdir -p src && printf 'def add(a, b):\\n    raise NotImplementedError\\n' > src/calc.py",
                         usage),
                 command(evidence, usage), say("Stub written. Status: PASS", usage)],
        "test": [write_test, command(evidence, test_usage), say("Test added. Status: PASS", test_usage)],
        "impl": [command("printf 'def add(a, b):\\n    return a + b\\n' > src/calc.py", usage),
                 command(evidence, usage), say("Implemented. Status: PASS", usage)],
    }


def impl_phases(**impl: Any) -> list[dict[str, Any]]:
    """P01 stub, P02 impl (with ``impl`` added to it), P03 verify, answered from the scripts of those names."""
    return [phase("P01", "stub", "stub"), phase("P02", "impl", "impl", **impl), phase("P03", "verify", "verify")]


def impl_scripts(impl: list[Any], evidence: Any, say: Callable[[str], Any],
                 verified: str = "Status: PASS") -> dict[str, list[Any]]:
    """Scripts for ``impl_phases``: stub and verify run ``evidence`` (a step that runs ``evidence_cmd``) and
    answer PASS; ``impl`` is the case under test."""
    return {"stub": [evidence, say("Status: PASS")], "impl": impl, "verify": [evidence, say(verified)]}


def evidence_cmd(status_word: str = "PASS", *, by: str) -> str:
    """The shell command a worker runs to leave its evidence: the report and the completion marker.

    It uses the variables coord gives every worker (``COORD_REPORT_PATH``, ``COORD_COMPLETED_PATH``,
    ``COORD_PHASE_ID``), so this also shows they reach commands the agent ``by`` runs.
    """
    return (
        'mkdir -p "$(dirname "$COORD_REPORT_PATH")" "$(dirname "$COORD_COMPLETED_PATH")" && '
        f"printf '# Worker report\\n\\nStatus: {status_word}\\n' > \"$COORD_REPORT_PATH\" && "
        f"printf '# %s completed\\n\\nattempt %s, by {by}\\n' \"$COORD_PHASE_ID\" \"$COORD_ATTEMPT\" "
        '> "$COORD_COMPLETED_PATH"'
    )


# --- fixtures and running ------------------------------------------------------------------------------------


def fixtures(server_type: type[ScriptedSSEServer]) -> tuple[Any, Any]:
    """The ``workspace`` and ``serve`` fixtures of a suite whose model is ``server_type``.

    Use as ``workspace, serve = fixtures(ScriptedResponsesServer)`` at the top of the test module.
    """

    @pytest.fixture
    def workspace(tmp_path: Path) -> Path:
        root = tmp_path / "ws"
        root.mkdir()
        return root

    @pytest.fixture
    def serve() -> Iterator[Any]:
        """Start a scripted server for the given scripts; closed at teardown (stalled streams released)."""
        servers: list[ScriptedSSEServer] = []

        def start(scripts: dict[str, list[Any]]) -> ScriptedSSEServer:
            server = server_type(scripts).__enter__()
            servers.append(server)
            return server

        yield start
        for server in servers:
            server.close()

    return workspace, serve


def attempt_path(workspace: Path, phase_id: str, number: int, name: str) -> Path:
    return workspace / "tmp" / "PLAN-T" / phase_id / str(number) / name


def attempt_file(workspace: Path, phase_id: str, number: int, name: str) -> dict[str, Any]:
    return json.loads(attempt_path(workspace, phase_id, number, name).read_text(encoding="utf-8"))


def run(workspace: Path, plan: Path) -> subprocess.CompletedProcess[str]:
    return coord(workspace, "run", str(plan), "--headless", timeout=120)


def phase_status(workspace: Path, phase_id: str) -> dict[str, Any]:
    """``coord status --json``'s entry for ``phase_id``."""
    return next(p for p in status(workspace)["phases"] if p["id"] == phase_id)


# --- checks every suite makes --------------------------------------------------------------------------------


def assert_calc_built(workspace: Path, server: ScriptedSSEServer,
                      result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The ``calc_phases`` run passed every phase and answered each script in full; returns the status report."""
    assert result.returncode == 0, result.stdout + result.stderr
    assert "return a + b" in (workspace / "src/calc.py").read_text()
    assert (workspace / "tests/test_calc.py").read_text().startswith("from src.calc import add")
    report = status(workspace)
    assert [p["state"] for p in report["phases"]] == ["passed"] * 3
    assert [len(server.requests_of(name)) for name in ("stub", "test", "impl")] == [3, 3, 3]
    return report


def assert_one_conversation(server: ScriptedSSEServer, script: str, summary: dict[str, Any]) -> None:
    """``script`` was answered in one conversation, the attempt's session, which completed with its last words."""
    conversations = {r.conversation for r in server.requests_of(script)}
    assert conversations == {summary["session_id"]} and UUID_RE.match(summary["session_id"])
    assert summary["completed"] is True and summary["error"] is None
    assert summary["last_message"] == server.scripts[script][-1].text


def assert_recorded(workspace: Path, report: dict[str, Any], phase_id: str, summary: dict[str, Any],
                    expected_cost: float) -> None:
    """The attempt's row in SQLite and the phase in ``status`` carry the summary's session, tokens and cost."""
    row = {r["phase_id"]: r for r in db_rows(workspace, "SELECT * FROM attempts")}[phase_id]
    assert (row["session_id"], row["input_tokens"], row["cached_input_tokens"], row["output_tokens"]) == (
        summary["session_id"], summary["input_tokens"], summary["cached_input_tokens"], summary["output_tokens"])
    assert row["cost_usd"] == pytest.approx(expected_cost)
    shown = next(p for p in report["phases"] if p["id"] == phase_id)
    assert shown["tokens"] == summary["input_tokens"] + summary["output_tokens"]
    assert shown["cost_usd"] == pytest.approx(expected_cost, abs=1e-6)


def assert_total_cost(workspace: Path, report: dict[str, Any]) -> None:
    """The report's total is the sum of the attempts' costs, above zero, and human ``coord status`` shows it."""
    rows = {r["phase_id"]: r for r in db_rows(workspace, "SELECT * FROM attempts")}
    total = sum(r["cost_usd"] for r in rows.values())
    assert report["totals"]["cost_usd"] == pytest.approx(total, abs=1e-6) and total > 0
    human = coord(workspace, "status")
    assert human.returncode == 0 and f"${total:.2f}" in human.stdout


def assert_resumed(workspace: Path, server: ScriptedSSEServer, result: subprocess.CompletedProcess[str],
                   resume_flag: str) -> tuple[dict[str, Any], dict[str, Any], list[Any]]:
    """P02's first attempt failed ``test -f fixed.txt`` and its second, resuming the same session (``resume_flag
    SESSION`` in its argv), passed; returns both attempts' summaries and the impl script's requests."""
    assert result.returncode == 0, result.stdout + result.stderr
    assert "verification `test -f fixed.txt` exited 1" in result.stdout
    evidence = attempt_file(workspace, "P02", 1, "evidence.json")
    assert evidence["verdict"] == "FAIL" and "test -f fixed.txt" in evidence["reason"]
    one, two = (attempt_file(workspace, "P02", n, "summary.json") for n in (1, 2))
    assert UUID_RE.match(one["session_id"]) and two["session_id"] == one["session_id"]
    spec = attempt_file(workspace, "P02", 2, "spec.json")
    assert spec["argv"][spec["argv"].index(resume_flag) + 1] == one["session_id"]
    assert attempt_file(workspace, "P02", 2, "evidence.json")["verdict"] == "PASS"
    # The model saw one conversation.
    requests = server.requests_of("impl")
    assert [r.conversation for r in requests] == [one["session_id"]] * 4
    return one, two, requests


def assert_remediated_once(workspace: Path, one: dict[str, Any], two: dict[str, Any]) -> None:
    """P02 took two attempts, one of them a remediation, and its cost is theirs added up."""
    p02 = phase_status(workspace, "P02")
    assert p02["attempts"] == 2 and p02["remediations"] == 1
    assert p02["cost_usd"] == pytest.approx(one["cost_usd"] + two["cost_usd"], abs=1e-6)


def assert_hung(workspace: Path, result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """P02 (``HANG_POLICY``) was called hung after its three poll cycles and stopped; returns its ``exit.json``."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert "poll cycle 3/3" in result.stdout
    evidence = attempt_file(workspace, "P02", 1, "evidence.json")
    assert evidence["verdict"] == "FAIL" and "hung" in evidence["reason"]
    exit_record = attempt_file(workspace, "P02", 1, "exit.json")
    assert exit_record["stop_request"] == "hung"
    return exit_record


def assert_hung_worker_gone(workspace: Path, server: ScriptedSSEServer) -> None:
    """The hung attempt's one request was its session's, no process of it is left, and the run stopped there."""
    [request] = server.requests_of("impl")
    summary = attempt_file(workspace, "P02", 1, "summary.json")
    assert summary["session_id"] == request.conversation and summary["completed"] is False
    attempt_id = db_rows(workspace, "SELECT attempt_id FROM attempts WHERE phase_id='P02'")[0]["attempt_id"]
    assert processes_with_cookie("COORD_ATTEMPT_ID", attempt_id) == []
    assert_blocked_at_impl(workspace)
    assert server.requests_of("verify") == []


def failed_attempts(workspace: Path, server: ScriptedSSEServer,
                    result: subprocess.CompletedProcess[str]) -> Iterator[tuple[int, dict[str, Any], dict[str, Any]]]:
    """P02's two attempts (max_attempts 2, fresh sessions) each made one request, the agent retrying nothing, and
    failed their exit check; yields each one's number, summary and exit check."""
    assert result.returncode == 1, result.stdout + result.stderr
    requests = server.requests_of("impl")
    assert len(requests) == 2 and len({r.conversation for r in requests}) == 2
    for number in (1, 2):
        summary = attempt_file(workspace, "P02", number, "summary.json")
        evidence = attempt_file(workspace, "P02", number, "evidence.json")
        exit_check = next(c for c in evidence["checks"] if c["name"] == "exit")
        assert evidence["verdict"] == "FAIL" and exit_check["status"] == "fail"
        yield number, summary, exit_check


def assert_blocked_at_impl(workspace: Path, reason: str | None = None) -> None:
    """P01 passed, P02 is blocked (its reason containing ``reason``, if given) and P03 never started."""
    states = {p["id"]: p["state"] for p in status(workspace)["phases"]}
    assert states == {"P01": "passed", "P02": "blocked", "P03": "pending"}
    if reason is not None:
        assert reason in phase_status(workspace, "P02")["reason"]


def run_until_parked(workspace: Path, plan: Path, phase_id: str = "P02") -> dict[str, Any]:
    """Run the plan in the background until ``phase_id`` waits on a usage limit; stop the coordinator and return
    the phase's ``coord status --json`` entry, after checking what every park records."""
    from tests.helpers import start_coord, status_if_recorded, wait_until

    run = start_coord(workspace, "run", str(plan), "--headless")
    try:
        wait_until(lambda: "waiting" in [p["state"] for p in (status_if_recorded(workspace) or {"phases": []})[
            "phases"]], timeout=60)
        entry = phase_status(workspace, phase_id)
    finally:
        run.terminate()
        run.communicate(timeout=30)
    assert entry["reason"].startswith("waiting for the real usage limit to reset at "), entry["reason"]
    [row] = db_rows(workspace, "SELECT uncounted_attempts FROM phases WHERE phase_id=?", phase_id)
    assert row["uncounted_attempts"] == 1, "the limited attempt was counted against max_attempts"
    return entry
