"""The ``coord`` command line (DESIGN section 2): argparse subcommands mapped to ``ExitStatus``.

Errors reach the user as one line on stderr (``--traceback`` shows the traceback); an unexpected exception
writes a crash log under ``tmp/crashes/`` and exits 70. The TUI is imported only on the path that opens it.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import os
import shutil
import signal
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from coordinator import __version__
from coordinator.errors import CoordError, ExitStatus, LockedError, PlanError, UsageError
from coordinator.paths import WorkspacePaths


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coord",
        description="Run phase plans through AI coding-agent CLIs, judging each phase from evidence.",
    )
    parser.add_argument("--version", action="version", version=f"coord {__version__}")
    parser.add_argument("--workspace", "-w", type=Path, default=None,
                        help="the repository coord runs in (default: the current directory)")
    parser.add_argument("--traceback", action="store_true", help="show tracebacks of internal errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser("run", help="run a plan (reattaches to a run left by a stopped coordinator)")
    run.add_argument("plan", type=Path, help="the plan file, e.g. plans/PLAN-X.yaml")
    run.add_argument("--headless", action="store_true", help="log lines instead of the dashboard")
    run.add_argument("--agent", help="run every phase with this agent profile (codex, claude, shell, ...)")
    run.add_argument("--from", dest="from_phase", metavar="PHASE",
                     help="start at this phase (earlier ones count as met)")
    run.add_argument("--only", metavar="P05,P05a", help="run only these phases")
    run.add_argument("--max-parallel", type=int, default=1, metavar="N", help="attempts running at once (default 1)")
    run.add_argument("--poll-interval", metavar="DURATION", help="seconds per poll cycle, e.g. 5m, 30s")
    run.add_argument("--max-cycles", type=int, metavar="N", help="poll cycles before a worker is hung")
    run.add_argument("--max-attempts", type=int, metavar="N", help="attempts per phase before it is blocked")
    run.add_argument("--no-socket", action="store_true", help=argparse.SUPPRESS)

    tui = commands.add_parser("tui", help="the dashboard of a running or finished run (also: bare `coord`)")
    tui.add_argument("plan", nargs="?", help="plan file or id (default: the latest run)")

    status = commands.add_parser("status", help="phases, attempts, verdicts, PIDs and tokens of a run")
    status.add_argument("plan", nargs="?", help="plan file or id (default: the latest run)")
    status.add_argument("--json", action="store_true", help="stable JSON for scripts")

    remediate = commands.add_parser("remediate", help="launch a remediation worker for one phase now")
    remediate.add_argument("phase")
    remediate.add_argument("--plan", help="plan file or id (default: the latest run)")
    remediate.add_argument("--resume", action="store_true", help="resume the failed attempt's agent session")
    remediate.add_argument("--note", help="a note for the worker, added to its prompt")

    stop = commands.add_parser("stop", help="stop one phase's worker, or the whole run")
    stop.add_argument("phase", nargs="?")
    stop.add_argument("--plan", help="plan file or id (default: the latest run)")

    logs = commands.add_parser("logs", help="print (or follow) a phase's worker log")
    logs.add_argument("phase")
    logs.add_argument("--plan", help="plan file or id (default: the latest run)")
    logs.add_argument("--attempt", type=int, help="attempt number (default: the latest)")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing until the worker ends")

    validate = commands.add_parser("validate", help="check a plan; every problem with file:line:column")
    validate.add_argument("plan", type=Path)

    render = commands.add_parser("render", help="print a phase's prompt exactly as the worker gets it")
    render.add_argument("plan", type=Path)
    render.add_argument("phase")
    render.add_argument("--remediation", action="store_true", help="the remediation prompt instead")
    render.add_argument("--attempt", type=int, default=None, help="attempt number to render for")

    from coordinator.cli import exec_cmd, import_cmd

    import_cmd.add_parser(commands)
    exec_cmd.add_parsers(commands)
    commands.add_parser("init", help="scaffold plans/, templates/ and tmp/ in this repository")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``coord``; returns the process exit status."""
    from coordinator.cli import exec_cmd, import_cmd

    parser = build_parser()
    args = parser.parse_args(argv)
    workspace = (args.workspace or Path.cwd()).resolve()
    handlers = {
        "run": cmd_run,
        "status": cmd_status,
        "remediate": cmd_remediate,
        "stop": cmd_stop,
        "logs": cmd_logs,
        "validate": cmd_validate,
        "render": cmd_render,
        "init": cmd_init,
        "import": import_cmd.run,
        "tui": cmd_tui,
        "exec": exec_cmd.cmd_exec,
        "wait": exec_cmd.cmd_wait,
    }
    if args.command is None:
        if not WorkspacePaths(workspace).db.exists():
            parser.print_help()
            return ExitStatus.OK
        args.plan = None
        args.command = "tui" if sys.stdout.isatty() else "status"
        args.json = False
    try:
        return int(handlers[args.command](args, workspace))
    except PlanError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        count = len(exc.problems)
        print(f"coord: {count} problem{'s' if count != 1 else ''}; nothing was launched", file=sys.stderr)
        return ExitStatus.USAGE
    except CoordError as exc:
        print(f"coord: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        return ExitStatus.DETACHED_SIGINT
    except BrokenPipeError:
        return ExitStatus.OK
    except OSError as exc:
        if exc.errno not in OUT_OF_SPACE_ERRORS:
            return internal_error(exc, args, workspace)
        where = exc.filename or "standard output"
        print(f"coord: cannot write {where}: {exc.strerror}", file=sys.stderr)
        return ExitStatus.FAILED
    except Exception as exc:
        return internal_error(exc, args, workspace)


OUT_OF_SPACE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS)
"""Write failures that are the machine's state, not coord's bug: one line and exit 1, no crash log."""


