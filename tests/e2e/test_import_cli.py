"""``coord import`` from the shell (issue 5): real llxprt-code phase plans imported with their existing evidence,
then validated, shown by ``status``, rendered and run; and the spec-kit and Taskmaster fixtures.

The real plans are read from ``../shared/real-plans``; without that folder the tests that need it skip with one
line. Each test copies the plan folder it needs into a fresh workspace under ``project-plans/<name>/``, as a user's
repository holds it. The readers alone are tested in ``tests/unit/plan/test_importers.py``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from coordinator.judge.report_text import find_placeholders
from coordinator.plan.importers import import_plan
from tests.helpers import FAKES, FIXTURES_DIR, I1587, S4, S5, SP2, add_plan, coord, db_rows, status
from tests.helpers import imported_phase as phase

FIXTURES = FIXTURES_DIR / "import"


# ---- the command: import, validate, status, render, run --------------------------------------------------


@pytest.mark.slow
def test_import_with_progress_resumes_issue1587_at_p04(real_plans: Path, workspace: Path) -> None:
    add_plan(workspace, real_plans, I1587)

    result = coord(workspace, "import", f"project-plans/{I1587}", "--with-progress")

    assert result.returncode == 0, result.stderr
    assert "plans/PLAN-20260608-ISSUE1587.yaml: plan PLAN-20260608-ISSUE1587, 8 phases" in result.stdout
    assert "existing evidence: 4/8 phases passed; resumes at P04" in result.stdout
    assert "coord import: warning: project-plans/issue1587 has no reports/ folder" in result.stderr
    assert coord(workspace, "validate", "plans/PLAN-20260608-ISSUE1587.yaml").returncode == 0
    report = status(workspace, "PLAN-20260608-ISSUE1587")
    states = {item["id"]: (item["state"], item["verdict"], item["verdict_source"]) for item in report["phases"]}
    assert states == {
        **{pid: ("passed", "PASS", "existing-evidence") for pid in ("P00a", "P01", "P02", "P03")},
        **{pid: ("pending", None, None) for pid in ("P04", "P05", "P06", "P07")},
    }
    table = coord(workspace, "status", "PLAN-20260608-ISSUE1587")
    # the table may shorten the column ("PASS (existing-evidenc…") when stdout is not a terminal
    assert table.returncode == 0 and "PASS (existing-evid" in table.stdout
    audit = [json.loads(line) for line in
             (workspace / "tmp" / "PLAN-20260608-ISSUE1587" / "events.jsonl").read_text().splitlines()]
    assert [event["type"] for event in audit].count("existing_evidence") == 4
    assert audit[-1]["type"] == "plan_imported" and audit[-1]["data"]["resume_at"] == "P04"


@pytest.mark.slow
def test_plan_that_began_keeping_reports_midway_resumes_at_its_first_failed_verdict(
        real_plans: Path, workspace: Path) -> None:
    # stateless4 keeps reports for P04–P05a only: the earlier phases pass on their markers, and P04a's report
    # records a blocked verification, which is a FAIL whatever its marker says.
    add_plan(workspace, real_plans, S4)

    result = coord(workspace, "import", f"project-plans/{S4}", "--with-progress")

    assert result.returncode == 0, result.stderr
    assert "existing evidence: 9/22 phases passed; resumes at P04a" in result.stdout
    phases = {item["id"]: item for item in status(workspace, "PLAN-20251023-STATELESS-HARDENING")["phases"]}
    assert [pid for pid, item in phases.items() if item["state"] == "passed"] == [
        "P00", "P00a", "P01", "P01a", "P02", "P02a", "P03", "P03a", "P04"]
    assert phases["P04a"]["verdict"] == "FAIL" and "reports/P04a-worker.md says FAIL" in phases["P04a"]["reason"]
    assert phases["P06a"]["verdict"] == "FAIL" and ".completed/P06a.md says FAIL" in phases["P06a"]["reason"]


@pytest.mark.slow
def test_fail_marker_and_placeholders_are_not_a_pass(real_plans: Path, workspace: Path) -> None:
    add_plan(workspace, real_plans, S5)
    add_plan(workspace, real_plans, SP2)

    s5 = coord(workspace, "import", f"project-plans/{S5}", "--with-progress")
    sp2 = coord(workspace, "import", f"project-plans/{SP2}", "--with-progress")

    assert s5.returncode == 0 and sp2.returncode == 0, s5.stderr + sp2.stderr
    assert "resumes at P07a" in s5.stdout and "P07a: FAIL from existing evidence" in s5.stdout
    phases = {item["id"]: item for item in status(workspace, "PLAN-20251027-STATELESS5")["phases"]}
    assert phases["P07"]["state"] == "passed"
    assert (phases["P07a"]["state"], phases["P07a"]["verdict"], phases["P07a"]["verdict_source"]) == (
        "pending", "FAIL", "existing-evidence")
    assert "**Verdict**: FAIL - Phase 08 BLOCKED" in phases["P07a"]["reason"]
    # P08's marker says COMPLETE, but it was built on a failed verification: not counted
    assert phases["P08"]["state"] == "pending" and "P07a before it has not passed" in phases["P08"]["reason"]

    assert "resumes at P05a" in sp2.stdout
    p05a = next(item for item in status(workspace, "PLAN-20251018-STATELESSPROVIDER2")["phases"]
                if item["id"] == "P05a")
    assert p05a["verdict"] == "FAIL" and "unfilled placeholders: `$(" in p05a["reason"]
    marker = (workspace / "project-plans" / SP2 / ".completed" / "P07a.md").read_text(encoding="utf-8")
    assert find_placeholders(marker)[0].startswith("$(npm test")


@pytest.mark.slow
def test_render_shows_the_authors_text(real_plans: Path, workspace: Path) -> None:
    add_plan(workspace, real_plans, SP2)
    assert coord(workspace, "import", f"project-plans/{SP2}").returncode == 0

    prompt = coord(workspace, "render", "plans/PLAN-20251018-STATELESSPROVIDER2.yaml", "P02")

    assert prompt.returncode == 0, prompt.stderr
    assert "Ensure tests intentionally fail with current implementation due to shared provider state" in prompt.stdout
    assert "`npm run test:multi-runtime` must fail (non-zero exit)" in prompt.stdout
    assert f"project-plans/{SP2}/.completed/P02.md" in prompt.stdout


@pytest.mark.slow
def test_imported_plan_runs_with_the_codex_agent_from_its_resume_point(real_plans: Path, workspace: Path) -> None:
    add_plan(workspace, real_plans, I1587)
    assert coord(workspace, "import", f"project-plans/{I1587}", "--with-progress").returncode == 0
    plan = workspace / "plans" / "PLAN-20260608-ISSUE1587.yaml"
    assert yaml.safe_load(plan.read_text())["agent"] == "codex"
    fake_on_path = {"PATH": f"{FAKES}{os.pathsep}{os.environ['PATH']}"}  # `codex` is the fake CLI

    result = coord(workspace, "run", "plans/PLAN-20260608-ISSUE1587.yaml", "--headless", env=fake_on_path)

    assert result.returncode == 0, result.stdout + result.stderr
    attempts = {row["phase_id"]: row["number"] for row in db_rows(workspace, "SELECT * FROM attempts")}
    assert attempts == {"P04": 1, "P05": 1, "P06": 1, "P07": 1}
    assert all(item["state"] == "passed" for item in status(workspace)["phases"])
    # progress is only seeded into a plan coord has not run
    again = coord(workspace, "import", f"project-plans/{I1587}", "--with-progress", "--force")
    assert again.returncode == 2 and "already has 4 attempt(s)" in again.stderr


@pytest.mark.slow
def test_folder_outside_the_workspace_is_refused(real_plans: Path, workspace: Path) -> None:
    result = coord(workspace, "import", str(real_plans / I1587))

    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "outside the workspace" in result.stderr and "project-plans/issue1587/" in result.stderr
    assert not (workspace / "plans").exists()


@pytest.mark.slow
def test_existing_plan_file_needs_force(real_plans: Path, workspace: Path) -> None:
    add_plan(workspace, real_plans, I1587)
    assert coord(workspace, "import", f"project-plans/{I1587}", "-o", "plans/mcp.yaml").returncode == 0

    again = coord(workspace, "import", f"project-plans/{I1587}", "-o", "plans/mcp.yaml")

    assert again.returncode == 2 and again.stderr.startswith("coord: plans/mcp.yaml: already exists")
    assert coord(workspace, "import", f"project-plans/{I1587}", "-o", "plans/mcp.yaml", "--force").returncode == 0


@pytest.mark.slow
def test_nothing_to_import_is_one_line_exit_2(workspace: Path) -> None:
    (workspace / "empty").mkdir()
    result = coord(workspace, "import", "empty")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "no plan found" in result.stderr


# ---- other public formats ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_speckit_tasks_md(workspace: Path) -> None:
    shutil.copytree(FIXTURES / "speckit" / "specs", workspace / "specs")
    folder = workspace / "specs" / "001-photo-albums"

    result = import_plan(folder, workspace)

    assert (result.format, result.plan_id, result.phase_ids) == ("spec-kit", "001-photo-albums",
                                                                 ["P01", "P02", "P03", "P04"])
    assert result.document["title"] == "Photo Albums"
    assert phase(result, "P03")["title"] == "User Story 1 - Create an album (Priority: P1) 🎯 MVP"
    assert "- [ ] T006 [US1] Implement AlbumService.create" in phase(result, "P03")["instructions"]
    assert result.progress is not None and [item.done for item in result.progress.values()] == [
        True, False, False, False]
    cli = coord(workspace, "import", "specs/001-photo-albums", "--with-progress")
    assert cli.returncode == 0, cli.stderr
    assert "resumes at P02" in cli.stdout
    assert [item["state"] for item in status(workspace, "001-photo-albums")["phases"]] == [
        "passed", "pending", "pending", "pending"]


@pytest.mark.slow
def test_taskmaster_tasks_json(workspace: Path) -> None:
    shutil.copytree(FIXTURES / "taskmaster" / ".taskmaster", workspace / ".taskmaster")

    result = import_plan(workspace, workspace)

    assert (result.format, result.plan_id, result.phase_ids) == ("taskmaster", "ws-master", ["T1", "T2", "T3", "T4"])
    assert [phase(result, pid)["depends_on"] for pid in result.phase_ids] == [[], ["T1"], ["T2"], ["T3"]]
    assert phase(result, "T4")["kind"] == "verify"  # type: checkpoint
    assert "- [x] 2.1 HTTP client with retries" in phase(result, "T2")["instructions"]
    assert "T3 depends on subtask 2.2; imported as a dependency on T2" in result.warnings
    assert "T3 depends on unknown task '9'; dependency dropped" in result.warnings
    cli = coord(workspace, "import", ".taskmaster/tasks/tasks.json", "--with-progress")
    assert cli.returncode == 0, cli.stderr
    assert coord(workspace, "validate", "plans/ws-master.yaml").returncode == 0
    assert [item["state"] for item in status(workspace, "ws-master")["phases"]] == [
        "passed", "pending", "pending", "pending"]


GREETING_PHASE = """# Phase 01: Greeting Implementation

