"""The workspace's mirrors of the store, for people and scripts: ``tmp/PLAN/events.jsonl`` (one line per event) and
``tmp/PLAN/worker-pids.txt`` (one line per started worker).

They are in a worker's reach, so they are never written through a link (a link in their place is removed, the file
started afresh and the tampering reported through ``on_tampered``), and a coordinator starting catches them up
from the store: lines a killed coordinator never appended, or a worker deleted.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from coordinator.paths import OutsideWorkspace, WorkspacePaths
from coordinator.state.records import AttemptRecord, EventRecord
from coordinator.util.files import append_inside, tail_bytes, workspace_relative, write_atomic
from coordinator.util.timefmt import now_iso


def jsonl_line(seq: int, at: str, type_name: str, plan_id: str, message: str, phase_id: str | None,
                attempt: int | None, data: dict[str, object]) -> bytes:
    """One line of ``events.jsonl``: ``{"at", "seq", "type", "plan", "message", ["phase", "attempt", "data"]}``."""
    record: dict[str, object] = {"at": at, "seq": seq, "type": type_name, "plan": plan_id, "message": message}
    if phase_id is not None:
        record["phase"] = phase_id
    if attempt is not None:
        record["attempt"] = attempt
    if data:
        record["data"] = data
    return json.dumps(record, sort_keys=True).encode() + b"\n"


def _line_seq(raw: bytes, any_json: bool = False) -> int | None:
    """The ``seq`` of an ``events.jsonl`` line; None for a torn or empty line (with ``any_json``: -1 for a JSON
    object without ``seq``, a line of an older coord)."""
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    if isinstance(value, dict) and isinstance(value.get("seq"), int):
        return int(value["seq"])
    return -1 if any_json and isinstance(value, dict) else None


class Mirrors:
    """Appends to, and catches up, the mirrors of one workspace.

    Args:
        paths: the workspace.
        on_tampered: called with (plan id, what happened) when a mirror was found replaced by a link.
    """

    def __init__(self, paths: WorkspacePaths, on_tampered: Callable[[str, str], None]) -> None:
        self.paths = paths
        self.on_tampered = on_tampered

    def append_event(self, plan_id: str, line: bytes) -> None:
        """Append one ``events.jsonl`` line (:func:`jsonl_line`)."""
        self._append(plan_id, self.paths.events_file(plan_id), line)

    def append_pid_line(self, plan_id: str, phase_id: str, pid: int, attempt: int, supervisor_pid: int, at: str,
                        unless_present: bool = False) -> None:
        """Append ``P07 PID: 12345 attempt 1 2026-11-24T08:00:00+0000 supervisor 12340`` to worker-pids.txt.

        Args:
            unless_present: skip it when the file already has this launch's line (an adopted worker whose
                launching coordinator may or may not have written it before it died).
        """
        path = self.paths.pid_audit_file(plan_id)
        prefix = f"{phase_id} PID: {pid} attempt {attempt} "
        if unless_present and path.is_file() and not path.is_symlink():
            with open(path, encoding="utf-8", errors="replace") as handle:
                if any(line.startswith(prefix) for line in handle):
                    return
        self._append(plan_id, path, f"{prefix}{at} supervisor {supervisor_pid}\n".encode())

    def catch_up(self, plan_id: str, records: list[EventRecord], attempts: list[AttemptRecord]) -> int:
        """Bring the workspace's mirrors up to the store: ``events.jsonl`` gets every event after its last line
        (those a coordinator killed between a commit and its append never wrote), or is rewritten whole when a
        worker deleted or truncated it; ``worker-pids.txt`` gets the line of every started worker it lacks.
        Returns how many lines were added (events.jsonl written before lines carried ``seq`` is left alone).
        """
        path = self.paths.events_file(plan_id)
        first_seq = last_seq = None
        if path.is_file() and not path.is_symlink():
            with open(path, "rb") as handle:
                head = handle.readline()
            tail = (tail_bytes(path, 64 * 1024) or (b"", 0))[0]
            first_seq = _line_seq(head)
            for raw in reversed(tail.splitlines()):
                last_seq = _line_seq(raw)
                if last_seq is not None:
                    break
            if head.strip() and first_seq is None and _line_seq(head, any_json=True) == -1:
                return 0  # an older mirror without seq: leave it as it is
        added = 0
        if records and (first_seq is None or first_seq > records[0].seq or last_seq is None):
            lines = [self._event_line(record) for record in records]  # missing, or its start was lost: rewrite
            write_atomic(path, b"".join(lines), inside=self.paths.workspace)
            added = len(lines)
        else:
            for record in records:
                if last_seq is not None and record.seq > last_seq:
                    self._append(plan_id, path, self._event_line(record))
                    added += 1
        return added + self._catch_up_pid_audit(plan_id, attempts)

    @staticmethod
    def _event_line(record: EventRecord) -> bytes:
        return jsonl_line(record.seq, record.at, record.type, record.plan_id, record.message, record.phase_id,
                           record.attempt, record.fields())

    def _catch_up_pid_audit(self, plan_id: str, attempts: list[AttemptRecord]) -> int:
        path = self.paths.pid_audit_file(plan_id)
        present: set[str] = set()
        if path.is_file() and not path.is_symlink():
            with open(path, encoding="utf-8", errors="replace") as handle:
                present = {" ".join(line.split()[:5]) for line in handle}
        added = 0
        for attempt in attempts:
            if attempt.worker_pid is None or attempt.supervisor_pid is None:
                continue
            prefix = f"{attempt.phase_id} PID: {attempt.worker_pid} attempt {attempt.number}"
            if prefix not in present:
                line = f"{prefix} {attempt.started_at or now_iso()} supervisor {attempt.supervisor_pid}\n"
                self._append(plan_id, path, line.encode())
                added += 1
        return added

    def _append(self, plan_id: str, path: Path, line: bytes) -> None:
        """Append to a mirror in the workspace (``events.jsonl``, ``worker-pids.txt``), never through a link a
        worker left there: a link in its place is removed, a fresh file started, and the tampering recorded."""
        try:
            append_inside(path, line, self.paths.workspace, on_new_line=True)
            return
        except OutsideWorkspace as exc:
            reason = f"{workspace_relative(path, self.paths.workspace)} was replaced ({exc})"
        if path.is_symlink():
            path.unlink()
        try:
            append_inside(path, line, self.paths.workspace, on_new_line=True)
            reason += "; coord removed the link and started the file afresh (the state store has every record)"
        except OutsideWorkspace as exc:
            reason += f"; not written: {exc}"
        self.on_tampered(plan_id, reason)
