"""What every part of the engine shares: the run's inputs, its in-memory state, and the seams tests replace.

``Engine`` (``engine.py``) is assembled from this core and three parts, one per job: launching (``launch.py``),
judging (``judging.py``) and recovery after a restart (``recovery.py``). Each part calls the others only through
the methods declared at the bottom of :class:`EngineCore`, so each file can be read on its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coordinator.agents.usage_limits import UsageLimit
from coordinator.git.checkpoints import Checkpoints
from coordinator.git.worktrees import Placement, Worktrees
from coordinator.judge.verdict import EVIDENCE_FILE, Verdict
from coordinator.paths import OutsideWorkspace
from coordinator.plan.model import Phase, Plan
from coordinator.plan.snapshot import PlanSnapshot
from coordinator.process.control_socket import SignalListener
from coordinator.process.executor import AttemptHandle, Executor
from coordinator.process.records import Identity
from coordinator.prompts.renderer import PromptRenderer, RemediationContext
from coordinator.state.events import Notice
from coordinator.state.records import AttemptRecord
from coordinator.state.store import Store
from coordinator.states import AttemptState
from coordinator.util.files import workspace_relative


@dataclass(frozen=True)
class RemediationRequest:
    """A person's request to remediate one phase now (``coord remediate``)."""

    phase_id: str
    resume: bool = False
    note: str | None = None


@dataclass(frozen=True)
class RunOptions:
    """How a run behaves beyond the plan itself."""

    max_parallel: int = 1
    """Attempts running at once. Above 1, in a git working tree, each works in a worktree of its own
    (``engine.worktree_steps``); without git they share the workspace, so 1 by default."""
    scope: frozenset[str] | None = None
    """Phase ids this run may launch (``--only``/``--from``); None = all. Dependencies outside it count as met."""
    poll_fallback: float = 1.0
    """Seconds between file polls for ended attempts (the fallback when the socket push is lost)."""
    use_socket: bool = True
    """Listen for pushes and commands on the control socket."""
    remediate_only: RemediationRequest | None = None
    """Stand-alone ``coord remediate``: run this one remediation to its verdict and nothing else."""


@dataclass
class Watch:
    """What the engine tracks in memory about a running attempt (its cycle count is persisted too)."""

    attempt_id: str
    phase_id: str
    number: int
    next_cycle_at: float
    """When (on the engine's monotonic clock, seconds) its next poll cycle ends."""
    cycle: int = 0
    silent_cycles: int = 0
    """Cycles since its log last changed, not counting those it was busy (``busy_cycles``)."""
    busy_cycles: int = 0
    """Consecutive cycles without output while a command it started ran or the agent retried the model."""
    log_bytes: int = 0
    """The log's size at the last cycle."""
    started_at: float | None = None
    """When the worker started (seconds since the epoch), read from the store at the first deadline check."""


@dataclass
class Judging:
    """An attempt whose verdict is being reached on a judge thread: its checks, or (lost) the killing of what it
    left running."""

    future: Future[Verdict]
    phase: Phase
    number: int
    stopped_by_person: bool
    lost: bool = False
    """The verdict is that the attempt was lost: it is committed as ``LOST``, never re-judged."""
    usage_limit: UsageLimit | None = None
    """The agent refused for quota reasons: the phase waits for the reset instead of being judged a failure."""
    rejected_resume: bool = False
    """The agent refused to resume the session it was given (it failed before starting one): the attempt did
    no work, so a failure is not counted against ``max_attempts`` and a fresh worker follows."""


@dataclass(frozen=True)
class Launching:
    """An attempt whose supervisor was spawned and has not yet said who runs it."""

    phase: Phase
    number: int
    resume_session: str | None


@dataclass
class EngineState:
    """The engine's in-memory state; everything that must survive a restart is in the store instead."""

    detach_signal: int | None = None
    """The signal that asked the loop to detach, once one did."""
    marker_paths: dict[str, str] | None = None
    """Every phase's completion marker path, rendered at the first launch (``LaunchMixin._other_markers``)."""
    stop_all: bool = False
    """A person stopped the whole run: launch nothing more."""
    wake: bool = False
    """Something may have ended (a reaped supervisor, a stop): poll every attempt's exit record now rather than
    on schedule."""
    ended: set[str] = field(default_factory=set)
    """Attempts whose end a push announced, or just settled launches (a quick worker may be over already): look
    at their exit records alone on the next pass, not at every running attempt's."""
    watches: dict[str, Watch] = field(default_factory=dict)
    """Running attempts by attempt id."""
    budget_reason: str | None = None
    """Why the budget stopped launches (None while it has not)."""
    judging: dict[str, Judging] = field(default_factory=dict)
    """Attempts being judged, by attempt id."""
    launching: dict[str, Launching] = field(default_factory=dict)
    """Attempts spawned whose supervisors have not written their identity yet, by attempt id."""
    merge_waiting: set[str] = field(default_factory=set)
    """Ended attempts in worktrees waiting for their turn to merge (``engine.worktree_steps``), by attempt id: they
    do not count against ``--max-parallel``."""
    stopped_waiting: set[str] = field(default_factory=set)
    """Of those, the ones a person stopped (``coord stop``): judged as stopped, never merged."""


