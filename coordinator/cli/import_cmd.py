"""``coord import``: turn a plan folder written for people into ``plans/<PLAN-ID>.yaml`` (docs/design.md §15).

Who calls it: ``coordinator.cli.main`` registers :func:`add_parser` and dispatches to :func:`run`. The conversion
itself is ``coordinator.plan.importers``; this module resolves paths, writes the plan file atomically after the
plan loader accepted it, prints the warnings, and with ``--with-progress`` records what existing evidence proves.

Where things may live: the imported folder must be inside the workspace (the current directory or
``--workspace``), because the plan refers to its phase files through workspace-relative ``instructions_file``
paths and its evidence through workspace-relative artifact paths; a folder elsewhere is refused with a hint to
copy it in (e.g. to ``project-plans/<name>/``). The plan file goes to ``plans/<PLAN-ID>.yaml`` unless ``-o``
says otherwise, and an existing file is replaced only with ``--force``.

``--with-progress`` (docs/design.md §15, §9): for a markdown plan, each phase's completion marker (and its
report, where one exists) is judged by ``coordinator.judge.checks`` exactly as after a worker -- a marker
that says FAIL, names another phase or holds ``$(npm test …)`` instead of output does not pass. Verify commands
are re-run only with ``--verify``; a phase passed without them is marked "verification not re-run"
(``verdict_source`` ``existing-evidence``), and ``coord status``, the dashboard, ``coord run``'s first line and the
prompts of the phases built on it say so. spec-kit and Taskmaster plans record their own progress (checkboxes,
``status``). A phase is recorded ``passed`` (verdict PASS, ``verdict_source`` ``existing-evidence``, or
``re-verified`` after ``--verify``) only when its evidence passes and every phase it depends on passed too, so the
plan resumes at its first unfinished phase and nothing after a failed phase counts as done. Everything else is
``pending``; a phase whose evidence exists but fails keeps the FAIL verdict and its reason, shown by ``coord
status``. This takes the workspace lock and refuses a plan that coord has already run (it would overwrite real
attempts).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coordinator.errors import ExitStatus, PlanError, UsageError
from coordinator.paths import WorkspacePaths
from coordinator.states import EXISTING_EVIDENCE, REVERIFIED_EVIDENCE, PhaseState
from coordinator.util.files import workspace_relative

if TYPE_CHECKING:  # loaded on first use, so `coord --help` does not pay for them
    from coordinator.plan.model import Phase, Plan
    from coordinator.prompts.renderer import PromptRenderer
    from coordinator.state.events import EngineEvent

EVIDENCE_SOURCE = EXISTING_EVIDENCE
"""``phases.verdict_source`` of a verdict taken from files that existed before coord ran the phase."""

NOT_RERUN = "verification not re-run"
"""The mark on a phase passed on existing evidence alone (``coord status`` and ``coord run`` count them)."""

IMPORT_VERIFY_FOLDER = "import-verify"
"""``tmp/PLAN/PHASE/import-verify/``: the logs of the verify commands ``--verify`` re-runs at import."""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``coord import`` on the CLI's subcommand parser."""
    parser = subparsers.add_parser(
        "import",
        help="convert a markdown phase plan folder (or spec-kit tasks.md / Taskmaster tasks.json) into plan YAML",
        description="Write plans/<PLAN-ID>.yaml from a plan folder such as project-plans/<name> (plan/NN-*.md "
                    "phase files), a spec-kit tasks.md or a Taskmaster tasks.json inside the workspace.",
    )
    parser.add_argument("source", type=Path, help="the plan folder (or tasks.md / tasks.json), inside the workspace")
    parser.add_argument("-o", "--output", type=Path, default=None,
                        help="plan file to write (default: plans/<PLAN-ID>.yaml in the workspace)")
    parser.add_argument("--with-progress", action="store_true",
                        help="record phases whose existing evidence passes coord's checks as passed, so `coord "
                             "run` resumes at the first unfinished phase")
    parser.add_argument("--verify", action="store_true",
                        help="with --with-progress: re-run the verification commands of every phase whose existing "
                             "evidence passes, and record the verdict they give (without it such phases are marked "
                             f"'{NOT_RERUN}')")
    parser.add_argument("--format", dest="source_format", default="auto",
                        choices=("auto", "markdown", "spec-kit", "taskmaster"),
                        help="source format (default: detected)")
    parser.add_argument("--tag", default=None, help="Taskmaster tag to import (default: master)")
    parser.add_argument("--id", dest="plan_id", default=None, help="plan id to use instead of the one found")
    parser.add_argument("--force", action="store_true", help="replace the plan file if it exists")


