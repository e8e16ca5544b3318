"""The coordinator's loop: schedule phases, launch attempts, watch them, judge them, remediate, reattach.

Who calls it: ``coord run`` and stand-alone ``coord remediate`` (headless, on the main thread), and the dashboard's
in-process run (``engine.thread``). The engine is single-threaded: one loop takes signals in (socket pushes, then
the file poll), applies the hang policy, and acts; only the checks of ended attempts run on judge threads. Every
state change is committed to the store, with its events, before it is acted on; the store hands those events to
the ``sink`` (the headless printer) once committed.

This file holds the loop and the decisions made in it; launching, judging and recovery are parts of their own
(``launch.py``, ``judging.py``, ``recovery.py``), and the rules they apply are pure functions in ``rules.py``.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from coordinator.agents.logview import Busy, busy_state, last_activity
from coordinator.engine.core import RemediationRequest, RunOptions, Watch
from coordinator.engine.git_steps import GitMixin
from coordinator.engine.hang_policy import decide_cycle, decide_deadline
from coordinator.engine.judging import JudgingMixin
from coordinator.engine.launch import LaunchMixin
from coordinator.engine.recovery import RecoveryMixin
from coordinator.engine.rules import Action, RunnableTracker, budget_reason, shared_workdir_warning
from coordinator.errors import CoordError, ExitStatus, StoreError, UsageError
from coordinator.notify import Notifier, load_user_config
from coordinator.plan.model import Plan, Policy
from coordinator.plan.snapshot import PlanSnapshot, changed_verification
from coordinator.process.control_socket import SignalListener
from coordinator.process.executor import Executor
from coordinator.process.local import IDENTITY_POLL, LocalExecutor
from coordinator.process.records import LOG_FILE
from coordinator.prompts.validate import current_hash
from coordinator.state.events import EngineEvent, Notice, PhaseStateChanged, PollCycle, RunFinished
from coordinator.state.records import AttemptRecord
from coordinator.state.store import Store
from coordinator.states import DONE_PHASE_STATES, AttemptState, PhaseState, PlanState
from coordinator.util.files import file_size
from coordinator.util.timefmt import epoch_seconds

__all__ = ["Engine", "RemediationRequest", "RunOptions"]

AFTER_LIMIT_NOTE = ("Your previous turn was stopped by the agent's usage limit, not by a mistake of yours. The "
                    "limit has reset: continue the task where you left off.")


LAUNCH_PUSH_FALLBACK = 0.1  # seconds between looks for launching attempts' identities, pushes awaited


class Engine(LaunchMixin, JudgingMixin, RecoveryMixin, GitMixin):
    """Runs one plan in one workspace.

    Args:
        plan: the validated plan.
        store: the writable store (the caller holds the workspace lock).
        options: run options.
        sink: receives every engine event once committed (called on the engine's thread; must not block).
        executor: where attempts run; default: supervisor processes on this machine.
        clock: monotonic seconds for the hang policy's poll cycles; tests pass a fake one.
        snapshot: the plan as the person started the run (``coord run`` takes it; a stand-alone remediation reads
            the run's own from the store); recorded, and the plan file watched for changes it will not follow.
    """

    def __init__(self, plan: Plan, store: Store, options: RunOptions | None = None,
                 sink: Callable[[EngineEvent], None] | None = None, executor: Executor | None = None,
                 clock: Callable[[], float] = time.monotonic, snapshot: PlanSnapshot | None = None) -> None:
        super().__init__(plan, store, options or RunOptions(),
                         executor or LocalExecutor.for_workspace(store.paths), clock, snapshot)
        self._next_file_poll = 0.0
        self._runnable_tracker = RunnableTracker(self.plan.phases, self._in_scope)
        self._plan_file_seen: tuple[int, int] | None = None
        self._plan_change_said = False
        if sink is not None:
            store.subscribe(sink)
        self.notifier: Notifier | None = None
        wanted = plan.notify if plan.notify.urls else load_user_config()
        if wanted.urls:
            self.notifier = Notifier(plan.id, wanted)
            store.subscribe(self.notifier.on_event)

    # --- public ------------------------------------------------------------------------------------------

    def request_detach(self, signum: int) -> None:
        """Ask the loop to detach (from a signal handler): stop launching, leave workers running."""
        self.state.detach_signal = signum

    def run(self) -> ExitStatus:
        """Drive the plan until every phase in scope is passed or cannot go on, or until detached.

        Returns:
            OK when every phase in scope passed, FAILED otherwise, DETACHED_* after a signal.

        Raises:
            StoreError: the state store cannot be written (nothing is acted on after a failed commit).
        """
        self.start()
        try:
            while True:
                result = self.step()
                if result is not None:
                    return result
                self._wait(min(self._next_file_poll, self._next_cycle_due()) - self.clock())
        except StoreError as exc:
            # Nothing more can be recorded, so nothing more is launched; the workers finish on their own and
            # their supervisors' exit records wait for the next coordinator.
            running = len(self.state.watches)
            raise StoreError(
                f"{exc} — {running} worker(s) keep running and finish on their own; free space (or repair the "
                f"store) and `coord run {self.plan.path}` picks up their results"
            ) from exc
        finally:
            self.close()

    def start(self) -> None:
        """Record the plan, open the control socket, take over what an earlier coordinator left.

        Raises:
            UsageError: the plan dropped a phase that still has an unfinished attempt.
            StoreError: the state store cannot be written.
        """
        self._refuse_orphaning_edits()
        # Events a coordinator killed between a commit and its append never mirrored, or a worker deleted.
        self.store.catch_up_mirror(self.plan.id)
        self._remove_interrupted_writes()
        self._record_snapshot()
        self._sync_plan()
        self._git_start()
        if self.checkpoints is None and (warning := shared_workdir_warning(self.plan.phases, self._in_scope,
                                                                          self.options.max_parallel)):
            self._notice(warning, level="warning")
        if self.options.use_socket:
            self.listener = SignalListener(self.paths.socket_path(), self._handle_message)
            if not self.listener.open():
                self._notice(f"{self.listener.error}; completion is detected by polling", level="warning")
                self.listener = None
        self._adopt_unrecorded_workers()
        self._git_adopted()
        self._reattach()
        if self.options.remediate_only is not None:
            self._start_person_remediation(self.options.remediate_only)

    def step(self) -> ExitStatus | None:
        """One pass of the loop, without waiting: collect what ended (on a push, or every ``poll_fallback``
        seconds by the file poll), commit finished verdicts, apply the hang policy, launch what may start.

        Returns:
            The run's exit status once it is over, else None.

        Raises:
            StoreError: the state store cannot be written.
        """
        if self.state.detach_signal is not None:
            return self._detach(self.state.detach_signal)
        failure = self.notifier.take_failure() if self.notifier is not None else None
        if failure is not None:
            self._notice(f"{failure} (later failures are not reported)", level="warning")
        if self.state.launching:
            self._settle_launches()
        now = self.clock()
        if now >= self._next_file_poll or self.state.wake:
            self.state.wake = False
            self.state.ended.clear()
            self._collect_ended()
            self._check_lost()
            self._watch_plan_file()
            self._next_file_poll = now + self.options.poll_fallback
        elif self.state.ended:
            self._collect_announced()
            self._watch_plan_file()  # one stat: an ended worker may have edited the plan
        self._collect_verdicts()
        if self.executor.poll_ended():
            self.state.wake = True
        self._apply_hang_policy()
        if not self.state.stop_all:
            self._schedule()
        return self._finished()

    def close(self) -> None:
        """Abandon checks still running (the attempt stays ``checking`` and is judged again by the next
        coordinator: judging is idempotent) and close the control socket."""
        for attempt_id in list(self.state.judging):
            # Its verification commands carry the attempt's cookie: end them so we can exit promptly.
            self.executor.kill_processes(attempt_id, grace=0.5)
        self.judges.shutdown(wait=False, cancel_futures=True)
        self.executor.close()
        if self.listener is not None:
            self.listener.close()
            self.listener = None
        if self.notifier is not None:  # the run's last notification ("finished") goes out before coord exits
            self.notifier.close()
            self.notifier = None

    # --- the loop ----------------------------------------------------------------------------------------

    def _wait(self, timeout: float) -> None:
        # A launch under way is told by the supervisor's push; without the socket, its identity file is polled.
        launching = (LAUNCH_PUSH_FALLBACK if self.listener is not None else IDENTITY_POLL) if self.state.launching \
            else 1e9
        # A judge thread wakes the listener when its verdict is ready; without one, the loop looks every 50 ms.
        judging = 0.05 if self.state.judging and self.listener is None else 1e9
        timeout = max(0.0, min(timeout, self.options.poll_fallback, judging, launching))
        if self.state.ended or self.state.wake:
            timeout = 0.0  # something to look at already: serve the socket, then go on
        if self.listener is not None:
            self.listener.wait(timeout)
        else:
            time.sleep(timeout)

    def _next_cycle_due(self) -> float:
        return min((watch.next_cycle_at for watch in self.state.watches.values()), default=float("inf"))

    def _finished(self) -> ExitStatus | None:
        if self.store.active_attempts(self.plan.id):
            return None
        if self.options.remediate_only is not None:
            attempt = self.store.attempt(self.remediation_attempt_id) if self.remediation_attempt_id else None
            status = ExitStatus.OK if attempt is not None and attempt.state == AttemptState.PASSED else (
                ExitStatus.FAILED)
            return self._finish_run(status, scoped=frozenset({self.options.remediate_only.phase_id}))
        if not self.state.stop_all and not self.paused and self.state.budget_reason is None and self._runnable():
            return None
        if self.paused and not self.state.stop_all:
            return None  # a paused run waits for `resume` (from the TUI or the socket)
        phases = [phase for phase in self.store.phases(self.plan.id) if self._in_scope(phase.phase_id)]
        passed = bool(phases) and all(phase.state in DONE_PHASE_STATES for phase in phases)
        return self._finish_run(ExitStatus.OK if passed else ExitStatus.FAILED)

    def _finish_run(self, status: ExitStatus, scoped: frozenset[str] | None = None) -> ExitStatus:
        phases = [phase for phase in self.store.phases(self.plan.id)
                  if (phase.phase_id in scoped if scoped else self._in_scope(phase.phase_id))]
        passed = sum(1 for phase in phases if phase.state == PhaseState.PASSED)
        waiting = [f"{phase.phase_id} ({phase.state})" for phase in phases if phase.state != PhaseState.PASSED]
        message = f"{self.plan.id}: {passed}/{len(phases)} phases passed"
        if waiting:
            message += "; not passed: " + ", ".join(waiting)
        if self.state.budget_reason is not None and waiting:
            message += f" ({self.state.budget_reason})"
        self.store.end_plan(self.plan.id, PlanState.FINISHED, [RunFinished(
            plan_id=self.plan.id, message=message, exit_status=int(status), passed=passed, total=len(phases))])
        return status

    def _detach(self, signum: int) -> ExitStatus:
        running = len(self.store.active_attempts(self.plan.id))
        message = (f"detached: {running} worker(s) still running — `coord run {self.plan.path}` reattaches, "
                   "`coord stop` ends them")
        self.store.end_plan(self.plan.id, PlanState.DETACHED, [Notice(plan_id=self.plan.id, message=message)])
        # 128 + the signal, the shell's convention, so a wrapper script can tell a closed terminal from a kill.
        return {signal.SIGINT: ExitStatus.DETACHED_SIGINT,
                signal.SIGHUP: ExitStatus.DETACHED_SIGHUP}.get(signal.Signals(signum), ExitStatus.DETACHED_SIGTERM)

    # --- plan and scope ----------------------------------------------------------------------------------

    def _sync_plan(self) -> None:
        """Record the plan and its phases; phases already known keep their state and attempts (resume)."""
        standalone = self.options.remediate_only is not None
        unverified = [record.phase_id for record in self.store.phases(self.plan.id) if record.unverified]
        started = f"{self.plan.id}: run started (pid {os.getpid()})"
        if unverified:
            started += (f"; {len(unverified)} phase(s) passed on existing evidence, verification not re-run: "
                        f"{', '.join(unverified)}")
        events = [] if standalone else [Notice(plan_id=self.plan.id, message=started)]
        record = self.store.record_plan(
            self.plan.id, self.plan.path, self.plan.title,
            [(phase.id, phase.index, phase.kind, phase.title) for phase in self.plan.phases],
            clear_pause=not standalone, events=events)
        self.paused = bool(record.paused) and not standalone

    def _record_snapshot(self) -> None:
        """Record the plan this run judges by; a new version since the last run is adopted, and said."""
        if self.snapshot is None:
            return
        previous = self.store.latest_snapshot(self.plan.id)
        events: list[EngineEvent] = []
        if previous is not None and previous[0] != self.snapshot.sha256:
            message = f"{self.plan.path} (or its templates) changed since the last run; this run adopts the new version"
            try:
                changed = changed_verification(PlanSnapshot.from_json(previous[1]).plan, self.plan)
            except ValueError:
                changed = []
            if changed:
                message += f"; verification changed for {', '.join(changed)}"
            events.append(Notice(plan_id=self.plan.id, level="warning", message=message))
        self.store.record_snapshot(self.plan.id, self.snapshot.sha256, self.snapshot.to_json(), events)

    def _watch_plan_file(self) -> None:
        """Say once when the plan file (or a workspace template) no longer matches the run's snapshot: the run
        goes on judging by the snapshot; only a person's next `coord run` adopts the new version."""
        if self.snapshot is None or self._plan_change_said:
            return
        path = self.workspace / self.plan.path
        try:
            info = path.stat()
            seen = (info.st_mtime_ns, info.st_size)
        except OSError:
            seen = (0, -1)
        if seen == self._plan_file_seen:
            return  # unchanged since the last look: no need to read and hash it
        self._plan_file_seen = seen
        if current_hash(self.plan) != self.snapshot.sha256:
            self._plan_change_said = True
            self._notice(f"{self.plan.path} (or its templates) changed during the run; this run keeps judging by "
                         f"the version it started with (`coord run {self.plan.path}` adopts the new one)",
                         level="warning")

    def _refuse_orphaning_edits(self) -> None:
        """Refuse a plan that dropped a phase which still has an unfinished attempt (it would be orphaned).

        Raises:
            UsageError: naming each such phase.
        """
        known = {phase.id for phase in self.plan.phases}
        orphans = sorted({attempt.phase_id for attempt in self.store.active_attempts(self.plan.id)} - known)
        if orphans:
            raise UsageError(
                f"plan changed: {', '.join(orphans)} removed from {self.plan.path} but still has an unfinished "
                "attempt; put it back, or `coord stop` it with the old plan first"
            )

    def _runnable(self) -> list[Any]:
        active = {attempt.phase_id for attempt in self.store.active_attempts(self.plan.id)}
        return self._runnable_tracker.runnable(self.store.phases(self.plan.id), active, time.time())

    def _schedule(self) -> None:
        if self.options.remediate_only is not None:
            return
        self._launch_runnable()
        if self.state.launching:
            self._settle_launches()  # supervisors quick enough are recorded in this very pass

    def _launch_runnable(self) -> None:
        for item in self._runnable():
            if item.action == Action.BLOCK:
                self._block(item.phase.id, "attempts used up")
                continue
            if self.paused or item.action == Action.WAIT:
                continue
            if len(self.store.active_attempts(self.plan.id)) - len(self.state.merge_waiting) >= \
                    self.options.max_parallel:
                return
            if self._budget_spent():
                return
            # Deferred: the supervisors of a burst start side by side, and the loop records each identity as it
            # appears (_settle_launches) instead of waiting for them one by one.
            if item.action == Action.FRESH:
                self._launch(item.phase, defer=True)
            elif item.action == Action.AFTER_LIMIT:
                self._notice(f"{item.phase.id}: the {item.phase.agent} usage limit has reset; continuing",
                             phase_id=item.phase.id)
                self._launch_remediation(item.phase, resume=True, note=AFTER_LIMIT_NOTE, defer=True)
            else:
                self._launch_remediation(item.phase, defer=True)

    def _budget_spent(self) -> bool:
        """True once the plan's budget is used up; says so once, as a warning event."""
        if self.state.budget_reason is not None:
            return True
        budget = self.plan.budget
        if budget.max_cost is None and budget.max_tokens is None:
            return False
        reason = budget_reason(budget, *self.store.spent(self.plan.id))
        if reason is None:
            return False
        self.state.budget_reason = reason
        self._notice(f"{reason}; launching nothing more (raise `budget:` in the plan and `coord run` again)",
                     level="warning")
        return True

    def _block(self, phase_id: str, why: str) -> None:
        record = self.store.phase(self.plan.id, phase_id)
        last_failure = record.reason if record else "?"
        attempts = record.attempts if record else "?"
        self.store.block_phase(self.plan.id, phase_id, f"blocked: {why}; last failure: {last_failure}", [
            PhaseStateChanged(
                plan_id=self.plan.id, phase_id=phase_id, state=PhaseState.BLOCKED,
                message=f"{phase_id} blocked after {attempts} attempt(s): {why}; its dependents will not start "
                f"(`coord remediate {phase_id}` to try again)",
            )])

    # --- commands from the control socket ----------------------------------------------------------------

    def _handle_message(self, message: dict[str, Any]) -> dict[str, Any] | None:
        """Serve one socket message: a supervisor's push, or a command from ``coord`` or the TUI."""
        if message.get("type") == "attempt-ended":
            if isinstance(message.get("attempt_id"), str):
                self.state.ended.add(message["attempt_id"])
            else:
                self.state.wake = True
            return None
        if message.get("type") == "attempt-started":
            return None  # waking the loop is all it is for: its next pass records the launch (_settle_launches)
        command = message.get("command")
        deadline = message.get("deadline")
        if isinstance(deadline, (int, float)) and time.time() > deadline:
            return {"ok": False, "error": "request expired before the coordinator could serve it; nothing done"}
        plan_id = message.get("plan")
        if plan_id not in (None, self.plan.id):
            return {"ok": False, "error": f"this coordinator runs {self.plan.id}, not {plan_id}"}
        try:
            if command == "ping":
                return {"ok": True, "pid": os.getpid(), "plan": self.plan.id}
            if command == "remediate" and self.options.remediate_only is not None:
                return {"ok": False, "error": (
                    f"a stand-alone `coord remediate {self.options.remediate_only.phase_id}` (pid {os.getpid()}) "
                    "holds the workspace and won; this one launched nothing — try again when it ends")}
            if command == "remediate":
                attempt_id = self._start_person_remediation(RemediationRequest(
                    phase_id=str(message.get("phase")), resume=bool(message.get("resume")), note=message.get("note"),
                ))
                attempt = self.store.attempt(attempt_id) if attempt_id else None
                if attempt is None:
                    return {"ok": False, "error": "the remediation worker did not start; see `coord status`"}
                return {"ok": True, "attempt": attempt.number, "attempt_dir": attempt.attempt_dir}
            if command == "stop":
                return {"ok": True, "stopped": self._stop(message.get("phase"))}
            if command in ("pause", "resume"):
                self._set_paused(command == "pause")
                return {"ok": True, "paused": self.paused}
        except CoordError as exc:
            return {"ok": False, "error": str(exc)}
        return {"ok": False, "error": f"unknown command {command!r}"}

    def _start_person_remediation(self, request: RemediationRequest) -> str | None:
        try:
            phase = self.plan.phase(request.phase_id)
        except KeyError:
            raise UsageError(f"{self.plan.id} has no phase {request.phase_id!r}") from None
        if any(attempt.phase_id == phase.id for attempt in self.store.active_attempts(self.plan.id)):
            raise UsageError(f"{phase.id} already has a worker running; `coord stop {phase.id}` first")
        if self.store.last_attempt(self.plan.id, phase.id) is None:
            raise UsageError(f"{phase.id} has no attempt to remediate yet; `coord run` starts it")
        attempt_id = self._launch_remediation(phase, resume=request.resume, note=request.note, person=True)
        if self.options.remediate_only is not None:
            self.remediation_attempt_id = attempt_id
        return attempt_id

    def _set_paused(self, paused: bool) -> None:
        self.paused = paused
        self.store.set_paused(self.plan.id, paused, [Notice(plan_id=self.plan.id, message=(
            "paused: no new phases start until resumed" if paused else "resumed scheduling"))])

    def _stop(self, phase_id: str | None) -> list[str]:
        """Stop one phase's worker or, with None, every worker and end the run."""
        self._settle_all_launches()  # a stop acts on running attempts: a launch under way is one first
        if phase_id is None:
            self.state.stop_all = True
        stopped = []
        for attempt in self.store.active_attempts(self.plan.id):
            if phase_id is not None and attempt.phase_id != phase_id:
                continue
            if attempt.state == AttemptState.CHECKING:
                self._stop_checks(attempt)
            else:
                self._request_stop(attempt, "stopped", "stopped by a person (coord stop)")
            stopped.append(attempt.phase_id)
        return stopped

    def _request_stop(self, attempt: AttemptRecord, stop_reason: str, reason: str) -> None:
        self.store.request_stop(attempt.attempt_id, stop_reason, reason, [Notice(
            plan_id=self.plan.id, phase_id=attempt.phase_id, attempt=attempt.number,
            message=f"{attempt.phase_id} attempt {attempt.number}: {reason}; stopping its process group")])
        if not self.executor.stop(self._handle(attempt), stop_reason):
            self.state.wake = True  # the supervisor is gone: the lost check takes it from here

    def _apply_hang_policy(self) -> None:
        now = self.clock()
        for watch in list(self.state.watches.values()):
            policy = self.plan.phase(watch.phase_id).policy
            if policy.deadline is not None and self._past_deadline(watch, policy):
                continue
            if now < watch.next_cycle_at:
                continue
            attempt = self.store.attempt(watch.attempt_id)
            if attempt is None or attempt.state != AttemptState.RUNNING:
                self.state.watches.pop(watch.attempt_id, None)
                continue
            if self.executor.result(self._handle(attempt)) is not None:
                # It ended and the push was missed: judge it, never call it hung.
                self.state.watches.pop(watch.attempt_id, None)
                self._finish_attempt(attempt)
                continue
            watch.cycle += 1
            log_bytes = file_size(attempt.directory / LOG_FILE)
            grew = log_bytes - watch.log_bytes
            # A shrink is output too: the supervisor trimmed a log that grew past its cap.
            busy = self._busy(attempt.directory / LOG_FILE)
            if grew != 0 and (busy is None or busy.kind != "stdin"):
                watch.silent_cycles = watch.busy_cycles = 0
            elif busy is not None and busy.kind != "stdin":
                watch.busy_cycles += 1  # alive, not silent: a long command, or the agent retrying the model
            else:
                watch.silent_cycles += 1
            watch.log_bytes = log_bytes
            watch.next_cycle_at = now + policy.poll_interval
            self.store.record_cycle(watch.attempt_id, watch.cycle, [PollCycle(
                plan_id=self.plan.id, phase_id=watch.phase_id, attempt=watch.number, cycle=watch.cycle,
                max_cycles=policy.max_cycles, log_bytes=log_bytes, silent_cycles=watch.silent_cycles,
                message=f"{watch.phase_id} attempt {watch.number}: poll cycle {watch.cycle}/{policy.max_cycles}, "
                f"still running, log {log_bytes} bytes ({grew:+d})" + (f"; {busy.detail}" if busy else ""),
            )])
            decision = decide_cycle(policy, watch.cycle, watch.silent_cycles, watch.busy_cycles,
                                    stuck_on_stdin=busy is not None and busy.kind == "stdin")
            if decision.hung:
                self.state.watches.pop(watch.attempt_id, None)
                try:
                    reason = f"{decision.reason}; {last_activity(attempt.directory / LOG_FILE)}"
                except Exception:  # noqa: BLE001 - a description must never keep a hung worker alive
                    reason = decision.reason
                self._request_stop(attempt, "hung", reason)

    @staticmethod
    def _busy(log: Path) -> Busy | None:
        try:
            return busy_state(log)
        except Exception:  # noqa: BLE001 - reading what a worker does must never keep the hang policy from running
            return None

    def _past_deadline(self, watch: Watch, policy: Policy) -> bool:
        """Stop the attempt if it is past its phase's ``deadline``; returns whether it was stopped."""
        if watch.started_at is None:
            attempt = self.store.attempt(watch.attempt_id)
            watch.started_at = epoch_seconds(attempt.started_at) if attempt is not None else None
        running = time.time() - watch.started_at if watch.started_at is not None else None
        decision = decide_deadline(policy, running)
        if not decision.hung:
            return False
        attempt = self.store.attempt(watch.attempt_id)
        self.state.watches.pop(watch.attempt_id, None)
        if attempt is not None and attempt.state == AttemptState.RUNNING and \
                self.executor.result(self._handle(attempt)) is None:
            self._request_stop(attempt, "hung", decision.reason)
        return True
