"""The state machine of a run: schedule phases, launch attempts, watch them, judge them, remediate, reattach.

Who calls it: ``cli`` (``coord run`` and stand-alone ``coord remediate``) and, later, the TUI (in a thread). The
engine is single-threaded: one loop takes signals in (socket pushes, then the file poll), applies the hang policy,
and acts. Every transition is committed to the store before it is acted on; the engine reports through ``sink``,
a plain callable of frozen ``events.EngineEvent`` values.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from coordinator.agents import AgentSummary, LaunchRequest, get_agent, pricing
from coordinator.agents.logview import last_activity
from coordinator.engine import failpoints
from coordinator.engine.events import (
    AttemptEnded,
    AttemptLaunched,
    EngineEvent,
    Notice,
    PhaseStateChanged,
    PollCycle,
    RunFinished,
    VerdictReached,
)
from coordinator.engine.hang_policy import decide_cycle
from coordinator.errors import CoordError, ExitStatus, StoreError, UsageError
from coordinator.judge import protected
from coordinator.judge.checks import PROTECTED_SNAPSHOT, JudgeInput, judge
from coordinator.judge.verdict import CheckResult, Verdict
from coordinator.paths import WorkspacePaths
from coordinator.plan.model import Phase, Plan
from coordinator.process import launcher
from coordinator.process.control_socket import SignalListener
from coordinator.prompts.renderer import PromptRenderer, RemediationContext
from coordinator.state.store import AuditEvent, Store, now_iso
from coordinator.util.files import read_json, write_atomic, write_json_atomic

LOG_TAIL_BYTES = 8192
"""How much of a failed attempt's log goes into the remediation prompt."""

ACTIVE = ("launching", "running", "stopping", "checking")
RETRYABLE_PHASE_STATES = ("failed", "remediating", "lost")


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
    """Attempts running at once (phases share a working tree, so 1 by default)."""
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
    """What the engine tracks in memory about a running attempt (cycles are persisted too)."""

    attempt_id: str
    phase_id: str
    number: int
    next_cycle_at: float
    cycle: int = 0
    silent_cycles: int = 0
    log_bytes: int = 0


@dataclass
class EngineState:
    detach_signal: int | None = None
    stop_all: bool = False
    wake: bool = False
    supervisors: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    watches: dict[str, Watch] = field(default_factory=dict)
    budget_reason: str | None = None
    """Why the budget stopped launches (None while it has not)."""
    judging: dict[str, tuple[Future[Verdict], Phase, int, bool]] = field(default_factory=dict)
    """Attempts whose checks run on the judge threads: attempt id -> (future, phase, number, stopped)."""


