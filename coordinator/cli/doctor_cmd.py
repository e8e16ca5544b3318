"""``coord doctor [PLAN]``: prove, before a plan spends an hour, that each agent it uses works unattended.

For every agent profile the plan's phases use (without a plan: the built-in ``codex`` and ``claude``), the free
checks first — the program starts, says its version, has credentials (``agents.readiness``) — then, with ``--yes``
or once the person agrees, one tiny real turn and its resume, in a scratch folder ``tmp/doctor/PROFILE-TIME/``:
it must start without asking anything, write a file and run a command there, return a session id, and continue
that session when resumed. One table of checks, each ✓ or ✗ with the fix; exit 0 when none failed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from coordinator.agents import Agent, LaunchRequest, get_agent, program_problem
from coordinator.agents.base import AgentSummary
from coordinator.agents.readiness import Finding, worker_env
from coordinator.engine.judging import priced_summary
from coordinator.errors import ExitStatus
from coordinator.paths import WorkspacePaths
from coordinator.plan.model import AgentProfile
from coordinator.process.local import COOKIE, kill_attempt_processes
from coordinator.process.records import LOG_FILE
from coordinator.util.files import write_atomic

PROBE_FILE = "coord-doctor-probe.txt"
PROBE_TEXT = "coord doctor"
PROBE_COMMAND = f"printf '{PROBE_TEXT}\\n' > {PROBE_FILE} && cat {PROBE_FILE}"
"""The command the first turn is asked to run: it writes a file in the workdir and prints it."""
FIRST_PROMPT = f"""This is `coord doctor`, checking that you can work unattended. Run this shell command in your
working directory, exactly as written:

    {PROBE_COMMAND}

Then answer with the single line: DOCTOR OK
"""
RESUME_PROMPT = """This is `coord doctor` again, checking that this session can be resumed. Answer with the single
line: DOCTOR RESUMED
"""
KILL_GRACE = 5.0
"""Seconds between SIGTERM and SIGKILL when a doctor turn runs past ``--timeout``."""


@dataclass(frozen=True)
class Turn:
    """One real turn of the doctor: how it ended and what the agent said."""

    exit_code: int | None
    timed_out: bool
    summary: AgentSummary
    log: Path


def cmd_doctor(args: argparse.Namespace, workspace: Path) -> int:
    """Check every profile; print the table; 0 when no check failed, 1 otherwise."""
    from coordinator.cli.plan_args import load

    if args.plan:
        plan = load(Path(args.plan), workspace)
        used = sorted({phase.agent for phase in plan.phases})
        profiles = [plan.agents[name] for name in used]
    else:
        profiles = [AgentProfile(name=name, base=name) for name in ("codex", "claude")]
    real_turns = not args.free_only and _agreed(args, profiles)
    rows: list[tuple[str, Finding]] = []
    for profile in profiles:
        for finding in check_profile(profile, workspace, real_turns=real_turns, timeout=args.timeout):
            rows.append((profile.name, finding))
    _print_table(rows)
    failed = [finding for _, finding in rows if not finding.ok]
    if not real_turns and not args.free_only:
        print("the real turns were not run: `coord doctor --yes` runs them (two tiny turns per profile)")
    return ExitStatus.FAILED if failed else ExitStatus.OK


def check_profile(profile: AgentProfile, workspace: Path, *, real_turns: bool, timeout: float) -> list[Finding]:
    """Every check of one profile, in order; the real turns only when ``real_turns`` and the free ones held.

    Args:
        profile: the agent profile.
        workspace: the workspace (the scratch folder goes under its ``tmp/doctor/``).
        real_turns: run the two tiny real turns.
        timeout: seconds each real turn may take before its process group is killed.
    """
    agent = get_agent(profile)
    problem = program_problem(profile, workspace, f"agents.{profile.name}.binary")
    if problem is not None:
        detail, _, fix = problem.partition("; ")
        return [Finding("program", False, detail, fix or f"set agents.{profile.name}.binary to an executable")]
    found = [Finding("program", True, agent.program), *agent.readiness()]
    if not real_turns or not agent.can_resume or not all(item.ok for item in found):
        return found
    scratch = WorkspacePaths(workspace).tmp / "doctor" / f"{profile.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    turns = [run_turn(agent, workspace, scratch, "turn-1", FIRST_PROMPT, None, timeout)]
    found += _judge_first(profile, agent, turns[0], scratch)
    if turns[0].summary.session_id:
        turns.append(run_turn(agent, workspace, scratch, "turn-2", RESUME_PROMPT, turns[0].summary.session_id,
                              timeout))
        found.append(_judge_resume(turns[0], turns[1]))
    costs = [turn.summary.cost_usd for turn in turns if turn.summary.cost_usd is not None]
    spent = f"${sum(costs):.4f}" if costs else "unknown (no price for this model)"
    found.append(Finding("cost", True, f"{spent} for {len(turns)} turn(s); logs in {scratch.relative_to(workspace)}"))
    return found


def run_turn(agent: Agent, workspace: Path, scratch: Path, name: str, prompt: str, resume: str | None,
             timeout: float) -> Turn:
    """Run one real turn of ``agent`` in ``scratch`` (its own process group, output to ``scratch/name/``),
    killing the group after ``timeout`` seconds; returns how it ended with the adapter's summary."""
    turn_dir = scratch / name
    turn_dir.mkdir(parents=True, exist_ok=True)
    prompt_path = turn_dir / "prompt.md"
    write_atomic(prompt_path, prompt)
    command = agent.build_command(LaunchRequest(prompt_path=prompt_path, attempt_dir=turn_dir, workdir=scratch,
                                                resume_session=resume, workspace=workspace))
    log = turn_dir / LOG_FILE
    timed_out = False
    cookie = str(uuid.uuid4())  # what every process of the turn carries, so none is left behind
    env = {**worker_env(agent.profile), **command.env, COOKIE: cookie}
    with open(prompt_path, "rb") as stdin, open(log, "wb") as output:
        process = subprocess.Popen(list(command.argv), stdin=stdin, stdout=output, stderr=subprocess.STDOUT,
                                   cwd=scratch, env=env, start_new_session=True)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _stop_group(process)
    # What the agent left running (codex's shell snapshot starts the user's login scripts) ends with the turn.
    kill_attempt_processes(cookie, KILL_GRACE)
    summary, _ = priced_summary(agent, agent.profile, turn_dir, {})
    return Turn(process.returncode, timed_out, summary, log)


