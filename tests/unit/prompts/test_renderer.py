"""Prompts exactly as a worker receives them.

Covers packaged templates, workspace overrides, plan values kept literal, large instructions, remediation evidence,
and template failures reported with file and line.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from coordinator.errors import TemplateError
from coordinator.judge.verdict import CheckResult, Verdict
from coordinator.plan.loader import load_plan
from coordinator.plan.model import Plan
from coordinator.prompts.renderer import (
    SAMPLE_REMEDIATION,
    ArtifactPaths,
    PromptRenderer,
    RemediationContext,
    fenced,
    packaged_templates_dir,
)
from coordinator.util.timefmt import format_plan_duration

PLAN_TEXT = """\
plan: PLAN-X
title: Demo plan
artifacts:
  report: project-plans/x/reports/{{ phase.id }}-worker.md
  completed: project-plans/x/.completed/{{ phase.id }}.md
phases:
  - id: P01
    kind: stub
    title: Provider stub
    instructions: Create the provider skeleton.
    verify:
      - run: npm test -- --run stub
        timeout: 10m
  - id: P02
    kind: test
    title: Provider tests
    instructions: Write tests for the provider.
    verify:
      - run: npm test -- --run provider
        expect: fail
  - id: P03
    kind: impl
    title: Provider implementation
    instructions: Implement the provider.
    verify: ["npm test", "npm run typecheck"]
    policy: {max_attempts: 5}
  - id: P03a
    kind: verify
    title: Verify the implementation
