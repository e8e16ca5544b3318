"""Verdict checks (docs/design.md §9): status spellings, markers, verify commands, and judge() end to end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from coordinator.agents.base import AgentSummary
from coordinator.agents.codex import CodexAgent
from coordinator.judge.checks import JudgeInput, check_marker, judge
from coordinator.judge.report_text import find_placeholders, names_phase, parse_status
from coordinator.judge.verify_commands import run_verify
from coordinator.plan.model import AgentProfile, Checks, Phase, VerifyCommand
from tests.helpers import SHARED_REAL_PLANS, processes_with_cookie

REAL_PLANS = SHARED_REAL_PLANS  # ../shared/real-plans beside the checkout; the tests that read it skip without it
GOOD_MARKER = "Phase: P01\nCompleted: 2026-11-24 08:00\nVerification:\n- `pytest -q`\n```text\n3 passed\n```\n"


# ---- parse_status -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("Status: PASS", "pass"),
    ("STATUS: PASS\n", "pass"),
    ("status: pass", "pass"),
    ("# Report\n\n**Status**: FAIL - tests still red\n", "fail"),
    ("**Status:** PASS", "pass"),
    ("**Verdict**: FAIL - Phase 08 BLOCKED", "fail"),
    ("Result: **PASS**", "pass"),
    ("Result: **PASS** (after fixes)", "pass"),
    ("Verdict: PASS", "pass"),
    ("## Status\nPASS\n", "pass"),
    ("## Status\n\nFAIL: lint errors\n", "fail"),
    ("## Verdict\n\nPASS - may proceed to P04a.", "pass"),
    ("## Status: PASS", "pass"),
    ("- Status: ✅ Complete", "pass"),
    ("**Status**: ✅ COMPLETE - All 48 tests passing", "pass"),
    ("**Status**: ❌ tests failing", "fail"),
    ("- [x] build ✅\n- [x] tests ✅\n", "pass"),
    ("- build ✅\n- tests ❌\n", "fail"),
    ("| lint | ✅ |\n| test | ❌ |\n", "fail"),
    ("Status: failing as expected (runtime-scoped auth caching not yet implemented).", "pass"),
    ("- Result: Failed - CLI runtime isolation tests still failing as expected for phase verification.", "pass"),
    ("Status: FAIL - tests are not failing as expected", "fail"),
    ("Status: RESET_FOR_REDO", "fail"),
    ("Old content moved; RESET_FOR_REDO\nStatus: PASS", "fail"),
    ("Result: PARTIAL", "fail"),
    ("Status: BLOCKED - waiting on P05", "fail"),
    ("Status: NOT PASSING", "fail"),
    ("Status: PASS\nVerdict: FAIL - regression found", "fail"),
    ("Status: FAIL\n...remediated...\n**Final Verdict**: PASS", "pass"),
    ("Status: PASS\nLint status: fine\nStatus: FAIL - typecheck", "fail"),
    ("**Overall Status**: ✅ PASS", "pass"),
    ("**Verification Status**: **PASS**", "pass"),
    ("Status: GREEN", "pass"),
    ("Status: Complete with failures", "fail"),
    ("Status: COMPLETE with 0 failures", "pass"),
    ("# Phase 01 done\n\nEverything looks fine.", "unknown"),
    ("**Result**: All 55 tests FAIL with NOT_IMPLEMENTED errors (RED phase achieved)", "unknown"),
    ("Result: 10+ occurrences found", "unknown"),
    ("❌ Using Config as source of truth\n✅ Using runtime state", "unknown"),
    ("", "unknown"),
])
def test_parse_status_spellings(text: str, expected: str) -> None:
    assert parse_status(text) == expected


REAL_EXPECTATIONS = [
    ("20251027-stateless5/.completed/P07a.md", "fail"),  # a FAIL verdict stored as a completion marker
    ("20251027-stateless5/.completed/P11a.md", "pass"),
    ("20251027-stateless5/.completed/P04.md", "pass"),  # ✅ RED phase complete
    ("20251027-stateless5/.completed/P11.md", "pass"),  # a bare "❌ Using Config…" prose line is not a checklist
    ("20251018statelessprovider2/.completed/P17.md", "pass"),  # Status: failing as expected
    ("20251018statelessprovider2/.completed/P07a.md", "unknown"),
    ("20251018statelessprovider2/.completed/P14a.md", "pass"),
    ("issue1590/.completed/P03c-V.md", "pass"),
    ("issue1590/.completed/P07-V.md", "pass"),
    ("issue1590/.completed/P04c.md", "pass"),  # Status: GREEN
    ("20251023stateless4/.completed/P00.md", "unknown"),
    ("20251023stateless4/reports/P04-worker.md", "unknown"),  # real worker reports carry no status line
]


@pytest.mark.parametrize("relative, expected", REAL_EXPECTATIONS)
def test_parse_status_on_real_markers(relative: str, expected: str) -> None:
    path = REAL_PLANS / relative
    if not path.exists():
        pytest.skip(f"real plans not available at {REAL_PLANS}")
    assert parse_status(path.read_text(encoding="utf-8")) == expected


def test_real_markers_placeholders_and_names() -> None:
    if not REAL_PLANS.exists():
        pytest.skip(f"real plans not available at {REAL_PLANS}")
    base = REAL_PLANS / "20251018statelessprovider2" / ".completed"
    assert find_placeholders((base / "P07a.md").read_text())[0].startswith("$(npm test -- --run openai.stateless")
    # a quoted `$(date …)` inside an echo command is a command shown, not an unfilled output
    assert find_placeholders((base / "P18a.md").read_text()) == []
    for marker in sorted(REAL_PLANS.glob("*/.completed/P*.md")):
        assert names_phase(marker.read_text(encoding="utf-8"), marker.stem), marker


# ---- markers ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, found", [
    ("```text\n$(npm test -- --run openai.stub 2>&1)\n```", ["$(npm test -- --run openai.stub 2>&1)"]),
    ("- `$(npm run lint)`", ["$(npm run lint)"]),
    ("Verification:\n- <paste command outputs>", ["<paste command outputs>"]),
    ("Completed: YYYY-MM-DD HH:MM", ["YYYY-MM-DD", "HH:MM"]),
    ("Timestamp: <TO_BE_FILLED>", ["<TO_BE_FILLED>"]),
    ('echo "Start timestamp: $(date +%s) Phase: P18a"', []),
    ("readTextFile(filePath: string): Promise<string>", []),
    ("Counter at $((N-1))", []),
    (GOOD_MARKER, []),
])
def test_find_placeholders(text: str, found: list[str]) -> None:
    assert find_placeholders(text) == found


@pytest.mark.parametrize("text, phase_id, named", [
    ("Phase: P07", "P07", True),
    ("<!-- @plan:PLAN-X.P07 -->", "P07", True),
    ("Phase: P07a", "P07", False),
    ("Verifier for P02a-V", "P02a", False),
    ("Phase: P02a-V", "P02a-V", True),
    ("# Phase 01: Package Scaffold — Completed", "P01", True),
    ("# Phase 1: scaffold", "P01", True),
    ("# Phase 10: later", "P01", False),
    ("Phase: P0.5", "P0.5", True),
    ("nothing here", "P01", False),
])
def test_names_phase(text: str, phase_id: str, named: bool) -> None:
    assert names_phase(text, phase_id) is named


def test_check_marker(tmp_path: Path) -> None:
    marker = tmp_path / ".completed" / "P01.md"
    assert check_marker(tmp_path, "P01", ".completed/P01.md").detail == "no completion marker at .completed/P01.md"
    marker.parent.mkdir()
    marker.write_text(GOOD_MARKER)
    good = check_marker(tmp_path, "P01", ".completed/P01.md")
    assert good.status == "pass" and good.path == ".completed/P01.md"
    marker.write_text(GOOD_MARKER.replace("P01", "P02"))
    assert "does not name phase P01" in check_marker(tmp_path, "P01", ".completed/P01.md").detail
    marker.write_text("Phase: P01\nCompleted: YYYY-MM-DD HH:MM\nVerification:\n- <paste command outputs>\n")
    result = check_marker(tmp_path, "P01", ".completed/P01.md")
    assert result.status == "fail"
    assert result.detail == ("completion marker .completed/P01.md has unfilled placeholders: `YYYY-MM-DD`, "
                             "`HH:MM`, `<paste command outputs>`")
    marker.write_text(GOOD_MARKER + "**Verdict**: FAIL - Phase 02 BLOCKED\n")
    assert "says FAIL" in check_marker(tmp_path, "P01", ".completed/P01.md").detail


# ---- verify commands ----------------------------------------------------------------------------------------


def verify(tmp_path: Path, run: str, index: int = 0, **kw: object):
    attempt_dir = tmp_path / "tmp" / "PLAN-T" / "P01" / "1"
    return run_verify(VerifyCommand(run=run, **kw), index, workspace=tmp_path, workdir=tmp_path,
                      attempt_dir=attempt_dir)


def test_verify_expect_pass(tmp_path: Path) -> None:
    ok = verify(tmp_path, "true")
    assert (ok.name, ok.status, ok.exit_code, ok.argv) == ("verify[0]", "pass", 0, ("true",))
    assert ok.detail == "verification `true` exited 0 (expected pass)"
    assert ok.path == "tmp/PLAN-T/P01/1/verify-0.log"
    bad = verify(tmp_path, "sh -c 'echo broken >&2; exit 4'", 1)
    assert (bad.status, bad.exit_code) == ("fail", 4)
    assert bad.detail == "verification `sh -c 'echo broken >&2; exit 4'` exited 4 (expected pass)"
    assert bad.output_tail == "broken\n"
    assert (tmp_path / "tmp/PLAN-T/P01/1/verify-1.log").read_text() == "broken\n"


def test_verify_expect_fail(tmp_path: Path) -> None:
    assert verify(tmp_path, "false", expect="fail").status == "pass"
    wrong = verify(tmp_path, "true", expect="fail")
    assert wrong.status == "fail" and wrong.detail == "verification `true` exited 0 (expected fail)"


def test_verify_splits_without_a_shell(tmp_path: Path) -> None:
    result = verify(tmp_path, "echo 'a; b' $HOME `x` > out")
    assert result.status == "pass"
    assert result.output_tail == "a; b $HOME `x` > out\n"
    assert not (tmp_path / "out").exists()
    piped = verify(tmp_path, "echo hi | tr a-z A-Z", shell="sh")
    assert piped.argv == ("/bin/sh", "-c", "echo hi | tr a-z A-Z") and piped.output_tail == "HI\n"


def test_verify_no_output_passes_only_a_silent_search(tmp_path: Path) -> None:
    (tmp_path / "src.ts").write_text("import x from '../old'\n")
    # grep exits 1 when nothing matches: that is the pass of a "Expected: ZERO hits" check
    clean = verify(tmp_path, "grep -rn '../new' src.ts", expect="no-output")
    assert (clean.status, clean.exit_code) == ("pass", 1)
    assert clean.detail == "verification `grep -rn '../new' src.ts` exited 1 (expected no output, exit 0 or 1)"
    found = verify(tmp_path, "grep -rn '../old' src.ts", expect="no-output")
    assert (found.status, found.exit_code) == ("fail", 0)
    assert found.detail.endswith("(expected no output, and it printed some)")
    assert found.output_tail == "1:import x from '../old'\n"
    # exit 2 is grep's own error (a missing folder), never a pass
    broken = verify(tmp_path, "grep -rn x missing/", expect="no-output")
    assert (broken.status, broken.exit_code) == ("fail", 2)
    assert verify(tmp_path, "printf '  \\n'", expect="no-output", shell="sh").status == "pass"


def test_verify_bash_script_runs_whole_with_its_name(tmp_path: Path) -> None:
    script = "set -e\nfor n in {1..3}; do\n  echo \"step $n\"\ndone\nfalse\necho never\n"
    result = verify(tmp_path, script, shell="bash", name="3. Loop then fail")
    assert result.argv == ("bash", "-c", script)
    assert (result.status, result.exit_code) == ("fail", 1)
    assert result.output_tail == "step 1\nstep 2\nstep 3\n"
    assert result.detail == "verification `3. Loop then fail` (bash script, 6 lines) exited 1 (expected pass)"


def test_verify_gets_stdin_from_dev_null_and_the_extra_env(tmp_path: Path) -> None:
    attempt_dir = tmp_path / "a"
    result = run_verify(VerifyCommand(run='cat; echo "[$COORD_ATTEMPT_ID]"', shell="sh"), 0, workspace=tmp_path,
                        workdir=tmp_path, attempt_dir=attempt_dir, env={"COORD_ATTEMPT_ID": "abc"})
    assert result.output_tail == "[abc]\n"


def test_verify_unparseable_or_missing_command(tmp_path: Path) -> None:
    unbalanced = verify(tmp_path, "echo 'oops")
    assert unbalanced.status == "fail" and "cannot be parsed" in unbalanced.detail
    missing = verify(tmp_path, "/nonexistent/tool --flag")
    assert missing.status == "fail" and "could not start" in missing.detail


def test_B13_verify_timeout_kills_the_whole_group(tmp_path: Path) -> None:
    began = time.monotonic()
    result = verify(tmp_path, "sleep 30 & sleep 30; echo never", shell="sh", timeout=0.3)
    assert time.monotonic() - began < 3
    assert result.status == "fail"
    assert result.detail == "verification `sleep 30 & sleep 30; echo never` timed out after 0.3 s"
    # no_leaks (conftest) fails the test if either sleep survived


def test_verify_timeout_with_sigterm_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("coordinator.judge.verify_commands.KILL_GRACE", 0.2)
    script = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); " \
             "time.sleep(30)"
    result = run_verify(VerifyCommand(run=f"{sys.executable} -c \"{script}\"", timeout=0.5), 0, workspace=tmp_path,
                        workdir=tmp_path, attempt_dir=tmp_path / "a")
    assert result.status == "fail" and "timed out" in result.detail


def test_verify_kills_setsid_escapees(tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    script = ("import os, sys, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(30)\n    os._exit(0)\n"
              "print('left a child', flush=True)\n")
    (tmp_path / "escape.py").write_text(script)
    result = run_verify(VerifyCommand(run=f"{sys.executable} escape.py"), 0, workspace=tmp_path, workdir=tmp_path,
                        attempt_dir=tmp_path / "a", env={"MARK": marker})
    assert result.status == "pass"
    assert processes_with_cookie("MARK", marker) == []


def test_verify_output_tail_is_capped_with_a_note(tmp_path: Path) -> None:
    result = verify(tmp_path, f"{sys.executable} -c \"print('x' * 9999)\"")
    assert result.output_tail is not None
    first, rest = result.output_tail.split("\n", 1)
    assert first == "… 5904 earlier bytes in tmp/PLAN-T/P01/1/verify-0.log"
    assert len(rest.encode()) == 4096


# ---- judge --------------------------------------------------------------------------------------------------


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    monkeypatch.setenv("CODEX_HOME", str(tmp_path / "codex-home"))
    monkeypatch.delenv("FAKE_CODEX_SCENARIO", raising=False)
    monkeypatch.delenv("FAKE_CODEX_WRITE", raising=False)
    return workspace


def phase(*verify: VerifyCommand, checks: Checks | None = None) -> Phase:
    return Phase(id="P01", kind="impl", title="t", index=0, verify=verify, checks=checks or Checks())


def run_fake(fake: Path, workspace: Path, scenario: str, **env: str) -> tuple[int, AgentSummary, Path]:
    """Run the fake codex as the engine would (prompt on stdin, log in the attempt folder)."""
    attempt_dir = workspace / "tmp" / "PLAN-T" / "P01" / "1"
    attempt_dir.mkdir(parents=True, exist_ok=True)
    (attempt_dir / "prompt.md").write_text(f"work [[fake:{scenario}]]")
    full_env = {**os.environ, "COORD_ATTEMPT_ID": str(uuid.uuid4()), "COORD_PHASE_ID": "P01",
                "COORD_PLAN_ID": "PLAN-T", "COORD_ATTEMPT": "1",
                "COORD_REPORT_PATH": str(workspace / "reports" / "P01-worker.md"),
                "COORD_COMPLETED_PATH": str(workspace / ".completed" / "P01.md"), **env}
    argv = [str(fake), "exec", "--json", "--skip-git-repo-check", "-C", str(workspace), "-o",
            str(attempt_dir / "last-message.txt"), "-"]
    with open(attempt_dir / "prompt.md", "rb") as stdin, open(attempt_dir / "worker.log", "wb") as log:
        process = subprocess.Popen(argv, stdin=stdin, stdout=log, stderr=subprocess.STDOUT, env=full_env,
                                   cwd=workspace, start_new_session=True)
    try:
        rc = process.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise
    summary = CodexAgent(AgentProfile(name="codex", base="codex")).summarize(attempt_dir / "worker.log", attempt_dir)
    return rc, summary, attempt_dir


def judge_input(workspace: Path, the_phase: Phase, attempt_dir: Path, summary: AgentSummary, *,
                exit_code: int | None = 0, exit_signal: int | None = None, stop_reason: str | None = None,
                requires_completed_turn: bool = True, expected_session: str | None = None) -> JudgeInput:
    return JudgeInput(workspace=workspace, phase=the_phase, workdir=workspace, attempt_dir=attempt_dir,
                      report_path="reports/P01-worker.md", completed_path=".completed/P01.md", exit_code=exit_code,
                      exit_signal=exit_signal, stop_reason=stop_reason, summary=summary,
                      requires_completed_turn=requires_completed_turn, expected_session=expected_session)


def test_judge_pass_end_to_end(ws: Path, fake_codex: Path) -> None:
    rc, summary, attempt_dir = run_fake(fake_codex, ws, "pass", FAKE_CODEX_WRITE="built.txt=ok")
    verdict = judge(judge_input(ws, phase(VerifyCommand(run="test -f built.txt")), attempt_dir, summary,
                                exit_code=rc))
    assert verdict.passed, verdict.to_dict()
    assert verdict.reason == "all checks passed"
    assert [(c.name, c.status) for c in verdict.checks] == [
        ("exit", "pass"), ("report", "pass"), ("completed", "pass"), ("verify[0]", "pass")]


def test_judge_lie_is_fail_naming_the_verify_command(ws: Path, fake_codex: Path) -> None:
    rc, summary, attempt_dir = run_fake(fake_codex, ws, "lie", FAKE_CODEX_WRITE="built.txt=ok")
    verdict = judge(judge_input(ws, phase(VerifyCommand(run="test -f built.txt")), attempt_dir, summary,
                                exit_code=rc))
    assert not verdict.passed
    assert verdict.reason == "worker reported PASS; verification `test -f built.txt` exited 1 (expected pass)"
    assert [c.status for c in verdict.checks] == ["pass", "pass", "pass", "fail"]


def test_judge_fail_report_and_error_turn(ws: Path, fake_codex: Path) -> None:
    rc, summary, attempt_dir = run_fake(fake_codex, ws, "fail")
    verdict = judge(judge_input(ws, phase(), attempt_dir, summary, exit_code=rc))
    assert not verdict.passed
    assert verdict.reason.startswith("report reports/P01-worker.md says FAIL: Status: FAIL - 1 test failing")
    rc, summary, attempt_dir = run_fake(fake_codex, ws, "error")
    verdict = judge(judge_input(ws, phase(), attempt_dir, summary, exit_code=rc))
    assert verdict.reason == "worker exited 1: stream disconnected before completion: synthetic failure"


def test_B2_judge_missing_report_runs_every_check(ws: Path, fake_codex: Path) -> None:
    rc, summary, attempt_dir = run_fake(fake_codex, ws, "no_report")
    verdict = judge(judge_input(ws, phase(VerifyCommand(run="true")), attempt_dir, summary, exit_code=rc))
    assert verdict.reason == "no report at reports/P01-worker.md (exit 0)"
    assert [(c.name, c.status) for c in verdict.checks] == [
        ("exit", "pass"), ("report", "fail"), ("completed", "fail"), ("verify[0]", "pass")]


def test_judge_exit_0_without_turn_completed(ws: Path) -> None:
    verdict = judge(judge_input(ws, phase(), ws, AgentSummary(completed=False)))
    assert verdict.checks[0].detail == "worker exited 0 without completing its turn"
    shell_like = judge(judge_input(ws, phase(), ws, AgentSummary(completed=False), requires_completed_turn=False))
    assert shell_like.checks[0].status == "pass"


def test_judge_hung_skips_the_rest(ws: Path) -> None:
    the_phase = phase(VerifyCommand(run="true"))
    verdict = judge(judge_input(ws, the_phase, ws, AgentSummary(), exit_code=None, exit_signal=9,
                                stop_reason="hung"))
    assert verdict.reason == "hung: still running after 6 poll cycles"
    assert [c.status for c in verdict.checks] == ["fail", "skipped", "skipped", "skipped"]
    custom = judge(judge_input(ws, the_phase, ws, AgentSummary(), exit_code=None, exit_signal=15,
                               stop_reason="hung: no output for 3 poll cycles (0.6 s)"))
    assert custom.reason == "hung: no output for 3 poll cycles (0.6 s)"
    stopped = judge(judge_input(ws, the_phase, ws, AgentSummary(), exit_code=None, stop_reason="stopped"))
    assert stopped.reason == "stopped by a person"


def test_judge_killed_by_signal(ws: Path, fake_codex: Path) -> None:
    rc, summary, attempt_dir = run_fake(fake_codex, ws, "crash")
    assert rc == -signal.SIGKILL
    verdict = judge(judge_input(ws, phase(), attempt_dir, summary, exit_code=None, exit_signal=signal.SIGKILL))
    assert verdict.reason == "killed by SIGKILL (possibly out of memory)"
    assert verdict.checks[1].detail == "no report at reports/P01-worker.md (killed by SIGKILL)"


def test_judge_resumed_session_must_match(ws: Path) -> None:
    summary = AgentSummary(session_id="new-thread", completed=True)
    verdict = judge(judge_input(ws, phase(), ws, summary, expected_session="old-thread"))
    assert verdict.reason == "resumed session returned thread new-thread, expected old-thread"


def test_judge_checks_off_are_recorded(ws: Path, fake_codex: Path) -> None:
    rc, summary, attempt_dir = run_fake(fake_codex, ws, "no_report")
    off = Checks(report=False, completed=False, verify=False)
    verdict = judge(judge_input(ws, phase(VerifyCommand(run="false"), checks=off), attempt_dir, summary,
                                exit_code=rc))
    assert verdict.passed
    assert [(c.name, c.status) for c in verdict.checks] == [
        ("exit", "pass"), ("report", "off"), ("completed", "off"), ("verify[0]", "off")]
    assert not (attempt_dir / "verify-0.log").exists()


def test_judge_refuses_a_report_symlinked_out_of_the_workspace(ws: Path, fake_codex: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("Status: PASS\ntop secret\n")
    rc, summary, attempt_dir = run_fake(fake_codex, ws, "symlink_report", FAKE_CODEX_SYMLINK_TARGET=str(secret))
    assert (ws / "reports" / "P01-worker.md").is_symlink()
    verdict = judge(judge_input(ws, phase(), attempt_dir, summary, exit_code=rc))
    assert not verdict.passed
    assert verdict.reason == "report reports/P01-worker.md resolves outside the workspace"
    assert "secret" not in str(verdict.to_dict())


def test_judge_marker_symlink_inside_the_workspace_is_read(ws: Path) -> None:
    (ws / "real.md").write_text(GOOD_MARKER)
    (ws / ".completed").mkdir()
    (ws / ".completed" / "P01.md").symlink_to(ws / "real.md")
    (ws / "reports").mkdir()
    (ws / "reports" / "P01-worker.md").write_text("Status: PASS\n")
    verdict = judge(judge_input(ws, phase(), ws, AgentSummary(completed=True)))
    assert verdict.passed, verdict.reason