def run(args: argparse.Namespace, workspace: Path) -> int:
    """Run ``coord import``.

    Args:
        args: parsed arguments (``source``, ``output``, ``with_progress``, ``source_format``, ``tag``, ``plan_id``,
            ``force``).
        workspace: absolute workspace root.

    Returns:
        ``ExitStatus.OK``.

    Raises:
        UsageError: the source is missing, outside the workspace or not importable, or the plan file exists.
        PlanError: the written plan did not validate (a bug in the importer or a workspace template).
        LockedError: ``--with-progress`` while a coordinator holds the workspace.
        StoreError: the state store cannot be written.
    """
    from coordinator.plan.importers import FORMAT_NAMES, import_plan
    from coordinator.prompts.renderer import PromptRenderer

    workspace = workspace.resolve()
    source = _source_path(args.source, workspace)
    renderer = PromptRenderer(workspace)
    result = import_plan(
        source, workspace, fmt=args.source_format, tag=args.tag, plan_id=args.plan_id,
        has_template=lambda kind: renderer.template_path(f"{kind}.md.j2") is not None,
    )
    output = _output_path(args.output, workspace, result.plan_id)
    shown = workspace_relative(output, workspace)
    if output.exists() and not args.force:
        raise UsageError(f"{shown}: already exists; pass --force to replace it, or -o to write elsewhere")
    if args.verify and not args.with_progress:
        raise UsageError("--verify re-runs the verification of phases recorded by --with-progress; pass both")
    if args.with_progress:
        _refuse_run_plan(workspace, result.plan_id)
    plan = _write_validated(output, shown, result.yaml_text(), workspace)
    for warning in result.warnings:
        print(f"coord import: warning: {warning}", file=sys.stderr)
    count = len(plan.phases)
    print(f"{shown}: plan {plan.id}, {count} phase{'s' if count != 1 else ''} from {result.source} "
          f"({FORMAT_NAMES[result.format]}); {len(result.warnings)} warning"
          f"{'s' if len(result.warnings) != 1 else ''}")
    if args.with_progress:
        judged = judge_existing_evidence(plan, result.progress, workspace, verify=args.verify)
        record_progress(plan, judged, workspace, shown, result.source)
        print_progress(plan, judged, shown)
    return ExitStatus.OK


# --------------------------------------------------------------------------------------------------------------
# Paths and the plan file


def _source_path(given: Path, workspace: Path) -> Path:
    """The source as an absolute path inside the workspace (relative paths are taken from the current directory)."""
    path = (given if given.is_absolute() else Path.cwd() / given).resolve()
    if not path.exists():
        raise UsageError(f"{given}: no such folder or file")
    if not path.is_relative_to(workspace):
        raise UsageError(
            f"{given}: outside the workspace {workspace}; the plan refers to its files by workspace-relative "
            f"paths, so copy the folder in (e.g. to project-plans/{path.name}/) or run coord import with "
            "--workspace set to the repository that holds it"
        )
    return path


def _output_path(given: Path | None, workspace: Path, plan_id: str) -> Path:
    if given is None:
        return workspace / "plans" / f"{plan_id}.yaml"
    return (given if given.is_absolute() else Path.cwd() / given).resolve()


