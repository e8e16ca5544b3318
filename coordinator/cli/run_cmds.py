"""The commands that run or steer workers: ``coord run``, ``remediate``, ``stop`` and ``tui``.

A command for a workspace that a coordinator holds goes to that coordinator over its control socket; otherwise
it takes the workspace lock itself (``run``, a stand-alone ``remediate``) or acts on the workers directly
(``stop``).
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coordinator.agents import get_agent
from coordinator.cli.plan_args import load, refuse_unready_agents, resolve_plan_ref, run_scope, with_overrides
from coordinator.errors import CoordError, ExitStatus, LockedError, UsageError
from coordinator.paths import WorkspacePaths

if TYPE_CHECKING:
    from coordinator.engine.core import RunOptions
    from coordinator.engine.engine import Engine
    from coordinator.plan.model import Plan
    from coordinator.plan.snapshot import PlanSnapshot
    from coordinator.state.store import Store


def cmd_run(args: argparse.Namespace, workspace: Path) -> int:
    """``coord run PLAN``: run (or resume) a plan, with the dashboard in a terminal, else headless."""
    from coordinator.cli.printer import HeadlessPrinter
    from coordinator.engine.engine import Engine, RunOptions
    from coordinator.prompts.validate import load_run_snapshot
    from coordinator.state.lock import WorkspaceLock
    from coordinator.state.store import Store

    if not args.plan.exists():
        raise UsageError(f"{args.plan}: no such plan file")
    taken = load_run_snapshot(args.plan, workspace)
    plan = with_overrides(taken.plan, args)
    snapshot = dataclasses.replace(taken, plan=plan)
    scope = run_scope(plan, args)
    if args.max_parallel < 1:
        raise UsageError("--max-parallel must be at least 1")
    refuse_unready_agents(plan, scope, workspace)
    paths = WorkspacePaths(workspace)
    options = RunOptions(max_parallel=args.max_parallel, scope=scope, use_socket=not args.no_socket)
    use_dashboard = not args.headless and sys.stdout.isatty() and sys.stdin.isatty()
    lock = WorkspaceLock(paths)
    lock.acquire(plan.id, "coord run")
    printer = HeadlessPrinter()
    try:
        store = Store.open(paths)
        for name, profile in sorted(plan.agents.items()):
            warning = get_agent(profile).bypass_warning()
            if warning and any(phase.agent == name for phase in plan.phases):
                printer.banner(f"WARNING: {warning}")
        if use_dashboard:
            store.close()
            return run_dashboard_with_engine(plan, paths, options, on_exit=lock.release, snapshot=snapshot)
        return run_engine(Engine(plan, store, options, sink=printer, snapshot=snapshot), store)
    finally:
        lock.release()


def run_engine(engine: Engine, store: Store) -> int:
    """Run a headless engine to its end in this thread (Ctrl-C / SIGTERM / SIGHUP detach); closes the store."""
    install_detach_handlers(engine)
    try:
        return int(engine.run())
    finally:
        store.close()


def install_detach_handlers(engine: Engine) -> None:
    """Make SIGINT, SIGTERM and SIGHUP ask the engine to detach (workers keep running)."""
    def handler(signum: int, frame: object) -> None:
        engine.request_detach(signum)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)


def run_dashboard_with_engine(plan: Plan, paths: WorkspacePaths, options: RunOptions,
                              on_exit: Callable[[], None] | None = None, snapshot: PlanSnapshot | None = None) -> int:
    """``coord run`` in a terminal: the engine on a thread, the dashboard in front of it."""
    from coordinator.engine.thread import EngineThread
    from coordinator.tui.app import run_with_engine
    from coordinator.tui.model import DashboardSource

    def start() -> EngineThread:
        thread = EngineThread(plan, paths, options, on_exit=on_exit, snapshot=snapshot)
        thread.start()
        return thread

    status = run_with_engine(DashboardSource(paths, plan.id, plan), start)
    return status


def cmd_tui(args: argparse.Namespace, workspace: Path) -> int:
    """``coord tui [PLAN]``: the dashboard of a recorded run, live or read-only."""
    from coordinator.tui.app import make_app
    from coordinator.tui.model import DashboardSource

    plan_id, plan_path = resolve_plan_ref(args.plan, workspace)
    try:
        plan = load(Path(plan_path), workspace)
    except CoordError as exc:  # an edited or moved plan: show the run without plan-derived details
        print(f"coord: showing {plan_id} without its plan ({exc})", file=sys.stderr)
        plan = None
    result = make_app(DashboardSource(WorkspacePaths(workspace), plan_id, plan)).run()
    return int(result or 0)


def forward_to_coordinator(paths: WorkspacePaths, message: dict[str, Any]) -> tuple[dict[str, Any], object] | None:
    """Send a command to the coordinator holding the workspace; None when no coordinator runs.

    Returns:
        (its reply, its pid) when it accepted the command.

    Raises:
        LockedError: a coordinator holds the workspace but does not answer on its socket.
        UsageError: it refused the command (the reply's error).
    """
    from coordinator.process.control_socket import send_command
    from coordinator.state.lock import holder_info, is_locked

    if not is_locked(paths):
        return None
    holder = holder_info(paths) or {}
    pid = holder.get("pid", "?")
    try:
        reply = send_command(Path(holder.get("socket") or paths.socket_path()), message)
    except OSError as exc:
        raise LockedError(f"a coordinator (pid {pid}) holds the workspace but did not answer on its socket: "
                          f"{exc}") from None
    if not reply.get("ok"):
        raise UsageError(str(reply.get("error")))
    return reply, pid


def cmd_remediate(args: argparse.Namespace, workspace: Path) -> int:
    """``coord remediate PHASE``: a remediation now, through the running coordinator or stand-alone to its
    verdict (exit 0 pass, 1 fail)."""
    from coordinator.cli.printer import HeadlessPrinter
    from coordinator.engine.engine import Engine, RemediationRequest, RunOptions
    from coordinator.state.lock import WorkspaceLock
    from coordinator.state.store import Store

    paths = WorkspacePaths(workspace)
    plan_id, plan_path = resolve_plan_ref(args.plan, workspace)
    forwarded = forward_to_coordinator(paths, {
        "command": "remediate", "plan": plan_id, "phase": args.phase, "resume": args.resume, "note": args.note,
    })
    if forwarded is not None:
        reply, pid = forwarded
        print(f"{args.phase}: remediation attempt {reply['attempt']} launched by the running coordinator "
              f"(pid {pid}); follow it with `coord logs {args.phase} -f`")
        return ExitStatus.OK
    snapshot = run_snapshot(paths, plan_id)
    if snapshot is None:  # a store from before runs kept their plan
        plan = load(Path(plan_path), workspace)
    else:
        plan = snapshot.plan
        from coordinator.prompts.validate import current_hash

        if current_hash(plan) != snapshot.sha256:
            print(f"coord: {plan.path} (or its templates) changed since the run started; judging by the run's "
                  f"version (`coord run {plan.path}` adopts the new one)", file=sys.stderr)
    try:
        plan.phase(args.phase)
    except KeyError:
        raise UsageError(f"{plan.id} has no phase {args.phase!r}") from None
    refuse_unready_agents(plan, [args.phase], workspace, include_done=True)
    lock = WorkspaceLock(paths)
    lock.acquire(plan.id, f"coord remediate {args.phase}")
    try:
        store = Store.open(paths)
        return run_engine(Engine(plan, store, RunOptions(remediate_only=RemediationRequest(
            phase_id=args.phase, resume=args.resume, note=args.note)), sink=HeadlessPrinter(), snapshot=snapshot),
            store)
    finally:
        lock.release()


def run_snapshot(paths: WorkspacePaths, plan_id: str) -> PlanSnapshot | None:
    """The plan the latest run of ``plan_id`` judged by, from the store; None when none was recorded."""
    from coordinator.plan.snapshot import PlanSnapshot
    from coordinator.state.store import Store

    store = Store.open_readonly(paths)
    if store is None:
        return None
    try:
        found = store.latest_snapshot(plan_id)
    finally:
        store.close()
    if found is None:
        return None
    try:
        return PlanSnapshot.from_json(found[1])
    except ValueError:
        return None


def refuse_unknown_phase(paths: WorkspacePaths, plan_id: str, phase_id: str) -> None:
    """Raise UsageError (exit 2) naming the plan's phases when ``phase_id`` is not one of them."""
    from coordinator.state.store import Store

    store = Store.open_readonly(paths)
    assert store is not None  # resolve_plan_ref found the run in it
    try:
        known = [phase.phase_id for phase in store.phases(plan_id)]
    finally:
        store.close()
    if phase_id not in known:
        shown = ", ".join(known[:10]) + (f" and {len(known) - 10} more" if len(known) > 10 else "")
        raise UsageError(f"plan {plan_id} has no phase {phase_id} (its phases: {shown})")


def cmd_stop(args: argparse.Namespace, workspace: Path) -> int:
    """``coord stop [PHASE]``: stop one phase's worker (its whole process group), or every worker."""
    from coordinator.process.executor import AttemptHandle
    from coordinator.process.local import LocalExecutor
    from coordinator.state.store import Store

    paths = WorkspacePaths(workspace)
    plan_id, _ = resolve_plan_ref(args.plan, workspace)
    if args.phase is not None:
        refuse_unknown_phase(paths, plan_id, args.phase)
    forwarded = forward_to_coordinator(paths, {"command": "stop", "plan": plan_id, "phase": args.phase})
    if forwarded is not None:
        stopped = forwarded[0].get("stopped") or []
        print(f"stopping {', '.join(stopped)}" if stopped else "no worker was running")
        return ExitStatus.OK
    store = Store.open_readonly(paths)
    assert store is not None
    try:
        attempts = [attempt for attempt in store.active_attempts(plan_id) if args.phase in (None, attempt.phase_id)]
    finally:
        store.close()
    stopped = []
    executor = LocalExecutor(inside=paths.workspace)
    for attempt in attempts:
        records = paths.records_dir(attempt.plan_id, attempt.phase_id, attempt.number)
        if executor.stop(AttemptHandle(attempt.attempt_id, records), "stopped"):
            stopped.append(attempt.phase_id)
    if stopped:
        print(f"stopping {', '.join(stopped)} (no coordinator runs: `coord run` records the outcome)")
    else:
        print("no worker was running")
    return ExitStatus.OK
