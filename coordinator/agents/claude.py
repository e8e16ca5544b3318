"""Adapter for Claude Code run as ``claude -p --output-format stream-json --verbose`` (docs/design.md §12).

Who calls it: the engine, for profiles with ``base: claude``. Measured against the real ``@anthropic-ai/claude-code``
2.1.331 (``tests/real_cli/claude/``, driven by a scripted Messages API server):

- ``-p`` without a prompt argument reads the prompt from stdin; ``--verbose`` is required with ``stream-json``.
- Output is JSONL: a first ``{"type":"system","subtype":"init","session_id":…}`` line, then ``assistant`` events
  (``message.content`` blocks: ``text``, ``tool_use`` with ``name`` and ``id``) and ``user`` events (tool results),
  and a last ``{"type":"result","subtype":…,"is_error":…,"result":…,"errors":[…],"total_cost_usd":…,"usage":{…},
  "model_usage_since_last_result":{MODEL:{"costUSD":…}}}`` line.
- ``--resume ID`` continues the session under the SAME id (``init`` reports it again). ``result.usage`` counts only
  this run, but ``total_cost_usd`` (and ``modelUsage``) are session totals that include the resumed runs; this
  run's own cost is ``model_usage_since_last_result``. A resume of an unknown id exits 1 with no ``init`` event and
  an ``error_during_execution`` result whose ``errors`` say "No conversation found with session ID: …".
- An API error (HTTP 4xx/5xx after claude's retries) ends with exit 1 and a result of subtype ``success`` but
  ``is_error: true``, ``result: "API Error: 500 …"``; so success needs both. ``--max-turns`` overruns give
  ``error_max_turns`` with ``errors``.
- As root, ``--permission-mode bypassPermissions``/``--dangerously-skip-permissions`` are refused (exit 1) unless
  ``IS_SANDBOX=1`` is in the environment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coordinator.agents import readiness
from coordinator.agents.base import AgentBase, AgentSummary, LaunchRequest, WorkerCommand, unresolved_failures
from coordinator.agents.jsonl import MAX_EVENT_CHARS, as_int, iter_log_events
from coordinator.agents.readiness import Finding

PERMISSION_FLAGS = ("--permission-mode", "--dangerously-skip-permissions", "--allow-dangerously-skip-permissions",
                    "--allowedTools", "--allowed-tools")
"""Flags by which a profile's ``args`` choose claude's permissions themselves; coord then adds none."""

DEFAULT_PERMISSIONS = ("--permission-mode", "acceptEdits", "--allowedTools", "Bash")
"""The least permissions with which claude works unattended: file edits inside its working directories accepted
(``acceptEdits``), and its ``Bash`` tool allowed, to run the phase's commands. In ``-p`` mode anything else that
would ask is denied. Claude's ``Bash`` is not confined to the workspace by these; a plan that needs that runs
claude inside a sandbox of its own."""

BYPASS_PERMISSIONS = ("--permission-mode", "bypassPermissions")
"""What ``dangerous: true`` gives a claude profile: every permission check skipped."""

COMMAND_TOOLS = frozenset({"Bash", "PowerShell"})
"""Tools whose uses count as ``commands``."""
FILE_TOOLS = frozenset({"Edit", "MultiEdit", "Write", "NotebookEdit"})
"""Tools whose uses count as ``file_changes``."""





def _invocation(name: str, tool_input: Any) -> str:
    """How a tool use reads in evidence: a ``Bash`` command as given, another tool as ``Write path``."""
    values = tool_input if isinstance(tool_input, dict) else {}
    if name in COMMAND_TOOLS and isinstance(values.get("command"), str):
        return values["command"]
    target = values.get("file_path") or values.get("path") or values.get("pattern")
    return f"{name} {target}" if isinstance(target, str) else name


def _result_text(block: dict[str, Any]) -> str:
    """The text of a ``tool_result`` block: a string, or the ``text`` of its content parts."""
    content = block.get("content")
    if isinstance(content, str):
        return content
    parts = [part.get("text") for part in content if isinstance(part, dict)] if isinstance(content, list) else []
    return "\n".join(part for part in parts if isinstance(part, str))


def _result_error(result: dict[str, Any], message: str | None, error_text: str | None) -> str:
    """Why a ``result`` is not a success: its subtype first when that is not ``success`` (``error_max_turns``,
    ``error_during_execution``, ``error_max_budget_usd``: the subtype decides, ``is_error`` alone may be false),
    then claude's words; for ``success`` with ``is_error`` (an API error) the result text."""
    subtype = str(result.get("subtype") or "error")
    if subtype != "success":
        words = error_text or message
        return f"{subtype}: {words}" if words else subtype
    return message or error_text or "error"


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class ClaudeSummary(AgentSummary):
    """An :class:`AgentSummary` with what a later resume of the same session needs.

    Attributes:
        cumulative_usage: ``{"total_cost_usd": X}``, the session total claude reported. Only used when a claude too
            old to report ``model_usage_since_last_result`` resumes this session: the engine passes it back as
            ``previous_usage`` and the difference is that attempt's own cost.
        tool_uses: uses per tool name (``{"Bash": 2, "Write": 1}``).
        last_event: the last JSON event line of the log (capped at 1000 characters), for evidence.
    """

    cumulative_usage: dict[str, float] = field(default_factory=dict)
    tool_uses: dict[str, int] = field(default_factory=dict)
    last_event: str | None = None


