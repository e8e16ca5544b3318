"""The options of ``coord exec``, ``coord wait`` and ``coord doctor``, apart from the commands themselves, so that
building the parser imports nothing heavy: every ``coord`` call builds it, and ``coord status`` must stay quick
(``bench/cli.py``). The commands live in ``exec_cmd`` and ``doctor_cmd``.
"""

from __future__ import annotations

import argparse


def add_exec_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``exec`` and ``wait`` on the ``coord`` subcommand parser."""
    run = commands.add_parser("exec", help="one fire-and-forget worker outside any plan; returns at once")
    run.add_argument("--task", help="what the worker should do (optional with --resume)")
    run.add_argument("--resume", metavar="SESSION", help="resume this agent session (a codex thread UUID)")
    # Only agents with sessions (checked by `exec_cmd`): an exec run is one turn that `--resume` can continue.
    run.add_argument("--agent", default="codex", help="agent CLI with sessions: codex or claude (default codex)")
    run.add_argument("--binary", help="the agent executable (default: the agent's name on PATH)")
    run.add_argument("--model", help="model name passed to the agent")
    run.add_argument("agent_args", nargs=argparse.REMAINDER, help="after `--`: extra arguments for the agent")
    wait = commands.add_parser("wait", help="block until `coord exec` workers signal done or fail")
    wait.add_argument("--expected", type=int, help="how many workers to wait for (default: all not yet waited for)")
    wait.add_argument("--timeout", type=float, default=None, help="give up after this many seconds (exit 1)")


def add_doctor_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``doctor`` on the ``coord`` subcommand parser."""
    doctor = commands.add_parser("doctor", help="check that each agent a plan uses works unattended")
    doctor.add_argument("plan", nargs="?", help="the plan whose agent profiles to check (default: codex and claude)")
    doctor.add_argument("--yes", action="store_true", help="run the tiny real turns without asking")
    doctor.add_argument("--free-only", action="store_true", help="only the checks that cost nothing")
    doctor.add_argument("--timeout", type=float, default=300.0, help="seconds each real turn may take (300)")
