"""The events of a run: each is recorded by the store in the transaction of the change it reports (a row of the
``events`` table and a line of ``events.jsonl``, under ``type_name``), then handed to the store's subscribers —
the headless printer, and the dashboard's prompt refresh.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field


@dataclass(frozen=True, kw_only=True)
class EngineEvent:
    """Base of all engine events."""

    plan_id: str
    message: str
    """One human line, e.g. ``P07 attempt 2 launched (pid 12345)``."""
    phase_id: str | None = None
    attempt: int | None = None
    at: float = field(default_factory=time.time)
    """Wall-clock time of the event (seconds since the epoch), for display only."""

    @property
    def type_name(self) -> str:
        """``AttemptLaunched`` -> ``attempt_launched``."""
        return re.sub(r"(?<!^)(?=[A-Z])", "_", type(self).__name__).lower()

    def data(self) -> dict[str, object]:
        """The event's own fields (beyond the base ones), for the audit record."""
        base = {"plan_id", "message", "phase_id", "attempt", "at"}
        return {key: value for key, value in self.__dict__.items() if key not in base}


@dataclass(frozen=True, kw_only=True)
class Notice(EngineEvent):
    """Something a person should read (reattached workers, warnings, the run's start)."""

    level: str = "info"


@dataclass(frozen=True, kw_only=True)
class PhaseStateChanged(EngineEvent):
    state: str
    """The new ``PhaseState``."""


@dataclass(frozen=True, kw_only=True)
class AttemptLaunched(EngineEvent):
    worker_pid: int | None
    supervisor_pid: int
    remediation: bool
    resume_session: str | None = None


@dataclass(frozen=True, kw_only=True)
class PollCycle(EngineEvent):
    cycle: int
    max_cycles: int
    log_bytes: int
    silent_cycles: int


@dataclass(frozen=True, kw_only=True)
class AttemptEnded(EngineEvent):
    exit_code: int | None
    signal: int | None
    stop_reason: str | None


@dataclass(frozen=True, kw_only=True)
class VerdictReached(EngineEvent):
    passed: bool
    reason: str


@dataclass(frozen=True, kw_only=True)
class RunFinished(EngineEvent):
    exit_status: int
    passed: int
    total: int


@dataclass(frozen=True, kw_only=True)
class ExistingEvidence(EngineEvent):
    """`coord import --with-progress` judged a phase from the evidence already in the workspace."""

    verdict: str
    source: str


@dataclass(frozen=True, kw_only=True)
class PlanImported(EngineEvent):
    """`coord import --with-progress` recorded a plan and how far its existing evidence goes."""

    source: str
    plan_path: str
    passed: tuple[str, ...]
    resume_at: str | None