class EngineCore:
    """The run's inputs and shared state.

    Args:
        plan: the validated plan.
        store: the writable store (the caller holds the workspace lock).
        options: run options.
        executor: where attempts run (the local supervisor processes unless a test or the plan says otherwise).
        clock: monotonic seconds, for poll cycles (tests pass a fake one).
        snapshot: the plan and templates as the person started the run: prompts render from its templates, and
            a plan file changed since is reported, never followed (None: the workspace's templates, unwatched).
    """

    def __init__(self, plan: Plan, store: Store, options: RunOptions, executor: Executor,
                 clock: Callable[[], float] = time.monotonic, snapshot: PlanSnapshot | None = None) -> None:
        self.plan = plan
        self.snapshot = snapshot
        self.store = store
        self.paths = store.paths
        self.options = options
        self.executor = executor
        self.clock = clock
        self.workspace = Path(plan.workspace)
        self.renderer = PromptRenderer(self.workspace, templates=snapshot.templates if snapshot else None)
        self.state = EngineState()
        self.listener: SignalListener | None = None
        self.paused = False
        self.remediation_attempt_id: str | None = None
        self.judges = ThreadPoolExecutor(max_workers=max(2, options.max_parallel), thread_name_prefix="judge")
        self.checkpoints: Checkpoints | None = None
        """The run's git checkpoints (``engine.git_steps``), None outside a git working tree or with ``git: off``."""
        self.worktrees: Worktrees | None = None
        """The run's worktrees (``engine.worktree_steps``), whenever it has checkpoints."""

    # --- helpers -----------------------------------------------------------------------------------------

    def _judge_on_thread(self, check: Callable[..., Verdict], *args: Any) -> Future[Verdict]:
        """Run ``check(*args)`` on a judge thread; its end wakes the loop, which commits the verdict at once."""
        future = self.judges.submit(check, *args)
        future.add_done_callback(lambda _done: self.listener.wake() if self.listener is not None else None)
        return future

    def _idle_phase_attempts(self) -> dict[str, int]:
        """Phase id -> attempts so far, of the phases with no attempt under way."""
        active = {attempt.phase_id for attempt in self.store.active_attempts(self.plan.id)}
        return {record.phase_id: record.attempts for record in self.store.phases(self.plan.id)
                if record.phase_id not in active}

    def _notice(self, message: str, *, level: str = "info", phase_id: str | None = None) -> None:
        self.store.record([Notice(plan_id=self.plan.id, phase_id=phase_id, message=message, level=level)])

    def _write_evidence(self, attempt_dir: Path, verdict: Verdict) -> None:
        """Write the attempt's ``evidence.json``; the verdict itself is in the store, so a folder a worker deleted
        or linked out of the workspace costs only the file (and is said, as a warning)."""
        try:
            verdict.write(attempt_dir / EVIDENCE_FILE, inside=self.workspace)
        except OutsideWorkspace as exc:
            self.store.record_tampering(self.plan.id, f"{self._relative(attempt_dir / EVIDENCE_FILE)} not written: "
                                        f"{exc} (the verdict is in the state store: coord status)")
        except OSError as exc:
            self._notice(f"cannot write {self._relative(attempt_dir / EVIDENCE_FILE)}: {exc}; the verdict is in "
                         "the state store (coord status)", level="warning")

    def _relative(self, path: Path) -> str:
        return workspace_relative(path, self.paths.workspace)

    def _handle(self, attempt: AttemptRecord) -> AttemptHandle:
        return AttemptHandle(attempt.attempt_id,
                             self.paths.records_dir(attempt.plan_id, attempt.phase_id, attempt.number))

    def _phase_known(self, phase_id: str) -> bool:
        return any(phase.id == phase_id for phase in self.plan.phases)

    def _in_scope(self, phase_id: str) -> bool:
        if self.options.remediate_only is not None:
            return phase_id == self.options.remediate_only.phase_id
        return self.options.scope is None or phase_id in self.options.scope

    # --- implemented by the parts (declared here so each part can call the others) ----------------------

    def _launch(self, phase: Phase, *, remediation: RemediationContext | None = None,
                resume_session: str | None = None, note: str | None = None, person: bool = False,
                defer: bool = False) -> str | None:
        raise NotImplementedError

    def _launch_remediation(self, phase: Phase, *, resume: bool | None = None, note: str | None = None,
                            person: bool = False, defer: bool = False) -> str | None:
        raise NotImplementedError

    def _settle_launches(self) -> bool:
        raise NotImplementedError

    def _settle_all_launches(self) -> None:
        raise NotImplementedError

    def _record_running(self, attempt_id: str, phase: Phase, number: int, identity: Identity,
                        resume_session: str | None, adopted: bool) -> None:
        raise NotImplementedError

    def _finish_attempt(self, attempt: AttemptRecord) -> None:
        raise NotImplementedError

    def _commit_verdict(self, attempt_id: str, phase: Phase, number: int, verdict: Verdict, *,
                        attempt_state: AttemptState, stopped_by_person: bool = False) -> None:
        raise NotImplementedError

    def _mark_lost(self, attempt: AttemptRecord, reason: str) -> None:
        raise NotImplementedError

    def _git_before(self, phase: Phase, number: int, is_remediation: bool) -> Placement | None:
        raise NotImplementedError

    def _git_after(self, phase: Phase, number: int) -> dict[str, Any] | None:
        raise NotImplementedError

    def _git_checkpoint(self, phase: Phase, number: int, verdict: Verdict, attempt_id: str) -> Verdict:
        raise NotImplementedError

    def _placement(self, phase_id: str, number: int) -> Placement | None:
        raise NotImplementedError

    def _merge_waits(self, attempt: AttemptRecord) -> bool:
        raise NotImplementedError

    def _merge_attempt(self, phase: Phase, attempt: AttemptRecord, changes: dict[str, Any] | None,
                       stopped: bool) -> tuple[dict[str, Any] | None, Verdict | None]:
        raise NotImplementedError

    def _release_worktree(self, phase_id: str, number: int) -> None:
        raise NotImplementedError