class Engine:
    """Runs one plan in one workspace.

    Args:
        plan: the validated plan.
        store: the writable store (the caller holds the workspace lock).
        options: run options.
        sink: receives every engine event (called on the engine's thread; must not block).
    """

    def __init__(
        self,
        plan: Plan,
        store: Store,
        options: RunOptions | None = None,
        sink: Callable[[EngineEvent], None] | None = None,
    ) -> None:
        self.plan = plan
        self.store = store
        self.paths: WorkspacePaths = store.paths
        self.options = options or RunOptions()
        self.sink = sink or (lambda event: None)
        self.renderer = PromptRenderer(Path(plan.workspace))
        self.state = EngineState()
        self.listener: SignalListener | None = None
        self.paused = False
        self.remediation_attempt_id: str | None = None
        self.judges = ThreadPoolExecutor(max_workers=max(2, self.options.max_parallel), thread_name_prefix="judge")

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
        self._refuse_orphaning_edits()
        self._sync_plan()
        if self.options.use_socket:
            self.listener = SignalListener(self.paths.socket_path(), self._handle_message)
            if not self.listener.open():
                self._notice(f"{self.listener.error}; completion is detected by polling", level="warning")
                self.listener = None
        try:
            self._adopt_unrecorded_workers()
            self._reattach()
            if self.options.remediate_only is not None:
                self._start_person_remediation(self.options.remediate_only)
            return self._loop()
        except StoreError as exc:
            # Nothing more can be recorded, so nothing more is launched; the workers finish on their own and
            # their supervisors' exit records wait for the next coordinator.
            running = len(self.state.watches)
            raise StoreError(
                f"{exc} — {running} worker(s) keep running and finish on their own; free space (or repair the "
                f"store) and `coord run {self.plan.path}` picks up their results"
            ) from exc
        finally:
            # Checks still running when we detach are abandoned: the attempt stays `checking` and is judged
            # again by the next coordinator (judging is idempotent).
            for attempt_id in list(self.state.judging):
                # Its verification commands carry the attempt's cookie: end them so we can exit promptly.
                launcher.kill_attempt_processes(attempt_id, grace=0.5)
            self.judges.shutdown(wait=False, cancel_futures=True)
            if self.listener is not None:
                self.listener.close()

    # --- the loop ----------------------------------------------------------------------------------------

    def _loop(self) -> ExitStatus:
        next_file_poll = 0.0
        while True:
            if self.state.detach_signal is not None:
                return self._detach(self.state.detach_signal)
            now = time.monotonic()
            if now >= next_file_poll or self.state.wake:
                self.state.wake = False
                self._collect_ended()
                self._check_lost()
                next_file_poll = now + self.options.poll_fallback
            self._collect_verdicts()
            self._reap_supervisors()
            self._apply_hang_policy()
            if not self.state.stop_all:
                self._schedule()
            finished = self._finished()
            if finished is not None:
                return finished
            timeout = min(next_file_poll, self._next_cycle_due()) - time.monotonic()
            timeout = max(0.0, min(timeout, self.options.poll_fallback, 0.05 if self.state.judging else 1e9))
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
            row = self.store.attempt(self.remediation_attempt_id) if self.remediation_attempt_id else None
            status = ExitStatus.OK if row is not None and row["state"] == "passed" else ExitStatus.FAILED
            return self._finish_run(status, scoped=frozenset({self.options.remediate_only.phase_id}))
        if not self.state.stop_all and not self.paused and self.state.budget_reason is None and self._runnable():
            return None
        if self.paused and not self.state.stop_all:
            return None  # a paused run waits for `resume` (from the TUI or the socket)
        rows = [row for row in self.store.phase_rows(self.plan.id) if self._in_scope(row["phase_id"])]
        status = ExitStatus.OK if rows and all(row["state"] == "passed" for row in rows) else ExitStatus.FAILED
        return self._finish_run(status)

    def _finish_run(self, status: ExitStatus, scoped: frozenset[str] | None = None) -> ExitStatus:
        rows = [
            row
            for row in self.store.phase_rows(self.plan.id)
            if (row["phase_id"] in scoped if scoped else self._in_scope(row["phase_id"]))
        ]
        passed = sum(1 for row in rows if row["state"] == "passed")
        waiting = [
            f"{row['phase_id']} ({row['state']})" for row in rows if row["state"] not in ("passed",)
        ]
        message = f"{self.plan.id}: {passed}/{len(rows)} phases passed"
        if waiting:
            message += "; not passed: " + ", ".join(waiting)
        if self.state.budget_reason is not None and waiting:
            message += f" ({self.state.budget_reason})"
        with self.store.transaction() as tx:
            tx.execute(
                "UPDATE plans SET state='finished', updated_at=? WHERE plan_id=?", (now_iso(), self.plan.id)
            )
            self._emit(tx, RunFinished(plan_id=self.plan.id, message=message, exit_status=int(status),
                                       passed=passed, total=len(rows)))
        return status

    def _detach(self, signum: int) -> ExitStatus:
        running = len(self.store.active_attempts(self.plan.id))
        message = (
            f"detached: {running} worker(s) still running — `coord run {self.plan.path}` reattaches, "
            "`coord stop` ends them"
        )
        with self.store.transaction() as tx:
            tx.execute("UPDATE plans SET state='detached', updated_at=? WHERE plan_id=?", (now_iso(), self.plan.id))
            self._emit(tx, Notice(plan_id=self.plan.id, message=message))
        return ExitStatus.DETACHED_SIGINT if signum == signal.SIGINT else ExitStatus.DETACHED_SIGTERM

    # --- plan and scope ----------------------------------------------------------------------------------

    def _in_scope(self, phase_id: str) -> bool:
        if self.options.remediate_only is not None:
            return phase_id == self.options.remediate_only.phase_id
        return self.options.scope is None or phase_id in self.options.scope

    def _sync_plan(self) -> None:
        """Record the plan and its phases; phases already known keep their state and attempts (resume)."""
        with self.store.transaction() as tx:
            tx.execute(
                "INSERT INTO plans (plan_id, path, title, state, started_at, updated_at) VALUES (?,?,?,?,?,?) "
                "ON CONFLICT(plan_id) DO UPDATE SET path=excluded.path, title=excluded.title, state='running', "
                "updated_at=excluded.updated_at" + ("" if self.options.remediate_only else ", paused=0"),
                (self.plan.id, self.plan.path, self.plan.title, "running", now_iso(), now_iso()),
            )
            row = tx.execute("SELECT paused FROM plans WHERE plan_id=?", (self.plan.id,)).fetchone()
            self.paused = bool(row["paused"]) if self.options.remediate_only is None else False
            for phase in self.plan.phases:
                tx.execute(
                    "INSERT INTO phases (plan_id, phase_id, position, kind, title, state, updated_at) "
                    "VALUES (?,?,?,?,?,'pending',?) ON CONFLICT(plan_id, phase_id) DO UPDATE SET "
                    "position=excluded.position, kind=excluded.kind, title=excluded.title",
                    (self.plan.id, phase.id, phase.index, phase.kind, phase.title, now_iso()),
                )
            if self.options.remediate_only is None:
                self._emit(tx, Notice(plan_id=self.plan.id, message=f"{self.plan.id}: run started (pid {os.getpid()})"))

    def _refuse_orphaning_edits(self) -> None:
        """Refuse a plan that dropped a phase which still has an unfinished attempt (it would be orphaned).

        Raises:
            UsageError: naming each such phase.
        """
        known = {phase.id for phase in self.plan.phases}
        orphans = sorted({row["phase_id"] for row in self.store.active_attempts(self.plan.id)} - known)
        if orphans:
            raise UsageError(
                f"plan changed: {', '.join(orphans)} removed from {self.plan.path} but still has an unfinished "
                "attempt; put it back, or `coord stop` it with the old plan first"
            )

    def _runnable(self) -> list[tuple[Phase, str]]:
        """Phases that may start now, with what to start: ``fresh``, ``remediate`` or ``block``."""
        rows = {row["phase_id"]: row for row in self.store.phase_rows(self.plan.id)}
        active_phases = {row["phase_id"] for row in self.store.active_attempts(self.plan.id)}
        result = []
        for phase in self.plan.phases:
            row = rows.get(phase.id)
            if row is None or not self._in_scope(phase.id) or phase.id in active_phases:
                continue
            if row["state"] == "pending":
                deps_met = all(
                    rows[dep]["state"] == "passed" or not self._in_scope(dep) for dep in phase.depends_on
                )
                if deps_met:
                    result.append((phase, "fresh"))
            elif row["state"] in RETRYABLE_PHASE_STATES:
                if row["attempts"] < phase.policy.max_attempts:
                    result.append((phase, "remediate"))
                else:
                    result.append((phase, "block"))
        return result

    def _schedule(self) -> None:
        if self.options.remediate_only is not None:
            return
        for phase, action in self._runnable():
            if action == "block":
                self._block(phase.id, "attempts used up")
                continue
            if self.paused:
                continue
            if len(self.store.active_attempts(self.plan.id)) >= self.options.max_parallel:
                return
            if self._budget_spent():
                return
            if action == "fresh":
                self._launch(phase)
            else:
                self._launch_remediation(phase)

    def _budget_spent(self) -> bool:
        """True once the plan's budget is used up; says so once, as a warning event."""
        if self.state.budget_reason is not None:
            return True
        budget = self.plan.budget
        if budget.max_cost is None and budget.max_tokens is None:
            return False
        row = self.store.connection.execute(
            "SELECT COALESCE(SUM(input_tokens + output_tokens), 0) AS tokens, COALESCE(SUM(cost_usd), 0) AS cost "
            "FROM attempts WHERE plan_id=?", (self.plan.id,),
        ).fetchone()
        reason = None
        if budget.max_tokens is not None and row["tokens"] >= budget.max_tokens:
            reason = f"token budget reached: {row['tokens']} of max_tokens {budget.max_tokens}"
        elif budget.max_cost is not None and row["cost"] >= budget.max_cost:
            reason = f"cost budget reached: ${row['cost']:.4f} of max_cost ${budget.max_cost:g}"
        if reason is None:
            return False
        self.state.budget_reason = reason
        self._notice(f"{reason}; launching nothing more (raise `budget:` in the plan and `coord run` again)",
                     level="warning")
        return True

    def _block(self, phase_id: str, why: str) -> None:
        row = self.store.phase_row(self.plan.id, phase_id)
        with self.store.transaction() as tx:
            tx.execute(
                "UPDATE phases SET state='blocked', reason=?, updated_at=? WHERE plan_id=? AND phase_id=?",
                (f"blocked: {why}; last failure: {row['reason'] if row else '?'}", now_iso(), self.plan.id, phase_id),
            )
            self._emit(tx, PhaseStateChanged(
                plan_id=self.plan.id, phase_id=phase_id, state="blocked",
                message=f"{phase_id} blocked after {row['attempts'] if row else '?'} attempt(s): {why}; "
                "its dependents will not start (`coord remediate " + phase_id + "` to try again)",
            ))

    # --- launching ---------------------------------------------------------------------------------------

    def _launch_remediation(
        self, phase: Phase, *, resume: bool | None = None, note: str | None = None, person: bool = False
    ) -> str | None:
        previous = self._last_attempt(phase.id)
        context = None
        resume_session = None
        if previous is not None:
            attempt_dir = Path(previous["attempt_dir"])
            evidence = read_json(attempt_dir / "evidence.json") or {
                "verdict": "FAIL", "passed": False, "reason": previous["reason"] or "unknown", "checks": [],
                "source": "checks",
            }
            log_path = attempt_dir / "worker.log"
            want_resume = phase.policy.remediation == "resume" if resume is None else resume
            profile = self.plan.agents[phase.agent]
            if want_resume and previous["session_id"] and profile.base in ("codex", "claude"):
                resume_session = previous["session_id"]
            elif want_resume:
                self._notice(
                    f"{phase.id}: cannot resume (no session id from attempt {previous['number']}); "
                    "remediating with a fresh worker",
                    phase_id=phase.id,
                )
            context = RemediationContext(
                previous_attempt=int(previous["number"]),
                evidence=evidence,
                log_path=self._relative(log_path),
                log_tail=tail_text(log_path, LOG_TAIL_BYTES),
                resumed_session=resume_session,
                note=note,
            )
        return self._launch(phase, remediation=context, resume_session=resume_session, note=note, person=person)

    def _launch(
        self,
        phase: Phase,
        *,
        remediation: RemediationContext | None = None,
        resume_session: str | None = None,
        note: str | None = None,
        person: bool = False,
    ) -> str | None:
        """Launch the next attempt of ``phase``; returns its attempt id (None if it failed to start)."""
        row = self.store.phase_row(self.plan.id, phase.id)
        number = int(row["attempts"]) + 1
        attempt_id = str(uuid.uuid4())
        attempt_dir = self.paths.attempt_dir(self.plan.id, phase.id, number)
        is_remediation = number > 1 or remediation is not None
        phase_state = "remediating" if is_remediation else "running"
        with self.store.transaction() as tx:
            tx.execute(
                "INSERT INTO attempts (attempt_id, plan_id, phase_id, number, remediation, state, agent, "
                "attempt_dir, resume_session, note) VALUES (?,?,?,?,?,'launching',?,?,?,?)",
                (attempt_id, self.plan.id, phase.id, number, int(is_remediation), phase.agent, str(attempt_dir),
                 resume_session, note),
            )
            tx.execute(
                "UPDATE phases SET state=?, attempts=?, updated_at=? WHERE plan_id=? AND phase_id=?",
                (phase_state, number, now_iso(), self.plan.id, phase.id),
            )
            self._emit(tx, PhaseStateChanged(
                plan_id=self.plan.id, phase_id=phase.id, attempt=number, state=phase_state,
                message=f"{phase.id} attempt {number}/{phase.policy.max_attempts}: "
                + ("remediation requested by a person" if person else
                   "remediation" if is_remediation else "starting")
                + (f" (resuming session {resume_session})" if resume_session else ""),
            ))
        failpoints.hit("remediate.after_intent" if is_remediation else "launch.after_intent")
        try:
            set_aside_stale(attempt_dir)
            attempt_dir.mkdir(parents=True)
            prompt = self.renderer.render(self.plan, phase, attempt_number=number, remediation=remediation)
            prompt_path = attempt_dir / "prompt.md"
            write_atomic(prompt_path, prompt)
            if phase.protected:
                write_json_atomic(attempt_dir / PROTECTED_SNAPSHOT,
                                  protected_snapshot(Path(self.plan.workspace), phase))
            artifacts = self.renderer.artifact_paths(self.plan, phase)
            workdir = Path(self.plan.workspace) / phase.workdir
            profile = self.plan.agents[phase.agent]
            command = get_agent(profile).build_command(LaunchRequest(
                plan=self.plan, phase=phase, profile=profile, prompt_path=prompt_path, attempt_dir=attempt_dir,
                workdir=workdir, attempt_number=number, resume_session=resume_session,
            ))
            # Only coord's own variables and the profile's go into spec.json; the rest of the environment
            # (API keys among it) reaches the worker by inheritance, never through a file on disk.
            env = {
                "COORD_ATTEMPT_ID": attempt_id,
                "COORD_PLAN_ID": self.plan.id,
                "COORD_PHASE_ID": phase.id,
                "COORD_ATTEMPT": str(number),
                "COORD_REMEDIATION": "1" if is_remediation else "0",
                "COORD_WORKSPACE": self.plan.workspace,
                "COORD_REPORT_PATH": str(Path(self.plan.workspace) / artifacts.report),
                "COORD_COMPLETED_PATH": str(Path(self.plan.workspace) / artifacts.completed),
                "COORD_PROMPT_FILE": str(prompt_path),
            }
            env.update(command.env)
            signal_dir = self.paths.signals_dir(self.plan.id)
            signal_dir.mkdir(parents=True, exist_ok=True)
            spec = {
                "attempt_id": attempt_id,
                "phase_id": phase.id,
                "attempt_number": number,
                "argv": list(command.argv),
                "cwd": str(workdir),
                "env": env,
                "stdin_path": command.stdin_path,
                "log_path": str(attempt_dir / "worker.log"),
                "attempt_dir": str(attempt_dir),
                "signal_path": str(signal_dir / f"{phase.id}-{number}"),
                "socket_path": str(self.listener.path) if self.listener is not None else None,
                "kill_grace": phase.policy.kill_grace,
                "log_cap_bytes": int(phase.policy.log_cap_mib * 1024 * 1024),
            }
            process = launcher.start_supervisor(spec, attempt_dir)
        except (CoordError, OSError) as exc:
            self._fail_unstarted(attempt_id, phase, number, f"could not start the worker: {exc}")
            return None
        self.state.supervisors[attempt_id] = process
        failpoints.hit("launch.after_spawn")
        identity = launcher.wait_for_identity(attempt_dir, process, attempt_id)
        if identity is None:
            # It may still start its worker later: end the whole attempt before counting it as failed.
            launcher.kill_session(process)
            launcher.kill_attempt_processes(attempt_id, phase.policy.kill_grace)
            self.state.supervisors.pop(attempt_id, None)
            self._fail_unstarted(attempt_id, phase, number, "the supervisor did not start in time (see supervisor.log)")
            return None
        failpoints.hit("launch.after_identity")
        self._record_running(attempt_id, phase, number, identity, resume_session, adopted=False)
        return attempt_id

    def _record_running(
        self, attempt_id: str, phase: Phase, number: int, identity: launcher.Identity,
        resume_session: str | None, adopted: bool,
    ) -> None:
        row = self.store.attempt(attempt_id)
        with self.store.transaction() as tx:
            tx.execute(
                "UPDATE attempts SET state=CASE WHEN state='launching' THEN 'running' ELSE state END, "
                "supervisor_pid=?, worker_pid=?, started_at=COALESCE(started_at, ?) WHERE attempt_id=?",
                (identity.supervisor_pid, identity.worker_pid, identity.started_at, attempt_id),
            )
            verb = "reattached" if adopted else "launched"
            self._emit(tx, AttemptLaunched(
                plan_id=self.plan.id, phase_id=phase.id, attempt=number, worker_pid=identity.worker_pid,
                supervisor_pid=identity.supervisor_pid, remediation=number > 1, resume_session=resume_session,
                message=f"{phase.id} attempt {number} {verb} (worker pid {identity.worker_pid}, "
                f"log {self._relative(self.paths.attempt_dir(self.plan.id, phase.id, number) / 'worker.log')})",
            ))
        if identity.worker_pid is not None:  # an adopted worker's line may be missing if its launcher died first
            self.store.append_pid_line(self.plan.id, phase.id, identity.worker_pid, number, identity.supervisor_pid,
                                       unless_present=adopted)
        self.state.watches[attempt_id] = Watch(
            attempt_id=attempt_id, phase_id=phase.id, number=number,
            next_cycle_at=time.monotonic() + phase.policy.poll_interval,
            cycle=int(row["cycle"]) if row is not None else 0,
        )

    def _fail_unstarted(self, attempt_id: str, phase: Phase, number: int, reason: str) -> None:
        verdict = Verdict(passed=False, reason=reason, checks=(CheckResult("exit", "fail", reason),))
        attempt_dir = self.paths.attempt_dir(self.plan.id, phase.id, number)
        write_json_atomic(attempt_dir / "evidence.json", verdict.to_dict())
        self._commit_verdict(attempt_id, phase, number, verdict, attempt_state="failed")

    # --- watching ----------------------------------------------------------------------------------------

    def _handle_message(self, message: dict[str, Any]) -> dict[str, Any] | None:
        """Serve one socket message: a supervisor's push, or a command from ``coord`` or the TUI."""
        if message.get("type") == "attempt-ended":
            self.state.wake = True
            return None
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
            if command == "remediate":
                attempt_id = self._start_person_remediation(RemediationRequest(
                    phase_id=str(message.get("phase")), resume=bool(message.get("resume")), note=message.get("note"),
                ))
                row = self.store.attempt(attempt_id) if attempt_id else None
                if row is None:
                    return {"ok": False, "error": "the remediation worker did not start; see `coord status`"}
                return {"ok": True, "attempt": row["number"], "attempt_dir": row["attempt_dir"]}
            if command == "stop":
                stopped = self._stop(message.get("phase"))
                return {"ok": True, "stopped": stopped}
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
        if any(row["phase_id"] == phase.id for row in self.store.active_attempts(self.plan.id)):
            raise UsageError(f"{phase.id} already has a worker running; `coord stop {phase.id}` first")
        if self._last_attempt(phase.id) is None:
            raise UsageError(f"{phase.id} has no attempt to remediate yet; `coord run` starts it")
        attempt_id = self._launch_remediation(phase, resume=request.resume, note=request.note, person=True)
        if self.options.remediate_only is not None:
            self.remediation_attempt_id = attempt_id
        return attempt_id

    def _set_paused(self, paused: bool) -> None:
        self.paused = paused
        with self.store.transaction() as tx:
            tx.execute("UPDATE plans SET paused=? WHERE plan_id=?", (int(paused), self.plan.id))
            self._emit(tx, Notice(plan_id=self.plan.id, message=(
                "paused: no new phases start until resumed" if paused else "resumed scheduling")))

    def _stop(self, phase_id: str | None) -> list[str]:
        """Stop one phase's worker or, with None, every worker and end the run."""
        if phase_id is None:
            self.state.stop_all = True
        stopped = []
        for row in self.store.active_attempts(self.plan.id):
            if phase_id is not None and row["phase_id"] != phase_id:
                continue
            self._request_stop(row, "stopped", "stopped by a person (coord stop)")
            stopped.append(row["phase_id"])
        return stopped

    def _request_stop(self, row: sqlite3.Row, stop_reason: str, reason: str) -> None:
        with self.store.transaction() as tx:
            tx.execute(
                "UPDATE attempts SET state='stopping', stop_reason=?, reason=? WHERE attempt_id=? "
                "AND state IN ('launching','running','stopping')",
                (stop_reason, reason, row["attempt_id"]),
            )
            self._emit(tx, Notice(plan_id=self.plan.id, phase_id=row["phase_id"], attempt=row["number"],
                                  message=f"{row['phase_id']} attempt {row['number']}: {reason}; "
                                  "stopping its process group"))
        identity = launcher.Identity.read(Path(row["attempt_dir"]), row["attempt_id"])
        if identity is None or not launcher.request_stop(Path(row["attempt_dir"]), identity, stop_reason):
            self.state.wake = True  # the supervisor is gone: the lost check takes it from here

    def _apply_hang_policy(self) -> None:
        now = time.monotonic()
        for watch in list(self.state.watches.values()):
            if now < watch.next_cycle_at:
                continue
            row = self.store.attempt(watch.attempt_id)
            if row is None or row["state"] != "running":
                self.state.watches.pop(watch.attempt_id, None)
                continue
            if launcher.read_exit(row) is not None:  # it ended and the push was missed: judge it, never call it hung
                self.state.watches.pop(watch.attempt_id, None)
                self._finish_attempt(row)
                continue
            policy = self.plan.phase(watch.phase_id).policy
            watch.cycle += 1
            log_bytes = file_size(Path(row["attempt_dir"]) / "worker.log")
            grew = log_bytes - watch.log_bytes
            # A shrink is output too: the supervisor trimmed a log that grew past its cap.
            watch.silent_cycles = 0 if grew != 0 else watch.silent_cycles + 1
            watch.log_bytes = log_bytes
            watch.next_cycle_at = now + policy.poll_interval
            with self.store.transaction() as tx:
                tx.execute("UPDATE attempts SET cycle=? WHERE attempt_id=?", (watch.cycle, watch.attempt_id))
                self._emit(tx, PollCycle(
                    plan_id=self.plan.id, phase_id=watch.phase_id, attempt=watch.number, cycle=watch.cycle,
                    max_cycles=policy.max_cycles, log_bytes=log_bytes, silent_cycles=watch.silent_cycles,
                    message=f"{watch.phase_id} attempt {watch.number}: poll cycle {watch.cycle}/{policy.max_cycles}, "
                    f"still running, log {log_bytes} bytes ({grew:+d})",
                ))
            decision = decide_cycle(policy, watch.cycle, watch.silent_cycles)
            if decision.hung:
                self.state.watches.pop(watch.attempt_id, None)
                try:
                    reason = f"{decision.reason}; {last_activity(Path(row['attempt_dir']) / 'worker.log')}"
                except Exception:  # a description must never keep a hung worker alive
                    reason = decision.reason
                self._request_stop(row, "hung", reason)

    def _reap_supervisors(self) -> None:
        for attempt_id, process in list(self.state.supervisors.items()):
            if process.poll() is not None:
                del self.state.supervisors[attempt_id]
                self.state.wake = True

    def _collect_ended(self) -> None:
        """The file poll: finish every active attempt whose supervisor left its exit record."""
        for row in self.store.active_attempts(self.plan.id):
            if row["attempt_id"] in self.state.judging:
                continue
            if row["state"] == "checking" or launcher.read_exit(row) is not None:
                self._finish_attempt(row)

    def _check_lost(self) -> None:
        for row in self.store.active_attempts(self.plan.id):
            if row["state"] not in ("running", "stopping"):
                continue
            if row["attempt_id"] in self.state.supervisors or row["attempt_id"] in self.state.judging:
                continue  # our own child and not reaped yet: certainly alive
            attempt_dir = Path(row["attempt_dir"])
            identity = launcher.Identity.read(attempt_dir, row["attempt_id"])
            if identity is not None and launcher.supervisor_alive(identity):
                continue
            if launcher.read_exit(row) is not None:  # ended between the poll and the liveness check
                self._finish_attempt(row)
                continue
            self._mark_lost(row, "lost: its supervisor is gone and left no exit record")

    def _mark_lost(self, row: sqlite3.Row, reason: str) -> None:
        phase = self.plan.phase(row["phase_id"])
        killed = launcher.kill_attempt_processes(row["attempt_id"], phase.policy.kill_grace)
        if killed:
            reason += f" (killed leftover processes {killed})"
        verdict = Verdict(passed=False, reason=reason, checks=(CheckResult("exit", "fail", reason),), source="lost")
        write_json_atomic(Path(row["attempt_dir"]) / "evidence.json", verdict.to_dict())
        self.state.watches.pop(row["attempt_id"], None)
        self._commit_verdict(row["attempt_id"], phase, int(row["number"]), verdict, attempt_state="lost")

    # --- judging -----------------------------------------------------------------------------------------

    def _finish_attempt(self, row: sqlite3.Row) -> None:
        """Judge an ended attempt: summary, checks, verdict, then the phase's next state. Idempotent."""
        attempt_id = row["attempt_id"]
        phase = self.plan.phase(row["phase_id"])
        number = int(row["number"])
        attempt_dir = Path(row["attempt_dir"])
        exit_info = launcher.read_exit(row) or {}
        failpoints.hit("finish.after_exit_read")
        self.state.watches.pop(attempt_id, None)
        profile = self.plan.agents[row["agent"]] if row["agent"] in self.plan.agents else self.plan.agents[phase.agent]
        agent = get_agent(profile)
        summary = self._summarize(agent, row, attempt_dir)
        stop_reason = row["stop_reason"] or exit_info.get("stop_request")
        if row["state"] != "checking":
            with self.store.transaction() as tx:
                tx.execute(
                    "UPDATE attempts SET state='checking', ended_at=?, exit_code=?, signal=?, stop_reason=?, "
                    "session_id=?, input_tokens=?, cached_input_tokens=?, output_tokens=?, cost_usd=?, "
                    "last_message=?, commands=?, file_changes=? WHERE attempt_id=?",
                    (exit_info.get("ended_at"), exit_info.get("exit_code"), exit_info.get("signal"), stop_reason,
                     summary.session_id, summary.input_tokens, summary.cached_input_tokens, summary.output_tokens,
                     summary.cost_usd, (summary.last_message or "")[:4000] or None, summary.commands,
                     summary.file_changes, attempt_id),
                )
                tx.execute(
                    "UPDATE phases SET state='checking', updated_at=? WHERE plan_id=? AND phase_id=?",
                    (now_iso(), self.plan.id, phase.id),
                )
                how = (f"exit code {exit_info.get('exit_code')}" if exit_info.get("signal") is None
                       else f"killed by {exit_info.get('signal_name') or exit_info.get('signal')}")
                self._emit(tx, AttemptEnded(
                    plan_id=self.plan.id, phase_id=phase.id, attempt=number, exit_code=exit_info.get("exit_code"),
                    signal=exit_info.get("signal"), stop_reason=stop_reason,
                    message=f"{phase.id} attempt {number} ended ({how}"
                    + (f", {stop_reason}" if stop_reason else "") + "); checking",
                ))
        artifacts = self.renderer.artifact_paths(self.plan, phase)
        stop_detail = row["reason"] if stop_reason else None
        judge_input = JudgeInput(
            workspace=Path(self.plan.workspace),
            phase=phase,
            workdir=Path(self.plan.workspace) / phase.workdir,
            attempt_dir=attempt_dir,
            report_path=artifacts.report,
            completed_path=artifacts.completed,
            exit_code=exit_info.get("exit_code"),
            exit_signal=exit_info.get("signal"),
            stop_reason=stop_detail or stop_reason,
            summary=summary,
            requires_completed_turn=agent.requires_completed_turn,
            expected_session=row["resume_session"],
            env={"COORD_ATTEMPT_ID": attempt_id},
            start_error=exit_info.get("start_error"),
            leftovers=leftover_processes(exit_info),
            unkillable=tuple(exit_info.get("unkillable") or ()),
        )
        # Verification commands may run for minutes: judge on a thread so the loop keeps serving pushes,
        # commands and the hang policy of other attempts meanwhile.
        future = self.judges.submit(judge, judge_input)
        self.state.judging[attempt_id] = (future, phase, number, stop_reason == "stopped")

    def _collect_verdicts(self) -> None:
        """Commit the verdicts of attempts whose checks have finished."""
        for attempt_id, (future, phase, number, stopped) in list(self.state.judging.items()):
            if not future.done():
                continue
            del self.state.judging[attempt_id]
            try:
                verdict = future.result()
            except Exception as exc:  # a check crashed: judge FAIL with the reason rather than lose the attempt
                reason = f"coord could not check this attempt: {exc!r}"
                verdict = Verdict(passed=False, reason=reason, checks=(CheckResult("checks", "fail", reason),))
            attempt_dir = self.paths.attempt_dir(self.plan.id, phase.id, number)
            write_json_atomic(attempt_dir / "evidence.json", verdict.to_dict())
            self._commit_verdict(attempt_id, phase, number, verdict,
                                 attempt_state="passed" if verdict.passed else "failed", stopped_by_person=stopped)
            failpoints.hit("finish.after_verdict_commit")

    def _summarize(self, agent: Any, row: sqlite3.Row, attempt_dir: Path) -> AgentSummary:
        """The attempt's summary (its own tokens, and its cost in USD from the plan's or the packaged prices for
        the profile's model), also written to ``summary.json`` with the ``price`` it was computed from."""
        previous_usage = None
        if row["resume_session"]:
            earlier = self.store.connection.execute(
                "SELECT attempt_dir FROM attempts WHERE plan_id=? AND phase_id=? AND session_id=? AND number<? "
                "ORDER BY number DESC LIMIT 1",
                (self.plan.id, row["phase_id"], row["resume_session"], row["number"]),
            ).fetchone()
            if earlier is not None:
                previous_usage = (read_json(Path(earlier["attempt_dir"]) / "summary.json") or {}).get(
                    "cumulative_usage"
                )
        summary = summarize_with(agent, attempt_dir, previous_usage)
        priced = None
        if summary.cost_usd is None:  # an agent's own figure (Claude Code reports one) beats our price table
            priced = pricing.price_attempt(agent.profile, summary.input_tokens, summary.cached_input_tokens,
                                           summary.output_tokens, self.plan.prices)
            if priced is not None:
                summary = replace(summary, cost_usd=priced.cost_usd)
        record = summary.to_dict()
        record["price"] = priced.basis if priced is not None else None
        write_json_atomic(attempt_dir / "summary.json", record)
        return summary

    def _commit_verdict(
        self, attempt_id: str, phase: Phase, number: int, verdict: Verdict, *, attempt_state: str,
        stopped_by_person: bool = False,
    ) -> None:
        if verdict.passed:
            phase_state = "passed"
        elif stopped_by_person or self.options.remediate_only is not None:
            phase_state = "blocked" if stopped_by_person else "failed"
        elif number >= phase.policy.max_attempts:
            phase_state = "blocked"
        else:
            phase_state = "failed"
        reason = verdict.reason
        if phase_state == "blocked":
            reason = ("blocked: stopped by a person; " if stopped_by_person else
                      f"blocked after {number} attempt(s); ") + verdict.reason
        with self.store.transaction() as tx:
            tx.execute(
                "UPDATE attempts SET state=?, verdict=?, reason=? WHERE attempt_id=?",
                (attempt_state, verdict.label, verdict.reason, attempt_id),
            )
            tx.execute(
                "UPDATE phases SET state=?, verdict=?, verdict_source=?, reason=?, updated_at=? "
                "WHERE plan_id=? AND phase_id=?",
                (phase_state, verdict.label, verdict.source, reason, now_iso(), self.plan.id, phase.id),
            )
            self._emit(tx, VerdictReached(
                plan_id=self.plan.id, phase_id=phase.id, attempt=number, passed=verdict.passed, reason=verdict.reason,
                message=f"{phase.id} attempt {number}: {verdict.label} — {verdict.reason}",
            ))
            if phase_state != "passed":
                self._emit(tx, PhaseStateChanged(
                    plan_id=self.plan.id, phase_id=phase.id, attempt=number, state=phase_state,
                    message=f"{phase.id} {phase_state}"
                    + (f" after {number} attempt(s); dependents will not start" if phase_state == "blocked" else
                       f"; remediation attempt {number + 1}/{phase.policy.max_attempts} follows"
                       if self.options.remediate_only is None else ""),
                ))

    # --- restart -----------------------------------------------------------------------------------------

    def _reattach(self) -> None:
        """Adopt or settle every attempt left unfinished by an earlier coordinator (one pass, under the lock)."""
        rows = self.store.active_attempts(self.plan.id)
        for row in rows:
            attempt_dir = Path(row["attempt_dir"])
            phase = self.plan.phase(row["phase_id"]) if self._phase_known(row["phase_id"]) else None
            if phase is None:
                self._notice(f"{row['phase_id']} is no longer in the plan but has attempt {row['number']} "
                             "unfinished; leaving it alone", level="warning")
                continue
            identity = launcher.Identity.read(attempt_dir, row["attempt_id"])
            if row["state"] == "checking" or launcher.read_exit(row) is not None:
                self._notice(f"{phase.id} attempt {row['number']} ended while no coordinator watched; judging it",
                             phase_id=phase.id)
                if identity is not None and identity.worker_pid is not None:  # its launcher may have died first
                    self.store.append_pid_line(self.plan.id, phase.id, identity.worker_pid, int(row["number"]),
                                               identity.supervisor_pid, unless_present=True)
                self._finish_attempt(row)
                continue
            if identity is not None and launcher.supervisor_alive(identity):
                self._record_running(row["attempt_id"], phase, int(row["number"]), identity,
                                     row["resume_session"], adopted=True)
                if row["state"] == "stopping":
                    self.state.watches.pop(row["attempt_id"], None)
                    launcher.request_stop(attempt_dir, identity, row["stop_reason"] or "stopped")
                continue
            if identity is not None and identity.boot_id != launcher.current_boot_id():
                self._mark_lost(row, "lost: the host rebooted while it ran")
            else:
                self._mark_lost(row, "lost: no supervisor and no exit record (the coordinator died mid-launch "
                                "or the supervisor was killed)")

    def _adopt_unrecorded_workers(self) -> None:
        """Record live attempts the store does not know, so they are watched and never launched twice.

        Every launch is committed before its supervisor starts, so a live supervisor without a row means the
        store was deleted or replaced while workers ran. Its ``spec.json`` and ``identity.json`` say which
        attempt it is; it gets its row back as ``running`` and ``_reattach`` adopts it like any other. Ended
        attempts of the lost store stay untrusted (their folders are set aside when the number is reused).
        """
        known = {row["attempt_id"] for row in self.store.attempt_rows(self.plan.id)}
        for phase in self.plan.phases:
            phase_dir = self.paths.plan_dir(self.plan.id) / phase.id
            if not phase_dir.is_dir():
                continue
            for attempt_dir in sorted(phase_dir.iterdir(), key=lambda path: path.name):
                spec = read_json(attempt_dir / "spec.json") if attempt_dir.name.isdigit() else None
                if not isinstance(spec, dict) or spec.get("attempt_id") in known:
                    continue
                attempt_id, number = str(spec.get("attempt_id")), int(attempt_dir.name)
                identity = launcher.Identity.read(attempt_dir, attempt_id)
                if identity is None or not launcher.supervisor_alive(identity):
                    continue
                if any(row["number"] == number for row in self.store.attempt_rows(self.plan.id, phase.id)):
                    # An older copy of the store numbers another attempt so: adopting would break its history.
                    self._notice(f"{phase.id} attempt {number} is running (supervisor pid {identity.supervisor_pid}) "
                                 "but the state database records a different attempt under that number; "
                                 f"stop it with `kill -TERM {identity.supervisor_pid}` if it is not wanted",
                                 level="warning", phase_id=phase.id)
                    continue
                with self.store.transaction() as tx:
                    tx.execute(
                        "INSERT INTO attempts (attempt_id, plan_id, phase_id, number, remediation, state, agent, "
                        "attempt_dir) VALUES (?,?,?,?,?,'running',?,?)",
                        (attempt_id, self.plan.id, phase.id, number, int(number > 1), phase.agent, str(attempt_dir)),
                    )
                    tx.execute(
                        "UPDATE phases SET state=?, attempts=MAX(attempts, ?), updated_at=? "
                        "WHERE plan_id=? AND phase_id=?",
                        ("remediating" if number > 1 else "running", number, now_iso(), self.plan.id, phase.id),
                    )
                    self._emit(tx, Notice(
                        plan_id=self.plan.id, phase_id=phase.id, level="warning",
                        message=f"{phase.id} attempt {number} is running (supervisor pid {identity.supervisor_pid}) "
                        "but the state database had no record of it (deleted or replaced?); adopting it "
                        "instead of launching the phase again",
                    ))

    def _phase_known(self, phase_id: str) -> bool:
        return any(phase.id == phase_id for phase in self.plan.phases)

    # --- helpers -----------------------------------------------------------------------------------------

    def _last_attempt(self, phase_id: str) -> sqlite3.Row | None:
        rows = self.store.attempt_rows(self.plan.id, phase_id)
        return rows[-1] if rows else None

    def _relative(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.paths.workspace))
        except ValueError:
            return str(path)

    def _emit(self, tx: sqlite3.Connection, event: EngineEvent) -> None:
        self.store.record_event(tx, AuditEvent(
            plan_id=event.plan_id, type=event.type_name, message=event.message, phase_id=event.phase_id,
            attempt=event.attempt, data=event.data(),
        ))
        self.store.after_commit(lambda: self._deliver(event))

    def _deliver(self, event: EngineEvent) -> None:
        try:
            self.sink(event)
        except Exception:  # a display problem must never stop the engine
            pass

    def _notice(self, message: str, *, level: str = "info", phase_id: str | None = None) -> None:
        with self.store.transaction() as tx:
            self._emit(tx, Notice(plan_id=self.plan.id, phase_id=phase_id, message=message, level=level))


