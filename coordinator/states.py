"""Every state a plan, a phase and an attempt can be in, their named groups, and every legal move between them.

This module must import nothing but the standard library: the store, the engine, ``coord status`` and the dashboard
all read it, and it must never pull one of them into another. The states are ``StrEnum`` members, so they are
stored in SQLite and written to JSON as their plain values (``"running"``); ``docs/design.md`` ("States") tells the
same story in prose.

How to read the transition tables: ``{FROM: {TO, ...}}``; ``None`` as FROM means "a new row". The store refuses any
other move (:func:`check_move`), so a bug that would, say, pass a phase nobody judged fails loudly instead.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any


class IllegalTransition(RuntimeError):
    """A write would move a phase, attempt or plan along a path the state machine does not have (a coord bug)."""


class PlanState(enum.StrEnum):
    """Where a plan's run is, as the last coordinator left it."""

    RUNNING = "running"
    """A coordinator runs it (or died without a word; the workspace lock tells which)."""
    FINISHED = "finished"
    """The coordinator ended the run: every phase in scope passed or can go no further."""
    DETACHED = "detached"
    """The coordinator left on a signal, workers still running; the next `coord run` reattaches."""
    IMPORTED = "imported"
    """Recorded by `coord import --with-progress`; no coordinator has run it yet."""


class PhaseState(enum.StrEnum):
    """Where one phase is."""

    PENDING = "pending"
    """No attempt yet; it starts once its dependencies passed."""
    RUNNING = "running"
    """Its first attempt's worker runs."""
    REMEDIATING = "remediating"
    """A remediation attempt's worker runs."""
    CHECKING = "checking"
    """The worker ended; coord is judging the attempt."""
    PASSED = "passed"
    """An attempt was judged PASS."""
    FAILED = "failed"
    """The last attempt was judged FAIL (or lost); a remediation follows while attempts remain."""
    BLOCKED = "blocked"
    """Attempts used up, or stopped by a person: it waits for `coord remediate`, and so do its dependents."""
    WAITING = "waiting"
    """The agent's usage limit stopped its attempt (not counted): it waits for the reset, then continues, and
    every phase on the same agent profile waits with it."""


class AttemptState(enum.StrEnum):
    """Where one attempt (one worker launch) is."""

    LAUNCHING = "launching"
    """Recorded before its supervisor starts; the supervisor has not said who it is yet."""
    RUNNING = "running"
    """Its supervisor wrote its identity; the worker runs."""
    STOPPING = "stopping"
    """Asked to stop (hung, or a person's `coord stop`); its supervisor is ending the process group."""
    CHECKING = "checking"
    """Its supervisor recorded the exit; coord is judging it. A coordinator killed here judges it again."""
    PASSED = "passed"
    """Judged PASS."""
    FAILED = "failed"
    """Judged FAIL, or it never started."""
    LOST = "lost"
    """Its supervisor vanished without an exit record (killed, or the host rebooted)."""


# --- named groups --------------------------------------------------------------------------------------------

ACTIVE_ATTEMPT_STATES = frozenset({AttemptState.LAUNCHING, AttemptState.RUNNING, AttemptState.STOPPING,
                                   AttemptState.CHECKING})
"""An attempt in one of these is not over: the phase has a worker, or a verdict still to commit."""

LIVE_ATTEMPT_STATES = frozenset({AttemptState.LAUNCHING, AttemptState.RUNNING, AttemptState.STOPPING})
"""An attempt in one of these may still have a worker process (it can be stopped, or found lost)."""

TERMINAL_ATTEMPT_STATES = frozenset({AttemptState.PASSED, AttemptState.FAILED, AttemptState.LOST})
"""An attempt in one of these is over for good; nothing changes it again."""

RETRYABLE_PHASE_STATES = frozenset({PhaseState.FAILED, PhaseState.REMEDIATING})
"""A phase in one of these with no attempt under way gets a remediation while it has attempts left (else it is
blocked). ``REMEDIATING`` is here for a store whose last attempt ended without its phase being moved on."""

WORKING_PHASE_STATES = frozenset({PhaseState.RUNNING, PhaseState.REMEDIATING, PhaseState.CHECKING})
"""A phase in one of these has an attempt under way."""

DONE_PHASE_STATES = frozenset({PhaseState.PASSED})
"""A phase in one of these needs no more work: its dependents may start, and its agent need not be installed."""

ENDED_PLAN_STATES = frozenset({PlanState.FINISHED, PlanState.DETACHED})
"""A plan in one of these has no coordinator; its run's clock stops at its last update."""


# --- legal moves ---------------------------------------------------------------------------------------------