def _write_validated(output: Path, shown: str, text: str, workspace: Path) -> Plan:
    """Validate the plan text with the plan loader, then write it atomically; nothing is written if it is invalid.

    Returns:
        The loaded ``Plan`` (its ``path`` is the output as shown to the user).

    Raises:
        PlanError: every problem, named after the output file.
    """
    from coordinator.prompts.validate import load_checked_plan as load_plan

    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        # The candidate sits next to the output so relative paths behave the same; it never replaces anything.
        handle, candidate_name = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".check.yaml",
                                                  dir=output.parent)
    except OSError as exc:
        raise UsageError(f"{shown}: cannot write: {exc.strerror or exc}") from None
    os.close(handle)
    candidate = Path(candidate_name)
    try:
        _write(candidate, text, shown)
        try:
            plan = load_plan(candidate, workspace)
        except PlanError as exc:
            named = workspace_relative(candidate, workspace)
            raise PlanError([
                dataclasses.replace(problem, file=shown if problem.file in (named, str(candidate)) else problem.file)
                for problem in exc.problems
            ]) from None
    finally:
        candidate.unlink(missing_ok=True)
    _write(output, text, shown)
    return dataclasses.replace(plan, path=shown)


def _write(path: Path, text: str, shown: str) -> None:
    """``write_atomic`` with a failure reported as one line naming the plan file."""
    from coordinator.util.files import write_atomic

    try:
        write_atomic(path, text)
    except OSError as exc:
        raise UsageError(f"{shown}: cannot write: {exc.strerror or exc}") from None


# --------------------------------------------------------------------------------------------------------------
# Existing evidence


@dataclass(frozen=True)
class PhaseEvidence:
    """What the files existing at import time say about one phase.

    Attributes:
        phase_id: the phase.
        state: ``PASSED`` or ``PENDING``.
        verdict: ``PASS`` when passed, ``FAIL`` when evidence exists and fails its checks, else None.
        reason: the deciding detail (the failing check's sentence, or why passing evidence does not count).
        evidence_passed: the evidence alone passes (before dependencies are considered).
        source: ``phases.verdict_source``: ``existing-evidence`` (verification not re-run) or ``re-verified``.
    """

    phase_id: str
    state: PhaseState
    verdict: str | None
    reason: str | None
    evidence_passed: bool
    source: str = EXISTING_EVIDENCE


def _judge_files(plan: Plan, phase: Phase, workspace: Path, renderer: PromptRenderer) -> tuple[bool, bool, str | None]:
    """Run the report and marker checks on existing files: (passed, some evidence exists, reason).

    A check switched off in the plan is not run; a phase with no check left cannot pass by existing evidence.
    A missing report is not held against a phase whose marker is judged: plans that keep reports often began
    keeping them midway (stateless4 has them for P04–P05a only), and the marker is what every phase leaves.
    A report that exists is judged, and its FAIL counts.
    """
    from coordinator.judge.checks import check_marker, check_report

    paths = renderer.artifact_paths(plan, phase)
    results = []
    report_missing = not (workspace / paths.report).exists()
    if phase.checks.report and not (report_missing and phase.checks.completed):
        results.append(check_report(workspace, paths.report, "checked at import")[0])
    if phase.checks.completed:
        results.append(check_marker(workspace, phase.id, paths.completed))
    exists = any((workspace / path).exists() for path, on in ((paths.report, phase.checks.report),
                                                              (paths.completed, phase.checks.completed)) if on)
    failed = [result for result in results if result.status == "fail"]
    if not results:
        return False, False, "no evidence check is switched on for this phase"
    if failed:
        return False, exists, failed[0].detail
    return True, True, "; ".join(result.detail for result in results)