## Phase ID

`PLAN-20261201-GREETING.P01`

## Verification Commands

### Automated Checks

```bash
# 1. The greeting is written
test -f src/greeting.txt
grep -q "hello" src/greeting.txt

# 2. No stale wording remains
# Expected: ZERO hits
grep -rn "goodbye" src
```
"""


@pytest.mark.slow
@pytest.mark.parametrize("greeting, verdict", [("hello world", "passed"), ("hello and goodbye", "blocked")])
def test_an_imported_phase_judges_a_right_and_a_wrong_worker(workspace: Path, greeting: str, verdict: str) -> None:
    folder = workspace / "project-plans" / "greeting"
    (folder / "plan").mkdir(parents=True)
    (folder / "plan" / "01-greeting-impl.md").write_text(GREETING_PHASE)
    (workspace / "src").mkdir()
    assert coord(workspace, "import", "project-plans/greeting").returncode == 0
    plan_file = workspace / "plans" / "PLAN-20261201-GREETING.yaml"
    document = yaml.safe_load(plan_file.read_text())
    # the two marked checks: the first a script (both lines must pass), the second a search that must find nothing
    assert [(item["name"], item.get("expect", "pass")) for item in document["phases"][0]["verify"]] == [
        ("1. The greeting is written", "pass"), ("2. No stale wording remains", "no-output")]
    # the worker is the shell agent: it writes the greeting and the completion marker, as a worker would
    document["agent"] = "shell"
    document["policy"] = {"max_attempts": 1}
    document["phases"][0]["script"] = [
        f"printf '%s\\n' '{greeting}' > src/greeting.txt",
        "mkdir -p project-plans/greeting/.completed",
        "printf 'Phase: P01\\nCompleted: 2026-12-01 10:00\\nVerification:\\n```text\\nok\\n```\\n'"
        " > project-plans/greeting/.completed/P01.md",
    ]
    plan_file.write_text(yaml.safe_dump(document, sort_keys=False))

    coord(workspace, "run", "plans/PLAN-20261201-GREETING.yaml", "--headless")

    (row,) = status(workspace)["phases"]
    assert row["state"] == verdict
    if verdict == "blocked":  # judged FAIL, and no attempt left
        evidence = json.loads(next((workspace / "tmp").rglob("evidence.json")).read_text())
        failing = [check for check in evidence["checks"] if check["status"] == "fail"]
        assert [check["name"] for check in failing] == ["verify[1]"]
        assert "`2. No stale wording remains`" in failing[0]["detail"]
        assert "(expected no output, and it printed some)" in failing[0]["detail"]


FAREWELL_PHASE = """# Phase 02: Farewell Implementation

