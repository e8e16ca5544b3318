"""Plans checked against their prompts: the plan loader with the template checks plugged in, as coord loads a plan.

Who uses it: ``cli.main.load`` (``coord run``/``validate``/``render``/``remediate``) and ``coord import`` (for the
plan it writes) call ``load_checked_plan``; ``validate_checked_plan`` returns the same problems without raising.

The plan layer never imports the prompt layer: ``plan.loader`` takes a ``TemplateChecks``, and ``RenderChecks``
is that check over ``PromptRenderer``. While the loader builds the phases it says which kinds have no template
(such a phase is unusable); then it checks the built plan: every phase's artifact paths render, stay inside the
workspace, differ between phases and between report and marker, and every phase's prompt and its remediation
prompt (with ``SAMPLE_REMEDIATION``) dry-render; a phase whose artifact paths fail is not dry-rendered. The
problems go into the loader's ``Collector``, so they come out in its order: the plan file's by position, then
those in templates.
"""

from __future__ import annotations

import os
from pathlib import Path

from coordinator.errors import Problem, TemplateError
from coordinator.plan.loader import load_plan, validate_plan
from coordinator.plan.model import BUILTIN_KINDS, Plan
from coordinator.plan.snapshot import PlanSnapshot, snapshot_hash
from coordinator.plan.yaml_source import Collector, Path_
from coordinator.prompts.renderer import SAMPLE_REMEDIATION, PromptRenderer, read_workspace_templates
from coordinator.prompts.values import render_call


def validate_checked_plan(path: Path, workspace: Path) -> list[Problem]:
    """Run every check on a plan file and its prompts without raising (``plan.loader.validate_plan`` + templates).

    Args:
        path: the plan file as the user named it (see ``plan.loader.validate_plan``).
        workspace: the workspace root (its ``templates/`` come before the packaged ones).

    Returns:
        Every problem found, in file order (plan-file problems first, then template problems); empty when the
        plan is valid.
    """
    return validate_plan(path, workspace, templates=RenderChecks(workspace))


def load_checked_plan(path: Path, workspace: Path) -> Plan:
    """Load a plan as coord runs it: every plan-file check, then its templates (``plan.loader.load_plan``).

    Args:
        path: the plan file (see ``plan.loader.validate_plan``).
        workspace: the workspace root.

    Returns:
        The frozen plan (see ``plan.loader.load_plan``).

    Raises:
        PlanError: listing every problem found, template problems included.
    """
    return load_plan(path, workspace, templates=RenderChecks(workspace))


def load_run_snapshot(path: Path, workspace: Path) -> PlanSnapshot:
    """Load a plan as :func:`load_checked_plan` does and take the snapshot a run judges by: the plan, the
    workspace templates it renders, and their hash (``plan.snapshot``).

    Raises:
        PlanError: listing every problem found.
    """
    plan = load_checked_plan(path, workspace)
    templates = read_workspace_templates(workspace)
    return PlanSnapshot(plan=plan, templates=templates, sha256=snapshot_hash(path.read_bytes(), templates))


def current_hash(plan: Plan) -> str | None:
    """The hash the plan file and the workspace templates have now (None when the file cannot be read)."""
    path = Path(plan.path) if Path(plan.path).is_absolute() else Path(plan.workspace) / plan.path
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return snapshot_hash(data, read_workspace_templates(Path(plan.workspace)))


class RenderChecks:
    """The template checks of one load (a ``plan.loader.TemplateChecks``), over the workspace's and packaged ones."""

    def __init__(self, workspace: Path) -> None:
        self.renderer = PromptRenderer(workspace)

    def kind_problem(self, kind: str) -> str | None:
        """The problem of a phase kind without a ``<kind>.md.j2`` template, or None when it has one."""
        if self.renderer.template_path(f"{kind}.md.j2") is not None:
            return None
        return f"no template for kind {kind!r}: add templates/{kind}.md.j2 (built-in kinds: {', '.join(BUILTIN_KINDS)})"

    def check(self, plan: Plan, out: Collector) -> None:
        """Check every phase's artifact paths, then dry-render the prompts of the phases whose paths rendered."""
        failed = _check_artifacts(plan, self.renderer, out)
        _dry_render(plan, self.renderer, failed, out)
        for phase in plan.phases:
            if phase.mcp is not None and phase.id not in failed:
                try:
                    render_call(self.renderer, plan, phase, attempt_number=1)
                except TemplateError as exc:
                    for problem in exc.problems:
                        parts = problem.field.replace("[", ".").replace("]", "").split(".")
                        out.add(tuple(int(part) if part.isdigit() else part for part in parts), problem.message)


def _check_artifacts(plan: Plan, renderer: PromptRenderer, out: Collector) -> set[str]:
    """Render every phase's artifact paths; return the ids of phases whose paths failed."""
    failed: set[str] = set()
    owners: dict[str, dict[str, str]] = {"report": {}, "completed": {}}
    for phase in plan.phases:
        try:
            paths = renderer.artifact_paths(plan, phase)
        except TemplateError as exc:
            failed.add(phase.id)
            for problem in exc.problems:
                field_path: Path_ = tuple(problem.field.split("."))
                out.add(field_path, f"{problem.message} (phase {phase.id})", dedupe=problem.message)
            continue
        if os.path.normpath(paths.report) == os.path.normpath(paths.completed):
            out.add(("artifacts", "completed"), f"renders to the same path as artifacts.report ({paths.report!r})")
        for name in ("report", "completed"):
            value = os.path.normpath(getattr(paths, name))
            other = owners[name].get(value)
            if other is not None and other != phase.id:
                out.add(
                    ("artifacts", name),
                    f"renders to {value!r} for both {other} and {phase.id}; include {{{{ phase.id }}}} in it",
                )
            else:
                owners[name][value] = phase.id
    return failed


def _dry_render(plan: Plan, renderer: PromptRenderer, skip: set[str], out: Collector) -> None:
    for phase in plan.phases:
        if phase.id in skip:
            continue
        for label, remediation in ((phase.id, None), (f"{phase.id} remediation", SAMPLE_REMEDIATION)):
            try:
                renderer.render(plan, phase, attempt_number=2 if remediation else 1, remediation=remediation)
            except TemplateError as exc:
                for problem in exc.problems:
                    out.append(problem, dedupe=problem.message.replace(f" (rendering {label})", ""))