def internal_error(exc: Exception, args: argparse.Namespace, workspace: Path) -> int:
    """The last line of defence: one line for the user, the traceback in a crash file (exit 70)."""
    if args.traceback:
        traceback.print_exc()
    crash = write_crash_log(workspace)
    print(f"coord: internal error: {exc!r}" + (f"; traceback in {crash}" if crash else ""), file=sys.stderr)
    return ExitStatus.INTERNAL


def write_crash_log(workspace: Path) -> Path | None:
    paths = WorkspacePaths(workspace)
    try:
        paths.crash_dir.mkdir(parents=True, exist_ok=True)
        path = paths.crash_dir / f"crash-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.log"
        path.write_text(traceback.format_exc(), encoding="utf-8")
        return path
    except OSError:
        return None


# --- plan helpers ------------------------------------------------------------------------------------------


def load(plan_path: Path, workspace: Path):  # noqa: ANN201 - returns Plan; import kept lazy for fast --help
    from coordinator.plan.loader import load_plan

    if not plan_path.exists():
        raise UsageError(f"{plan_path}: no such plan file")
    return load_plan(plan_path, workspace)


def with_overrides(plan: Any, args: argparse.Namespace) -> Any:
    """Apply ``--poll-interval``, ``--max-cycles``, ``--max-attempts`` and ``--agent`` to every phase."""
    from coordinator.plan.loader import parse_duration

    changes: dict[str, Any] = {}
    if args.poll_interval is not None:
        try:
            changes["poll_interval"] = parse_duration(args.poll_interval)
        except ValueError as exc:
            raise UsageError(f"--poll-interval: {exc}") from None
        if changes["poll_interval"] <= 0:
            raise UsageError("--poll-interval must be more than 0 seconds")
    for name in ("max_cycles", "max_attempts"):
        value = getattr(args, name)
        if value is not None:
            if value < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
            changes[name] = value
    if args.agent is not None and args.agent not in plan.agents:
        raise UsageError(f"--agent {args.agent!r}: no such agent profile (known: {', '.join(sorted(plan.agents))})")
    phases = []
    for phase in plan.phases:
        updates: dict[str, Any] = {}
        if changes:
            updates["policy"] = dataclasses.replace(phase.policy, **changes)
        if args.agent is not None:
            updates["agent"] = args.agent
        phases.append(dataclasses.replace(phase, **updates) if updates else phase)
    return dataclasses.replace(plan, phases=tuple(phases))


def run_scope(plan: Any, args: argparse.Namespace) -> frozenset[str] | None:
    ids = [phase.id for phase in plan.phases]
    scope: set[str] | None = None
    if args.only:
        wanted = [item.strip() for item in args.only.split(",") if item.strip()]
        if not wanted:
            raise UsageError("--only needs at least one phase id, e.g. --only P05,P05a")
        unknown = [item for item in wanted if item not in ids]
        if unknown:
            raise UsageError(f"--only: no such phase {', '.join(unknown)} in {plan.id}")
        scope = set(wanted)
    if args.from_phase:
        if args.from_phase not in ids:
            raise UsageError(f"--from: no such phase {args.from_phase} in {plan.id}")
        tail = set(ids[ids.index(args.from_phase):])
        scope = tail if scope is None else scope & tail
    return frozenset(scope) if scope is not None else None


