"""Adapter for Claude Code run as ``claude -p --output-format stream-json --verbose`` (DESIGN section 6).

Who calls it: the engine, for profiles with ``base: claude``. Event schema: Claude Code's stream-json output
(public docs, summarized in ``codex-cli.md`` §10): a first ``{"type":"system","subtype":"init","session_id":…}``
line, message events, and a final ``{"type":"result","subtype":"success"|"error_…","is_error":…,"result":…,
"total_cost_usd":…,"usage":{…}}`` line. Not yet exercised against the real binary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from coordinator.agents.base import AgentSummary, LaunchRequest, WorkerCommand
from coordinator.agents.codex import parse_event_line
from coordinator.plan.model import AgentProfile


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class ClaudeAgent:
    """The ``claude`` adapter.

    Args:
        profile: the agent profile (``binary``, ``model``, ``args``, ``env``; codex-only fields are ignored).
    """

    def __init__(self, profile: AgentProfile) -> None:
        self.profile = profile

    @property
    def requires_completed_turn(self) -> bool:
        """Success also needs a ``result`` event with subtype ``success``."""
        return True

    def build_command(self, request: LaunchRequest) -> WorkerCommand:
        """Return ``claude -p --output-format stream-json --verbose [--model M] [--resume ID] [ARGS…]``.

        The prompt goes on stdin (``-p`` without a prompt argument reads it from there); the worker runs in
        ``request.workdir`` (the supervisor's cwd), as claude has no ``-C`` flag.
        """
        profile = self.profile
        argv = [profile.binary or "claude", "-p", "--output-format", "stream-json", "--verbose"]
        if profile.model:
            argv += ["--model", profile.model]
        if request.resume_session:
            argv += ["--resume", request.resume_session]
        argv += list(profile.args)
        return WorkerCommand(argv=tuple(argv), stdin_path=str(request.prompt_path), env=dict(profile.env))

    def summarize(self, log_path: Path, attempt_dir: Path) -> AgentSummary:
        """Read the stream-json events of a claude worker log.

        Args:
            log_path: ``worker.log``; non-JSON lines (stderr noise) are skipped, a missing file is empty.
            attempt_dir: unused.

        Returns:
            Session id from the ``system``/``init`` event (or the ``result``), cost in USD from
            ``result.total_cost_usd``, tokens from ``result.usage``, last message ``result.result``;
            ``completed`` when the result's subtype is ``success`` and ``is_error`` is false.
        """
        session_id: str | None = None
        result: dict[str, Any] | None = None
        try:
            handle = open(log_path, encoding="utf-8", errors="replace")
        except OSError:
            handle = None
        if handle is not None:
            with handle:
                for line in handle:
                    event = parse_event_line(line)
                    if event is None:
                        continue
                    if event["type"] == "system" and event.get("subtype") == "init" and session_id is None:
                        value = event.get("session_id")
                        session_id = value if isinstance(value, str) else None
                    elif event["type"] == "result":
                        result = event
        if result is None:
            return AgentSummary(session_id=session_id, completed=False)
        usage = result.get("usage") if isinstance(result.get("usage"), dict) else {}
        cost = result.get("total_cost_usd")
        completed = result.get("subtype") == "success" and not result.get("is_error")
        message = result.get("result") if isinstance(result.get("result"), str) else None
        return AgentSummary(
            session_id=session_id or (result.get("session_id") if isinstance(result.get("session_id"), str) else None),
            # Anthropic counts cache reads apart from input_tokens; coord's input_tokens include cached ones.
            input_tokens=_int(usage.get("input_tokens")) + _int(usage.get("cache_read_input_tokens"))
            + _int(usage.get("cache_creation_input_tokens")),
            cached_input_tokens=_int(usage.get("cache_read_input_tokens")),
            output_tokens=_int(usage.get("output_tokens")),
            cost_usd=float(cost) if isinstance(cost, (int, float)) and not isinstance(cost, bool) else None,
            last_message=message,
            completed=completed,
            error=None if completed else (message or str(result.get("subtype") or "error")),
        )
