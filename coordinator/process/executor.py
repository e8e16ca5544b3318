"""Where attempts run: the interface the engine launches, watches, stops and collects attempts through.

The engine never touches a pid itself; it hands an executor a :class:`SupervisorSpec` and later asks it about the
attempt by :class:`AttemptHandle`. :class:`coordinator.process.local.LocalExecutor` (a supervisor process per
attempt on this machine) is the first implementation; another one (a cluster's job API) is one new module that
implements this protocol, and no edit to the engine.

What every implementation must guarantee (``docs/reliability.md``):

- ``start`` launches at most once per attempt id, and the attempt's exit is recorded where ``result`` finds it by
  the side that watched the worker (its supervisor), not by the coordinator;
- ``result``, ``identity`` and ``is_alive`` work for an attempt started by an earlier coordinator (after a
  restart), from what is on disk or in the cluster, never from memory alone;
- nothing raises for a missing, torn or foreign record: it reads as "not there".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from coordinator.process.records import ExitRecord, Identity, SupervisorSpec


class StartError(Exception):
    """The attempt did not start; ``str(error)`` says why, for its verdict. Nothing of it is left running."""


@dataclass(frozen=True)
class AttemptHandle:
    """How an executor finds an attempt again: its id and its records folder (absolute; in coord's state
    directory, out of the worker's reach)."""

    attempt_id: str
    records_dir: Path


@dataclass(frozen=True)
class UnrecordedAttempt:
    """A live attempt found in a phase folder that the store has no row for."""

    number: int
    attempt_id: str
    attempt_dir: Path
    identity: Identity


class Executor(Protocol):
    """Runs attempts and answers for them."""

    def start(self, spec: SupervisorSpec) -> Identity:
        """Start the attempt described by ``spec`` and wait until it says who runs it (``spawn``, then
        ``started`` until it answers).

        Raises:
            StartError: it could not be started, or did not identify itself in time (it was killed).
        """
        ...

    def spawn(self, spec: SupervisorSpec) -> None:
        """Start the attempt described by ``spec`` without waiting for it: ``started`` tells when it has.

        Raises:
            StartError: it could not be started at all.
        """
        ...

    def started(self, attempt_id: str) -> Identity | StartError | None:
        """For an attempt ``spawn`` started: its identity once it wrote one; a StartError once none can come (it
        died first, or the identity timeout passed, and it was killed); None while it is still starting."""
        ...

    def identity(self, attempt: AttemptHandle) -> Identity | None:
        """Who runs the attempt, or None when it never said (or its record is foreign or torn)."""
        ...

    def is_alive(self, attempt: AttemptHandle) -> bool:
        """True while whatever watches the attempt's worker (its supervisor) still runs."""
        ...

    def started_on_another_boot(self, attempt: AttemptHandle) -> bool:
        """True when the attempt was started before the host (or node) it ran on last booted."""
        ...

    def result(self, attempt: AttemptHandle) -> ExitRecord | None:
        """How the attempt's worker ended, or None while it has not (or no record was left)."""
        ...

    def stop(self, attempt: AttemptHandle, reason: str) -> bool:
        """Ask for the attempt's worker to be stopped (TERM, grace, KILL, sweep); ``reason`` (``hung``,
        ``stopped``) lands in its exit record. Returns False when nothing watches it any more."""
        ...

    def kill_processes(self, attempt_id: str, grace: float) -> list[int]:
        """Kill every process still carrying the attempt's cookie (``grace`` seconds between TERM and KILL);
        returns the pids found alive."""
        ...

    def interrupt(self, attempt_id: str) -> list[int]:
        """SIGTERM (and SIGCONT) to every process still carrying the attempt's cookie, without waiting or
        reaping: whoever started them (the judge, for verification commands) sees them end and collects them.
        Returns the pids signalled."""
        ...

    def poll_ended(self) -> bool:
        """Collect what ended since the last call (so nothing is left a zombie); True if anything did."""
        ...

    def close(self) -> None:
        """The coordinator ends: release what serves launches (the attempts started go on)."""
        ...

    def unrecorded(self, phase_dir: Path, known: set[str]) -> list[UnrecordedAttempt]:
        """Live attempts whose records are in ``phase_dir`` (a phase's records folder) and whose ids are not in
        ``known`` (the store forgot them)."""
        ...
