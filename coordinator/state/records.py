"""Typed rows of the store: what the ``plans``, ``phases``, ``attempts`` and ``events`` tables hold.

The store returns these instead of ``sqlite3.Row``, so a reader sees the fields and their types. The field names
are the column names of ``store.SCHEMA``; ``from_row`` fails loudly if the two ever disagree.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

from coordinator.states import EXISTING_EVIDENCE, AttemptState, PhaseState, PlanState

RecordT = TypeVar("RecordT")


def from_row(cls: type[RecordT], row: sqlite3.Row) -> RecordT:
    """Build record ``cls`` from a row with exactly its fields' columns.

    Raises:
        TypeError: a column is missing or unknown (the schema and the record drifted apart).
    """
    return cls(**{key: row[key] for key in row.keys()})


@dataclass(frozen=True, slots=True)
class PlanRecord:
    """One plan's run (a row of ``plans``)."""

    plan_id: str
    path: str
    """The plan file as it was named to `coord run` (relative to the workspace where possible)."""
    title: str
    state: PlanState
    paused: int
    """1 while a person paused scheduling (no new phases start)."""
    started_at: str | None
    """When the plan was first run, ``2026-11-24T08:00:00+0000``."""
    updated_at: str | None
    """The last change of the plan row; for a finished or detached run, when it stopped."""
    tampered: str | None
    """The first sign that a worker changed coord's files behind its back, or None."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", PlanState(self.state))


@dataclass(frozen=True, slots=True)
class PhaseRecord:
    """Where one phase of a plan is (a row of ``phases``)."""

    plan_id: str
    phase_id: str
    position: int
    """0-based position in the plan."""
    kind: str
    title: str
    state: PhaseState
    attempts: int
    """Attempts launched so far (the number of the latest one)."""
    uncounted_attempts: int
    """Of them, those not counted against ``policy.max_attempts``: session resumes the agent rejected, which did
    no work (the fresh worker that follows is the remediation), and attempts a usage limit stopped."""
    waiting_until: float | None
    """While ``WAITING``: when the agent's usage limit resets (seconds since the epoch)."""
    verdict: str | None
    """``PASS`` or ``FAIL`` of the last judged attempt."""
    verdict_source: str | None
    """How it was reached: ``checks``, ``existing-evidence`` (import) or ``lost``."""
    reason: str | None
    """One line: why it is where it is (the verdict's reason, or why it is blocked)."""
    updated_at: str | None

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", PhaseState(self.state))

    @property
    def counted_attempts(self) -> int:
        """Attempts that count against ``policy.max_attempts``."""
        return self.attempts - self.uncounted_attempts

    @property
    def unverified(self) -> bool:
        """Passed on existing evidence whose verification coord did not re-run (``coord import --with-progress``)."""
        return self.state == PhaseState.PASSED and self.verdict_source == EXISTING_EVIDENCE


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One launch of a worker for a phase (a row of ``attempts``)."""

    attempt_id: str
    """uuid; the cookie (``COORD_ATTEMPT_ID``) every process of the attempt carries."""
    plan_id: str
    phase_id: str
    number: int
    """1-based attempt number within the phase."""
    remediation: int
    """1 for a remediation attempt."""
    state: AttemptState
    agent: str
    """The agent profile's name."""
    attempt_dir: str
    """Absolute path of the attempt folder (``tmp/PLAN/P07/N``)."""
    resume_session: str | None
    """The agent session this attempt resumes, or None for a fresh worker."""
    note: str | None
    """A person's note added to the prompt (``coord remediate --note``)."""
    supervisor_pid: int | None
    worker_pid: int | None
    started_at: str | None
    ended_at: str | None
    exit_code: int | None
    signal: int | None
    stop_reason: str | None
    """Why coord stopped the worker: ``hung`` or ``stopped`` (by a person), or None."""
    cycle: int
    """Poll cycles observed while it ran."""
    verdict: str | None
    reason: str | None
    """Why it was stopped while running; once judged, the verdict's reason."""
    session_id: str | None
    """The agent's session (thread) id, from its log."""
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    cost_usd: float | None
    last_message: str | None
    """The agent's final message (capped at 4,000 characters)."""
    commands: int
    """Shell commands the agent ran."""
    file_changes: int
    """File changes the agent made."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", AttemptState(self.state))

    @property
    def directory(self) -> Path:
        return Path(self.attempt_dir)


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One audit event (a row of ``events``; the same record is a line of ``events.jsonl``)."""

    seq: int
    plan_id: str
    at: str
    type: str
    """The event class in snake case: ``attempt_launched``, ``verdict_reached``, ``notice``, …"""
    phase_id: str | None
    attempt: int | None
    message: str
    data: str
    """The event's own fields as a JSON object (see :meth:`fields`)."""

    def fields(self) -> dict[str, Any]:
        """``data`` decoded; {} when it is not a JSON object."""
        try:
            value = json.loads(self.data)
        except json.JSONDecodeError:
            return {}
        return value if isinstance(value, dict) else {}


# --- what the engine hands the store to write ----------------------------------------------------------


@dataclass(frozen=True)
class NewAttempt:
    """An attempt about to be launched (or adopted): what :meth:`Store.begin_attempt` records."""

    attempt_id: str
    plan_id: str
    phase_id: str
    number: int
    remediation: bool
    agent: str
    attempt_dir: str
    resume_session: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class AttemptEnd:
    """What is known once an attempt's worker ended: its exit record and the agent's summary of its log."""

    ended_at: str | None
    exit_code: int | None
    signal: int | None
    stop_reason: str | None
    session_id: str | None
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    cost_usd: float | None
    last_message: str | None
    commands: int
    file_changes: int


@dataclass(frozen=True)
class ImportedPhase:
    """One phase as ``coord import --with-progress`` judged it from existing evidence."""

    phase_id: str
    position: int
    kind: str
    title: str
    state: PhaseState
    verdict: str | None
    verdict_source: str | None
    reason: str | None


RECORD_COLUMNS = {
    "plans": tuple(field.name for field in fields(PlanRecord)),
    "phases": tuple(field.name for field in fields(PhaseRecord)),
    "attempts": tuple(field.name for field in fields(AttemptRecord)),
    "events": tuple(field.name for field in fields(EventRecord)),
}
"""Column names per table, in record order (a test checks them against the schema)."""