"""


def load(workspace: Path, text: str = PLAN_TEXT) -> Plan:
    (workspace / "plans").mkdir(exist_ok=True)
    (workspace / "plans" / "P.yaml").write_text(text, encoding="utf-8")
    return load_plan(workspace / "plans" / "P.yaml", workspace)


def override(workspace: Path, name: str, text: str) -> None:
    (workspace / "templates").mkdir(exist_ok=True)
    (workspace / "templates" / name).write_text(text, encoding="utf-8")


def test_packaged_templates_exist_for_every_builtin_kind() -> None:
    names = sorted(path.name for path in packaged_templates_dir().glob("*.md.j2"))

    assert names == ["impl.md.j2", "remediate.md.j2", "stub.md.j2", "test.md.j2", "verify.md.j2"]


@pytest.mark.parametrize("phase_id", ["P01", "P02", "P03", "P03a"])
def test_default_prompt_tells_the_worker_what_coord_will_check(tmp_path: Path, phase_id: str) -> None:
    plan = load(tmp_path)
    phase = plan.phase(phase_id)

    prompt = PromptRenderer(tmp_path).render(plan, phase, attempt_number=1)

    assert prompt.startswith(f"# Phase {phase_id}: {phase.title}\n\n")
    assert f"`project-plans/x/reports/{phase_id}-worker.md`" in prompt
    assert f"`project-plans/x/.completed/{phase_id}.md`" in prompt
    assert "`Status: PASS`" in prompt and "`Status: FAIL`" in prompt
    assert f"`Phase: {phase_id}`" in prompt
    assert "<paste command outputs>" in prompt  # named as a forbidden placeholder
    assert "coord re-runs" in prompt or not phase.verify
    for command in phase.verify:
        assert f"`{command.run}`" in prompt
    assert f"attempt 1 of {phase.policy.max_attempts}" in prompt


def test_test_phase_prompt_asks_for_failing_tests(tmp_path: Path) -> None:
    plan = load(tmp_path)

    prompt = PromptRenderer(tmp_path).render(plan, plan.phase("P02"), attempt_number=1)

    assert "Write the tests first" in prompt
    assert "expected to FAIL" in prompt
    assert "`npm test -- --run provider` must fail (non-zero exit), within 10m" in prompt
    assert "Write tests for the provider." in prompt
    assert "Phase P01 is done and verified" in prompt


def test_impl_prompt_lists_commands_and_effective_attempts(tmp_path: Path) -> None:
    plan = load(tmp_path)

    prompt = PromptRenderer(tmp_path).render(plan, plan.phase("P03"), attempt_number=1)

    assert "- `npm test` must pass (exit 0), within 10m\n- `npm run typecheck` must pass (exit 0), within 10m" in prompt
    assert "attempt 1 of 5" in prompt


def test_workspace_template_beats_packaged_one(tmp_path: Path) -> None:
    plan = load(tmp_path)
    renderer = PromptRenderer(tmp_path)
    assert renderer.template_path("impl.md.j2") == packaged_templates_dir() / "impl.md.j2"

    override(tmp_path, "impl.md.j2", "Custom {{ phase.id }} -> {{ artifacts.report }} ({{ workdir }})\n")

    assert renderer.template_path("impl.md.j2") == tmp_path.resolve() / "templates" / "impl.md.j2"
    assert renderer.render(plan, plan.phase("P03"), attempt_number=1) == (
        "Custom P03 -> project-plans/x/reports/P03-worker.md (.)\n"
    )
    # Kinds without an override still use the packaged template.
    assert "# Phase P01: Provider stub" in renderer.render(plan, plan.phase("P01"), attempt_number=1)


def test_template_path_refuses_names_that_are_not_plain_files(tmp_path: Path) -> None:
    renderer = PromptRenderer(tmp_path)

    assert renderer.template_path("../impl.md.j2") is None
    assert renderer.template_path("nope.md.j2") is None


def test_F3_literal_braces_in_plan_values_stay_literal(tmp_path: Path) -> None:
    canary = tmp_path / "PWNED"
    injection = f"{{{{ cycler.__init__.__globals__.os.popen('touch {canary}').read() }}}}"
    text = (
        "plan: X\n"
        f'title: "{injection}"\n'
        "phases:\n"
        "  - id: P01\n"
        "    kind: impl\n"
        f'    title: "Title {{{{ phase.id }}}} {{% raw %}}"\n'
        f'    instructions: "{injection}"\n'
        "    verify: [\"echo '{{ x }}'\"]\n"
    )
    plan = load(tmp_path, text)

    prompt = PromptRenderer(tmp_path).render(plan, plan.phases[0], attempt_number=1)

    assert injection in prompt
    assert "# Phase P01: Title {{ phase.id }} {% raw %}" in prompt
    assert "`echo '{{ x }}'`" in prompt
    assert not canary.exists()


def test_instructions_over_128_kib_render_whole(tmp_path: Path) -> None:
    (tmp_path / "plan").mkdir()
    big = "".join(f"Step {n}: do the thing with {{{{ braces }}}} and `ticks`.\n" for n in range(4000))
    assert len(big.encode()) > 128 * 1024
    (tmp_path / "plan" / "big.md").write_text(big, encoding="utf-8")
    plan = load(tmp_path, "plan: X\nphases:\n  - {id: P01, kind: impl, instructions_file: plan/big.md}\n")

    prompt = PromptRenderer(tmp_path).render(plan, plan.phases[0], attempt_number=1)

    assert big.rstrip() in prompt
    assert len(prompt.encode()) > 128 * 1024


def test_remediation_prompt_shows_the_evidence(tmp_path: Path) -> None:
    plan = load(tmp_path)
    verdict = Verdict(
        passed=False,
        reason="worker reported PASS; verification `npm test` exited 1",
        checks=(
            CheckResult(name="exit", status="pass", detail="worker exited 0", exit_code=0),
            CheckResult(name="report", status="pass", detail="report says PASS", path="reports/P03-worker.md"),
            CheckResult(
                name="verify[0]",
                status="fail",
                detail="verification `npm test` exited 1 (expected pass)",
                path="tmp/PLAN-X/P03/1/verify-0.log",
                argv=("npm", "test"),
                exit_code=1,
                output_tail="FAIL src/provider.test.ts\n  ``` a fence inside the output\nTests: 1 failed",
            ),
        ),
    )
    context = RemediationContext(
        previous_attempt=1,
        evidence=verdict.to_dict(),
        log_path="tmp/PLAN-X/P03/1/worker.log",
        log_tail='{"type":"turn.completed"}',
        note="Check the retry logic first.",
    )

    prompt = PromptRenderer(tmp_path).render(plan, plan.phase("P03"), attempt_number=2, remediation=context)

    assert "# Remediation of phase P03: Provider implementation" in prompt
    assert "attempt 2 of 5" in prompt
    assert "Attempt 1 failed" in prompt
    assert "worker reported PASS; verification `npm test` exited 1" in prompt
    assert "### verify[0]: verification `npm test` exited 1 (expected pass)" in prompt
    assert "- Command: `npm test`" in prompt
    assert "- Exit code: 1" in prompt
    assert "- File: `tmp/PLAN-X/P03/1/verify-0.log`" in prompt
    assert "````text\nFAIL src/provider.test.ts\n  ``` a fence inside the output\nTests: 1 failed\n````" in prompt
    assert "### report" not in prompt  # passing checks are not repeated
    assert "`tmp/PLAN-X/P03/1/worker.log`" in prompt
    assert '{"type":"turn.completed"}' in prompt
    assert "Check the retry logic first." in prompt
    assert "fresh worker" in prompt
    assert "Implement the provider." in prompt
    assert "`project-plans/x/reports/P03-worker.md`" in prompt


def test_remediation_prompt_tolerates_partial_evidence_and_empty_log(tmp_path: Path) -> None:
    plan = load(tmp_path)
    context = RemediationContext(
        previous_attempt=2,
        evidence={
            "passed": False,
            "reason": "hung: no output for 6 poll cycles",
            "checks": [{"name": "exit", "status": "fail", "detail": "hung"}],
        },
        log_path="tmp/PLAN-X/P01/2/worker.log",
        log_tail="",
        resumed_session="abc-123",
    )

    prompt = PromptRenderer(tmp_path).render(plan, plan.phase("P01"), attempt_number=3, remediation=context)

    assert "hung: no output for 6 poll cycles" in prompt
    assert "### exit: hung" in prompt
    assert "(the log is empty)" in prompt
    assert "continuing session abc-123" in prompt
    assert "Note from the person" not in prompt


def test_sample_remediation_renders_with_packaged_template(tmp_path: Path) -> None:
    plan = load(tmp_path)

    prompt = PromptRenderer(tmp_path).render(plan, plan.phase("P01"), attempt_number=2, remediation=SAMPLE_REMEDIATION)

    assert "AssertionError: assert 1 == 2" in prompt


def test_artifact_paths(tmp_path: Path) -> None:
    plan = load(tmp_path)

    assert PromptRenderer(tmp_path).artifact_paths(plan, plan.phase("P03a")) == ArtifactPaths(
        report="project-plans/x/reports/P03a-worker.md", completed="project-plans/x/.completed/P03a.md"
    )


def test_template_errors_name_the_template_and_line(tmp_path: Path) -> None:
    plan = load(tmp_path)
    renderer = PromptRenderer(tmp_path)

    override(tmp_path, "impl.md.j2", "one\ntwo\n{{ attempt.numbr }}\n")
    with pytest.raises(TemplateError) as raised:
        renderer.render(plan, plan.phase("P03"), attempt_number=1)
    assert [str(p) for p in raised.value.problems] == [
        "templates/impl.md.j2:3: 'attempt.numbr' is undefined (rendering P03)"
    ]

    override(tmp_path, "impl.md.j2", "one\n{% for x in %}\n")
    with pytest.raises(TemplateError) as raised:
        renderer.render(plan, plan.phase("P03"), attempt_number=1)
    assert str(raised.value).startswith("templates/impl.md.j2:2: ")

    override(tmp_path, "impl.md.j2", "\n  \n")
    with pytest.raises(TemplateError) as raised:
        renderer.render(plan, plan.phase("P03"), attempt_number=1)
    assert str(raised.value) == "templates/impl.md.j2: phase P03: rendered prompt is empty"

    override(tmp_path, "impl.md.j2", "x\n{{ phase.title + 1 }}\n")
    with pytest.raises(TemplateError) as raised:
        renderer.render(plan, plan.phase("P03"), attempt_number=1)
    assert str(raised.value).startswith("templates/impl.md.j2:2: TypeError: ")


def test_F6_missing_template_and_sandbox_escape(tmp_path: Path) -> None:
    """A missing template is named; also F3 (the sandbox refuses an escape from a template)."""
    override(tmp_path, "docs.md.j2", "Docs for {{ phase.id }}\n")
    plan = load(tmp_path, "plan: X\nphases:\n  - {id: P01, kind: docs}\n")
    renderer = PromptRenderer(tmp_path)
    (tmp_path / "templates" / "docs.md.j2").unlink()

    with pytest.raises(TemplateError) as raised:
        renderer.render(plan, plan.phases[0], attempt_number=1)
    assert str(raised.value) == "templates/docs.md.j2: not found"

    override(tmp_path, "docs.md.j2", "{{ phase.__class__.__mro__ }}\n")
    with pytest.raises(TemplateError) as raised:
        renderer.render(plan, plan.phases[0], attempt_number=1)
    assert str(raised.value).startswith("templates/docs.md.j2:1: ")


def test_filters() -> None:
    assert [format_plan_duration(s) for s in (0.25, 45, 600, 5400, 3600, 1.5)] == [
        "250ms",
        "45s",
        "10m",
        "1h30m",
        "1h",
        "1.5s",
    ]
    assert fenced("a\n```\nb\n") == "````\na\n```\nb\n````"
    assert fenced(None, "text") == "```text\n\n```"
