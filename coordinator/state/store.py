"""The coordinator's durable truth: SQLite ``tmp/coord.db`` (WAL), the ``events.jsonl`` audit trail and the
``worker-pids.txt`` audit file.

Who calls it: the engine writes through ``Store.transaction()`` (``BEGIN IMMEDIATE``; committed before the change
is acted on); ``coord status``/``logs`` and the TUI read through ``Store.open_readonly``.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from coordinator.errors import StoreError
from coordinator.paths import WorkspacePaths

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS plans (
    plan_id TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    title TEXT NOT NULL,
    state TEXT NOT NULL,               -- running, finished, detached
    paused INTEGER NOT NULL DEFAULT 0,
    started_at TEXT,
    updated_at TEXT
);
CREATE TABLE IF NOT EXISTS phases (
    plan_id TEXT NOT NULL,
    phase_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    kind TEXT NOT NULL,
    title TEXT NOT NULL,
    state TEXT NOT NULL,               -- pending running checking passed failed remediating blocked lost skipped
    attempts INTEGER NOT NULL DEFAULT 0,
    verdict TEXT,                      -- PASS / FAIL of the last judged attempt
    verdict_source TEXT,
    reason TEXT,
    updated_at TEXT,
    PRIMARY KEY (plan_id, phase_id)
);
CREATE TABLE IF NOT EXISTS attempts (
    attempt_id TEXT PRIMARY KEY,       -- uuid; the cookie its processes carry
    plan_id TEXT NOT NULL,
    phase_id TEXT NOT NULL,
    number INTEGER NOT NULL,
    remediation INTEGER NOT NULL,
    state TEXT NOT NULL,               -- launching running stopping checking passed failed lost
    agent TEXT NOT NULL,
    attempt_dir TEXT NOT NULL,
    resume_session TEXT,
    note TEXT,
    supervisor_pid INTEGER,
    worker_pid INTEGER,
    started_at TEXT,
    ended_at TEXT,
    exit_code INTEGER,
    signal INTEGER,
    stop_reason TEXT,
    cycle INTEGER NOT NULL DEFAULT 0,
    verdict TEXT,
    reason TEXT,
    session_id TEXT,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    cached_input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL,
    last_message TEXT,                 -- the agent's final message (capped at 4000 characters)
    commands INTEGER NOT NULL DEFAULT 0,
    file_changes INTEGER NOT NULL DEFAULT 0,
    UNIQUE (plan_id, phase_id, number)
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    plan_id TEXT NOT NULL,
    at TEXT NOT NULL,
    type TEXT NOT NULL,
    phase_id TEXT,
    attempt INTEGER,
    message TEXT NOT NULL,
    data TEXT NOT NULL DEFAULT '{}'
);
"""

ACTIVE_ATTEMPT_STATES = ("launching", "running", "stopping", "checking")


