"""``coord import``'s readers (issue 5): real llxprt-code phase plans read into plan documents, their verify
commands, and the verdicts of their markers and reports.

The real plans are read from ``../shared/real-plans`` (five plan folders with ``NOTES.md``); without that folder
the tests that need it skip with one line. Each test copies the plan folder it needs into a fresh workspace
under ``project-plans/<name>/``, as a user's repository holds it. The command itself (``coord import`` with
``validate``, ``status``, ``render``, ``run``) and the spec-kit and Taskmaster fixtures are run end to end in
``tests/e2e/test_import_cli.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from coordinator.judge.report_text import parse_status
from coordinator.plan.importers import ImportResult, import_plan
from coordinator.plan.importers.markdown_plans import phase_sort_key
from coordinator.plan.importers.shell_scripts import ERREXIT_LINE
from coordinator.prompts.validate import load_checked_plan as load_plan
from tests.helpers import I1575, I1587, I1590, S4, S5, SP2, add_plan
from tests.helpers import imported_phase as phase


def numbered(last: int, first: int = 1) -> list[str]:
    """``P01, P01a, P02, P02a, …`` up to ``last``."""
    return [phase for number in range(first, last + 1) for phase in (f"P{number:02d}", f"P{number:02d}a")]


ISSUE1590_ORDER = [
    "P00a", "P00a-V", "P01", "P01-V",
    "P02a", "P02a-V", "P02b", "P02b-V", "P02c", "P02c-V",
    "P03a", "P03a-V", "P03b", "P03b-V", "P03c", "P03c-V",
    "P04a", "P04a-V", "P04b", "P04b-V", "P04c", "P04c-V", "P04d", "P04d-V",
    "P05", "P05-V", "P06", "P06-V", "P07", "P07-V",
]
REAL_ORDERS = {
    SP2: ("PLAN-20251018-STATELESSPROVIDER2", numbered(20)),
    S4: ("PLAN-20251023-STATELESS-HARDENING", numbered(10, first=0)),
    S5: ("PLAN-20251027-STATELESS5", numbered(12, first=0)),
    I1590: ("PLAN-20260609-ISSUE1590", ISSUE1590_ORDER),
    I1587: ("PLAN-20260608-ISSUE1587", ["P00a", "P01", "P02", "P03", "P04", "P05", "P06", "P07"]),
}


def imported(workspace: Path, real_plans: Path, name: str) -> ImportResult:
    return import_plan(add_plan(workspace, real_plans, name), workspace)


def code_lines(script: str) -> list[str]:
    """A script's lines that are not comments or blank."""
    return [line for line in script.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def verify(result: ImportResult, phase_id: str) -> list[tuple[str, str]]:
    """``(run, expect)`` of a phase's verify commands."""
    return [(item["run"], item.get("expect", "pass")) for item in phase(result, phase_id).get("verify", [])]


# ---- the real plans: phases, order, ids ------------------------------------------------------------------


@pytest.mark.parametrize("name", list(REAL_ORDERS))
def test_real_plan_phases_in_their_real_order(real_plans: Path, workspace: Path, name: str) -> None:
    plan_id, order = REAL_ORDERS[name]

    result = imported(workspace, real_plans, name)

    assert result.plan_id == plan_id
    assert result.phase_ids == order
    assert len(order) == {SP2: 40, S4: 22, S5: 26, I1590: 30, I1587: 8}[name]
    phases = result.document["phases"]
    assert phases[0]["depends_on"] == []
    assert all(item["depends_on"] == [before["id"]] for before, item in zip(phases, phases[1:], strict=False))
    # the written YAML reads back as the same document, and the plan loader (`coord validate`) accepts it
    plan_file = workspace / "plans" / f"{plan_id}.yaml"
    plan_file.parent.mkdir()
    plan_file.write_text(result.yaml_text(), encoding="utf-8")
    assert yaml.safe_load(plan_file.read_text(encoding="utf-8")) == result.document
    plan = load_plan(plan_file, workspace)
    assert [item.id for item in plan.phases] == order


def test_plan_id_comes_from_the_files_not_the_folder(real_plans: Path, workspace: Path) -> None:
    result = imported(workspace, real_plans, S4)
    assert result.plan_id == "PLAN-20251023-STATELESS-HARDENING"
    assert result.document["plan"] == result.plan_id


def test_order_puts_letters_and_verifiers_after_their_phase() -> None:
    ids = ["P08", "P07a-V", "P07a", "P07b", "P07-V", "P07", "P0.5", "P01"]
    assert sorted(ids, key=phase_sort_key) == ["P0.5", "P01", "P07", "P07-V", "P07a", "P07a-V", "P07b", "P08"]


def test_kinds_from_file_names_and_titles(real_plans: Path, workspace: Path) -> None:
    sp2 = imported(workspace, real_plans, SP2)
    assert [phase(sp2, pid)["kind"] for pid in ("P01", "P01a", "P02", "P02a", "P03", "P20")] == [
        "stub", "verify", "test", "verify", "impl", "impl",
    ]
    issue = imported(workspace, real_plans, I1590)
    assert [phase(issue, pid)["kind"] for pid in ("P02a", "P02a-V", "P02b", "P02c", "P07")] == [
        "stub", "verify", "test", "impl", "verify",
    ]
    # preflight has no template: imported as verify, and said so
    assert phase(issue, "P00a")["kind"] == "verify"
    assert any("kind 'preflight' has no template" in warning for warning in issue.warnings)


def test_instructions_point_at_the_authors_files(real_plans: Path, workspace: Path) -> None:
    sp2 = imported(workspace, real_plans, SP2)
    assert phase(sp2, "P07a")["instructions_file"] == (
        f"project-plans/{SP2}/plan/07a-openai-responses-provider-stub-verification.md"
    )
    issue = imported(workspace, real_plans, I1590)
    source = (real_plans / I1590 / "plan" / "02-path-file-services.md").read_text(encoding="utf-8")
    section = source[source.index("## Subphase P02a"):source.index("## Subphase P02b")].strip()
    worker = phase(issue, "P02a")["instructions"]
    assert f"`project-plans/{I1590}/plan/02-path-file-services.md` (lines 46-" in worker
    assert section.splitlines()[-3] in worker and "## Subphase P02b" not in worker
    verifier = phase(issue, "P02a-V")["instructions"]
    assert "### P02a-V Verifier" in verifier and "Write result to `.completed/P02a-V.md`." in verifier
    listed = phase(issue, "P01-V")
    assert listed["title"] == "Verify scaffold"  # from the overview's phase table
    assert f"`project-plans/{I1590}/plan/01-storage-package-scaffold.md`" in listed["instructions"]


# ---- verify commands --------------------------------------------------------------------------------------


def test_red_phase_commands_expect_failure(real_plans: Path, workspace: Path) -> None:
    sp2 = imported(workspace, real_plans, SP2)
    grep = ('grep -r "@plan:PLAN-20251018-STATELESSPROVIDER2.P02" '
            "packages/cli/src/integration-tests/provider-multi-runtime.integration.test.ts")
    # plan/02-…tests.md: "# Run targeted suite (EXPECTED TO FAIL)" over `npm run test:multi-runtime && exit 1`:
    # a check of its own, named by the comment, the idiom dropped and the expectation kept
    assert verify(sp2, "P02") == [(grep, "pass"), ("npm run test:multi-runtime", "fail")]
    assert phase(sp2, "P02")["verify"][1]["name"] == "Run targeted suite (EXPECTED TO FAIL)"
    assert verify(sp2, "P02a") == [("npm run test:multi-runtime", "fail")]  # `… && exit 1` alone
    # plan/08-…: "# EXPECTED TO FAIL" over two `npm test` lines: each must fail on its own
    assert verify(sp2, "P08")[1:] == [("npm test -- --run openai.stateless", "fail"),
                                      ("npm test -- --run openaiResponses.stateless", "fail")]
    # plan/03-…: a grep and "(MUST PASS)" suite in one block: one script, and `set -e` makes both count
    (script, expect), = verify(sp2, "P03")
    assert expect == "pass" and script.startswith(ERREXIT_LINE + "\n# Verify plan markers") and script.endswith(
        "# Run targeted suite (MUST PASS)\nnpm run test:multi-runtime")

    s4 = imported(workspace, real_plans, S4)
    # 09a: `rg "getSettingsService" … && exit 1`: a search that must find nothing
    assert verify(s4, "P09a") == [('rg "getSettingsService" packages/core/src/providers', "no-output"),
                                  ('rg "modelParams" packages/core/src/providers', "no-output")]
    # bash brace expansion: the loop stays whole and runs under bash
    assert phase(s4, "P01a")["verify"] == [{
        "name": "Automated Checks", "shell": "bash",
        "run": '# Ensure every requirement referenced at least once\n'
               'for req in {001..005}; do rg "REQ-SP4-$req" project-plans/20251023stateless4/analysis || exit 1; done'}]
    assert any("red test phases with no command marked to fail" in w and "P04" in w for w in s4.warnings)

    issue = imported(workspace, real_plans, I1590)
    red_gate = verify(issue, "P02b")  # under "### RED Gate"
    assert len(red_gate) == 1 and red_gate[0][1] == "fail" and red_gate[0][0].startswith("npm run test --workspace")
    assert verify(issue, "P02b-V") == red_gate  # the verifier re-runs its worker's commands


def test_a_block_is_one_script_divided_only_where_the_author_marks_checks(real_plans: Path, workspace: Path) -> None:
    issue = imported(workspace, real_plans, I1590)
    checks = phase(issue, "P07")["verify"]
    names = [item.get("name") for item in checks]
    # "### Per-Package Build Verification": `# 1. Storage package …` … `# 8. Full monorepo build …`
    assert names[:8] == ["1. Storage package (leaf — no workspace deps)", "2. Core package (depends on storage)",
                         "3. MCP package (depends on storage and core)",
                         "4. Providers package (depends on storage and core)",
                         "5. A2A Server package (depends on storage and core)",
                         "6. Test Utilities package (depends on storage)",
                         "7. CLI package (depends on storage and core)",
                         "8. Full monorepo build (proves root `npm run build` covers all packages)"]
    assert checks[7]["run"] == "npm run build" and "shell" not in checks[7]
    # "### Full Repository Verification" has no marks: the whole block is one script under its heading's name
    whole = checks[names.index("Full Repository Verification")]
    assert whole["shell"] == "bash" and code_lines(whole["run"])[1:] == [
        "npm install", "npm run test", "npm run lint", "npm run typecheck", "npm run build"]
    # `rg … && exit 1 || true` keeps its meaning inside the script; nothing of it is cut
    integrity = checks[names.index("Additional Integrity Checks")]["run"]
    assert "packages/storage/package.json -g '*.ts' -g 'package.json' && exit 1 || true" in integrity
    text = (workspace / "project-plans" / I1590 / "plan" / "07-full-verification.md").read_text()
    block = text.split("### Additional Integrity Checks\n\n```bash\n", 1)[1].split("\n```", 1)[0]
    assert integrity == f"{ERREXIT_LINE}\n{block}"  # verbatim, its comments included
    # "### Smoke Test" (not a verification heading) starts the agent itself: never a check
    assert not any("ollamakimi" in item["run"] for item in checks)
    # a multi-line `node -e "…"` stays inside its script
    assert phase(issue, "P01")["verify"][0]["run"].count('node -e "\n') == 2


def test_no_output_expectation_comes_from_the_sentence_after_the_block(real_plans: Path, workspace: Path) -> None:
    result = imported(workspace, real_plans, I1575)
    checks = {item["run"]: item for item in phase(result, "P04")["verify"]}
    # phase4.md: "This should produce **no output** after rewiring."
    assert checks['grep "from.*runtimeSettings" packages/cli/src/runtime/profileApplication.ts']["expect"] == \
        "no-output"
    # "Expected: Only `runtimeSettings.ts` itself should appear": unclear, so pass, with the sentence
    unclear = [w for w in result.warnings if "unclear" in w and w.startswith("P04:")]
    assert unclear and "Only `runtimeSettings.ts` itself should appear" in unclear[0]
    # "Run the complete verification": the haiku smoke line starts an agent and is left out of the script
    full = [item for item in checks.values() if "npm run format" in item["run"] and "npm run build" in item["run"]]
    assert full and not any("start.js" in line for line in code_lines(full[0]["run"]))
    assert "# (left out by coord import: not run as verification) node scripts/start.js" in full[0]["run"]


def test_report_check_is_off_only_without_a_reports_folder(real_plans: Path, workspace: Path) -> None:
    issue = imported(workspace, real_plans, I1587)
    assert issue.document["checks"] == {"report": False}
    assert any("has no reports/ folder" in warning for warning in issue.warnings)
    assert issue.document["artifacts"] == {
        "report": "project-plans/issue1587/reports/{{ phase.id }}-worker.md",
        "completed": "project-plans/issue1587/.completed/{{ phase.id }}.md",
    }
    # naming the plan/ folder imports the plan around it (markers and reports live beside plan/)
    through_plan_dir = import_plan(workspace / "project-plans" / I1587 / "plan", workspace)
    assert through_plan_dir.document == issue.document
    s4 = imported(workspace, real_plans, S4)
    assert "checks" not in s4.document


# ---- verdicts of real markers and reports (checks.find_status) -------------------------------------------


@pytest.mark.parametrize("relative, expected", [
    (f"{S5}/.completed/P07a.md", "fail"),  # a FAIL verdict stored as a completion marker
    (f"{S5}/.completed/P07.md", "pass"),  # "COMPLETE - RED phase established with 55 failing tests"
    (f"{S5}/.completed/P00a.md", "pass"),  # "## Verification Result" + "**PASS**"
    (f"{S4}/reports/P04a-worker.md", "fail"),  # "– Blocked by vitest rejecting --filter"
    (f"{S4}/reports/P05a-worker.md", "pass"),  # "Checklist Outcomes … – PASS."
    (f"{S4}/reports/P04-worker.md", "unknown"),  # a red phase's failed commands decide nothing
    (f"{SP2}/.completed/P17.md", "pass"),  # "Status: failing as expected"
    (f"{I1590}/.completed/P03c-V.md", "pass"),
    (f"{I1587}/.completed/P01.md", "unknown"),
])
def test_real_verdicts(real_plans: Path, relative: str, expected: str) -> None:
    assert parse_status((real_plans / relative).read_text(encoding="utf-8")) == expected


@pytest.mark.parametrize("text, expected", [
    ("Status: PASS", "pass"),
    ("**Status**: FAIL - tests still red", "fail"),
    ("**Status:** PASS", "pass"),
    ("Result: **PASS**", "pass"),
    ("Result: **PASS", "pass"),
    ("Verdict: PASS", "pass"),
    ("Status: COMPLETED", "pass"),
    ("**Status**: ✅ COMPLETE", "pass"),
    ("Result: PARTIAL", "fail"),
    ("- build ✅\n- tests ❌", "fail"),
    ("Status: failing as expected (not implemented yet)", "pass"),
    ("Status: RESET_FOR_REDO", "fail"),
    ("## Verification Result **PASS**", "pass"),
    ("## Checklist Outcomes\n- Guard tests pass – PASS.\n- Docs – PASS (confirmed)", "pass"),
    ("## Checklist Outcomes\n- Tests still red – Blocked by a CLI error", "fail"),
    ("- Failures are behavioral — `Error: not implemented` throws", "unknown"),
    ('{\n  "status": "pass",\n  "phase": 3\n}', "pass"),
    ('  "status": "VERIFIED_FIXED"', "pass"),
    ('  "status": "pending"', "unknown"),
    ("**Status**: COMPLETE - RED phase established with 55 failing tests", "pass"),
    ("Status: Complete with 3 failures", "fail"),
    ("- [ ] Tests fail under stub\n- [ ] Coverage added", "unknown"),
    ("Everything looks fine.", "unknown"),
])
def test_status_spellings(text: str, expected: str) -> None:
    assert parse_status(text) == expected
