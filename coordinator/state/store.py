"""The coordinator's durable truth: SQLite ``tmp/coord.db`` (WAL), the ``events.jsonl`` audit trail and the
``worker-pids.txt`` audit file.

Who calls it: the engine and ``coord import --with-progress`` write through the named methods below, each one
transaction that checks the state move against ``coordinator.states`` and records its events with it (committed
before the caller acts on the change); ``coord status``/``logs`` and the dashboard read through
:meth:`Store.open_readonly`. No SQL runs anywhere else. Rows come back as the typed records of
``state.records``.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from coordinator.errors import StoreError
from coordinator.paths import WorkspacePaths
from coordinator.state.events import EngineEvent, Notice
from coordinator.state.mirrors import Mirrors, jsonl_line
from coordinator.state.records import (
    AttemptEnd,
    AttemptRecord,
    EventRecord,
    ImportedPhase,
    NewAttempt,
    PhaseRecord,
    PlanRecord,
    RecordT,
    from_row,
)
from coordinator.state.schema import SCHEMA, SCHEMA_VERSION, add_missing_columns, missing_columns
from coordinator.states import (
    ACTIVE_ATTEMPT_STATES,
    ATTEMPT_MOVES,
    PHASE_MOVES,
    PLAN_MOVES,
    AttemptState,
    PhaseState,
    PlanState,
    check_move,
)
from coordinator.util.timefmt import now_iso

LAST_MESSAGE_CHARS = 4000
"""An agent's final message is kept up to this many characters."""


def _damage_hint(exc: sqlite3.DatabaseError) -> str:
    """What to do about a store SQLite calls damaged ("" for other errors, such as a busy or unwritable one)."""
    if "not a database" in str(exc) or "malformed" in str(exc):
        return ("; it was not modified — move it aside to start afresh (running workers are found again "
                "through their attempt folders)")
    return ""


@dataclass
class _CachedPhases:
    """A plan's phase rows as last read (``Store.phases``), and which of them this connection wrote since."""

    version: int
    """``PRAGMA data_version`` when read: another connection's commit changes it."""
    records: list[PhaseRecord]
    changed: set[str] | None = field(default_factory=set)
    """Phase ids written since; None: read them all again."""
    index: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.index = {record.phase_id: position for position, record in enumerate(self.records)}


