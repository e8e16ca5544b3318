"""Adapter for the built-in ``shell`` agent: runs a phase's ``script`` commands, no AI involved.

Who calls it: the engine, for phases whose agent profile has ``base: shell`` (demos, and plans whose phases are
plain commands: regenerate a client, run a migration). The worker is coord's shell runner
(``process/shell_runner.py``): each ``script`` entry in order, with the phase's ``policy.timeout`` over the whole
run, each command's output and exit code kept in the attempt folder (``commands/N.log``, ``commands.json``).

Without an allow-list the plan is trusted code (docs/design.md §4): each entry runs as written through
``/bin/sh -c``. With one (``agents.NAME.allow``, and the user's config file's ``shell.allow``) an entry runs only
as ``plan.allow_list.decide`` says: as its own argv with no shell, or through the shell when every command in it
may use one; ``coord validate`` has already refused the rest. Nothing else (ids, titles, prompts) is ever placed
into a shell string.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from coordinator.agents.base import AgentBase, AgentSummary, LaunchRequest, WorkerCommand
from coordinator.errors import UsageError
from coordinator.plan.allow_list import decide
from coordinator.process import shell_runner
from coordinator.util.files import read_json, tail_bytes

_TAIL_BYTES = 64 * 1024
_RUNNER_DIR = str(Path(shell_runner.__file__).resolve().parent)
RUNNER_CODE = (f"import sys; sys.path.insert(0, {_RUNNER_DIR!r}); import shell_runner; "
               "sys.exit(shell_runner.main(sys.argv))")
"""What ``python -I -S -c`` runs: the runner imported from its cached bytecode (running the file by path would
compile it on every start)."""


class ShellAgent(AgentBase):
    """The ``shell`` adapter.

    Args:
        profile: the agent profile; ``binary`` replaces ``/bin/sh`` as the shell that runs entries needing one,
            ``allow_lists`` restricts the entries, ``env`` is added to the worker's environment; ``model``,
            ``sandbox`` and ``args`` do not apply and are ignored.
    """

    default_binary = "/bin/sh"
    can_resume = False
    requires_completed_turn = False  # the exit status alone tells whether the script succeeded

    def build_command(self, request: LaunchRequest) -> WorkerCommand:
        """Return the shell runner's command for the phase's ``script`` (``python -I -S -c RUNNER_CODE SPEC``).

        Raises:
            UsageError: the phase has no ``script`` commands, or an allow-list refuses one (``coord validate``
                refuses it first; this is the check at launch).
        """
        script = tuple(request.script)
        if not script:
            raise UsageError(f"phase {request.phase_id} uses the shell agent but has no `script` commands")
        commands = []
        for entry in script:
            decision = decide(entry, self.profile.allow_lists)
            if decision.refusal is not None:
                raise UsageError(f"phase {request.phase_id}: {decision.refusal}")
            commands.append({"run": entry, "argv": list(decision.argv) if decision.argv is not None else None})
        spec = shell_runner.spec_argument(commands, self.program, request.timeout, request.kill_grace,
                                          str(request.attempt_dir))
        return WorkerCommand(argv=(sys.executable, "-I", "-S", "-c", RUNNER_CODE, spec), stdin_path=None,
                             env=dict(self.profile.env), inline_runner="shell_runner")

    def summarize(self, log_path: Path, attempt_dir: Path,
                  previous_usage: dict[str, Any] | None = None) -> AgentSummary:
        """Summary of a shell run: ``completed``; the last message is the last non-empty log line; ``error`` says
        which command failed or timed out (from the runner's ``commands.json``), None when all passed.

        Args:
            log_path: ``worker.log``; a missing file gives ``last_message=None``.
            attempt_dir: the attempt folder, holding ``commands.json``.
        """
        last: str | None = None
        data = (tail_bytes(log_path, _TAIL_BYTES) or (b"", 0))[0]
        for line in reversed(data.decode("utf-8", errors="replace").splitlines()):
            if line.strip():
                last = line.strip()
                break
        record = read_json(attempt_dir / shell_runner.RECORD_FILE)
        commands = record.get("commands") if isinstance(record, dict) else None
        return AgentSummary(last_message=last, completed=True,
                            commands=len(commands) if isinstance(commands, list) else 0, error=failure_of(record))


def failure_of(record: object) -> str | None:
    """Why a run failed, from its ``commands.json`` object: ``timed out after 10 min (policy.timeout): command 2,
    `make` (output in commands/2.log) was killed with its process group`` or ``command 2, `make test` (…) exited
    2``; None when it passed or there is no record."""
    if not isinstance(record, dict) or not isinstance(record.get("commands"), list) or not record["commands"]:
        return None
    outcome, commands = record.get("outcome"), record["commands"]
    last = commands[-1] if isinstance(commands[-1], dict) else {}
    shown = str(last.get("run", "")).strip().splitlines()[0] if str(last.get("run", "")).strip() else "?"
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    where = f"command {last.get('index', len(commands))}, `{shown}` (output in {last.get('log', 'commands/')})"
    if outcome == "timed-out":
        return (f"timed out after {_seconds(record.get('timeout'))} (policy.timeout): {where} was killed with its "
                "process group")
    if outcome == "failed":
        how = f"was killed by signal {last['signal']}" if last.get("signal") else f"exited {last.get('exit_code')}"
        return f"{where} {how}"
    return None


def _seconds(value: object) -> str:
    seconds = float(value) if isinstance(value, (int, float)) else 0.0
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"


ADAPTER = ShellAgent
"""What ``agents.AGENTS`` runs for ``base: shell``."""