def protected_snapshot(workspace: Path, phase: Phase) -> dict[str, Any]:
    """What ``protected.json`` holds: the patterns and the hashes, or why they could not be taken."""
    try:
        return {"patterns": list(phase.protected), "files": protected.snapshot(workspace, phase.protected)}
    except (OverflowError, OSError) as exc:
        return {"patterns": list(phase.protected), "error": str(exc)}


def leftover_processes(exit_info: dict[str, Any]) -> dict[int, str]:
    """pid -> program name of the processes the supervisor killed after the worker ended (``exit.json``)."""
    names = exit_info.get("straggler_names") or {}
    return {int(pid): str(names.get(str(pid), "?")) for pid in exit_info.get("stragglers") or ()}


def set_aside_stale(attempt_dir: Path) -> None:
    """Move a leftover folder (from a run whose store was deleted) out of the way so nothing in it is trusted."""
    if attempt_dir.exists():
        attempt_dir.rename(attempt_dir.with_name(f"{attempt_dir.name}.stale-{uuid.uuid4().hex[:8]}"))


def summarize_with(agent: Any, attempt_dir: Path, previous_usage: dict[str, int] | None) -> AgentSummary:
    """Ask the adapter for the attempt's summary, per-attempt tokens computed against ``previous_usage``."""
    log_path = attempt_dir / "worker.log"
    try:
        return agent.summarize(log_path, attempt_dir, previous_usage=previous_usage)
    except TypeError:
        return agent.summarize(log_path, attempt_dir)


