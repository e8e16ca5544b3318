"""Readable lines from a worker log: codex ``--json`` events turned into what a person wants to see.

Who calls it: the TUI's log tab, and the engine for a hung worker's reason. Event schema of ``codex exec --json``
(codex-rs/exec ``exec_events.rs``, measured on 0.169.0; see docs/codex-exec.md §3). Lines that are not JSON
events (stderr noise, the shell agent's output) pass through unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coordinator.agents.jsonl import parse_event_line
from coordinator.util.files import tail_bytes

MAX_LINE_CHARS = 400


@dataclass(frozen=True)
class LogLine:
    """One display line: ``kind`` picks the colour (command, ok, error, message, file, info, text)."""

    kind: str
    text: str


def _clip(text: str, limit: int = MAX_LINE_CHARS) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe_line(raw: str) -> LogLine | None:
    """Turn one raw log line into a display line, or None for events not worth showing (``item.started`` …)."""
    event = parse_event_line(raw)
    if event is None:
        return LogLine("text", raw.rstrip("\n"))  # plain output keeps its blank lines
    try:
        return describe_event(event)
    except (AttributeError, TypeError, ValueError):  # JSON with a type but not codex's shapes: show it as text
        return LogLine("text", raw.rstrip("\n"))


def describe_event(event: dict[str, Any]) -> LogLine | None:
    """One codex event as a display line, or None when it repeats what another line says."""
    kind = event.get("type")
    if kind == "thread.started":
        return LogLine("info", f"session {event.get('thread_id')}")
    if kind == "turn.started":
        return LogLine("info", "turn started")
    if kind == "turn.completed":
        usage = event.get("usage") or {}
        return LogLine("ok", f"turn completed · {usage.get('input_tokens', 0)} in / "
                             f"{usage.get('output_tokens', 0)} out tokens (thread totals)")
    if kind == "turn.failed":
        return LogLine("error", f"turn failed: {_clip(str((event.get('error') or {}).get('message', '')))}")
    if kind == "error":
        return LogLine("error", _clip(str(event.get("message", ""))))
    if kind != "item.completed":
        return None  # item.started / item.updated: the completed item says it all
    item = event.get("item") or {}
    item_type = item.get("type")
    if item_type == "command_execution":
        code = item.get("exit_code")
        status = "ok" if code == 0 else "error"
        output = _clip(str(item.get("aggregated_output") or ""), 160).replace("\n", " ⏎ ")
        return LogLine(status, f"$ {_clip(str(item.get('command', '')), 200)} → exit {code}"
                               + (f" · {output}" if output else ""))
    if item_type == "file_change":
        changes = ", ".join(f"{c.get('kind')} {c.get('path')}" for c in item.get("changes") or [])
        return LogLine("file", f"files: {_clip(changes)}")
    if item_type == "agent_message":
        return LogLine("message", _clip(str(item.get("text", ""))))
    if item_type == "reasoning":
        return LogLine("info", f"thinking: {_clip(str(item.get('text', '')), 200)}")
    if item_type == "error":
        return LogLine("info", f"warning: {_clip(str(item.get('message', '')))}")
    if item_type == "mcp_tool_call":
        return LogLine("command", f"tool {item.get('server')}.{item.get('tool')} ({item.get('status')})")
    if item_type == "web_search":
        return LogLine("command", f"web search: {_clip(str(item.get('query', '')))}")
    return LogLine("info", f"{item_type}")


LAST_ACTIVITY_BYTES = 64 * 1024


def last_activity(log_path: Path) -> str:
    """What a worker was last seen doing, from the end of its log: the reason a hung worker is stuck.

    Returns:
        One phrase: a command still running (a codex ``item.started`` without its ``item.completed``), the last
        event or line of output, or that the worker printed nothing at all.
    """
    tail = (tail_bytes(log_path, LAST_ACTIVITY_BYTES) or (b"", 0))[0].decode("utf-8", errors="replace")
    lines = [line for line in tail.splitlines() if line.strip()]
    if not lines:
        return "the worker printed nothing at all (did it start? is it waiting for a login or for input?)"
    event = parse_event_line(lines[-1])
    if event is None:
        return f"its last output: {_clip(lines[-1], 200)}"
    try:
        return _describe_last_event(event)
    except (AttributeError, TypeError, ValueError):  # a JSON line of another shape (stderr noise, another CLI)
        return f"its last output: {_clip(lines[-1], 200)}"


def _describe_last_event(event: dict[str, Any]) -> str:
    item = event.get("item") or {}
    started = event.get("type") in ("thread.started", "turn.started") or (  # codex; then Claude Code's first event
        event.get("type") == "system" and event.get("subtype") == "init")
    if started:
        return "the agent started its turn and nothing came back from the model (is the model server reachable?)"
    if event.get("type") == "item.started" and item.get("type") == "command_execution":
        return f"a command was still running: {_clip(str(item.get('command', '')), 200)}"
    described = describe_event(event)
    return f"its last event: {described.text if described else event.get('type', 'unknown')}"


STDIN_WAIT_MARKERS = ("Reading additional input from stdin",)
"""What an agent prints when it waits for more input on stdin (codex, given a prompt argument and a stdin that
is not a terminal): a worker left there never ends by itself."""


@dataclass(frozen=True)
class Busy:
    """Why a worker whose log did not grow is still alive (``busy_state``).

    Attributes:
        kind: ``command`` (a command it started has not finished), ``retrying`` (the agent said it is retrying
            the model), or ``stdin`` (it waits for input that will never come).
        detail: one phrase for the poll-cycle line and the reason.
    """

    kind: str
    detail: str


def busy_state(log_path: Path) -> Busy | None:
    """What the end of a worker log says the worker is busy with, or None when it says nothing of the kind.

    Read from the log's last ``LAST_ACTIVITY_BYTES``: a codex ``item.started`` of a ``command_execution`` without
    its ``item.completed``, or a Claude ``tool_use`` of ``Bash`` without its ``tool_result``, is a running command;
    a last codex ``error`` event ``Reconnecting... n/5`` or Claude ``system``/``api_retry`` event is a retry; a
    last line ``Reading additional input from stdin`` is a wait on stdin.
    """
    tail = (tail_bytes(log_path, LAST_ACTIVITY_BYTES) or (b"", 0))[0].decode("utf-8", errors="replace")
    lines = [line for line in tail.splitlines() if line.strip()]
    if not lines:
        return None
    if any(marker in lines[-1] for marker in STDIN_WAIT_MARKERS):
        return Busy("stdin", "it waits for input on stdin, which never comes")
    running: dict[str, str] = {}
    last: dict[str, Any] | None = None
    for line in lines:
        event = parse_event_line(line)
        if event is None:
            continue
        last = event
        raw_item = event.get("item")
        item: dict[str, Any] = raw_item if isinstance(raw_item, dict) else {}
        if item.get("type") == "command_execution" and isinstance(item.get("id"), str):
            if event["type"] == "item.started":
                running[item["id"]] = str(item.get("command", ""))
            elif event["type"] == "item.completed":
                running.pop(item["id"], None)
        raw_message = event.get("message")
        content = raw_message.get("content") if isinstance(raw_message, dict) else None
        for block in content if isinstance(content, list) else []:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "tool_use" and block.get("name") == "Bash":
                command = (block.get("input") or {}).get("command") if isinstance(block.get("input"), dict) else ""
                running[str(block.get("id"))] = str(command or "Bash")
            elif block.get("type") == "tool_result":
                running.pop(str(block.get("tool_use_id")), None)
    if last is not None and (
            (last["type"] == "error" and str(last.get("message", "")).startswith("Reconnecting"))
            or (last["type"] == "system" and last.get("subtype") == "api_retry")):
        said = _clip(str(last.get("message") or last.get("error") or "api_retry"), 120)
        return Busy("retrying", f"the agent is retrying the model ({said})")
    if running:
        return Busy("command", f"a command is still running: {_clip(list(running.values())[-1], 160)}")
    return None