def resolve_plan_ref(ref: str | None, workspace: Path) -> tuple[str, str]:
    """Map a plan file, a plan id or None (the latest run) to (plan id, plan path).

    Raises:
        UsageError: no run is recorded, or the reference matches nothing.
    """
    from coordinator.state.store import Store

    paths = WorkspacePaths(workspace)
    store = Store.open_readonly(paths)
    if store is None:
        raise UsageError(f"no run recorded in {workspace} (start one with `coord run plans/PLAN.yaml`)")
    try:
        if ref is None:
            plan_id = store.latest_plan_id()
            if plan_id is None:
                raise UsageError("no run recorded yet")
        elif store.plan_row(ref) is not None:
            plan_id = ref
        else:
            candidate = Path(ref)
            if not candidate.exists():
                raise UsageError(f"{ref}: neither a plan file nor a plan id with a recorded run")
            plan_id = load(candidate, workspace).id
            if store.plan_row(plan_id) is None:
                raise UsageError(f"{plan_id} has no recorded run yet")
        row = store.plan_row(plan_id)
        return plan_id, row["path"]
    finally:
        store.close()


# --- commands ----------------------------------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace, workspace: Path) -> int:
    plan = load(args.plan, workspace)
    print(f"{args.plan}: valid — plan {plan.id}, {len(plan.phases)} phases")
    return ExitStatus.OK


def cmd_render(args: argparse.Namespace, workspace: Path) -> int:
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
    sys.stdout.write(renderer.render(plan, phase, attempt_number=number, remediation=context))
    return ExitStatus.OK


def last_failure_context(plan: Any, phase_id: str, workspace: Path) -> Any:
    """The remediation context of a phase's latest recorded attempt, or the sample one if none ran yet."""
    from coordinator.engine.engine import LOG_TAIL_BYTES, tail_text
    from coordinator.prompts.renderer import SAMPLE_REMEDIATION, RemediationContext
    from coordinator.state.store import Store
    from coordinator.util.files import read_json

    store = Store.open_readonly(WorkspacePaths(workspace))
    if store is None:
        return SAMPLE_REMEDIATION
    try:
        rows = store.attempt_rows(plan.id, phase_id)
    finally:
        store.close()
    if not rows:
        return SAMPLE_REMEDIATION
    last = rows[-1]
    attempt_dir = Path(last["attempt_dir"])
    evidence = read_json(attempt_dir / "evidence.json") or SAMPLE_REMEDIATION.evidence
    log = attempt_dir / "worker.log"
    return RemediationContext(
        previous_attempt=int(last["number"]),
        evidence=evidence,
        log_path=str(log.relative_to(workspace)) if log.is_relative_to(workspace) else str(log),
        log_tail=tail_text(log, LOG_TAIL_BYTES),
    )


def cmd_init(args: argparse.Namespace, workspace: Path) -> int:
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


def run_engine(engine: Any, store: Any) -> int:
    """Run a headless engine to its end in this thread (Ctrl-C / SIGTERM / SIGHUP detach); closes the store."""
    install_detach_handlers(engine)
    try:
        return int(engine.run())
    finally:
        store.close()


def install_detach_handlers(engine: Any) -> None:
    def handler(signum: int, frame: object) -> None:
        engine.request_detach(signum)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)


def cmd_run(args: argparse.Namespace, workspace: Path) -> int:
    from coordinator.cli.printer import HeadlessPrinter
    from coordinator.engine.engine import Engine, RunOptions
    from coordinator.state.lock import WorkspaceLock
    from coordinator.state.store import Store

    plan = with_overrides(load(args.plan, workspace), args)
    scope = run_scope(plan, args)
    if args.max_parallel < 1:
        raise UsageError("--max-parallel must be at least 1")
    refuse_missing_executables(plan, scope, workspace)
    paths = WorkspacePaths(workspace)
    options = RunOptions(max_parallel=args.max_parallel, scope=scope, use_socket=not args.no_socket)
    use_dashboard = not args.headless and sys.stdout.isatty() and sys.stdin.isatty()
    lock = WorkspaceLock(paths)
    lock.acquire(plan.id, "coord run")
    printer = HeadlessPrinter()
    try:
        store = Store.open(paths)
        for name, profile in sorted(plan.agents.items()):
            if profile.dangerous and any(phase.agent == name for phase in plan.phases):
                printer.banner(
                    f"WARNING: agent profile {name!r} runs codex with --dangerously-bypass-approvals-and-sandbox: "
                    "workers can change anything this user can."
                )
        if use_dashboard:
            store.close()
            return run_dashboard_with_engine(plan, paths, options, on_exit=lock.release)
        return run_engine(Engine(plan, store, options, sink=printer), store)
    finally:
        lock.release()