def judge_existing_evidence(plan: Plan, progress: dict[str, Any] | None, workspace: Path, *,
                            verify: bool = False) -> list[PhaseEvidence]:
    """Judge every phase of an imported plan from the files (or source records) that exist now.

    Args:
        plan: the loaded plan.
        progress: the source's own completion records (spec-kit, Taskmaster), or None to judge markers and
            reports with coord's checks.
        workspace: absolute workspace root.
        verify: re-run the verify commands of each phase whose evidence passes (after its dependencies passed),
            logs in ``tmp/PLAN/PHASE/import-verify/``; their verdict is the phase's. Without it a phase passes on
            its evidence alone, marked :data:`NOT_RERUN`.

    Returns:
        One PhaseEvidence per phase, in plan order; a phase is ``passed`` only if its evidence passes and every
        phase it depends on is ``passed``.
    """
    from coordinator.prompts.renderer import PromptRenderer

    renderer = PromptRenderer(workspace)
    judged: dict[str, PhaseEvidence] = {}
    # For each phase not passed: the unfinished phase that holds it back (itself, or the one behind its
    # dependencies), so a message names the real cause rather than the phase just before.
    root: dict[str, str] = {}
    for phase in plan.phases:
        if progress is not None:
            record = progress.get(phase.id)
            passed, exists = bool(record and record.done), record is not None
            reason = record.detail if record else None
        else:
            passed, exists, reason = _judge_files(plan, phase, workspace, renderer)
        blockers = [dep for dep in phase.depends_on
                    if judged.get(dep) is None or judged[dep].state != PhaseState.PASSED]
        causes = list(dict.fromkeys(root.get(dep, dep) for dep in blockers))
        root[phase.id] = causes[0] if causes else phase.id
        if passed and not blockers and verify and phase.verify:
            failure = _rerun_verification(plan, phase, workspace)
            if failure is None:
                judged[phase.id] = PhaseEvidence(
                    phase.id, PhaseState.PASSED, "PASS",
                    f"{reason}; its {len(phase.verify)} verification command(s) pass, re-run at import", True,
                    REVERIFIED_EVIDENCE)
                root.pop(phase.id)
            else:
                judged[phase.id] = PhaseEvidence(phase.id, PhaseState.PENDING, "FAIL",
                                                 f"existing evidence passes, but {failure}", True,
                                                 REVERIFIED_EVIDENCE)
        elif passed and not blockers:
            mark = NOT_RERUN if phase.verify else "it has no verification commands"
            judged[phase.id] = PhaseEvidence(phase.id, PhaseState.PASSED, "PASS", f"{reason}; {mark}", True)
            root.pop(phase.id)
        elif passed:
            note = f"existing evidence passes, but not counted: {', '.join(causes)} before it has not passed"
            judged[phase.id] = PhaseEvidence(phase.id, PhaseState.PENDING, None, note, True)
        elif exists and progress is None:
            judged[phase.id] = PhaseEvidence(phase.id, PhaseState.PENDING, "FAIL", reason, False)
        else:
            judged[phase.id] = PhaseEvidence(phase.id, PhaseState.PENDING, None, reason if exists else None, False)
    return [judged[phase.id] for phase in plan.phases]


def _rerun_verification(plan: Plan, phase: Phase, workspace: Path) -> str | None:
    """Run a phase's verify commands as after a worker; the first failure's detail, or None when all pass."""
    from coordinator.judge.verify_commands import run_verify

    folder = WorkspacePaths(workspace).plan_dir(plan.id) / phase.id / IMPORT_VERIFY_FOLDER
    for index, command in enumerate(phase.verify):
        result = run_verify(command, index, workspace=workspace, workdir=workspace / phase.workdir,
                            attempt_dir=folder, env={"COORD_PLAN_ID": plan.id, "COORD_PHASE_ID": phase.id})
        if result.status != "pass":
            return f"{result.detail} (log {result.path})" if result.path else result.detail
    return None


def _refuse_run_plan(workspace: Path, plan_id: str) -> None:
    """Refuse ``--with-progress`` for a plan coord already ran, before anything is written.

    Raises:
        UsageError: the store holds attempts of ``plan_id``.
    """
    from coordinator.state.store import Store

    paths = WorkspacePaths(workspace)
    store = Store.open_readonly(paths)
    if store is None:
        return
    try:
        count = len(store.attempts(plan_id))
    finally:
        store.close()
    if count:
        raise UsageError(
            f"{plan_id} already has {count} attempt(s) recorded in {workspace_relative(paths.db, workspace)}; "
            f"--with-progress only seeds a plan coord has not run (see `coord status {plan_id}`)"
        )


