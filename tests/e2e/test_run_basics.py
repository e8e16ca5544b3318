"""A plan run end to end through the real ``coord`` CLI, with the fake codex CLI as the model: the files of the
contract, verdicts and the phases they block, the prompt a worker gets, the budget, dangerous profiles, protected
files, and the plan checks made before anything runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT, VERIFY_FIXED, coord, db_rows, events, fake_agent, phase_status, status, write_plan

pytestmark = pytest.mark.slow


def test_passing_plan_records_every_file_of_the_contract(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "stub", "title": "stub", "instructions": "[[fake:pass]] write the stub"},
        {"id": "P01a", "kind": "verify", "title": "check stub", "instructions": "[[fake:pass]]"},
        {"id": "P02", "kind": "impl", "title": "impl", "instructions": "[[fake:pass]]",
         "verify": [VERIFY_FIXED]},
    ], agents=fake_agent(FAKE_CODEX_WRITE="fixed.txt=yes"))

    result = coord(workspace, "run", str(plan), "--headless")

    assert result.returncode == 0, result.stdout + result.stderr
    report = status(workspace)
    assert [p["state"] for p in report["phases"]] == ["passed"] * 3
    assert report["totals"]["passed"] == 3
    pid_lines = (workspace / "tmp" / "PLAN-T" / "worker-pids.txt").read_text().splitlines()
    assert [line.split()[0] for line in pid_lines] == ["P01", "P01a", "P02"]
    assert all(" PID: " in line and " attempt 1 " in line for line in pid_lines)
    attempt = workspace / "tmp" / "PLAN-T" / "P02" / "1"
    for name in ("prompt.md", "worker.log", "identity.json", "exit.json", "summary.json", "evidence.json"):
        assert (attempt / name).is_file(), name
    assert json.loads((attempt / "exit.json").read_text())["exit_code"] == 0
    summary = json.loads((attempt / "summary.json").read_text())
    assert summary["session_id"] and summary["completed"] is True
    evidence = json.loads((attempt / "evidence.json").read_text())
    assert evidence["verdict"] == "PASS"
    assert {c["name"] for c in evidence["checks"]} >= {"exit", "report", "completed", "verify[0]"}
    # Plan runs learn of an end by the socket push and exit.json; signal files are for `coord wait` only.
    assert not (workspace / "tmp" / "PLAN-T" / ".signals").exists()
    types = [e["type"] for e in events(workspace)]
    assert types.count("attempt_launched") == 3 and types[-1] == "run_finished"


def test_blocked_phase_stops_its_dependents_and_exits_1(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "always fails", "instructions": "[[fake:fail]]"},
        {"id": "P02", "kind": "verify", "title": "after", "instructions": "[[fake:pass]]"},
        {"id": "P03", "kind": "verify", "title": "independent", "instructions": "[[fake:pass]]", "depends_on": []},
    ])

    result = coord(workspace, "run", str(plan))

    assert result.returncode == 1
    states = {p["id"]: p["state"] for p in status(workspace)["phases"]}
    assert states == {"P01": "blocked", "P02": "pending", "P03": "passed"}
    assert len(db_rows(workspace, "SELECT * FROM attempts WHERE phase_id='P01'")) == 2
    assert db_rows(workspace, "SELECT * FROM attempts WHERE phase_id='P02'") == []


def test_D11_completion_is_found_by_polling_without_the_socket(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "stub", "title": "stub", "instructions": "[[fake:pass]]"},
    ])

    result = coord(workspace, "run", str(plan), "--no-socket")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "polling" in (workspace / "tmp/PLAN-T/P01/1/worker.log").read_text()


def test_F4_prompt_over_128_kib_reaches_the_worker(workspace: Path, tmp_path: Path) -> None:
    record = tmp_path / "record"
    big = "[[fake:pass]]\n" + ("x" * 199 + "\n") * 1000
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "stub", "title": "big", "instructions": big},
    ], agents=fake_agent(FAKE_CODEX_RECORD_DIR=str(record)))

    result = coord(workspace, "run", str(plan))

    assert result.returncode == 0, result.stderr
    [call] = [json.loads(p.read_text()) for p in record.glob("*.json")]
    assert big in call["stdin"]
    assert call["stdin"] == (workspace / "tmp/PLAN-T/P01/1/prompt.md").read_text()


def test_invalid_plan_is_refused_before_any_state_exists(workspace: Path) -> None:
    """Everything is validated before any side effect: exit 2 and no `tmp/` (I8)."""
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "stub", "title": "a", "instructions": "x", "depends_on": ["P99"]},
    ])

    result = coord(workspace, "run", str(plan))

    assert result.returncode == 2
    assert "plans/PLAN-T.yaml:" in result.stderr and "P99" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (workspace / "tmp").exists()


def test_demo_plan_passes_with_one_remediation(workspace: Path) -> None:
    shutil.copytree(REPO_ROOT / "plans", workspace / "plans")
    (workspace / "tests" / "fixtures").mkdir(parents=True)  # the demo's MCP server
    shutil.copy(REPO_ROOT / "tests" / "fixtures" / "mcp_server.py", workspace / "tests" / "fixtures")

    result = coord(workspace, "run", "plans/PLAN-DEMO.yaml")

    assert result.returncode == 0, result.stdout + result.stderr
    report = status(workspace)
    assert [p["state"] for p in report["phases"]] == ["passed"] * 6
    assert report["totals"]["remediations"] == 1
    assert phase_status(workspace, "P03")["attempts"] == 2
    human = coord(workspace, "status")
    assert "1 remediation" in human.stdout
    # The allow-listed phase ran its commands as argv, no shell; the MCP phase's tool wrote the release note.
    packaged = json.loads((workspace / "tmp" / "PLAN-DEMO" / "P05" / "1" / "commands.json").read_text())
    assert [command["argv"][0] for command in packaged["commands"]] == ["mkdir", "cp", "python3"]
    assert "calc.add is implemented" in (workspace / "tmp" / "demo" / "RELEASE.md").read_text()


def test_budget_stops_launching_and_says_why(workspace: Path) -> None:
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "stub", "title": "a", "instructions": "[[fake:pass]]"},
        {"id": "P02", "kind": "impl", "title": "b", "instructions": "[[fake:pass]]"},
        {"id": "P03", "kind": "verify", "title": "c", "instructions": "[[fake:pass]]"},
    ], budget={"max_tokens": 1000})

    result = coord(workspace, "run", str(plan))

    assert result.returncode == 1
    assert "token budget reached" in result.stdout and "launching nothing more" in result.stdout
    states = {p["id"]: p["state"] for p in status(workspace)["phases"]}
    assert states == {"P01": "passed", "P02": "pending", "P03": "pending"}


def test_dangerous_profile_prints_a_banner_and_only_then_bypasses_the_sandbox(workspace: Path, tmp_path: Path) -> None:
    record = tmp_path / "record"
    agents = {
        "fake": {"base": "codex", "binary": str(REPO_ROOT / "tests" / "fakes" / "codex"), "sandbox": "workspace-write",
                 "env": {"FAKE_CODEX_RECORD_DIR": str(record)}},
        "yolo": {"base": "codex", "binary": str(REPO_ROOT / "tests" / "fakes" / "codex"),
                 "sandbox": "danger-full-access", "dangerous": True, "env": {"FAKE_CODEX_RECORD_DIR": str(record)}},
    }
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "stub", "title": "safe", "instructions": "[[fake:pass]]"},
        {"id": "P02", "kind": "impl", "title": "unsafe", "instructions": "[[fake:pass]]", "agent": "yolo"},
    ], agents=agents)

    result = coord(workspace, "run", str(plan))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING: agent profile 'yolo' runs codex with --dangerously-bypass-approvals-and-sandbox" in result.stdout
    calls = {call["env"].get("COORD_PHASE_ID"): call["argv"]
             for call in (json.loads(p.read_text()) for p in record.glob("*.json"))}
    assert "--dangerously-bypass-approvals-and-sandbox" in calls["P02"]
    assert "--dangerously-bypass-approvals-and-sandbox" not in calls["P01"]
    assert calls["P01"][calls["P01"].index("-s") + 1] == "workspace-write"


def test_D9_socket_works_under_a_very_deep_workspace(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60) / ("f" * 60)
    deep.mkdir(parents=True)
    plan = write_plan(deep, [{"id": "P01", "kind": "stub", "title": "x", "instructions": "[[fake:pass]]"}])
    assert len(str(deep)) > 120

    result = coord(deep, "run", str(plan), "--headless")

    assert result.returncode == 0, result.stdout + result.stderr
    log = (deep / "tmp/PLAN-T/P01/1/worker.log").read_text()
    assert "polling" not in log, "the supervisor's push reached the coordinator"


def test_worker_that_edits_protected_tests_is_judged_fail_even_when_verification_passes(workspace: Path) -> None:
    (workspace / "tests").mkdir()
    (workspace / "tests" / "test_calc.py").write_text("assert add(2, 3) == 5\n")
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "cheats", "instructions": "[[fake:pass]]",
         "protected": ["tests/*.py"], "verify": [VERIFY_FIXED]},
    ], policy={"max_attempts": 1},
        agents=fake_agent(FAKE_CODEX_WRITE="fixed.txt=yes\ntests/test_calc.py=pass  # weakened"))

    prompt = coord(workspace, "render", str(plan), "P01")
    result = coord(workspace, "run", str(plan))

    assert "## Files you must not change" in prompt.stdout and "- `tests/*.py`" in prompt.stdout
    assert result.returncode == 1
    evidence = json.loads((workspace / "tmp/PLAN-T/P01/1/evidence.json").read_text())
    checks = {check["name"]: check for check in evidence["checks"]}
    assert checks["verify[0]"]["status"] == "pass"
    assert checks["protected"]["status"] == "fail"
    assert evidence["reason"] == "the worker changed protected files: tests/test_calc.py (changed)"


def test_protected_files_left_alone_pass_the_check(workspace: Path) -> None:
    (workspace / "tests").mkdir()
    (workspace / "tests" / "test_calc.py").write_text("assert add(2, 3) == 5\n")
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": "honest", "instructions": "[[fake:pass]]",
         "protected": ["tests/*.py"], "verify": [VERIFY_FIXED]},
    ], agents=fake_agent(FAKE_CODEX_WRITE="fixed.txt=yes"))

    result = coord(workspace, "run", str(plan))

    assert result.returncode == 0, result.stdout + result.stderr
    evidence = json.loads((workspace / "tmp/PLAN-T/P01/1/evidence.json").read_text())
    protected_check = next(check for check in evidence["checks"] if check["name"] == "protected")
    assert (protected_check["status"], protected_check["detail"]) == ("pass", "1 protected file(s) unchanged")


def test_E8_shell_metacharacters_in_plan_text_reach_the_worker_literally(workspace: Path, tmp_path: Path) -> None:
    """Free text of a plan (title, instructions) carrying shell syntax is accepted, reaches the worker only as its
    prompt on stdin, byte for byte, and nothing of it runs (I9)."""
    record = tmp_path / "record"
    hostile = ["P01;touch PWNED", "$(touch PWNED)", "`touch PWNED`", "a && touch PWNED || b", "'\"; touch PWNED #",
               "${IFS}touch${IFS}PWNED", "\\$(touch PWNED)\\"]
    title = "title " + " ".join(hostile)
    instructions = "[[fake:pass]]\n" + "\n".join(hostile) + "\n"
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": title, "instructions": instructions},
    ], agents=fake_agent(FAKE_CODEX_RECORD_DIR=str(record)))

    result = coord(workspace, "run", str(plan))

    assert result.returncode == 0, result.stdout + result.stderr
    [call] = [json.loads(p.read_text()) for p in record.glob("*.json")]
    assert title in call["stdin"] and instructions in call["stdin"]
    assert not any(value in argument for argument in call["argv"] for value in hostile), call["argv"]
    assert not list(workspace.rglob("PWNED")) and not list(tmp_path.rglob("PWNED"))


def test_F5_a_prompt_that_looks_like_an_option_is_never_taken_as_one(workspace: Path, tmp_path: Path) -> None:
    """A phase whose title and instructions are agent-CLI options: the worker gets them as prompt text on stdin,
    and its command line carries no such flag."""
    record = tmp_path / "record"
    flag = "--dangerously-bypass-approvals-and-sandbox"
    plan = write_plan(workspace, [
        {"id": "P01", "kind": "impl", "title": f"{flag} -s danger-full-access",
         "instructions": f"{flag}\n[[fake:pass]]"},
    ], agents=fake_agent(FAKE_CODEX_RECORD_DIR=str(record)))
    (workspace / "templates").mkdir()
    (workspace / "templates" / "impl.md.j2").write_text("{{ phase.instructions }}\n{{ phase.title }}\n")

    result = coord(workspace, "run", str(plan))

    assert result.returncode == 0, result.stdout + result.stderr
    [call] = [json.loads(p.read_text()) for p in record.glob("*.json")]
    assert call["stdin"].startswith(flag), call["stdin"][:200]
    assert flag not in call["argv"] and "danger-full-access" not in call["argv"], call["argv"]
    assert "WARNING" not in result.stdout


def test_a_burst_of_quick_workers_all_launch_and_pass(workspace: Path) -> None:
    # Forty phases at once whose workers end at once: a supervisor may be gone before the loop has read its
    # identity, and every attempt must still be recorded as launched, then judged, exactly once.
    phases = [{"id": f"P{index:02d}", "kind": "impl", "depends_on": [], "script": ["true"]} for index in range(40)]
    plan = write_plan(workspace, phases, agent="shell", checks={"report": False, "completed": False})

    result = coord(workspace, "run", str(plan), "--headless", "--max-parallel", "40")

    assert result.returncode == 0, result.stdout + result.stderr
    attempts = db_rows(workspace, "SELECT phase_id, number, state FROM attempts")
    assert sorted((row["phase_id"], row["number"], row["state"]) for row in attempts) == [
        (f"P{index:02d}", 1, "passed") for index in range(40)]
    pid_lines = (workspace / "tmp" / "PLAN-T" / "worker-pids.txt").read_text().splitlines()
    assert len(pid_lines) == 40
