"""Adapter for the built-in ``mcp`` agent: an ``agent: mcp`` phase calls one tool of one MCP server, no AI involved.

Who calls it: the engine, for phases whose agent profile has ``base: mcp``. The engine renders the phase's call
(``prompts.values.render_call``: the arguments' strings, the server command) and hands it over in
``LaunchRequest.mcp_call``; this adapter writes it to the attempt's records folder (``mcp-request.json``, out of any
worker's reach) and starts ``mcp_worker.py`` on it under the supervisor, like any worker: the hang policy, stops,
the exit record, crash and reattach all apply unchanged. The worker's own ``policy.timeout`` bounds the whole call.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from coordinator.agents import mcp_worker
from coordinator.agents.base import AgentBase, AgentSummary, LaunchRequest, WorkerCommand
from coordinator.errors import UsageError
from coordinator.util.files import read_json, write_json_atomic

REQUEST_FILE = "mcp-request.json"
"""The rendered call, in the attempt's records folder (``STATE/attempts/PLAN/P07/N/mcp-request.json``)."""
_WORKER = str(Path(mcp_worker.__file__).resolve())


class McpAgent(AgentBase):
    """The ``mcp`` adapter.

    Args:
        profile: the agent profile; ``env`` is added to the worker's environment, ``binary`` replaces the Python
            interpreter that runs the worker (it must have the ``mcp`` package); the rest does not apply.
    """

    default_binary = sys.executable
    can_resume = False
    requires_completed_turn = False  # the worker's exit status says how the call went

    def build_command(self, request: LaunchRequest) -> WorkerCommand:
        """Write the call to ``records_dir/mcp-request.json`` and return ``python -I mcp_worker.py REQUEST``.

        Raises:
            UsageError: the request carries no rendered call or no records folder (not a plan's attempt).
            OSError: the request could not be written.
        """
        if request.mcp_call is None or request.records_dir is None:
            raise UsageError(f"phase {request.phase_id} uses the mcp agent but has no `mcp` call to make")
        path = request.records_dir / REQUEST_FILE
        write_json_atomic(path, {**request.mcp_call, "phase_id": request.phase_id, "timeout": request.timeout,
                                 "attempt_dir": str(request.attempt_dir)})
        return WorkerCommand(argv=(self.program, "-I", _WORKER, str(path)), stdin_path=None,
                             env=dict(self.profile.env))

    def summarize(self, log_path: Path, attempt_dir: Path,
                  previous_usage: dict[str, Any] | None = None) -> AgentSummary:
        """Summary of a call from the worker's ``mcp-call.json``: ``completed`` when the tool answered without
        error, ``error`` the worker's message otherwise (the server's own text where it gave one); ``call`` the
        record itself (for the evidence); a missing record reads as a worker that ended before it wrote one."""
        record = read_json(attempt_dir / mcp_worker.CALL_FILE)
        if not isinstance(record, dict):
            return AgentSummary(error="the MCP worker ended without recording the call (see worker.log)")
        message = record.get("message")
        message = str(message) if message is not None else None
        ok = record.get("outcome") == "ok"
        return AgentSummary(last_message=message, completed=ok, error=None if ok else message, call=record)


ADAPTER = McpAgent
"""What ``agents.AGENTS`` runs for ``base: mcp``."""
