"""``coord exec`` and ``coord wait``: fire-and-forget workers outside any plan, and a way for scripts to wait.

``coord exec --task TEXT`` starts one agent worker through the same per-attempt supervisor as a plan's phases,
prints the run id and the paths of its log, meta and summary files, and returns at once. When the worker ends,
its supervisor runs ``python -m coordinator.cli.exec_cmd summarize RUN_DIR`` (which writes ``summary.json``) and
then the signal file ``tmp/exec/.signals/RUN_ID.done|.fail``. ``coord wait`` blocks until that many signals
arrived and prints their summaries, one JSON object per line.

Files (``tmp/exec/RUN_ID/``): ``prompt.md``, ``meta.json`` (run id, agent, argv, task, resume, start time),
``worker.log``, ``identity.json``, ``exit.json``, ``summary.json`` (run id, session id, exit code, tokens, cost,
start and end times, duration, last message, status).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from coordinator.errors import ExitStatus, UsageError
from coordinator.paths import WorkspacePaths
from coordinator.util.files import read_json, write_atomic, write_json_atomic
from coordinator.util.timefmt import now_iso

DEFAULT_RESUME_PROMPT = "Continue where you left off."
SEEN_SUFFIX = ".seen"
"""Appended to a signal file once ``coord wait`` has reported it, so the next wait does not count it again."""


def exec_dir(paths: WorkspacePaths) -> Path:
    return paths.tmp / "exec"


def cmd_exec(args: argparse.Namespace, workspace: Path) -> int:
    """Start the worker and print where its files are; never waits for it."""
    from coordinator.agents import AGENTS, LaunchRequest, get_agent, program_problem
    from coordinator.engine.launch import supervisor_spec
    from coordinator.plan.model import AgentProfile, Policy
    from coordinator.process.local import start_supervisor

    sessions = sorted(name for name, agent in AGENTS.items() if agent.can_resume)
    if args.agent not in sessions:
        raise UsageError(f"--agent {args.agent!r}: coord exec runs an agent with sessions: {', '.join(sessions)}")
    if not args.task and not args.resume:
        raise UsageError("coord exec needs --task TEXT, or --resume SESSION to continue a session")
    extra = list(args.agent_args)
    if extra and extra[0] == "--":
        extra = extra[1:]
    paths = WorkspacePaths(workspace)
    profile = AgentProfile(name=args.agent, base=args.agent, binary=args.binary, model=args.model, args=tuple(extra))
    problem = program_problem(profile, paths.workspace, "--binary")
    if problem is not None:  # refused before anything is written or started, as `coord run` does
        raise UsageError(f"cannot start the {args.agent} worker: {problem}")
    run_id = f"exec-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    run_dir = exec_dir(paths) / run_id
    run_dir.mkdir(parents=True)
    prompt = args.task or DEFAULT_RESUME_PROMPT
    prompt_path = run_dir / "prompt.md"
    write_atomic(prompt_path, prompt if prompt.endswith("\n") else prompt + "\n")
    command = get_agent(profile).build_command(LaunchRequest(
        prompt_path=prompt_path, attempt_dir=run_dir, workdir=paths.workspace, resume_session=args.resume,
    ))
    attempt_id = str(uuid.uuid4())
    signal_dir = exec_dir(paths) / ".signals"
    signal_dir.mkdir(parents=True, exist_ok=True)
    meta = {
        "run_id": run_id,
        "attempt_id": attempt_id,
        "agent": args.agent,
        "model": args.model,
        "argv": list(command.argv),
        "task": args.task,
        "resume": args.resume,
        "workdir": str(paths.workspace),
        "started_at": now_iso(),
    }
    write_json_atomic(run_dir / "meta.json", meta)
    spec = supervisor_spec(
        attempt_id, run_id, 1, command, cwd=paths.workspace, attempt_dir=run_dir, records_dir=run_dir,
        env={"COORD_ATTEMPT_ID": attempt_id, "COORD_PROMPT_FILE": str(prompt_path)}, policy=Policy(),
        socket_path=None, signal_path=signal_dir / run_id,
        after_exit_argv=(sys.executable, "-m", "coordinator.cli.exec_cmd", "summarize", str(run_dir)),
    )
    relative = run_dir.relative_to(paths.workspace)
    print(json.dumps({
        "run_id": run_id,
        "log": str(relative / "worker.log"),
        "meta": str(relative / "meta.json"),
        "summary": str(relative / "summary.json"),
    }))
    sys.stdout.flush()
    start_supervisor(spec, inside=paths.workspace)  # not waited for: the supervisor outlives this command
    return ExitStatus.OK


def summarize(run_dir: Path) -> dict[str, Any]:
    """Write ``summary.json`` for an ended exec run (run by its supervisor); returns the summary."""
    from coordinator.agents import get_agent
    from coordinator.engine.judging import priced_summary
    from coordinator.plan.model import AgentProfile
    from coordinator.process.records import ExitRecord

    meta = read_json(run_dir / "meta.json") or {}
    exit_record = ExitRecord.read(run_dir, str(meta.get("attempt_id"))) or ExitRecord(attempt_id="")
    profile = AgentProfile(name=meta.get("agent", "codex"), base=meta.get("agent", "codex"), model=meta.get("model"))
    agent = get_agent(profile)
    # The agent's own cost figure, else its tokens priced from the packaged table (None for unknown models).
    summary, _price = priced_summary(agent, profile, run_dir, {})
    succeeded = exit_record.exit_code == 0 and (summary.completed or not agent.requires_completed_turn)
    if meta.get("resume") and summary.session_id not in (None, meta["resume"]):
        succeeded = False  # a resume that came back in another thread lost the session
    record = {
        "run_id": meta.get("run_id", run_dir.name),
        "status": "done" if succeeded else "fail",
        "session_id": summary.session_id,
        "resumed": meta.get("resume"),
        "exit_code": exit_record.exit_code,
        "signal": exit_record.signal,
        "input_tokens": summary.input_tokens,
        "cached_input_tokens": summary.cached_input_tokens,
        "output_tokens": summary.output_tokens,
        "cost_usd": summary.cost_usd,
        "started_at": exit_record.started_at,
        "ended_at": exit_record.ended_at,
        "duration_s": exit_record.duration_s,
        "last_message": summary.last_message,
        "error": summary.error,
    }
    write_json_atomic(run_dir / "summary.json", record)
    return record


def cmd_wait(args: argparse.Namespace, workspace: Path) -> int:
    """Wait for ``--expected`` exec workers to signal; print their summaries (JSON lines).

    Returns:
        0 when every awaited worker succeeded; 1 on a failure, when ``--timeout`` seconds passed first, or when
        there is nothing to wait for (a script must not read "nothing" as "all succeeded").
    """
    base = exec_dir(WorkspacePaths(workspace))
    signals = base / ".signals"
    pending_runs = [
        path.parent.name for path in base.glob("*/meta.json") if not _acknowledged(signals, path.parent.name)
    ]
    expected = args.expected if args.expected is not None else len(pending_runs)
    if expected < 0:
        raise UsageError("--expected must be 0 or more")
    if expected == 0:
        print("coord wait: no `coord exec` worker to wait for (all were reported already, or none started)",
              file=sys.stderr)
        return ExitStatus.FAILED
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    arrived: list[Path] = []
    while True:
        arrived = sorted(p for p in signals.glob("*") if p.suffix in (".done", ".fail")) if signals.exists() else []
        if len(arrived) >= expected or (deadline is not None and time.monotonic() >= deadline):
            break
        time.sleep(0.1)
    reported = arrived[:expected]
    failed = False
    for signal_file in reported:
        run_id = signal_file.stem
        summary = read_json(base / run_id / "summary.json") or {"run_id": run_id, "status": signal_file.suffix[1:],
                                                                 "error": "no summary.json was written"}
        failed |= summary.get("status") != "done"
        print(json.dumps(summary, sort_keys=True))
        signal_file.rename(signal_file.with_name(signal_file.name + SEEN_SUFFIX))
    if len(reported) < expected:
        print(f"coord wait: timed out after {args.timeout:g} s with {len(reported)} of {expected} workers done",
              file=sys.stderr)
        return ExitStatus.FAILED
    return ExitStatus.FAILED if failed else ExitStatus.OK


def _acknowledged(signals: Path, run_id: str) -> bool:
    return any((signals / f"{run_id}{suffix}{SEEN_SUFFIX}").exists() for suffix in (".done", ".fail"))


def main(argv: list[str]) -> int:
    """``python -m coordinator.cli.exec_cmd summarize RUN_DIR`` (the supervisor's after-exit hook)."""
    if len(argv) != 3 or argv[1] != "summarize":
        print("usage: python -m coordinator.cli.exec_cmd summarize RUN_DIR", file=sys.stderr)
        return 2
    summarize(Path(argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