class Store:
    """SQLite state of one workspace.

    Every write is one of the named methods; each runs in one ``BEGIN IMMEDIATE`` transaction, refuses a state
    move ``coordinator.states`` does not have (``IllegalTransition``), and records its events in the same
    transaction. After the commit the events are appended to ``events.jsonl`` (a mirror for people and scripts;
    the database is the truth) and handed to every subscriber (:meth:`subscribe`).
    """

    def __init__(self, paths: WorkspacePaths, connection: sqlite3.Connection, readonly: bool) -> None:
        self.paths = paths
        self.connection = connection
        self.readonly = readonly
        self._pending_events: list[tuple[EngineEvent, str, int]] = []
        self._subscribers: list[Callable[[EngineEvent], None]] = []
        self._mirror_warned = False
        self._tampering_recorded: dict[str, bool] = {}
        self.mirrors = Mirrors(paths, self.record_tampering)
        self._writes = 0
        """Transactions this connection ran; with ``PRAGMA data_version`` (commits of other connections) it tells
        when a cached read (``_cached``) is still the table's content."""
        self._cache: dict[tuple[str, str], tuple[tuple[int, int], list[Any]]] = {}
        self._phases_cache: dict[str, _CachedPhases] = {}
        self._phases_written: list[tuple[str, str | None]] = []

    @classmethod
    def open(cls, paths: WorkspacePaths) -> Store:
        """Open (creating if needed) the store for writing.

        Raises:
            StoreError: the database cannot be opened, is corrupt or has a newer schema.
        """
        try:
            paths.ensure_state_dir()
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
                add_missing_columns(connection)
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
        except (sqlite3.DatabaseError, OSError) as exc:
            hint = _damage_hint(exc) if isinstance(exc, sqlite3.DatabaseError) else ""
            raise StoreError(f"{paths.db}: cannot open the state store: {exc}{hint}") from exc
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
        if missing_columns(connection):
            # Made by an older coord: add the new columns (what `coord run` would do) rather than fail on them.
            connection.close()
            Store.open(paths).close()
            return cls.open_readonly(paths)
        return cls(paths, connection, readonly=True)

    def close(self) -> None:
        self.connection.close()

    def subscribe(self, callback: Callable[[EngineEvent], None]) -> None:
        """Call ``callback`` with every event once the transaction that recorded it has committed.

        A subscriber that raises is ignored for that event: a display problem must never stop the engine.
        """
        self._subscribers.append(callback)

    # --- transactions ------------------------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
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
            self._writes += 1
            self._forget_written_phases()
        except BaseException as exc:
            self._writes += 1
            self._forget_written_phases()
            self._pending_events.clear()
            try:
                self.connection.execute("ROLLBACK")
            except sqlite3.DatabaseError:
                pass
            if isinstance(exc, sqlite3.DatabaseError):
                raise StoreError(f"{self.paths.db}: cannot write the state store: {exc}") from exc
            raise
        pending, self._pending_events = self._pending_events, []
        for event, at, seq in pending:
            try:
                self._append_jsonl(event, at, seq)
            except OSError as exc:  # the mirror is for people; the committed database stays the truth
                if not self._mirror_warned:
                    self._mirror_warned = True
                    print(f"coord: warning: cannot append to events.jsonl ({exc}); the state store has every "
                          "event", file=sys.stderr)
        for event, _at, _seq in pending:
            for callback in self._subscribers:
                try:
                    callback(event)
                except Exception:  # noqa: BLE001 - a display problem must never stop the engine
                    pass

    def _record(self, tx: sqlite3.Connection, events: Sequence[EngineEvent]) -> None:
        for event in events:
            at = now_iso()
            cursor = tx.execute(
                "INSERT INTO events (plan_id, at, type, phase_id, attempt, message, data) VALUES (?,?,?,?,?,?,?)",
                (event.plan_id, at, event.type_name, event.phase_id, event.attempt, event.message,
                 json.dumps(event.data(), sort_keys=True)),
            )
            self._pending_events.append((event, at, int(cursor.lastrowid or 0)))

    def _append_jsonl(self, event: EngineEvent, at: str, seq: int) -> None:
        self.mirrors.append_event(event.plan_id, jsonl_line(seq, at, event.type_name, event.plan_id, event.message,
                                                            event.phase_id, event.attempt, event.data()))

    def catch_up_mirror(self, plan_id: str) -> int:
        """Bring ``events.jsonl`` and ``worker-pids.txt`` up to the store (``Mirrors.catch_up``); returns how many
        lines were added."""
        return self.mirrors.catch_up(plan_id, self.events(plan_id, limit=10_000_000), self.attempts(plan_id))

    def append_pid_line(self, plan_id: str, phase_id: str, pid: int, attempt: int, supervisor_pid: int,
                        unless_present: bool = False) -> None:
        """Append ``P07 PID: 12345 attempt 1 2026-11-24T08:00:00+0000 supervisor 12340`` to worker-pids.txt.

        Args:
            unless_present: skip it when the file already has this launch's line (an adopted worker whose
                launching coordinator may or may not have written it before it died).
        """
        self.mirrors.append_pid_line(plan_id, phase_id, pid, attempt, supervisor_pid, now_iso(), unless_present)

    def record_tampering(self, plan_id: str, what: str) -> None:
        """Record that something in the workspace coord relies on was changed behind its back (first reason
        kept in ``plans.tampered``, every one as a warning event); ``coord status`` shows it."""
        if self._tampering_recorded.get(what):
            return
        self._tampering_recorded[what] = True
        with self._transaction() as tx:
            tx.execute("UPDATE plans SET tampered=COALESCE(tampered, ?) WHERE plan_id=?", (what, plan_id))
            self._record(tx, [Notice(plan_id=plan_id, level="warning", message=f"tampering: {what}")])

    def _move_attempt(self, tx: sqlite3.Connection, attempt_id: str, new: AttemptState) -> sqlite3.Row:
        row = tx.execute("SELECT state, number, plan_id, phase_id FROM attempts WHERE attempt_id=?",
                         (attempt_id,)).fetchone()
        if row is None:
            raise StoreError(f"{self.paths.db}: no attempt {attempt_id} is recorded")
        check_move(f"attempt {row['number']} of {row['phase_id']}", ATTEMPT_MOVES, AttemptState, row["state"], new)
        return row

    def _move_phase(self, tx: sqlite3.Connection, plan_id: str, phase_id: str, new: PhaseState) -> None:
        row = tx.execute("SELECT state FROM phases WHERE plan_id=? AND phase_id=?", (plan_id, phase_id)).fetchone()
        check_move(f"phase {phase_id}", PHASE_MOVES, PhaseState, row["state"] if row else None, new)
        self._phase_written(plan_id, phase_id)  # every write of a phase row moves it (or keeps its state) here

    def _phase_written(self, plan_id: str, phase_id: str | None) -> None:
        """Note that a phase row (None: any of the plan's) is being written, for ``phases`` to read it again once
        the transaction is over (``_transaction`` hands the notes on)."""
        self._phases_written.append((plan_id, phase_id))

    def _forget_written_phases(self) -> None:
        for plan_id, phase_id in self._phases_written:
            cached = self._phases_cache.get(plan_id)
            if cached is None:
                continue
            if phase_id is None or cached.changed is None:
                cached.changed = None
            else:
                cached.changed.add(phase_id)
        self._phases_written.clear()

    def _move_plan(self, tx: sqlite3.Connection, plan_id: str, new: PlanState) -> None:
        row = tx.execute("SELECT state FROM plans WHERE plan_id=?", (plan_id,)).fetchone()
        check_move(f"plan {plan_id}", PLAN_MOVES, PlanState, row["state"] if row else None, new)

    # --- writes: the plan --------------------------------------------------------------------------------

    def record_plan(self, plan_id: str, path: str, title: str, phases: Sequence[tuple[str, int, str, str]], *,
                    clear_pause: bool, events: Sequence[EngineEvent] = ()) -> PlanRecord:
        """Record a plan as running and its phases; phases already known keep their state and attempts (resume).

        Args:
            phases: (phase id, position, kind, title) of every phase of the plan.
            clear_pause: lift a person's pause (a new `coord run`); False keeps it (a stand-alone remediation).

        Returns:
            The plan as recorded.
        """
        with self._transaction() as tx:
            self._move_plan(tx, plan_id, PlanState.RUNNING)
            self._phase_written(plan_id, None)
            stamp = now_iso()
            tx.execute(
                "INSERT INTO plans (plan_id, path, title, state, started_at, updated_at) VALUES (?,?,?,?,?,?) "
                "ON CONFLICT(plan_id) DO UPDATE SET path=excluded.path, title=excluded.title, state=excluded.state, "
                "updated_at=excluded.updated_at" + (", paused=0" if clear_pause else ""),
                (plan_id, path, title, PlanState.RUNNING, stamp, stamp),
            )
            for phase_id, position, kind, phase_title in phases:
                tx.execute(
                    "INSERT INTO phases (plan_id, phase_id, position, kind, title, state, updated_at) "
                    "VALUES (?,?,?,?,?,?,?) ON CONFLICT(plan_id, phase_id) DO UPDATE SET "
                    "position=excluded.position, kind=excluded.kind, title=excluded.title",
                    (plan_id, phase_id, position, kind, phase_title, PhaseState.PENDING, stamp),
                )
            self._record(tx, events)
            plan = from_row(PlanRecord, tx.execute("SELECT * FROM plans WHERE plan_id=?", (plan_id,)).fetchone())
        return plan

    def end_plan(self, plan_id: str, state: PlanState, events: Sequence[EngineEvent] = ()) -> None:
        """Record that the coordinator stopped running the plan: ``FINISHED`` or ``DETACHED``."""
        with self._transaction() as tx:
            self._move_plan(tx, plan_id, state)
            tx.execute("UPDATE plans SET state=?, updated_at=? WHERE plan_id=?", (state, now_iso(), plan_id))
            self._record(tx, events)

    def set_paused(self, plan_id: str, paused: bool, events: Sequence[EngineEvent] = ()) -> None:
        """Pause scheduling of new phases (running workers go on), or resume it."""
        with self._transaction() as tx:
            tx.execute("UPDATE plans SET paused=? WHERE plan_id=?", (int(paused), plan_id))
            self._record(tx, events)

    def seed_imported_plan(self, plan_id: str, path: str, title: str, phases: Sequence[ImportedPhase],
                           events: Sequence[EngineEvent] = ()) -> None:
        """Record an imported plan whose phases were judged from existing evidence (``import --with-progress``).

        The caller holds the workspace lock and has checked that the plan has no attempts: its phases are
        replaced outright.
        """
        with self._transaction() as tx:
            self._move_plan(tx, plan_id, PlanState.IMPORTED)
            stamp = now_iso()
            tx.execute(
                "INSERT INTO plans (plan_id, path, title, state, started_at, updated_at) VALUES (?,?,?,?,?,?) "
                "ON CONFLICT(plan_id) DO UPDATE SET path=excluded.path, title=excluded.title, "
                "state=excluded.state, updated_at=excluded.updated_at",
                (plan_id, path, title, PlanState.IMPORTED, stamp, stamp),
            )
            self._phase_written(plan_id, None)
            tx.execute("DELETE FROM phases WHERE plan_id=?", (plan_id,))
            for phase in phases:
                if phase.state != PhaseState.PENDING:
                    check_move(f"phase {phase.phase_id}", PHASE_MOVES, PhaseState, PhaseState.PENDING, phase.state)
                tx.execute(
                    "INSERT INTO phases (plan_id, phase_id, position, kind, title, state, attempts, verdict, "
                    "verdict_source, reason, updated_at) VALUES (?,?,?,?,?,?,0,?,?,?,?)",
                    (plan_id, phase.phase_id, phase.position, phase.kind, phase.title, phase.state, phase.verdict,
                     phase.verdict_source, phase.reason, stamp),
                )
            self._record(tx, events)

    # --- writes: phases and attempts ---------------------------------------------------------------------

    def begin_attempt(self, attempt: NewAttempt, phase_state: PhaseState, events: Sequence[EngineEvent] = (),
                      *, adopted: bool = False) -> None:
        """Record an attempt before anything is started for it, and move its phase to ``phase_state``.

        Args:
            attempt: the new attempt.
            phase_state: ``RUNNING`` for a first attempt, ``REMEDIATING`` for a later one.
            adopted: a live worker the store forgot: recorded as ``RUNNING`` (not ``LAUNCHING``), and the
                phase's attempt count only ever grows.
        """
        state = AttemptState.RUNNING if adopted else AttemptState.LAUNCHING
        with self._transaction() as tx:
            check_move(f"attempt {attempt.number} of {attempt.phase_id}", ATTEMPT_MOVES, AttemptState, None, state)
            self._move_phase(tx, attempt.plan_id, attempt.phase_id, phase_state)
            tx.execute(
                "INSERT INTO attempts (attempt_id, plan_id, phase_id, number, remediation, state, agent, "
                "attempt_dir, resume_session, note) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (attempt.attempt_id, attempt.plan_id, attempt.phase_id, attempt.number, int(attempt.remediation),
                 state, attempt.agent, attempt.attempt_dir, attempt.resume_session, attempt.note),
            )
            tx.execute(
                "UPDATE phases SET state=?, attempts=" + ("MAX(attempts, ?)" if adopted else "?")
                + ", updated_at=? WHERE plan_id=? AND phase_id=?",
                (phase_state, attempt.number, now_iso(), attempt.plan_id, attempt.phase_id),
            )
            self._record(tx, events)

    def mark_running(self, attempt_id: str, supervisor_pid: int, worker_pid: int | None, started_at: str,
                     events: Sequence[EngineEvent] = ()) -> None:
        """Record who runs the attempt; a ``LAUNCHING`` attempt becomes ``RUNNING`` (a stopping one stays so)."""
        with self._transaction() as tx:
            row = tx.execute("SELECT state FROM attempts WHERE attempt_id=?", (attempt_id,)).fetchone()
            if row is not None and row["state"] == AttemptState.LAUNCHING:
                self._move_attempt(tx, attempt_id, AttemptState.RUNNING)
                tx.execute("UPDATE attempts SET state=? WHERE attempt_id=?", (AttemptState.RUNNING, attempt_id))
            tx.execute(
                "UPDATE attempts SET supervisor_pid=?, worker_pid=?, started_at=COALESCE(started_at, ?) "
                "WHERE attempt_id=?",
                (supervisor_pid, worker_pid, started_at, attempt_id),
            )
            self._record(tx, events)

    def request_stop(self, attempt_id: str, stop_reason: str, reason: str, events: Sequence[EngineEvent] = ()) -> None:
        """Record that the attempt's worker is being stopped, and why (an attempt already judged is left alone).

        Args:
            stop_reason: ``hung`` or ``stopped`` (by a person).
            reason: the sentence the verdict will carry.
        """
        with self._transaction() as tx:
            row = tx.execute("SELECT state FROM attempts WHERE attempt_id=?", (attempt_id,)).fetchone()
            if row is not None and row["state"] in (AttemptState.LAUNCHING, AttemptState.RUNNING,
                                                    AttemptState.STOPPING):
                self._move_attempt(tx, attempt_id, AttemptState.STOPPING)
                tx.execute("UPDATE attempts SET state=?, stop_reason=?, reason=? WHERE attempt_id=?",
                           (AttemptState.STOPPING, stop_reason, reason, attempt_id))
            self._record(tx, events)

    def record_cycle(self, attempt_id: str, cycle: int, events: Sequence[EngineEvent] = ()) -> None:
        """Record the number of poll cycles observed for a running attempt."""
        with self._transaction() as tx:
            tx.execute("UPDATE attempts SET cycle=? WHERE attempt_id=?", (cycle, attempt_id))
            self._record(tx, events)

    def mark_checking(self, attempt_id: str, end: AttemptEnd, events: Sequence[EngineEvent] = ()) -> None:
        """Record how the attempt's worker ended and that it is being judged (attempt and phase ``CHECKING``)."""
        with self._transaction() as tx:
            row = self._move_attempt(tx, attempt_id, AttemptState.CHECKING)
            plan_id = row["plan_id"]
            self._move_phase(tx, plan_id, row["phase_id"], PhaseState.CHECKING)
            tx.execute(
                "UPDATE attempts SET state=?, ended_at=?, exit_code=?, signal=?, stop_reason=?, session_id=?, "
                "input_tokens=?, cached_input_tokens=?, output_tokens=?, cost_usd=?, last_message=?, commands=?, "
                "file_changes=? WHERE attempt_id=?",
                (AttemptState.CHECKING, end.ended_at, end.exit_code, end.signal, end.stop_reason, end.session_id,
                 end.input_tokens, end.cached_input_tokens, end.output_tokens, end.cost_usd,
                 (end.last_message or "")[:LAST_MESSAGE_CHARS] or None, end.commands, end.file_changes, attempt_id),
            )
            tx.execute("UPDATE phases SET state=?, updated_at=? WHERE plan_id=? AND phase_id=?",
                       (PhaseState.CHECKING, now_iso(), plan_id, row["phase_id"]))
            self._record(tx, events)

    def commit_verdict(self, attempt_id: str, attempt_state: AttemptState, verdict: str, verdict_reason: str,
                       verdict_source: str, phase_state: PhaseState, phase_reason: str,
                       events: Sequence[EngineEvent] = (), *, uncounted: bool = False,
                       waiting_until: float | None = None) -> None:
        """Record an attempt's verdict and its phase's next state in one transaction.

        Args:
            attempt_state: ``PASSED``, ``FAILED`` or ``LOST``.
            verdict: ``PASS`` or ``FAIL``.
            verdict_reason: the verdict's one line (kept on the attempt).
            verdict_source: ``checks`` or ``lost``.
            phase_state: ``PASSED``, ``FAILED`` or ``BLOCKED``.
            phase_reason: the phase's one line (the verdict's, or why it is blocked).
            uncounted: the attempt does not count against ``max_attempts`` (a rejected session resume, a usage
                limit).
            waiting_until: with ``phase_state`` ``WAITING``, when the usage limit resets (epoch seconds).
        """
        with self._transaction() as tx:
            row = self._move_attempt(tx, attempt_id, attempt_state)
            plan_id = row["plan_id"]
            self._move_phase(tx, plan_id, row["phase_id"], phase_state)
            tx.execute("UPDATE attempts SET state=?, verdict=?, reason=? WHERE attempt_id=?",
                       (attempt_state, verdict, verdict_reason, attempt_id))
            tx.execute(
                "UPDATE phases SET state=?, verdict=?, verdict_source=?, reason=?, updated_at=?, "
                "uncounted_attempts=uncounted_attempts+?, waiting_until=? WHERE plan_id=? AND phase_id=?",
                (phase_state, verdict, verdict_source, phase_reason, now_iso(), int(uncounted), waiting_until,
                 plan_id, row["phase_id"]),
            )
            self._record(tx, events)

    def block_phase(self, plan_id: str, phase_id: str, reason: str, events: Sequence[EngineEvent] = ()) -> None:
        """Move a phase that failed with no attempts left to ``BLOCKED``."""
        with self._transaction() as tx:
            self._move_phase(tx, plan_id, phase_id, PhaseState.BLOCKED)
            tx.execute("UPDATE phases SET state=?, reason=?, updated_at=? WHERE plan_id=? AND phase_id=?",
                       (PhaseState.BLOCKED, reason, now_iso(), plan_id, phase_id))
            self._record(tx, events)

    def record_snapshot(self, plan_id: str, sha256: str, content: str, events: Sequence[EngineEvent] = ()) -> None:
        """Record the plan a run judges by (``plan.snapshot.PlanSnapshot.to_json()``), unless the latest snapshot
        of the plan already has this hash."""
        with self._transaction() as tx:
            latest = tx.execute("SELECT sha256 FROM snapshots WHERE plan_id=? ORDER BY seq DESC LIMIT 1",
                                (plan_id,)).fetchone()
            if latest is None or latest["sha256"] != sha256:
                tx.execute("INSERT INTO snapshots (plan_id, sha256, taken_at, content) VALUES (?,?,?,?)",
                           (plan_id, sha256, now_iso(), content))
            self._record(tx, events)

    def record(self, events: Sequence[EngineEvent]) -> None:
        """Record events that change no state (notices)."""
        with self._transaction() as tx:
            self._record(tx, events)

    # --- reads -------------------------------------------------------------------------------------------

    def plan(self, plan_id: str) -> PlanRecord | None:
        row = self.connection.execute("SELECT * FROM plans WHERE plan_id=?", (plan_id,)).fetchone()
        return from_row(PlanRecord, row) if row is not None else None

    def latest_plan_id(self) -> str | None:
        row = self.connection.execute(
            "SELECT plan_id FROM plans ORDER BY updated_at DESC, rowid DESC LIMIT 1"
        ).fetchone()
        return row["plan_id"] if row else None

    def _cached(self, key: tuple[str, str], read: Callable[[], list[RecordT]]) -> list[RecordT]:
        """``read()``, or what it returned last time when nothing was committed since, by this connection or any
        other: the engine asks for the phases and the active attempts on every pass of its loop, and a pass
        where nothing changed then costs one pragma, not a scan of the plan (records are frozen; the list is a
        copy)."""
        version = (self._writes, self.connection.execute("PRAGMA data_version").fetchone()[0])
        cached = self._cache.get(key)
        if cached is None or cached[0] != version:
            cached = self._cache[key] = (version, read())
        return list(cached[1])

    def phases(self, plan_id: str) -> list[PhaseRecord]:
        """The plan's phases in plan order. Read once, then only the rows this connection wrote since (the engine
        asks on every pass of its loop; a 1,000-phase plan is not read again for each verdict); all of them again
        when another connection committed."""
        version = self.connection.execute("PRAGMA data_version").fetchone()[0]
        cached = self._phases_cache.get(plan_id)
        if cached is not None and cached.version == version and cached.changed is not None:
            for phase_id in cached.changed:
                row = self.connection.execute("SELECT * FROM phases WHERE plan_id=? AND phase_id=?",
                                              (plan_id, phase_id)).fetchone()
                index = cached.index.get(phase_id)
                if row is None or index is None:
                    cached = None  # a phase appeared or went: read the plan again
                    break
                cached.records[index] = from_row(PhaseRecord, row)
            else:
                cached.changed = set()
                return list(cached.records)
        rows = self.connection.execute("SELECT * FROM phases WHERE plan_id=? ORDER BY position", (plan_id,))
        records = [from_row(PhaseRecord, row) for row in rows]
        self._phases_cache[plan_id] = _CachedPhases(version, records)
        return list(records)

    def phase(self, plan_id: str, phase_id: str) -> PhaseRecord | None:
        row = self.connection.execute(
            "SELECT * FROM phases WHERE plan_id=? AND phase_id=?", (plan_id, phase_id)
        ).fetchone()
        return from_row(PhaseRecord, row) if row is not None else None

    def attempts(self, plan_id: str, phase_id: str | None = None) -> list[AttemptRecord]:
        """Attempts of the plan (or of one phase), by phase and number."""
        if phase_id is None:
            rows = self.connection.execute(
                "SELECT * FROM attempts WHERE plan_id=? ORDER BY phase_id, number", (plan_id,))
        else:
            rows = self.connection.execute(
                "SELECT * FROM attempts WHERE plan_id=? AND phase_id=? ORDER BY number", (plan_id, phase_id))
        return [from_row(AttemptRecord, row) for row in rows]

    def last_attempt(self, plan_id: str, phase_id: str) -> AttemptRecord | None:
        row = self.connection.execute(
            "SELECT * FROM attempts WHERE plan_id=? AND phase_id=? ORDER BY number DESC LIMIT 1", (plan_id, phase_id)
        ).fetchone()
        return from_row(AttemptRecord, row) if row is not None else None

    def active_attempts(self, plan_id: str) -> list[AttemptRecord]:
        """Attempts not over yet (``ACTIVE_ATTEMPT_STATES``), oldest first."""
        states = sorted(ACTIVE_ATTEMPT_STATES)
        marks = ",".join("?" for _ in states)

        def read() -> list[AttemptRecord]:
            rows = self.connection.execute(
                f"SELECT * FROM attempts WHERE plan_id=? AND state IN ({marks}) ORDER BY started_at",
                (plan_id, *states))
            return [from_row(AttemptRecord, row) for row in rows]

        return self._cached(("active_attempts", plan_id), read)

    def attempt(self, attempt_id: str) -> AttemptRecord | None:
        row = self.connection.execute("SELECT * FROM attempts WHERE attempt_id=?", (attempt_id,)).fetchone()
        return from_row(AttemptRecord, row) if row is not None else None

    def earlier_attempt_of_session(self, attempt: AttemptRecord, session_id: str) -> AttemptRecord | None:
        """The latest earlier attempt of the same phase whose agent session was ``session_id`` (a resume's
        predecessor), or None."""
        row = self.connection.execute(
            "SELECT * FROM attempts WHERE plan_id=? AND phase_id=? AND session_id=? AND number<? "
            "ORDER BY number DESC LIMIT 1",
            (attempt.plan_id, attempt.phase_id, session_id, attempt.number),
        ).fetchone()
        return from_row(AttemptRecord, row) if row is not None else None

    def spent(self, plan_id: str) -> tuple[int, float]:
        """Tokens (input + output) and USD spent on the plan's attempts so far."""
        row = self.connection.execute(
            "SELECT COALESCE(SUM(input_tokens + output_tokens), 0) AS tokens, COALESCE(SUM(cost_usd), 0) AS cost "
            "FROM attempts WHERE plan_id=?", (plan_id,),
        ).fetchone()
        return int(row["tokens"]), float(row["cost"])

    def latest_snapshot(self, plan_id: str) -> tuple[str, str] | None:
        """(sha256, content) of the plan the latest run of ``plan_id`` judged by, or None before any."""
        row = self.connection.execute(
            "SELECT sha256, content FROM snapshots WHERE plan_id=? ORDER BY seq DESC LIMIT 1", (plan_id,)).fetchone()
        return (row["sha256"], row["content"]) if row is not None else None

    def last_events(self, plan_id: str, count: int) -> list[EventRecord]:
        """The plan's latest ``count`` events, oldest first."""
        rows = self.connection.execute(
            "SELECT * FROM events WHERE plan_id=? ORDER BY seq DESC LIMIT ?", (plan_id, count))
        return [from_row(EventRecord, row) for row in reversed(list(rows))]

    def events(self, plan_id: str, after_seq: int = 0, limit: int = 1000) -> list[EventRecord]:
        rows = self.connection.execute(
            "SELECT * FROM events WHERE plan_id=? AND seq>? ORDER BY seq LIMIT ?", (plan_id, after_seq, limit))
        return [from_row(EventRecord, row) for row in rows]
