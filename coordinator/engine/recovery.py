"""After a restart, and on every file poll: take over what an earlier coordinator left, and notice attempts
whose supervisor vanished.

- ``_adopt_unrecorded_workers``: a live supervisor whose attempt the store does not know (the store was deleted or
  replaced while workers ran) gets its row back instead of its phase being launched twice;
- ``_reattach``: every unfinished attempt is judged (it ended meanwhile), watched again (it still runs) or marked
  lost (no supervisor, no exit record);
- ``_check_lost``: the same liveness check while the run goes on;
- ``_remove_interrupted_writes``: the temporary files of atomic writes a crash cut short.
"""

from __future__ import annotations

from coordinator.engine.core import EngineCore
from coordinator.paths import OutsideWorkspace
from coordinator.state.events import Notice
from coordinator.state.records import AttemptRecord, NewAttempt
from coordinator.states import ACTIVE_ATTEMPT_STATES, AttemptState, PhaseState
from coordinator.util.files import remove_interrupted_writes


class RecoveryMixin(EngineCore):
    """Adopting, reattaching and declaring attempts lost."""

    def _remove_interrupted_writes(self) -> None:
        """Delete the temporary files of writes a killed coordinator or supervisor never renamed (never read,
        but they pile up over crashes); a plan folder a worker linked out of the workspace is left alone."""
        try:
            remove_interrupted_writes(self.paths.state_dir)
            remove_interrupted_writes(self.paths.plan_dir(self.plan.id), inside=self.workspace)
        except (OutsideWorkspace, OSError) as exc:
            self._notice(f"temporary files of interrupted writes left in place: {exc}", level="warning")

    def _reattach(self) -> None:
        """Adopt or settle every attempt left unfinished by an earlier coordinator (one pass, under the lock)."""
        for attempt in self.store.active_attempts(self.plan.id):
            if not self._phase_known(attempt.phase_id):
                self._notice(f"{attempt.phase_id} is no longer in the plan but has attempt {attempt.number} "
                             "unfinished; leaving it alone", level="warning")
                continue
            phase = self.plan.phase(attempt.phase_id)
            handle = self._handle(attempt)
            identity = self.executor.identity(handle)
            if attempt.state == AttemptState.CHECKING or self.executor.result(handle) is not None:
                self._notice(f"{phase.id} attempt {attempt.number} ended while no coordinator watched; judging it",
                             phase_id=phase.id)
                if attempt.state == AttemptState.LAUNCHING and identity is not None:
                    # Killed between starting the supervisor and recording it: record who ran it first.
                    self._record_running(attempt.attempt_id, phase, attempt.number, identity,
                                         attempt.resume_session, adopted=True)
                    self.state.watches.pop(attempt.attempt_id, None)
                elif identity is not None and identity.worker_pid is not None:  # its launcher may have died first
                    self.store.append_pid_line(self.plan.id, phase.id, identity.worker_pid, attempt.number,
                                               identity.supervisor_pid, unless_present=True)
                if attempt.state == AttemptState.CHECKING:
                    # Verification commands of the judging the last coordinator left would run on unwatched.
                    self.executor.kill_processes(attempt.attempt_id, phase.policy.kill_grace)
                self._finish_attempt(self.store.attempt(attempt.attempt_id) or attempt)
                continue
            if identity is not None and self.executor.is_alive(handle):
                self._record_running(attempt.attempt_id, phase, attempt.number, identity, attempt.resume_session,
                                     adopted=True)
                if attempt.state == AttemptState.STOPPING:
                    self.state.watches.pop(attempt.attempt_id, None)
                    self.executor.stop(handle, attempt.stop_reason or "stopped")
                continue
            if self.executor.started_on_another_boot(handle):
                self._mark_lost(attempt, "lost: the host rebooted while it ran")
            else:
                self._mark_lost(attempt, "lost: no supervisor and no exit record (the coordinator died mid-launch "
                                "or the supervisor was killed)")

    def _adopt_unrecorded_workers(self) -> None:
        """Record live attempts the store does not know, so they are watched and never launched twice.

        Every launch is committed before its supervisor starts, so a live supervisor without a row means the
        store was deleted or replaced while workers ran. Its records (``spec.json``, ``identity.json``) say which
        attempt it is; it gets its row back as ``running`` and ``_reattach`` adopts it like any other. Ended
        attempts of the lost store stay untrusted (their folders are set aside when the number is reused).
        """
        known = {attempt.attempt_id for attempt in self.store.attempts(self.plan.id)}
        for phase in self.plan.phases:
            for found in self.executor.unrecorded(self.paths.records_phase_dir(self.plan.id, phase.id), known):
                pid = found.identity.supervisor_pid
                if any(attempt.number == found.number for attempt in self.store.attempts(self.plan.id, phase.id)):
                    # An older copy of the store numbers another attempt so: adopting would break its history.
                    self._notice(f"{phase.id} attempt {found.number} is running (supervisor pid {pid}) "
                                 "but the state database records a different attempt under that number; "
                                 f"stop it with `kill -TERM {pid}` if it is not wanted",
                                 level="warning", phase_id=phase.id)
                    continue
                self.store.begin_attempt(
                    NewAttempt(attempt_id=found.attempt_id, plan_id=self.plan.id, phase_id=phase.id,
                               number=found.number, remediation=found.number > 1, agent=phase.agent,
                               attempt_dir=str(found.attempt_dir)),
                    PhaseState.REMEDIATING if found.number > 1 else PhaseState.RUNNING,
                    [Notice(plan_id=self.plan.id, phase_id=phase.id, level="warning",
                            message=f"{phase.id} attempt {found.number} is running (supervisor pid {pid}) "
                            "but the state database had no record of it (deleted or replaced?); adopting it "
                            "instead of launching the phase again")],
                    adopted=True,
                )

    def _check_lost(self) -> None:
        for attempt in self.store.active_attempts(self.plan.id):
            if attempt.state not in (AttemptState.RUNNING, AttemptState.STOPPING):
                continue  # a launching attempt is being started by this very coordinator
            if attempt.attempt_id in self.state.judging:
                continue
            handle = self._handle(attempt)
            if self.executor.is_alive(handle):
                continue
            if self.executor.result(handle) is not None:  # ended between the poll and the liveness check
                self._finish_attempt(attempt)
                continue
            self._mark_lost(attempt, "lost: its supervisor is gone and left no exit record")

    def _collect_ended(self) -> None:
        """The file poll: finish every active attempt whose supervisor left its exit record."""
        for attempt in self.store.active_attempts(self.plan.id):
            self._collect_if_ended(attempt)

    def _collect_announced(self) -> None:
        """Finish the attempts a push said ended (or just launched), looking at their exit records alone: with 200
        workers running, an end costs one read, not 200."""
        announced, self.state.ended = self.state.ended, set()
        for attempt_id in announced:
            attempt = self.store.attempt(attempt_id)
            if attempt is not None and attempt.plan_id == self.plan.id and attempt.state in ACTIVE_ATTEMPT_STATES:
                self._collect_if_ended(attempt)

    def _collect_if_ended(self, attempt: AttemptRecord) -> None:
        if attempt.attempt_id in self.state.judging or attempt.attempt_id in self.state.launching:
            return  # being judged, or not yet recorded as running (``_settle_launches`` comes first)
        if attempt.state == AttemptState.CHECKING or self.executor.result(self._handle(attempt)) is not None:
            self._finish_attempt(attempt)
