"""The ``coord`` command line (docs/design.md §3): argparse subcommands mapped to ``ExitStatus``.

Errors reach the user as one line on stderr (``--traceback`` shows the traceback); an unexpected exception
writes a crash log under ``tmp/crashes/`` and exits 70. The commands live in ``run_cmds`` (those that run or
steer workers), ``info_cmds`` (those that read), ``import_cmd`` and ``exec_cmd``; the TUI and the engine are
imported only on the paths that need them, so ``coord --help`` stays fast.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from coordinator import __version__
from coordinator.cli import command_args, import_cmd
from coordinator.errors import CoordError, ExitStatus, PlanError
from coordinator.paths import WorkspacePaths


def build_parser() -> argparse.ArgumentParser:
    """Every subcommand of ``coord`` and its options (``coord --help``, ``coord run --help``, …)."""
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
    output = status.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="stable JSON for scripts")
    output.add_argument("--markdown", action="store_true", help="Markdown to paste into an issue or a chat")

    remediate = commands.add_parser("remediate", help="launch a remediation worker for one phase now")
    remediate.add_argument("phase")
    remediate.add_argument("--plan", help="plan file or id (default: the latest run)")
    remediate.add_argument("--resume", action="store_true", help="resume the failed attempt's agent session")
    remediate.add_argument("--note", help="a note for the worker, added to its prompt")

    stop = commands.add_parser("stop", help="stop one phase's worker, or the whole run")
    stop.add_argument("phase", nargs="?")
    stop.add_argument("--plan", help="plan file or id (default: the latest run)")

    diff = commands.add_parser("diff", help="print what an attempt changed (git)")
    diff.add_argument("phase")
    diff.add_argument("--plan", help="plan file or id (default: the latest run)")
    diff.add_argument("--attempt", type=int, help="attempt number (default: the latest)")
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

    import_cmd.add_parser(commands)
    command_args.add_exec_parsers(commands)
    command_args.add_doctor_parser(commands)
    commands.add_parser("init", help="scaffold plans/, templates/ and tmp/ in this repository")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``coord``; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    workspace = (args.workspace or Path.cwd()).resolve()
    handlers = {  # module of coordinator.cli, function: imported only for the command that runs
        "run": ("run_cmds", "cmd_run"),
        "status": ("info_cmds", "cmd_status"),
        "remediate": ("run_cmds", "cmd_remediate"),
        "stop": ("run_cmds", "cmd_stop"),
        "logs": ("info_cmds", "cmd_logs"),
        "diff": ("info_cmds", "cmd_diff"),
        "validate": ("info_cmds", "cmd_validate"),
        "render": ("info_cmds", "cmd_render"),
        "init": ("info_cmds", "cmd_init"),
        "import": ("import_cmd", "run"),
        "tui": ("run_cmds", "cmd_tui"),
        "exec": ("exec_cmd", "cmd_exec"),
        "wait": ("exec_cmd", "cmd_wait"),
        "doctor": ("doctor_cmd", "cmd_doctor"),
    }
    if args.command is None:
        if not WorkspacePaths(workspace).db.exists():
            parser.print_help()
            return ExitStatus.OK
        args.plan = None
        args.command = "tui" if sys.stdout.isatty() else "status"
        args.json = args.markdown = False
    try:
        module, function = handlers[args.command]
        handler = getattr(importlib.import_module(f"coordinator.cli.{module}"), function)
        return int(handler(args, workspace))
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
    """Write the current traceback to ``tmp/crashes/crash-TIME-PID.log``; its path, or None if it cannot."""
    paths = WorkspacePaths(workspace)
    try:
        paths.crash_dir.mkdir(parents=True, exist_ok=True)
        path = paths.crash_dir / f"crash-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.log"
        path.write_text(traceback.format_exc(), encoding="utf-8")
        return path
    except OSError:
        return None