## Phase ID

`PLAN-20261201-GREETING.P02`

## Verification Commands

```bash
test -f src/farewell.txt
```
"""
GOOD_P01_MARKER = "Phase: P01\nCompleted: 2026-11-30 10:00\nVerification:\n```text\nok\n```\n"


@pytest.mark.slow
def test_progress_on_existing_evidence_is_marked_until_verified(workspace: Path) -> None:
    folder = workspace / "project-plans" / "greeting"
    (folder / "plan").mkdir(parents=True)
    (folder / "plan" / "01-greeting-impl.md").write_text(GREETING_PHASE)
    (folder / "plan" / "02-farewell-impl.md").write_text(FAREWELL_PHASE)
    (folder / ".completed").mkdir()
    (folder / ".completed" / "P01.md").write_text(GOOD_P01_MARKER)  # the marker says done; the code is not here
    (workspace / "src").mkdir()
    plan = "plans/PLAN-20261201-GREETING.yaml"

    # --verify re-runs P01's checks: the greeting file is missing, so the marker alone does not pass it
    verified = coord(workspace, "import", "project-plans/greeting", "--with-progress", "--verify")
    assert verified.returncode == 0, verified.stderr
    p01 = status(workspace)["phases"][0]
    assert (p01["state"], p01["verdict"], p01["verdict_source"]) == ("pending", "FAIL", "re-verified")
    assert "existing evidence passes, but verification `1. The greeting is written`" in p01["reason"]
    assert (workspace / "tmp/PLAN-20261201-GREETING/P01/import-verify/verify-0.log").is_file()
    # with the work really there, --verify records a pass that is not "unverified"
    (workspace / "src" / "greeting.txt").write_text("hello\n")
    coord(workspace, "import", "project-plans/greeting", "--with-progress", "--verify", "--force")
    report = status(workspace)
    assert (report["phases"][0]["state"], report["phases"][0]["verdict_source"]) == ("passed", "re-verified")
    assert report["totals"]["unverified"] == 0

    # without --verify the marker passes P01, marked as not re-verified everywhere a person looks
    (workspace / "src" / "greeting.txt").unlink()
    seeded = coord(workspace, "import", "project-plans/greeting", "--with-progress", "--force")
    assert "1 of them on existing evidence alone, verification not re-run: P01 (add --verify" in seeded.stdout
    report = status(workspace)
    assert report["totals"]["unverified"] == 1 and report["phases"][0]["unverified"] is True
    assert report["phases"][0]["reason"].endswith("; verification not re-run")
    table = coord(workspace, "status")
    assert "1 phase passed on existing evidence, verification not re-run: P01" in table.stdout
    markdown = coord(workspace, "status", "--markdown")
    assert "**1 passed on existing evidence, verification not re-run:** P01" in markdown.stdout
    rendered = coord(workspace, "render", plan, "P02")
    assert "P01 passed on evidence that existed before coord ran this plan" in rendered.stdout
    assert "Phase P01 is done and verified" not in rendered.stdout

    document = yaml.safe_load((workspace / plan).read_text())
    document["agent"] = "shell"
    document["phases"][0]["script"] = ["false"]  # passed already: never run
    document["phases"][1]["script"] = [
        "printf 'bye\\n' > src/farewell.txt", "mkdir -p project-plans/greeting/.completed",
        "printf 'Phase: P02\\nCompleted: 2026-12-01 10:00\\nVerification:\\n```text\\nok\\n```\\n'"
        " > project-plans/greeting/.completed/P02.md"]
    (workspace / plan).write_text(yaml.safe_dump(document, sort_keys=False))
    run = coord(workspace, "run", plan, "--headless")
    first = (run.stdout + run.stderr).splitlines()[0]
    assert "run started" in first and "1 phase(s) passed on existing evidence, verification not re-run: P01" in first
    prompt = (workspace / "tmp/PLAN-20261201-GREETING/P02/1/prompt.md").read_text()
    assert "P01 passed on evidence that existed before coord ran this plan" in prompt
