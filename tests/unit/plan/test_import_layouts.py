"""``coord import`` on every plan-folder layout of the census (issue 11): the six real folders beyond the
``plan/NN-*.md`` layout, and small fixtures in the shapes that went wrong before (agents as verification, a kind
named by the file over the title, two files sharing a number).

Real folders come from ``../shared/real-plans`` (skipped cleanly without it); fixtures are written here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from coordinator.plan.importers import ImportFailed, ImportResult, import_plan
from coordinator.prompts.validate import load_checked_plan
from tests.helpers import F501, I1456, I1575, LOGGING, S7, SUBAGENTIC, add_plan
from tests.helpers import imported_phase as phase


def imported(workspace: Path, real_plans: Path, name: str) -> ImportResult:
    result = import_plan(add_plan(workspace, real_plans, name), workspace)
    plan_file = workspace / "plans" / "p.yaml"
    plan_file.parent.mkdir(exist_ok=True)
    plan_file.write_text(result.yaml_text())
    load_checked_plan(plan_file, workspace)  # `coord validate` accepts what was written
    return result


def kinds(result: ImportResult) -> list[str]:
    return [item["kind"] for item in result.document["phases"]]


NEW_LAYOUT_KINDS = {
    # "| P01 | Gap Verification |", "| P05 | Hardening & Verification |"; the rest name no kind
    S7: ["verify", "impl", "impl", "impl", "verify"],
    F501: ["impl"],  # one phase holding the whole test-first plan
    # "Task 01: Behavioral Test Specifications", "Task 04: Provider Integration" (no template: impl),
    # "Task 05: Testing and Validation"
    LOGGING: ["test", "impl", "impl", "impl", "verify"],
    I1575: ["impl", "impl", "impl", "verify"],  # "# Phase 4: Slim Coordinator, Final Audit, Verification"
    SUBAGENTIC: ["impl"] * 7,  # each topic file is a whole red-then-green plan; its title is a plan id
    # "Phase P01: Preflight …" (preflight: verify), "P03: Behavioral Integration TDD — RED", every "Verify …"
    I1456: ["impl", "verify", "verify", "verify", "impl", "verify", "test", "verify", "impl", "verify", "impl",
            "verify", "impl", "verify", "impl", "verify", "verify", "verify"],
}


@pytest.mark.parametrize("name", list(NEW_LAYOUT_KINDS))
def test_kinds_of_every_new_layout(real_plans: Path, workspace: Path, name: str) -> None:
    result = imported(workspace, real_plans, name)
    assert kinds(result) == NEW_LAYOUT_KINDS[name]
    assert len(result.phase_ids) == len(set(result.phase_ids))


def test_tasks_folder_beside_a_readme(real_plans: Path, workspace: Path) -> None:
    result = imported(workspace, real_plans, LOGGING)
    assert result.phase_ids == ["P01", "P02", "P03", "P04", "P05"]
    assert phase(result, "P01")["instructions_file"] == f"project-plans/{LOGGING}/tasks/01-behavioral-tests.md"
    # "Task 01: Behavioral Test Specifications" (all tests written failing first): a test phase
    assert kinds(result)[0] == "test"
    # tasks/02: "### Verify Tests Pass" holds one bash block: one check named by its heading
    (check,) = phase(result, "P02")["verify"]
    assert check["name"] == "Verify Tests Pass" and check["shell"] == "bash"


def test_phase_files_at_the_root_beside_plan_md(real_plans: Path, workspace: Path) -> None:
    result = imported(workspace, real_plans, I1575)
    assert result.phase_ids == ["P01", "P02", "P03", "P04"]
    assert [item["title"] for item in result.document["phases"]][0] == "Extract Leaf Modules"
    assert result.document["title"] == "Issue #1575: Break up runtimeSettings.ts (2,540 lines)"  # plan.md
    ignored = sorted(w for w in result.warnings if w.startswith("ignored"))
    assert [w.split()[1].rstrip(":") for w in ignored] == [f"project-plans/{I1575}/IMPLEMENTATION_CHECKLIST.md",
                                               f"project-plans/{I1575}/REVIEW_SUMMARY.md"]


def test_one_file_with_phase_sections(real_plans: Path, workspace: Path) -> None:
    result = imported(workspace, real_plans, I1456)
    assert result.plan_id == "PLAN-20260801-ISSUE1456"  # from specification.md
    assert result.phase_ids == [f"P0{n}{s}" for n in range(9) for s in ("", "a")]
    p03 = phase(result, "P03")
    # "## Phase P03: Behavioral Integration TDD — RED": a test phase; "### RED command" expects failure
    assert p03["kind"] == "test" and p03["title"] == "Behavioral Integration TDD — RED"
    assert [(item["expect"], item["run"].split(" -- ")[0]) for item in p03["verify"]] == [
        ("fail", "npm test --workspace @vybestack/llxprt-code")]
    assert "Phase P03 of `project-plans/issue1456/plan/implementation-plan.md`" in p03["instructions"]
    assert "### Test task A: Seatbelt behavior through `runSeatbeltSandbox`" in p03["instructions"]
    # "### GREEN command" expects the same suite to pass; "— Completed" is progress, not part of the title
    assert phase(result, "P04")["verify"][0].get("expect", "pass") == "pass"
    assert phase(result, "P00")["title"] == "Architect Specification"
    # "### Verification command already run" is not run again, and the user is told
    assert "verify" not in phase(result, "P01a")
    assert any(w.startswith("P01a: skipped the bash block") and "already run" in w for w in result.warnings)


def test_one_file_with_a_phase_table(real_plans: Path, workspace: Path) -> None:
    result = imported(workspace, real_plans, S7)
    assert result.plan_id == "PLAN-20251029-STATELESS7"
    assert result.phase_ids == ["P01", "P02", "P03", "P04", "P05"]
    p01 = phase(result, "P01")
    assert p01["title"] == "Gap Verification"
    assert "Capture current regressions via targeted failing tests/greps; document red state." in p01["instructions"]
    assert any("phase table" in w and "no verify commands" in w for w in result.warnings)


def test_one_file_with_no_phases(real_plans: Path, workspace: Path) -> None:
    result = imported(workspace, real_plans, F501)
    assert result.phase_ids == ["P01"]
    assert phase(result, "P01")["instructions_file"] == f"project-plans/{F501}/plan.md"
    # "## Full CI / QA Matrix": `1. `npm run format:check`` … `7. `npm run build``; items 8 and 9 start the agent
    runs = [item["run"] for item in phase(result, "P01")["verify"]]
    assert runs == ["npm run format:check", "npm run lint", "npm run typecheck", "npm run test", "npm run test:e2e",
                    "npm run test:ci", "npm run build"]
    assert sum("starts an agent" in w for w in result.warnings) == 3  # the Polaris block and items 8, 9
    assert any("has no phases" in w for w in result.warnings)


def test_overview_and_topic_files(real_plans: Path, workspace: Path) -> None:
    result = imported(workspace, real_plans, SUBAGENTIC)
    files = ["agentid", "runtimeloader", "statelessremediation", "subagentic", "subagentorchestration",
             "todoisolate", "toolenforcement"]
    assert [item["instructions_file"] for item in result.document["phases"]] == [
        f"project-plans/{SUBAGENTIC}/{name}.md" for name in files]
    assert phase(result, "P01")["title"] == "PLAN-20251029-AGENTID"
    # overview.md names none of them: file-name order, said once
    assert any("does not name every topic file" in w for w in result.warnings)


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "project-plans" / "fixture" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "project-plans" / "fixture"


def test_an_agent_is_never_verification(workspace: Path) -> None:
    folder = write(workspace, {"plan/01-review.md": (
        "# Phase 01: Review Implementation\n\n## Verification Commands\n\n```bash\n"
        "claude --dangerously-skip-permissions -p \"Review plan/01 and report\"\n```\n\n"
        "### Automated Checks\n\n```bash\nnpm test\ncurl -fsS https://example.com/health\n```\n")})
    result = import_plan(folder, workspace)
    # the agent block is no check; the network line is left out of the script; what remains is checked
    assert phase(result, "P01")["verify"] == [{"run": "npm test"}]
    assert not any("claude" in line and not line.startswith("#") for item in phase(result, "P01")["verify"]
                   for line in item["run"].splitlines())
    assert any("`claude --dangerously-skip-permissions" in w and "starts the agent CLI `claude`" in w
               for w in result.warnings)
    assert any("reaches the network (`curl`)" in w for w in result.warnings)


def test_kind_from_the_title_over_the_file_name_and_said(workspace: Path) -> None:
    folder = write(workspace, {
        "plan/03-bootstrap-helper-tests.md": "# Phase 03: Bootstrap Helper Stub\n\nCreate stubs that throw.\n",
        "plan/04-helper-impl.md": "# Phase 04: Helper Tests\n\nWrite failing tests for the helper first.\n",
    })
    result = import_plan(folder, workspace)
    assert kinds(result) == ["stub", "test"]
    assert any(w.startswith("P03 (") and "the title says 'stub' but the file name says 'test'" in w
               for w in result.warnings)
    # P04: the title does not name a kind ("Tests" alone is too loose), the text does: "write failing tests"
    assert any(w.startswith("P04 (") and "the text says 'test' (\"Write failing tests\") but the file name says "
               "'impl'" in w for w in result.warnings)


def test_files_sharing_a_number_are_all_imported(workspace: Path) -> None:
    folder = write(workspace, {
        "plan/07-first.md": "# Phase 07: First\n",
        "plan/07-second.md": "# Phase 07: Second\n",
        "plan/08-after.md": "# Phase 08: After\n",
    })
    result = import_plan(folder, workspace)
    assert result.phase_ids == ["P07", "P07-2", "P08"]
    assert any("imported as P07-2" in w for w in result.warnings)
    assert phase(result, "P08")["depends_on"] == ["P07-2"]


def test_no_plan_found_only_without_markdown(workspace: Path) -> None:
    folder = write(workspace, {"notes.txt": "nothing here\n"})
    with pytest.raises(ImportFailed, match="no Markdown file"):
        import_plan(folder, workspace)
    single = write(workspace, {"plan.md": "# Do the thing\n\n## Verification\n\n```bash\nmake check\n```\n"})
    result = import_plan(single / "plan.md", workspace)
    assert result.phase_ids == ["P01"] and phase(result, "P01")["verify"] == [{"run": "make check"}]


def test_expectations_follow_the_authors_words(workspace: Path) -> None:
    folder = write(workspace, {"plan/04-parser-tests.md": (
        "# Phase 04: Parser Tests (RED)\n\n## Verification Commands\n\n### Automated Checks\n\n"
        "```bash\nnpm test -- parser\n```\n\nThe new tests should fail: no parser exists yet.\n\n"
        "```bash\n# Expected: ZERO hits\ngrep -rn \"from '../legacy/parser'\" src\n```\n\n"
        "```bash\nnpm run lint\n```\n\nExpected: 8+ occurrences of the marker.\n")})
    result = import_plan(folder, workspace)
    assert [(item["run"], item.get("expect", "pass")) for item in phase(result, "P04")["verify"]] == [
        ("npm test -- parser", "fail"),  # "The new tests should fail"
        ("grep -rn \"from '../legacy/parser'\" src", "no-output"),  # "# Expected: ZERO hits"
        ("npm run lint", "pass"),  # "Expected: 8+ occurrences" says nothing coord can check: pass, warned
    ]
    assert any(w.startswith("P04:") and "'Expected: 8+ occurrences of the marker.'" in w for w in result.warnings)


def test_topic_files_follow_the_overviews_order(workspace: Path) -> None:
    folder = write(workspace, {
        "overview.md": "# Overview\n\n1. [Schema](schema.md)\n2. [API](api.md)\n3. [Docs](docs.md)\n",
        "api.md": "# API endpoints\n", "docs.md": "# Documentation\n", "schema.md": "# Schema stub\n",
    })
    result = import_plan(folder, workspace)
    assert [item["instructions_file"].rsplit("/", 1)[1] for item in result.document["phases"]] == [
        "schema.md", "api.md", "docs.md"]
    assert not any("file-name order" in w for w in result.warnings)