def record_progress(plan: Plan, judged: list[PhaseEvidence], workspace: Path, plan_path: str, source: str) -> None:
    """Record the plan, its phases and an audit event in the store, under the workspace lock.

    Raises:
        LockedError: another coordinator holds the workspace.
        UsageError: coord already ran attempts of this plan (their state would be overwritten).
        StoreError: the store cannot be written.
    """
    from coordinator.state.events import ExistingEvidence, PlanImported
    from coordinator.state.lock import WorkspaceLock
    from coordinator.state.records import ImportedPhase
    from coordinator.state.store import Store

    paths = WorkspacePaths(workspace)
    lock = WorkspaceLock(paths)
    lock.acquire(plan.id, "coord import --with-progress")
    try:
        store = Store.open(paths)
        try:
            attempts = store.attempts(plan.id)
            if attempts:
                # Checked before writing too; this catches a run that started in between.
                store_shown = workspace_relative(paths.db, workspace)
                raise UsageError(
                    f"{plan.id} already has {len(attempts)} attempt(s) recorded in {store_shown}; "
                    f"--with-progress only seeds a plan coord has not run (the plan file {plan_path} was written)"
                )
            kinds = {phase.id: phase for phase in plan.phases}
            passed = [item.phase_id for item in judged if item.state == PhaseState.PASSED]
            phases = []
            events: list[EngineEvent] = []
            for item in judged:
                phase = kinds[item.phase_id]
                phases.append(ImportedPhase(
                    phase_id=phase.id, position=phase.index, kind=phase.kind, title=phase.title,
                    state=PhaseState(item.state), verdict=item.verdict,
                    verdict_source=item.source if item.verdict else None, reason=item.reason))
                if item.verdict:
                    events.append(ExistingEvidence(
                        plan_id=plan.id, phase_id=phase.id, verdict=item.verdict, source=item.source,
                        message=f"{phase.id}: {item.verdict} from existing evidence — {item.reason}"))
            resume = next((item.phase_id for item in judged if item.state != PhaseState.PASSED), None)
            events.append(PlanImported(
                plan_id=plan.id, source=source, plan_path=plan_path, passed=tuple(passed), resume_at=resume,
                message=f"{plan.id} imported from {source}: {len(passed)}/{len(judged)} phases passed by "
                        f"existing evidence" + (f"; resumes at {resume}" if resume else ""),
            ))
            store.seed_imported_plan(plan.id, plan_path, plan.title, phases, events)
        finally:
            store.close()
    finally:
        lock.release()


def print_progress(plan: Plan, judged: list[PhaseEvidence], plan_path: str) -> None:
    """Say how far the existing evidence goes, where the plan resumes, and which evidence failed."""
    passed = [item.phase_id for item in judged if item.state == PhaseState.PASSED]
    resume = next((item.phase_id for item in judged if item.state != PhaseState.PASSED), None)
    line = f"existing evidence: {len(passed)}/{len(judged)} phases passed"
    unverified = [item.phase_id for item in judged if item.state == PhaseState.PASSED
                  and item.source == EXISTING_EVIDENCE]
    if resume is None:
        print(line + "; every phase is done")
    else:
        print(line + f"; resumes at {resume} (coord run {plan_path})")
    if unverified:
        print(f"  {len(unverified)} of them on existing evidence alone, {NOT_RERUN}: {', '.join(unverified)} "
              "(add --verify to re-run it)")
    for item in judged:
        if item.verdict == "FAIL":
            print(f"  {item.phase_id}: FAIL from existing evidence: {item.reason}")
    ignored = [item.phase_id for item in judged if item.evidence_passed and item.state != PhaseState.PASSED]
    if ignored:
        print(f"  not counted (passing evidence after an unfinished phase): {', '.join(ignored)}")