def now_iso() -> str:
    """Local time with offset, second precision: ``2026-11-24T08:00:00+0000`` (the audit files' format)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


@dataclass(frozen=True)
class AuditEvent:
    """One audit record: a row of ``events`` and a line of ``events.jsonl``."""

    plan_id: str
    type: str
    message: str
    phase_id: str | None = None
    attempt: int | None = None
    data: dict[str, Any] | None = None


ADDED_COLUMNS = {
    "attempts": {
        "last_message": "TEXT",
        "commands": "INTEGER NOT NULL DEFAULT 0",
        "file_changes": "INTEGER NOT NULL DEFAULT 0",
    },
}
"""Columns added after a table was first created: stores made by an earlier coord get them on open."""


def _damage_hint(exc: sqlite3.DatabaseError) -> str:
    """What to do about a store SQLite calls damaged ("" for other errors, such as a busy or unwritable one)."""
    if "not a database" in str(exc) or "malformed" in str(exc):
        return ("; it was not modified — move it aside to start afresh (running workers are found again "
                "through their attempt folders)")
    return ""


def _missing_columns(connection: sqlite3.Connection) -> list[tuple[str, str, str]]:
    """(table, column, declaration) of every ``ADDED_COLUMNS`` entry the database lacks."""
    missing = []
    for table, columns in ADDED_COLUMNS.items():
        present = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
        missing += [(table, name, declaration) for name, declaration in columns.items() if name not in present]
    return missing


def _add_missing_columns(connection: sqlite3.Connection) -> None:
    for table, name, declaration in _missing_columns(connection):
        connection.execute(f"ALTER TABLE {table} ADD COLUMN {name} {declaration}")


class Store:
    """SQLite state of one workspace.

    Writes happen only inside :meth:`transaction`; events recorded there are appended to ``events.jsonl`` right
    after the commit (the file is a mirror for people and scripts; the database is the truth).
    """

    def __init__(self, paths: WorkspacePaths, connection: sqlite3.Connection, readonly: bool) -> None:
        self.paths = paths
        self.connection = connection
        self.readonly = readonly
        self._pending_events: list[tuple[AuditEvent, str]] = []
        self._after_commit: list[Callable[[], None]] = []
        self._mirror_warned = False

    @classmethod
    def open(cls, paths: WorkspacePaths) -> Store:
        """Open (creating if needed) the store for writing.

        Raises:
            StoreError: the database cannot be opened, is corrupt or has a newer schema.
        """
        try:
            paths.tmp.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(paths.db, isolation_level=None, timeout=10.0)
            connection.row_factory = sqlite3.Row
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute("PRAGMA foreign_keys=ON")
            # One transaction, the version stamped last: a reader opening the file meanwhile sees either no
            # schema_version (nothing recorded yet) or every table and column.
            connection.executescript(f"BEGIN IMMEDIATE;\n{SCHEMA}\nCOMMIT;")
            connection.execute("BEGIN IMMEDIATE")
            try:
                _add_missing_columns(connection)
                row = connection.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
                if row is None:
                    connection.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                elif int(row["value"]) > SCHEMA_VERSION:
                    raise StoreError(
                        f"{paths.db}: schema version {row['value']} is newer than this coord understands")
                connection.execute("COMMIT")
            finally:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{paths.db}: cannot open the state store: {exc}{_damage_hint(exc)}") from exc
        return cls(paths, connection, readonly=False)

    @classmethod
    def open_readonly(cls, paths: WorkspacePaths) -> Store | None:
        """Open the store for reading, or return None when no run ever happened here — including the instant a
        starting coordinator has created the file but not yet committed its schema.

        Raises:
            StoreError: the database exists but cannot be read.
        """
        if not paths.db.exists():
            return None
        try:
            connection = sqlite3.connect(f"file:{paths.db}?mode=ro", uri=True, isolation_level=None, timeout=10.0)
            connection.row_factory = sqlite3.Row
            has_meta = connection.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
            stamped = has_meta and connection.execute(
                "SELECT 1 FROM meta WHERE key='schema_version'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{paths.db}: cannot read the state store: {exc}{_damage_hint(exc)}") from exc
        if not stamped:
            connection.close()
            return None
        if _missing_columns(connection):
            # Made by an older coord: add the new columns (what `coord run` would do) rather than fail on them.
            connection.close()
            Store.open(paths).close()
            return cls.open_readonly(paths)
        return cls(paths, connection, readonly=True)

    def close(self) -> None:
        self.connection.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``); committed on exit, rolled back on an exception.

        Raises:
            StoreError: the commit failed (disk full, I/O error); nothing of the transaction is kept.
        """
        try:
            self.connection.execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.paths.db}: cannot write the state store: {exc}") from exc
        try:
            yield self.connection
            self.connection.execute("COMMIT")
        except BaseException as exc:
            self._pending_events.clear()
            self._after_commit.clear()
            try:
                self.connection.execute("ROLLBACK")
            except sqlite3.DatabaseError:
                pass
            if isinstance(exc, sqlite3.DatabaseError):
                raise StoreError(f"{self.paths.db}: cannot write the state store: {exc}") from exc
            raise
        pending, self._pending_events = self._pending_events, []
        for event, at in pending:
            try:
                self._append_jsonl(event, at)
            except OSError as exc:  # the mirror is for people; the committed database stays the truth
                if not self._mirror_warned:
                    self._mirror_warned = True
                    print(f"coord: warning: cannot append to events.jsonl ({exc}); the state store has every "
                          "event", file=sys.stderr)
        callbacks, self._after_commit = self._after_commit, []
        for callback in callbacks:
            callback()

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the current transaction has committed (dropped if it rolls back)."""
        self._after_commit.append(callback)

    def record_event(self, connection: sqlite3.Connection, event: AuditEvent) -> None:
        """Insert ``event`` inside the current transaction; mirrored to ``events.jsonl`` after the commit."""
        at = now_iso()
        connection.execute(
            "INSERT INTO events (plan_id, at, type, phase_id, attempt, message, data) VALUES (?,?,?,?,?,?,?)",
            (
                event.plan_id,
                at,
                event.type,
                event.phase_id,
                event.attempt,
                event.message,
                json.dumps(event.data or {}, sort_keys=True),
            ),
        )
        self._pending_events.append((event, at))

    def _append_jsonl(self, event: AuditEvent, at: str) -> None:
        path = self.paths.events_file(event.plan_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {"at": at, "type": event.type, "plan": event.plan_id, "message": event.message}
        if event.phase_id is not None:
            record["phase"] = event.phase_id
        if event.attempt is not None:
            record["attempt"] = event.attempt
        if event.data:
            record["data"] = event.data
        line = json.dumps(record, sort_keys=True)
        with open(path, "a+b") as handle:
            # A crash mid-append can leave a torn last line; start ours on a fresh line so it stays parseable.
            handle.seek(0, 2)
            if handle.tell() > 0:
                handle.seek(-1, 2)
                if handle.read(1) != b"\n":
                    handle.write(b"\n")
            handle.write(line.encode() + b"\n")

    def append_pid_line(self, plan_id: str, phase_id: str, pid: int, attempt: int, supervisor_pid: int,
                        unless_present: bool = False) -> None:
        """Append ``P07 PID: 12345 attempt 1 2026-11-24T08:00:00+0000 supervisor 12340`` to worker-pids.txt.

        Args:
            unless_present: skip it when the file already has this launch's line (an adopted worker whose
                launching coordinator may or may not have written it before it died).
        """
        path = self.paths.pid_audit_file(plan_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        prefix = f"{phase_id} PID: {pid} attempt {attempt} "
        if unless_present and path.exists():
            with open(path, encoding="utf-8", errors="replace") as handle:
                if any(line.startswith(prefix) for line in handle):
                    return
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(f"{prefix}{now_iso()} supervisor {supervisor_pid}\n")

    # --- reads ---------------------------------------------------------------------------------------------

    def plan_row(self, plan_id: str) -> sqlite3.Row | None:
        return self.connection.execute("SELECT * FROM plans WHERE plan_id=?", (plan_id,)).fetchone()

    def latest_plan_id(self) -> str | None:
        row = self.connection.execute(
            "SELECT plan_id FROM plans ORDER BY updated_at DESC, rowid DESC LIMIT 1"
        ).fetchone()
        return row["plan_id"] if row else None

    def phase_rows(self, plan_id: str) -> list[sqlite3.Row]:
        return self.connection.execute(
            "SELECT * FROM phases WHERE plan_id=? ORDER BY position", (plan_id,)
        ).fetchall()

    def phase_row(self, plan_id: str, phase_id: str) -> sqlite3.Row | None:
        return self.connection.execute(
            "SELECT * FROM phases WHERE plan_id=? AND phase_id=?", (plan_id, phase_id)
        ).fetchone()

    def attempt_rows(self, plan_id: str, phase_id: str | None = None) -> list[sqlite3.Row]:
        if phase_id is None:
            return self.connection.execute(
                "SELECT * FROM attempts WHERE plan_id=? ORDER BY phase_id, number", (plan_id,)
            ).fetchall()
        return self.connection.execute(
            "SELECT * FROM attempts WHERE plan_id=? AND phase_id=? ORDER BY number", (plan_id, phase_id)
        ).fetchall()

    def active_attempts(self, plan_id: str) -> list[sqlite3.Row]:
        marks = ",".join("?" for _ in ACTIVE_ATTEMPT_STATES)
        return self.connection.execute(
            f"SELECT * FROM attempts WHERE plan_id=? AND state IN ({marks}) ORDER BY started_at",
            (plan_id, *ACTIVE_ATTEMPT_STATES),
        ).fetchall()

    def attempt(self, attempt_id: str) -> sqlite3.Row | None:
        return self.connection.execute("SELECT * FROM attempts WHERE attempt_id=?", (attempt_id,)).fetchone()

    def events(self, plan_id: str, after_seq: int = 0, limit: int = 1000) -> list[sqlite3.Row]:
        return self.connection.execute(
            "SELECT * FROM events WHERE plan_id=? AND seq>? ORDER BY seq LIMIT ?", (plan_id, after_seq, limit)
        ).fetchall()