ATTEMPT_MOVES: dict[AttemptState | None, frozenset[AttemptState]] = {
    None: frozenset({
        AttemptState.LAUNCHING,  # new -> LAUNCHING: the intent is committed before the supervisor starts
        AttemptState.RUNNING,  # new -> RUNNING: a live supervisor the store forgot is adopted, not launched again
    }),
    AttemptState.LAUNCHING: frozenset({
        AttemptState.RUNNING,  # LAUNCHING -> RUNNING: the supervisor wrote its identity
        AttemptState.STOPPING,  # LAUNCHING -> STOPPING: a stop arrived before the identity did
        AttemptState.CHECKING,  # LAUNCHING -> CHECKING: it ended before the identity was recorded
        AttemptState.FAILED,  # LAUNCHING -> FAILED: the worker never started
        AttemptState.LOST,  # LAUNCHING -> LOST: the coordinator died mid-launch and no supervisor runs
    }),
    AttemptState.RUNNING: frozenset({
        AttemptState.RUNNING,  # RUNNING -> RUNNING: reattached by a new coordinator
        AttemptState.STOPPING,  # RUNNING -> STOPPING: hung, or stopped by a person
        AttemptState.CHECKING,  # RUNNING -> CHECKING: its supervisor recorded the exit
        AttemptState.LOST,  # RUNNING -> LOST: its supervisor is gone without an exit record
    }),
    AttemptState.STOPPING: frozenset({
        AttemptState.STOPPING,  # STOPPING -> STOPPING: asked again (a second `coord stop`)
        AttemptState.CHECKING,  # STOPPING -> CHECKING: the process group ended
        AttemptState.LOST,  # STOPPING -> LOST: its supervisor is gone without an exit record
    }),
    AttemptState.CHECKING: frozenset({
        AttemptState.PASSED,  # CHECKING -> PASSED: judged PASS
        AttemptState.FAILED,  # CHECKING -> FAILED: judged FAIL
    }),
    AttemptState.PASSED: frozenset(),
    AttemptState.FAILED: frozenset(),
    AttemptState.LOST: frozenset(),
}

PHASE_MOVES: dict[PhaseState | None, frozenset[PhaseState]] = {
    None: frozenset({PhaseState.PENDING}),  # new -> PENDING: a phase of the plan is first recorded
    PhaseState.PENDING: frozenset({
        PhaseState.RUNNING,  # PENDING -> RUNNING: its first attempt launches
        PhaseState.REMEDIATING,  # PENDING -> REMEDIATING: an adopted worker's attempt number is above 1
        PhaseState.PASSED,  # PENDING -> PASSED: `coord import --with-progress` judged its existing evidence
    }),
    PhaseState.RUNNING: frozenset({
        PhaseState.RUNNING,  # RUNNING -> RUNNING: an adopted worker of the same phase
        PhaseState.REMEDIATING,  # RUNNING -> REMEDIATING: an adopted worker of a later attempt
        PhaseState.CHECKING,  # RUNNING -> CHECKING: the worker ended
        PhaseState.FAILED,  # RUNNING -> FAILED: it did not start, or was lost, with attempts left
        PhaseState.BLOCKED,  # RUNNING -> BLOCKED: the same with no attempts left
    }),
    PhaseState.REMEDIATING: frozenset({
        PhaseState.REMEDIATING,  # REMEDIATING -> REMEDIATING: an adopted worker of the same phase
        PhaseState.CHECKING,  # REMEDIATING -> CHECKING: the worker ended
        PhaseState.FAILED,  # REMEDIATING -> FAILED: it did not start, or was lost, with attempts left
        PhaseState.BLOCKED,  # REMEDIATING -> BLOCKED: the same with no attempts left
    }),
    PhaseState.CHECKING: frozenset({
        PhaseState.CHECKING,  # CHECKING -> CHECKING: judged again after a coordinator restart
        PhaseState.PASSED,  # CHECKING -> PASSED: judged PASS
        PhaseState.FAILED,  # CHECKING -> FAILED: judged FAIL with attempts left
        PhaseState.BLOCKED,  # CHECKING -> BLOCKED: judged FAIL with none left, or stopped by a person
        PhaseState.REMEDIATING,  # CHECKING -> REMEDIATING: an adopted worker of a later attempt
        PhaseState.WAITING,  # CHECKING -> WAITING: the agent's usage limit stopped the attempt
    }),
    PhaseState.WAITING: frozenset({
        PhaseState.REMEDIATING,  # WAITING -> REMEDIATING: the limit reset (or a person's `coord remediate`)
        PhaseState.BLOCKED,  # WAITING -> BLOCKED: a person's remediation that did not start
    }),
    PhaseState.FAILED: frozenset({
        PhaseState.REMEDIATING,  # FAILED -> REMEDIATING: the next attempt launches
        PhaseState.BLOCKED,  # FAILED -> BLOCKED: no attempts left (`max_attempts` lowered since)
        PhaseState.FAILED,  # FAILED -> FAILED: a remediation that did not start, attempts left
    }),
    PhaseState.BLOCKED: frozenset({
        PhaseState.REMEDIATING,  # BLOCKED -> REMEDIATING: a person's `coord remediate`
        PhaseState.BLOCKED,  # BLOCKED -> BLOCKED: a person's remediation that did not start
    }),
    PhaseState.PASSED: frozenset({
        PhaseState.REMEDIATING,  # PASSED -> REMEDIATING: a person's `coord remediate` of a passed phase
        PhaseState.RUNNING,  # PASSED -> RUNNING: an adopted worker a lost store had recorded as attempt 1
    }),
}