def refuse_missing_executables(plan: Any, phase_ids: Any, workspace: Path, include_done: bool = False) -> None:
    """Stop before anything is launched when an agent program that a phase still to run needs is missing.

    Args:
        plan: the validated plan.
        phase_ids: the phases in scope (None: all).
        workspace: the workspace, whose store says which phases already passed (their agents are not needed).
        include_done: check passed phases too (a person's remediation of a passed phase).

    Raises:
        PlanError: one problem per profile whose program cannot be found (exit 2).
    """
    from coordinator.agents import missing_executables
    from coordinator.state.store import Store

    wanted = set(phase_ids) if phase_ids is not None else {phase.id for phase in plan.phases}
    store = None if include_done else Store.open_readonly(WorkspacePaths(workspace))
    if store is not None:
        try:
            wanted -= {row["phase_id"] for row in store.phase_rows(plan.id) if row["state"] in ("passed", "skipped")}
        finally:
            store.close()
    problems = missing_executables(plan, wanted)
    if problems:
        raise PlanError(problems)


def run_dashboard_with_engine(plan: Any, paths: WorkspacePaths, options: Any, on_exit: Any = None) -> int:
    """``coord run`` in a terminal: the engine on a thread, the dashboard in front of it."""
    from coordinator.engine.engine import EngineThread
    from coordinator.tui.app import run_with_engine
    from coordinator.tui.model import DashboardSource

    def start(sink: Any) -> EngineThread:
        thread = EngineThread(plan, paths, options, sink, on_exit=on_exit)
        thread.start()
        return thread

    status = run_with_engine(DashboardSource(paths, plan.id, plan), start)
    return status


def cmd_tui(args: argparse.Namespace, workspace: Path) -> int:
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


def forward_to_coordinator(paths: WorkspacePaths, message: dict[str, Any]) -> tuple[dict[str, Any], Any] | None:
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
    plan = load(Path(plan_path), workspace)
    try:
        plan.phase(args.phase)
    except KeyError:
        raise UsageError(f"{plan.id} has no phase {args.phase!r}") from None
    refuse_missing_executables(plan, [args.phase], workspace, include_done=True)
    lock = WorkspaceLock(paths)
    lock.acquire(plan.id, f"coord remediate {args.phase}")
    try:
        store = Store.open(paths)
        return run_engine(Engine(plan, store, RunOptions(remediate_only=RemediationRequest(
            phase_id=args.phase, resume=args.resume, note=args.note)), sink=HeadlessPrinter()), store)
    finally:
        lock.release()


def cmd_stop(args: argparse.Namespace, workspace: Path) -> int:
    from coordinator.process import launcher
    from coordinator.state.store import Store

    paths = WorkspacePaths(workspace)
    plan_id, _ = resolve_plan_ref(args.plan, workspace)
    forwarded = forward_to_coordinator(paths, {"command": "stop", "plan": plan_id, "phase": args.phase})
    if forwarded is not None:
        stopped = forwarded[0].get("stopped") or []
        print(f"stopping {', '.join(stopped)}" if stopped else "no worker was running")
        return ExitStatus.OK
    store = Store.open_readonly(paths)
    assert store is not None
    try:
        rows = [row for row in store.active_attempts(plan_id) if args.phase in (None, row["phase_id"])]
    finally:
        store.close()
    stopped = []
    for row in rows:
        identity = launcher.Identity.read(Path(row["attempt_dir"]), row["attempt_id"])
        if identity is not None and launcher.request_stop(Path(row["attempt_dir"]), identity, "stopped"):
            stopped.append(row["phase_id"])
    if stopped:
        print(f"stopping {', '.join(stopped)} (no coordinator runs: `coord run` records the outcome)")
    else:
        print("no worker was running")
    return ExitStatus.OK


def cmd_status(args: argparse.Namespace, workspace: Path) -> int:
    from coordinator.cli.status_table import print_status
    from coordinator.state.status import collect_status

    plan_id, _ = resolve_plan_ref(args.plan, workspace)
    report = collect_status(WorkspacePaths(workspace), plan_id)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_status(report)
    return ExitStatus.OK


def cmd_logs(args: argparse.Namespace, workspace: Path) -> int:
    from coordinator.state.store import Store
    from coordinator.util.logfollow import LogFollower

    paths = WorkspacePaths(workspace)
    plan_id, _ = resolve_plan_ref(args.plan, workspace)
    store = Store.open_readonly(paths)
    assert store is not None
    try:
        rows = store.attempt_rows(plan_id, args.phase)
    finally:
        store.close()
    if args.attempt is not None:
        rows = [row for row in rows if row["number"] == args.attempt]
    if not rows:
        numbered = f" numbered {args.attempt}" if args.attempt else ""
        raise UsageError(f"{plan_id}: no attempt of {args.phase}{numbered}")
    follower = LogFollower(Path(rows[-1]["attempt_dir"]) / "worker.log")
    while True:
        finished = not args.follow or attempt_finished(paths, rows[-1]["attempt_id"])
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
    return row is None or row["state"] in ("passed", "failed", "lost") or (
        Path(row["attempt_dir"]) / "exit.json").exists()
