"""The commands that read: ``coord status``, ``logs``, ``validate``, ``render`` and ``init``."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from coordinator.cli.plan_args import load, resolve_plan_ref
from coordinator.errors import ExitStatus, UsageError
from coordinator.paths import WorkspacePaths
from coordinator.states import TERMINAL_ATTEMPT_STATES

if TYPE_CHECKING:
    from coordinator.plan.model import Phase, Plan
    from coordinator.prompts.renderer import RemediationContext
    from coordinator.state.records import AttemptRecord


def cmd_status(args: argparse.Namespace, workspace: Path) -> int:
    """``coord status [PLAN] [--json | --markdown]``: the status document, as a table, JSON or Markdown."""
    from coordinator.cli.status_table import print_status
    from coordinator.state.status import collect_status

    paths = WorkspacePaths(workspace)
    plan_id, _ = resolve_plan_ref(args.plan, workspace)
    report = collect_status(paths, plan_id)
    if args.json:
        # Indented for a person at a terminal; one line for a script (json's C encoder: 4x quicker on 500 phases).
        print(json.dumps(report, indent=2) if sys.stdout.isatty() else json.dumps(report, separators=(",", ":")))
    elif args.markdown:
        from coordinator.cli.status_markdown import LAST_EVENTS, status_markdown
        from coordinator.state.store import Store

        store = Store.open_readonly(paths)
        assert store is not None  # resolve_plan_ref found the run in it
        try:
            events = store.last_events(plan_id, LAST_EVENTS)
        finally:
            store.close()
        print(status_markdown(report, events, paths.plan_dir(plan_id)), end="")
    else:
        print_status(report)
    return ExitStatus.OK


def _chosen_attempts(args: argparse.Namespace, workspace: Path) -> tuple[str, list[AttemptRecord]]:
    """The plan id and the attempts of ``args.phase`` (only ``args.attempt`` when given), oldest first.

    Raises:
        UsageError: there is no such attempt.
    """
    from coordinator.state.store import Store

    plan_id, _ = resolve_plan_ref(args.plan, workspace)
    store = Store.open_readonly(WorkspacePaths(workspace))
    assert store is not None
    try:
        rows = store.attempts(plan_id, args.phase)
    finally:
        store.close()
    if args.attempt is not None:
        rows = [row for row in rows if row.number == args.attempt]
    if not rows:
        numbered = f" numbered {args.attempt}" if args.attempt else ""
        raise UsageError(f"{plan_id}: no attempt of {args.phase}{numbered}")
    return plan_id, rows


def cmd_logs(args: argparse.Namespace, workspace: Path) -> int:
    """``coord logs PHASE [--attempt N] [-f]``: a worker's log, followed across trims until it ends."""
    from coordinator.util.logfollow import LogFollower

    paths = WorkspacePaths(workspace)
    plan_id, rows = _chosen_attempts(args, workspace)
    follower = LogFollower(rows[-1].directory / "worker.log")
    while True:
        finished = not args.follow or attempt_finished(paths, rows[-1].attempt_id)
        chunk = follower.read(final=finished)
        if chunk.note:
            print(f"coord logs: {chunk.note}", file=sys.stderr)
        if chunk.data:
            sys.stdout.buffer.write(chunk.data)
            sys.stdout.flush()
        if finished:
            return ExitStatus.OK
        time.sleep(0.25)


def attempt_finished(paths: WorkspacePaths, attempt_id: str) -> bool:
    """True once the attempt's worker has ended (its exit record exists, or the store says it is over)."""
    from coordinator.state.store import Store

    store = Store.open_readonly(paths)
    if store is None:
        return True
    try:
        row = store.attempt(attempt_id)
    finally:
        store.close()
    return row is None or row.state in TERMINAL_ATTEMPT_STATES or (
        paths.records_dir(row.plan_id, row.phase_id, row.number) / "exit.json").exists()


def cmd_validate(args: argparse.Namespace, workspace: Path) -> int:
    """``coord validate PLAN``: every problem with ``file:line:column`` (exit 2), or one line saying it is valid."""
    plan = load(args.plan, workspace)
    print(f"{args.plan}: valid — plan {plan.id}, {len(plan.phases)} phases")
    return ExitStatus.OK