PLAN_MOVES: dict[PlanState | None, frozenset[PlanState]] = {
    None: frozenset({
        PlanState.RUNNING,  # new -> RUNNING: `coord run` records the plan
        PlanState.IMPORTED,  # new -> IMPORTED: `coord import --with-progress` records it
    }),
    PlanState.RUNNING: frozenset({
        PlanState.RUNNING,  # RUNNING -> RUNNING: a restarted coordinator (the last one died)
        PlanState.FINISHED,  # RUNNING -> FINISHED: nothing more to do
        PlanState.DETACHED,  # RUNNING -> DETACHED: Ctrl-C or SIGTERM, workers keep running
        PlanState.IMPORTED,  # RUNNING -> IMPORTED: imported again while no attempt ran (the import checks)
    }),
    PlanState.FINISHED: frozenset({
        PlanState.RUNNING,  # FINISHED -> RUNNING: `coord run` or `coord remediate` again
        PlanState.IMPORTED,  # FINISHED -> IMPORTED: imported again while no attempt ran (the import checks)
    }),
    PlanState.DETACHED: frozenset({
        PlanState.RUNNING,  # DETACHED -> RUNNING: the next coordinator reattaches
        PlanState.IMPORTED,  # DETACHED -> IMPORTED: imported again while no attempt ran (the import checks)
    }),
    PlanState.IMPORTED: frozenset({
        PlanState.RUNNING,  # IMPORTED -> RUNNING: the first `coord run`
        PlanState.IMPORTED,  # IMPORTED -> IMPORTED: imported again
    }),
}


def check_move(kind: str, table: Mapping[Any, frozenset[Any]], state_type: type[enum.StrEnum], old: str | None,
               new: str) -> None:
    """Raise unless ``old -> new`` is in ``table``.

    Args:
        kind: what moves, for the message (``"phase P07"``, ``"attempt 3 of P07"``).
        table: one of ``ATTEMPT_MOVES``, ``PHASE_MOVES``, ``PLAN_MOVES``.
        state_type: the table's state enum.
        old: the current state's value (None for a new row).
        new: the state asked for.

    Raises:
        IllegalTransition: the move is not in the table, or ``old`` is not a known state.
    """
    try:
        current = None if old is None else state_type(old)
    except ValueError:
        raise IllegalTransition(f"{kind} is in unknown state {old!r}") from None
    if state_type(new) not in table[current]:
        allowed = ", ".join(sorted(table[current])) or "nothing (it is final)"
        raise IllegalTransition(f"{kind} cannot move from {old or 'new'} to {new}; allowed: {allowed}")


# --- what people see -----------------------------------------------------------------------------------------

ENDED_UNJUDGED = "ended"
"""Not a stored state: what `coord status` and the dashboard show for an attempt whose worker ended while no
coordinator ran (the next `coord run` judges it)."""

HUNG = "hung"
"""Not a stored state: what the dashboard shows for a phase whose worker is being stopped as hung."""

STATE_STYLES = {
    PhaseState.PASSED: "green",
    PhaseState.FAILED: "red",
    PhaseState.BLOCKED: "bold red",
    AttemptState.LOST: "red",
    PhaseState.RUNNING: "cyan",
    PhaseState.REMEDIATING: "yellow",
    PhaseState.CHECKING: "magenta",
    ENDED_UNJUDGED: "magenta",
    PhaseState.PENDING: "dim",
    PhaseState.WAITING: "blue",
}
"""Rich/Textual style names per shown state (plain strings, so this module needs neither library)."""


EXISTING_EVIDENCE = "existing-evidence"
"""``phases.verdict_source`` of a phase passed on files that existed before coord ran it (``coord import
--with-progress``) without coord re-running its verification: the pass is unverified, and every report says so."""

REVERIFIED_EVIDENCE = "re-verified"
"""``phases.verdict_source`` of a phase passed on existing evidence whose verification commands coord re-ran at
import (``coord import --with-progress --verify``), and which passed them."""