def _judge_first(profile: AgentProfile, agent: Agent, turn: Turn, scratch: Path) -> list[Finding]:
    relative_log = turn.log.relative_to(scratch.parent.parent.parent)  # workspace-relative: tmp/doctor/…
    ended = turn.exit_code == 0 and (turn.summary.completed or not agent.requires_completed_turn)
    if turn.timed_out:
        start = Finding("starts unattended", False, "the turn did not end within the timeout: it may be waiting "
                        "for an answer or a login", f"run `{agent.program}` by hand once; see {relative_log}")
    elif not ended:
        start = Finding("starts unattended", False,
                        f"exit {turn.exit_code}: {turn.summary.error or 'no completed turn'}", f"see {relative_log}")
    else:
        start = Finding("starts unattended", True, "one turn ran to its end without a question")
    try:
        probe = (scratch / PROBE_FILE).read_text(encoding="utf-8")
    except OSError:
        probe = ""
    failures = "; ".join(failure.describe() for failure in turn.summary.failed_commands[:2])
    if probe.strip() == PROBE_TEXT:
        works = Finding("writes and runs commands", True, f"wrote {PROBE_FILE} by a shell command in its workdir")
    else:
        works = Finding("writes and runs commands", False,
                        f"{PROBE_FILE} was not written" + (f": {failures}" if failures else ""), _write_fix(profile))
    session = (Finding("returns a session id", True, turn.summary.session_id) if turn.summary.session_id
               else Finding("returns a session id", False, "no session id in its output",
                            f"check that the agent's output is JSON events; see {relative_log}"))
    return [start, works, session]


def _judge_resume(first: Turn, second: Turn) -> Finding:
    if second.exit_code == 0 and second.summary.session_id == first.summary.session_id:
        return Finding("resumes its session", True, f"session {first.summary.session_id} continued")
    got = second.summary.session_id or "none"
    return Finding("resumes its session", False, f"exit {second.exit_code}, session {got} "
                   f"(expected {first.summary.session_id}): {second.summary.error or ''}".rstrip(": "),
                   f"use `remediation: fresh` for this agent; see {second.log.name} in {second.log.parent}")


def _write_fix(profile: AgentProfile) -> str:
    if profile.base == "codex":
        if profile.sandbox == "read-only":
            return f"set agents.{profile.name}.sandbox: workspace-write (read-only cannot write a report)"
        return "check codex's sandbox on this machine (landlock/seccomp); see the log"
    if profile.base == "claude":
        return (f"let claude run Bash and edit files: drop the permission flags from agents.{profile.name}.args, "
                "or add `--allowedTools Bash`")
    return "see the log"


def _agreed(args: argparse.Namespace, profiles: list[AgentProfile]) -> bool:
    """``--yes``, or a person at a terminal who answers yes once told what the real turns cost."""
    if args.yes:
        return True
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        return False
    names = ", ".join(profile.name for profile in profiles if get_agent(profile).can_resume)
    if not names:
        return False
    answer = input(f"Run two tiny real turns for each of {names}? They use your account (a few thousand tokens "
                   "each, cents at most). [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=KILL_GRACE)
            return
        except subprocess.TimeoutExpired:
            continue


def _print_table(rows: list[tuple[str, Finding]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="coord doctor", title_justify="left")
    for column in ("agent", "check", "", "found", "fix"):
        table.add_column(column, overflow="fold")
    for name, finding in rows:
        mark = "[green]✓[/]" if finding.ok else "[bold red]✗[/]"
        table.add_row(name, finding.check, mark, finding.detail, finding.fix)
    Console(width=None if sys.stdout.isatty() else 160).print(table)