def cmd_diff(args: argparse.Namespace, workspace: Path) -> int:
    """``coord diff PHASE [--attempt N]``: the attempt's changes (its tree before against after, ``git diff``)."""
    from coordinator.git.checkpoints import Checkpoints

    paths = WorkspacePaths(workspace)
    plan_id, rows = _chosen_attempts(args, workspace)
    checkpoints = Checkpoints.open(workspace, paths.state_dir, plan_id)
    patch = checkpoints.diff(args.phase, rows[-1].number) if checkpoints is not None else None
    if patch is None:
        raise UsageError(f"{plan_id}: {args.phase} attempt {rows[-1].number} has no recorded trees (the workspace "
                         "is not in a git working tree, or the plan says git: off)")
    sys.stdout.write(patch + ("\n" if patch else ""))
    return ExitStatus.OK


def cmd_render(args: argparse.Namespace, workspace: Path) -> int:
    """``coord render PLAN PHASE [--remediation]``: the prompt exactly as the worker gets it (for an MCP phase,
    the call: server, tool and rendered arguments, as JSON)."""
    from coordinator.prompts.renderer import PromptRenderer

    plan = load(args.plan, workspace)
    try:
        phase = plan.phase(args.phase)
    except KeyError:
        raise UsageError(f"{args.plan}: no phase {args.phase!r}") from None
    renderer = PromptRenderer(Path(plan.workspace))
    context = None
    number = args.attempt or 1
    if args.remediation:
        context = last_failure_context(plan, phase.id, workspace)
        number = args.attempt or (context.previous_attempt + 1)
    if phase.mcp is not None:  # an MCP phase's worker gets its call, not a prompt
        from coordinator.prompts.values import render_call

        call = render_call(renderer, plan, phase, attempt_number=number, remediation=context)
        sys.stdout.write(json.dumps(call, indent=2, ensure_ascii=False) + "\n")
        return ExitStatus.OK
    sys.stdout.write(renderer.render(plan, phase, attempt_number=number, remediation=context,
                                     unverified_dependencies=_unverified_dependencies(plan, phase, workspace)))
    return ExitStatus.OK


def _unverified_dependencies(plan: Plan, phase: Phase, workspace: Path) -> list[str]:
    """What ``render`` says of the phases ``phase`` builds on that passed on unverified existing evidence."""
    from coordinator.state.store import Store

    store = Store.open_readonly(WorkspacePaths(workspace))
    if store is None:
        return []
    try:
        unverified = {record.phase_id for record in store.phases(plan.id) if record.unverified}
    finally:
        store.close()
    return [phase_id for phase_id in plan.ancestors(phase) if phase_id in unverified]


def last_failure_context(plan: Plan, phase_id: str, workspace: Path) -> RemediationContext:
    """The remediation context the next worker of ``phase_id`` would get (the engine's own builder), or the
    packaged sample when the phase has no attempt yet."""
    from coordinator.engine.remediation import choose_resume, remediation_context
    from coordinator.prompts.renderer import SAMPLE_REMEDIATION
    from coordinator.state.store import Store

    store = Store.open_readonly(WorkspacePaths(workspace))
    if store is None:
        return SAMPLE_REMEDIATION
    try:
        last = store.last_attempt(plan.id, phase_id)
    finally:
        store.close()
    if last is None:
        return SAMPLE_REMEDIATION
    phase = plan.phase(phase_id)
    resume = choose_resume(phase, plan.agents[phase.agent], last, None).session
    return remediation_context(last, WorkspacePaths(workspace).workspace, resume)


def cmd_init(args: argparse.Namespace, workspace: Path) -> int:
    """``coord init``: scaffold ``plans/``, ``templates/`` (the packaged ones) and ``tmp/`` (git-ignored)."""
    from coordinator.prompts.renderer import packaged_templates_dir

    created = []
    for name in ("plans", "templates", "tmp"):
        directory = workspace / name
        if not directory.exists():
            directory.mkdir(parents=True)
            created.append(f"{name}/")
    for template in sorted(packaged_templates_dir().glob("*.md.j2")):
        target = workspace / "templates" / template.name
        if not target.exists():
            shutil.copyfile(template, target)
            created.append(f"templates/{template.name}")
    gitignore = workspace / ".gitignore"
    lines = gitignore.read_text(encoding="utf-8").splitlines() if gitignore.exists() else []
    if "tmp/" not in lines and "/tmp/" not in lines:
        with open(gitignore, "a", encoding="utf-8") as handle:
            handle.write(("\n" if lines and lines[-1] else "") + "tmp/\n")
        created.append(".gitignore: tmp/")
    print("created: " + ", ".join(created) if created else "nothing to do: plans/, templates/ and tmp/ exist")
    return ExitStatus.OK
