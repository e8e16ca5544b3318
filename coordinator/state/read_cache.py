"""The store's two hot reads, kept between calls: a plan's phases and its active attempts.

The engine asks for both on every pass of its loop. Re-reading them whole after each write made every verdict cost
time in proportion to the plan (1,000 phases) and to the workers running (200 attempts). So the store notes which
rows its own transactions wrote (``phase_written``, ``attempt_written``; ``transaction_ended`` hands the notes on
when the transaction is over), and a read fetches only those rows again. A commit by another connection (``PRAGMA
data_version`` changes) makes the next read a whole one. Records are frozen and the lists handed out are copies,
so a caller can never change what the next one gets.

Only ``state.store`` uses this module (it owns the connection and every write).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from coordinator.state.records import AttemptRecord, PhaseRecord, from_row
from coordinator.states import ACTIVE_ATTEMPT_STATES


@dataclass
class _Cached:
    version: int
    """``PRAGMA data_version`` when read."""
    changed: set[str] | None = field(default_factory=set)
    """Keys (phase or attempt ids) written since; None: read everything again."""


@dataclass
class _Phases(_Cached):
    records: list[PhaseRecord] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)


@dataclass
class _ActiveAttempts(_Cached):
    records: dict[str, tuple[int, AttemptRecord]] = field(default_factory=dict)
    """Attempt id -> (order of first sight, record)."""
    seen: int = 0


class ReadCache:
    def __init__(self) -> None:
        self._phases: dict[str, _Phases] = {}
        self._active: dict[str, _ActiveAttempts] = {}
        self._written_phases: list[tuple[str, str | None]] = []
        self._written_attempts: list[str] = []

    # --- notes, during a write transaction -------------------------------------------------------------

    def phase_written(self, plan_id: str, phase_id: str | None) -> None:
        """A phase row of the plan (None: any, or the set of them) is being written."""
        self._written_phases.append((plan_id, phase_id))

    def attempt_written(self, attempt_id: str) -> None:
        """An attempt row is being inserted or written."""
        self._written_attempts.append(attempt_id)

    def transaction_ended(self) -> None:
        """The transaction committed or rolled back: the rows it noted are read again next time (a rolled-back
        one needlessly, which costs a read, never a stale answer)."""
        for plan_id, phase_id in self._written_phases:
            cached = self._phases.get(plan_id)
            if cached is not None:
                _note(cached, phase_id)
        for attempt_id in self._written_attempts:
            for active in self._active.values():
                _note(active, attempt_id)
        self._written_phases.clear()
        self._written_attempts.clear()

    # --- reads ---------------------------------------------------------------------------------------------

    def phases(self, connection: sqlite3.Connection, plan_id: str) -> list[PhaseRecord]:
        """The plan's phases in plan order."""
        version = _data_version(connection)
        cached = self._phases.get(plan_id)
        if cached is not None and cached.version == version and cached.changed is not None:
            for phase_id in cached.changed:
                row = connection.execute("SELECT * FROM phases WHERE plan_id=? AND phase_id=?",
                                         (plan_id, phase_id)).fetchone()
                index = cached.index.get(phase_id)
                if row is None or index is None:
                    break  # a phase appeared or went: read the plan again
                cached.records[index] = from_row(PhaseRecord, row)
            else:
                cached.changed = set()
                return list(cached.records)
        rows = connection.execute("SELECT * FROM phases WHERE plan_id=? ORDER BY position", (plan_id,))
        records = [from_row(PhaseRecord, row) for row in rows]
        self._phases[plan_id] = _Phases(version, records=records,
                                        index={record.phase_id: at for at, record in enumerate(records)})
        return list(records)

    def active_attempts(self, connection: sqlite3.Connection, plan_id: str) -> list[AttemptRecord]:
        """The plan's attempts not over yet (``ACTIVE_ATTEMPT_STATES``), oldest first: by ``started_at``, those
        without one first (as SQLite orders NULL), then in the order they were first seen."""
        version = _data_version(connection)
        cached = self._active.get(plan_id)
        if cached is None or cached.version != version or cached.changed is None:
            states = sorted(ACTIVE_ATTEMPT_STATES)
            rows = connection.execute(
                f"SELECT * FROM attempts WHERE plan_id=? AND state IN ({','.join('?' for _ in states)}) "
                "ORDER BY started_at", (plan_id, *states))
            cached = self._active[plan_id] = _ActiveAttempts(version)
            for row in rows:
                _keep(cached, from_row(AttemptRecord, row))
        else:
            for attempt_id in cached.changed:
                row = connection.execute("SELECT * FROM attempts WHERE attempt_id=?", (attempt_id,)).fetchone()
                record = from_row(AttemptRecord, row) if row is not None else None
                if record is not None and record.plan_id == plan_id and record.state in ACTIVE_ATTEMPT_STATES:
                    _keep(cached, record)
                else:
                    cached.records.pop(attempt_id, None)
            cached.changed = set()
        ordered = sorted(cached.records.values(),
                         key=lambda item: (item[1].started_at is not None, item[1].started_at or "", item[0]))
        return [record for _, record in ordered]


def _note(cached: _Cached, key: str | None) -> None:
    if key is None or cached.changed is None:
        cached.changed = None
    else:
        cached.changed.add(key)


def _keep(cached: _ActiveAttempts, record: AttemptRecord) -> None:
    first = cached.records.get(record.attempt_id)
    if first is None:
        cached.seen += 1
    cached.records[record.attempt_id] = (first[0] if first is not None else cached.seen, record)


def _data_version(connection: sqlite3.Connection) -> int:
    """Changes whenever another connection commits (never for this one's own commits)."""
    return int(connection.execute("PRAGMA data_version").fetchone()[0])