def tail_text(path: Path, limit: int) -> str:
    """The last ``limit`` bytes of a file as text, with a note of what was cut; "" if the file is missing."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            if size > limit:
                handle.seek(size - limit)
            data = handle.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    if size > limit:
        text = f"… {size - limit} earlier bytes in {path.name}\n" + text
    return text


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


class EngineThread(threading.Thread):
    """Runs an :class:`Engine` on a thread of its own (the dashboard's in-process run).

    The store is opened on the thread itself (SQLite connections stay on the thread that made them). After the
    thread ends, ``status`` holds the run's exit status, or ``error`` the exception that stopped it.
    """

    def __init__(self, plan: Plan, paths: WorkspacePaths, options: RunOptions,
                 sink: Callable[[EngineEvent], None], on_exit: Callable[[], None] | None = None) -> None:
        super().__init__(name="coord-engine", daemon=True)
        self.on_exit = on_exit
        """Called on the engine thread when the run ends (the CLI releases the workspace lock there, so a
        dashboard left open over a finished run does not keep other commands out)."""
        self.plan = plan
        self.paths = paths
        self.options = options
        self.sink = sink
        self.engine: Engine | None = None
        self.status: ExitStatus | None = None
        self.error: BaseException | None = None
        self._detach_requested = threading.Event()

    def run(self) -> None:
        store = Store.open(self.paths)
        try:
            self.engine = Engine(self.plan, store, self.options, sink=self.sink)
            if self._detach_requested.is_set():
                self.engine.request_detach(signal.SIGINT)
            self.status = self.engine.run()
        except BaseException as exc:  # reported by the caller after join()
            self.error = exc
        finally:
            store.close()
            if self.on_exit is not None:
                self.on_exit()

    def request_detach(self) -> None:
        """Ask the engine to detach (as Ctrl-C would): it stops launching and leaves workers running."""
        self._detach_requested.set()
        if self.engine is not None:
            self.engine.request_detach(signal.SIGINT)