def _own_cost(result: dict[str, Any], previous_usage: dict[str, Any] | None) -> float | None:
    """This run's cost in USD: the sum of ``model_usage_since_last_result[*].costUSD`` when claude reports it,
    else ``total_cost_usd`` minus the session total seen before (``previous_usage``) when that is not larger."""
    since = result.get("model_usage_since_last_result")
    if isinstance(since, dict):
        costs = [_number(usage.get("costUSD")) for usage in since.values() if isinstance(usage, dict)]
        return sum(cost for cost in costs if cost is not None)
    total = _number(result.get("total_cost_usd"))
    before = _number((previous_usage or {}).get("total_cost_usd"))
    if total is not None and before is not None and before <= total:
        return total - before
    return total


class ClaudeAgent(AgentBase):
    """The ``claude`` adapter.

    Args:
        profile: the agent profile (``binary``, ``model``, ``dangerous``, ``args``, ``env``; ``sandbox`` and
            ``config`` are codex's and ignored). Permissions: :data:`DEFAULT_PERMISSIONS` unless ``args`` choose
            their own (:data:`PERMISSION_FLAGS`); ``dangerous: true`` gives :data:`BYPASS_PERMISSIONS`.
    """

    default_binary = "claude"
    can_resume = True
    requires_completed_turn = True  # success also needs a `result` event: subtype `success`, `is_error` false

    def readiness(self) -> list[Finding]:
        found = readiness.version(self.profile, self.program)
        return [found, readiness.claude_credentials(self.profile)] if found.ok else [found]

    def bypass_warning(self) -> str | None:
        args = self.profile.args
        if self.profile.dangerous or "--dangerously-skip-permissions" in args or "bypassPermissions" in args or \
                "--permission-mode=bypassPermissions" in args:
            return (f"agent profile {self.profile.name!r} runs claude with every permission check bypassed: workers "
                    "can change anything this user can.")
        return None

    def build_command(self, request: LaunchRequest) -> WorkerCommand:
        """Return ``claude -p --output-format stream-json --verbose [--model M] [--resume ID] [PERMISSIONS]
        [--add-dir WORKSPACE] [ARGS…]``.

        ``PERMISSIONS`` is :data:`BYPASS_PERMISSIONS` for a ``dangerous`` profile, none when ``args`` hold a
        permission flag, else :data:`DEFAULT_PERMISSIONS`; ``--add-dir`` lets claude edit the workspace's report
        and marker when the workdir is a folder inside it.

        The prompt goes on stdin (``-p`` without a prompt argument reads it from there); the worker runs in
        ``request.workdir`` (the supervisor's cwd), as claude has no ``-C`` flag. claude finds a session to resume
        by the workdir's project folder (``~/.claude/projects/<cwd>``), so a resumed phase must keep its workdir.
        """
        profile = self.profile
        argv = [self.program, "-p", "--output-format", "stream-json", "--verbose"]
        if profile.model:
            argv += ["--model", profile.model]
        if request.resume_session:
            argv += ["--resume", request.resume_session]
        if profile.dangerous:
            argv += BYPASS_PERMISSIONS
        elif not any(arg.split("=", 1)[0] in PERMISSION_FLAGS for arg in profile.args):
            argv += DEFAULT_PERMISSIONS
        if request.workspace is not None and request.workspace != request.workdir:
            argv += ["--add-dir", str(request.workspace)]
        argv += list(profile.args)
        return WorkerCommand(argv=tuple(argv), stdin_path=str(request.prompt_path), env=dict(profile.env))

    def summarize(self, log_path: Path, attempt_dir: Path,
                  previous_usage: dict[str, Any] | None = None) -> ClaudeSummary:
        """Read the stream-json events of a claude worker log.

        Args:
            log_path: ``worker.log``; non-JSON lines (stderr noise) are skipped, a missing file is empty.
            attempt_dir: unused.
            previous_usage: the ``cumulative_usage`` of the attempt whose session this one resumed (only used
                when claude does not report this run's own cost).

        Returns:
            Session id from the ``system``/``init`` event (else the ``result``'s); tokens from ``result.usage``
            (this run only; ``input_tokens`` include cache reads and writes, ``cached_input_tokens`` are the
            reads); this run's own cost (see :func:`_own_cost`); last message ``result.result`` (else the last
            assistant text); ``commands``/``file_changes`` counted from ``tool_use`` blocks; ``completed`` when
            the result's subtype is ``success`` and ``is_error`` is false; ``error`` the result text or
            ``errors`` otherwise.
        """
        session_id: str | None = None
        result: dict[str, Any] | None = None
        last_text: str | None = None
        tools: dict[str, str] = {}
        invocations: dict[str, str] = {}
        runs: list[tuple[str, int | None, bool, str]] = []
        last_event: str | None = None
        for event, line in iter_log_events(log_path):
            last_event = line.strip()[:MAX_EVENT_CHARS]
            kind = event["type"]
            if kind == "system" and event.get("subtype") == "init" and session_id is None:
                value = event.get("session_id")
                session_id = value if isinstance(value, str) else None
            elif kind == "assistant":
                message = event.get("message")
                content = message.get("content") if isinstance(message, dict) else None
                for block in content if isinstance(content, list) else []:
                    if not isinstance(block, dict):
                        continue
                    if block.get("type") == "tool_use" and isinstance(block.get("name"), str):
                        block_id = str(block.get("id") or f"#{len(tools)}")
                        tools[block_id] = block["name"]
                        invocations[block_id] = _invocation(block["name"], block.get("input"))
                    elif block.get("type") == "text" and isinstance(block.get("text"), str):
                        last_text = block["text"]
            elif kind == "user":
                message = event.get("message")
                content = message.get("content") if isinstance(message, dict) else None
                for block in content if isinstance(content, list) else []:
                    if isinstance(block, dict) and block.get("type") == "tool_result":
                        invocation = invocations.get(str(block.get("tool_use_id")))
                        if invocation is not None:
                            runs.append((invocation, None, not block.get("is_error"), _result_text(block)))
            elif kind == "result":
                result = event
        tool_uses: dict[str, int] = {}
        for name in tools.values():
            tool_uses[name] = tool_uses.get(name, 0) + 1
        commands = sum(n for name, n in tool_uses.items() if name in COMMAND_TOOLS)
        file_changes = sum(n for name, n in tool_uses.items() if name in FILE_TOOLS)
        if result is None:
            return ClaudeSummary(session_id=session_id, last_message=last_text, completed=False, commands=commands,
                                 file_changes=file_changes, tool_uses=tool_uses, last_event=last_event,
                                 failed_commands=unresolved_failures(runs))
        raw_usage = result.get("usage")
        usage: dict[str, Any] = raw_usage if isinstance(raw_usage, dict) else {}
        raw_details = usage.get("output_tokens_details")
        details: dict[str, Any] = raw_details if isinstance(raw_details, dict) else {}
        completed = result.get("subtype") == "success" and not result.get("is_error")
        message = result.get("result") if isinstance(result.get("result"), str) else None
        errors = result.get("errors")
        error_text = "; ".join(str(item) for item in errors) if isinstance(errors, list) and errors else None
        total = _number(result.get("total_cost_usd"))
        result_session = result.get("session_id") if isinstance(result.get("session_id"), str) else None
        return ClaudeSummary(
            session_id=session_id or result_session,
            # Anthropic counts cache reads and writes apart from input_tokens; coord's input_tokens include them.
            input_tokens=as_int(usage.get("input_tokens")) + as_int(usage.get("cache_read_input_tokens"))
            + as_int(usage.get("cache_creation_input_tokens")),
            cached_input_tokens=as_int(usage.get("cache_read_input_tokens")),
            output_tokens=as_int(usage.get("output_tokens")),
            reasoning_tokens=as_int(details.get("thinking_tokens")),
            cost_usd=_own_cost(result, previous_usage),
            last_message=message if message is not None else last_text,
            completed=completed,
            error=None if completed else _result_error(result, message, error_text),
            cumulative_usage={"total_cost_usd": total} if total is not None else {},
            commands=commands,
            file_changes=file_changes,
            tool_uses=tool_uses,
            last_event=last_event,
            failed_commands=unresolved_failures(runs),
        )


ADAPTER = ClaudeAgent
"""What ``agents.AGENTS`` runs for ``base: claude``."""
