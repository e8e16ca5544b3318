"""Reading JSON-lines worker logs: the event stream of ``codex exec --json`` and ``claude -p --output-format
stream-json`` alike, with stdout and stderr merged, so any line may be noise or torn.

Who calls it: the codex and Claude Code adapters (their summaries) and ``agents.logview`` (what a worker was last
doing).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

MAX_EVENT_CHARS = 1000
"""Cap on the raw last event kept in a summary (it goes into evidence and remediation prompts)."""


def _first_key_wins(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` keeping the FIRST of duplicate keys.

    codex 0.169 prints web_search items as ``{"id":"item_2","type":"web_search","id":"ws_1",…}``; the first
    ``id`` is the item id that ``item.started`` and ``item.completed`` share.
    """
    result: dict[str, Any] = {}
    for key, value in pairs:
        result.setdefault(key, value)
    return result


def parse_event_line(line: str) -> dict[str, Any] | None:
    """Parse one line of a worker log as a codex JSON event.

    Args:
        line: one line of ``worker.log`` (stdout and stderr merged, so it may be a warning, or an event glued
            to the end of a stderr fragment that lacked a newline).

    Returns:
        The event object (it has a string ``type``), or None for anything else (noise, torn JSON).
    """
    text = line.strip()
    if not text:
        return None
    start = 0 if text.startswith("{") else text.find('{"type"')
    if start < 0:
        return None
    try:
        value = json.loads(text[start:], object_pairs_hook=_first_key_wins)
    except ValueError:
        return None
    if isinstance(value, dict) and isinstance(value.get("type"), str):
        return value
    return None


def iter_log_events(log_path: Path) -> Iterator[tuple[dict[str, Any], str]]:
    """Yield ``(event, raw line)`` for each JSON event line of a worker log; other lines (stderr noise, torn
    lines) are skipped, and a missing log yields nothing."""
    try:
        handle = open(log_path, encoding="utf-8", errors="replace")
    except OSError:
        return
    with handle:
        for line in handle:
            event = parse_event_line(line)
            if event is not None:
                yield event, line


def as_int(value: Any) -> int:
    """``value`` if it is an int (a bool is not), else 0: token counts from untrusted JSON."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
