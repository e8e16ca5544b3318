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

from coordinator.errors import StoreError
from coordinator.paths import WorkspacePaths
from coordinator.state.events import EngineEvent, Notice
from coordinator.state.mirrors import Mirrors, jsonl_line
from coordinator.state.read_cache import ReadCache
from coordinator.state.records import (
    AttemptEnd,
    AttemptRecord,
    EventRecord,
    ImportedPhase,
    NewAttempt,
    PhaseRecord,
    PlanRecord,
    from_row,
)
from coordinator.state.schema import SCHEMA, SCHEMA_VERSION, add_missing_columns, missing_columns
from coordinator.states import (
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
        self._reads = ReadCache()
        """The phases and active attempts as last read, and the rows written since (``state.read_cache``)."""

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
            self._reads.transaction_ended()
        except BaseException as exc:
            self._reads.transaction_ended()
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
        self._reads.attempt_written(attempt_id)
        row = tx.execute("SELECT state, number, plan_id, phase_id FROM attempts WHERE attempt_id=?",
                         (attempt_id,)).fetchone()
        if row is None:
            raise StoreError(f"{self.paths.db}: no attempt {attempt_id} is recorded")
        check_move(f"attempt {row['number']} of {row['phase_id']}", ATTEMPT_MOVES, AttemptState, row["state"], new)
        return row

    def _move_phase(self, tx: sqlite3.Connection, plan_id: str, phase_id: str, new: PhaseState) -> None:
        row = tx.execute("SELECT state FROM phases WHERE plan_id=? AND phase_id=?", (plan_id, phase_id)).fetchone()
        check_move(f"phase {phase_id}", PHASE_MOVES, PhaseState, row["state"] if row else None, new)
        self._reads.phase_written(plan_id, phase_id)  # every write of a phase row moves it (or keeps it) here

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
            self._reads.phase_written(plan_id, None)
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
            self._reads.phase_written(plan_id, None)
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
            self._reads.attempt_written(attempt.attempt_id)
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
            self._reads.attempt_written(attempt_id)
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
            self._reads.attempt_written(attempt_id)
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
            self._reads.attempt_written(attempt_id)
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

    def phases(self, plan_id: str) -> list[PhaseRecord]:
        """The plan's phases in plan order (kept between calls: only rows written since are read again)."""
        return self._reads.phases(self.connection, plan_id)

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
        """Attempts not over yet (``ACTIVE_ATTEMPT_STATES``), oldest first (kept between calls, like ``phases``)."""
        return self._reads.active_attempts(self.connection, plan_id)

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
