"""Adapter for the built-in ``shell`` agent: runs a phase's ``script`` commands, no AI involved.

Who calls it: the engine, for phases whose agent profile has ``base: shell`` (demos, and plans whose phases are
plain commands). The plan is trusted code (docs/design.md §4), so each ``script`` entry runs as written through
``/bin/sh -c``; nothing else (ids, titles, prompts) is ever placed into a shell string.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from coordinator.agents.base import AgentBase, AgentSummary, LaunchRequest, WorkerCommand
from coordinator.errors import UsageError
from coordinator.util.files import tail_bytes

RUNNER = 'for c in "$@"; do printf "$ %s\\n" "$c"; /bin/sh -c "$c" || exit $?; done'
"""A fixed loop over its positional arguments: echo each command, run it in its own ``sh -c``, stop at the first
failure with its exit status. The commands travel as separate argv entries, never concatenated into one string,
so a ``;`` or quote inside one command cannot leak into the next."""

_TAIL_BYTES = 64 * 1024


class ShellAgent(AgentBase):
    """The ``shell`` adapter.

    Args:
        profile: the agent profile; ``binary`` replaces ``/bin/sh`` as the runner shell, ``env`` is added to the
            worker's environment; ``model``, ``sandbox`` and ``args`` do not apply and are ignored.
    """

    default_binary = "/bin/sh"
    can_resume = False
    requires_completed_turn = False  # the exit status alone tells whether the script succeeded

    def build_command(self, request: LaunchRequest) -> WorkerCommand:
        """Return ``/bin/sh -c RUNNER coord-shell CMD…`` for the phase's ``script``; no stdin.

        Raises:
            UsageError: the phase has no ``script`` commands.
        """
        script = tuple(request.script)
        if not script:
            raise UsageError(f"phase {request.phase_id} uses the shell agent but has no `script` commands")
        shell = self.program
        argv = (shell, "-c", RUNNER, "coord-shell", *script)
        return WorkerCommand(argv=argv, stdin_path=None, env=dict(self.profile.env))

    def summarize(self, log_path: Path, attempt_dir: Path,
                  previous_usage: dict[str, Any] | None = None) -> AgentSummary:
        """Summary of a shell run: always ``completed``; last message = the last non-empty log line.

        Args:
            log_path: ``worker.log``; a missing file gives ``last_message=None``.
            attempt_dir: unused (kept for the protocol).
        """
        last: str | None = None
        data = (tail_bytes(log_path, _TAIL_BYTES) or (b"", 0))[0]
        for line in reversed(data.decode("utf-8", errors="replace").splitlines()):
            if line.strip():
                last = line.strip()
                break
        return AgentSummary(last_message=last, completed=True)


ADAPTER = ShellAgent
"""What ``agents.AGENTS`` runs for ``base: shell``."""
