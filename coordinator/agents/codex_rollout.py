"""The commands of a codex turn as its session rollout recorded them, for when ``codex exec --json`` printed none.

Why: under ``-s read-only``, codex 0.169 runs the model's ``exec_command`` calls but prints no
``command_execution`` items on stdout, so the worker log cannot say that ``mkdir reports`` failed with "Read-only
file system". The rollout file codex keeps for every thread (``$CODEX_HOME/sessions/YYYY/MM/DD/
rollout-<time>-<thread id>.jsonl``, one ``{"timestamp", "type", "payload"}`` object per line) does: a
``response_item`` ``function_call`` (``name``, JSON ``arguments`` with ``cmd``) and its ``function_call_output``
(same ``call_id``; ``output`` text ``"…Process exited with code N…Output:\\n…"``). Measured on codex-cli 0.169.0.

Only the last turn of the file is read (after its last ``task_started`` event): a resumed thread's rollout holds the
turns of earlier attempts too.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from coordinator.agents.jsonl import parse_event_line

MAX_ROLLOUT_BYTES = 64 * 1024 * 1024
"""Rollout files larger than this are not read (a thread that long has its evidence in the log anyway)."""

COMMAND_TOOLS = frozenset({"exec_command", "shell", "local_shell", "shell_command"})
"""Names of codex's command-running tools."""

EXIT_LINE = re.compile(r"(?:Process exited with code|Exit code:)\s*(-?\d+)")


def codex_home(profile_env: dict[str, str]) -> Path:
    """Where codex keeps its sessions for a worker: the profile's ``CODEX_HOME``, else the coordinator's, else
    ``~/.codex``."""
    return Path(profile_env.get("CODEX_HOME") or os.environ.get("CODEX_HOME") or Path.home() / ".codex")


def rollout_runs(home: Path, thread_id: str) -> list[tuple[str, int | None, bool, str]]:
    """(command, exit code, succeeded, output) of each command of the thread's last turn, in order; empty when
    the rollout is missing, too large or unreadable.

    Args:
        home: the codex home (``codex_home``).
        thread_id: the thread (session) id, a UUID (checked by the caller before it reached a command line).
    """
    sessions = home / "sessions"
    try:
        candidates = sorted(sessions.glob(f"*/*/*/rollout-*-{thread_id}.jsonl"))
    except OSError:
        return []
    if not candidates:
        return []
    path = candidates[-1]
    try:
        if path.stat().st_size > MAX_ROLLOUT_BYTES:
            return []
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    calls: dict[str, str] = {}
    runs: list[tuple[str, int | None, bool, str]] = []
    for line in lines:
        entry = parse_event_line(line)
        payload = entry.get("payload") if entry is not None else None
        if not isinstance(payload, dict):
            continue
        kind = payload.get("type")
        if entry is not None and entry["type"] == "event_msg" and kind == "task_started":
            calls, runs = {}, []  # a new turn: the earlier ones belong to earlier attempts
        elif kind == "function_call" and payload.get("name") in COMMAND_TOOLS:
            command = _command_of(payload.get("arguments"))
            if command is not None and isinstance(payload.get("call_id"), str):
                calls[payload["call_id"]] = command
        elif kind == "function_call_output" and payload.get("call_id") in calls:
            output = payload.get("output")
            text = output if isinstance(output, str) else json.dumps(output)
            found = EXIT_LINE.search(text)
            code = int(found.group(1)) if found else None
            shown = text.split("Output:\n", 1)[1] if "Output:\n" in text else text
            runs.append((calls[payload["call_id"]], code, code == 0, shown))
    return runs


def _command_of(arguments: object) -> str | None:
    try:
        values = json.loads(arguments) if isinstance(arguments, str) else arguments
    except ValueError:
        return None
    if not isinstance(values, dict):
        return None
    command = values.get("cmd", values.get("command"))
    if isinstance(command, list):
        return " ".join(str(part) for part in command)
    return command if isinstance(command, str) else None
