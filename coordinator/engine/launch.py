"""Launching an attempt: record the intent, render the prompt, snapshot the protected files, build the
supervisor's spec, start it through the executor, record who runs it.

The order is the launch protocol (``docs/design.md``, "Launch"): the attempt's row is committed before anything
starts, so a coordinator killed at any step never launches the phase twice. ``supervisor_spec`` and
``worker_env`` are shared with ``coord exec``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from pathlib import Path

from coordinator.agents import LaunchRequest, WorkerCommand, get_agent
from coordinator.engine.core import EngineCore, Launching, Watch
from coordinator.engine.remediation import choose_resume, remediation_context
from coordinator.errors import CoordError, TemplateError
from coordinator.judge import baseline
from coordinator.judge.verdict import CheckResult, Verdict
from coordinator.plan.model import Phase, Policy
from coordinator.process.executor import StartError
from coordinator.process.local import IDENTITY_POLL
from coordinator.process.records import LOG_FILE, Identity, SupervisorSpec
from coordinator.prompts.renderer import RemediationContext
from coordinator.prompts.values import call_prompt, render_call
from coordinator.state.events import AttemptLaunched, PhaseStateChanged
from coordinator.state.records import NewAttempt, PhaseRecord
from coordinator.states import AttemptState, PhaseState
from coordinator.util import failpoints
from coordinator.util.files import write_atomic

PROMPT_FILE = "prompt.md"


def supervisor_spec(attempt_id: str, phase_id: str, number: int, command: WorkerCommand, *, cwd: Path,
                    attempt_dir: Path, records_dir: Path, env: Mapping[str, str], policy: Policy,
                    socket_path: str | None, signal_path: Path | None = None,
                    after_exit_argv: tuple[str, ...] | None = None) -> SupervisorSpec:
    """The spec of one attempt's supervisor.

    Only coord's own variables (``env``) and the profile's (``command.env``) go into it; the rest of the
    environment, API keys among it, reaches the worker by inheritance, never through a file on disk.
    """
    return SupervisorSpec(
        attempt_id=attempt_id,
        phase_id=phase_id,
        attempt_number=number,
        argv=tuple(command.argv),
        cwd=str(cwd),
        env={**env, **command.env},
        stdin_path=command.stdin_path,
        log_path=str(attempt_dir / LOG_FILE),
        attempt_dir=str(attempt_dir),
        records_dir=str(records_dir),
        signal_path=str(signal_path) if signal_path is not None else None,
        socket_path=socket_path,
        kill_grace=policy.kill_grace,
        log_cap_bytes=int(policy.log_cap_mib * 1024 * 1024),
        after_exit_argv=after_exit_argv,
        inline_runner=command.inline_runner,
    )


def set_aside_stale(attempt_dir: Path) -> None:
    """Move a leftover folder (from a run whose store was deleted) out of the way so nothing in it is trusted."""
    if attempt_dir.exists():
        attempt_dir.rename(attempt_dir.with_name(f"{attempt_dir.name}.stale-{uuid.uuid4().hex[:8]}"))


class LaunchMixin(EngineCore):
    """Starting attempts (first ones and remediations) and recording who runs them."""

    def _launch_remediation(self, phase: Phase, *, resume: bool | None = None, note: str | None = None,
                            person: bool = False, defer: bool = False) -> str | None:
        previous = self.store.last_attempt(self.plan.id, phase.id)
        context = None
        resume_session = None
        if previous is not None:
            choice = choose_resume(phase, self.plan.agents[phase.agent], previous, resume)
            if choice.refused:
                self._notice(choice.refused, phase_id=phase.id)
            resume_session = choice.session
            context = remediation_context(previous, self.paths.workspace, resume_session, note)
        return self._launch(phase, remediation=context, resume_session=resume_session, note=note, person=person,
                            defer=defer)

    def _other_markers(self, phase: Phase) -> dict[str, tuple[str, int]]:
        """Phase id -> (completion marker path, attempts so far) of every other phase with no attempt under way
        (the paths rendered once per run)."""
        if self.state.marker_paths is None:
            self.state.marker_paths = {}
            for other in self.plan.phases:
                try:
                    self.state.marker_paths[other.id] = self.renderer.artifact_paths(self.plan, other).completed
                except TemplateError:
                    continue  # its own launch reports the template problem
        idle = self._idle_phase_attempts()
        return {other: (path, idle[other]) for other, path in self.state.marker_paths.items()
                if other != phase.id and other in idle}

    @staticmethod
    def _attempt_label(record: PhaseRecord | None, number: int, phase: Phase, person: bool = False) -> str:
        """``3/3``, or ``4 (3/3)`` once attempts that do not count (rejected resumes) came before, or ``4 (an
        extra attempt …)`` for a person's remediation past ``max_attempts``."""
        uncounted = record.uncounted_attempts if record is not None else 0
        if person and number - uncounted > phase.policy.max_attempts:
            return f"{number} (an extra attempt a person asked for, beyond max_attempts {phase.policy.max_attempts})"
        budget = f"{number - uncounted}/{phase.policy.max_attempts}"
        return f"{number} ({budget})" if uncounted else budget

    def _launch(self, phase: Phase, *, remediation: RemediationContext | None = None,
                resume_session: str | None = None, note: str | None = None, person: bool = False,
                defer: bool = False) -> str | None:
        """Launch the next attempt of ``phase``; returns its attempt id (None if it failed to start).

        The attempt is recorded before anything starts; its supervisor is then spawned. With ``defer`` the call
        returns at once and the loop records the supervisor's identity when it appears (``_settle_launches``);
        without, it waits for it.
        """
        record = self.store.phase(self.plan.id, phase.id)
        number = (record.attempts if record is not None else 0) + 1
        attempt_id = str(uuid.uuid4())
        attempt_dir = self.paths.attempt_dir(self.plan.id, phase.id, number)
        is_remediation = number > 1 or remediation is not None
        phase_state = PhaseState.REMEDIATING if is_remediation else PhaseState.RUNNING
        what = ("remediation requested by a person" if person else "remediation" if is_remediation else "starting")
        self.store.begin_attempt(
            NewAttempt(attempt_id=attempt_id, plan_id=self.plan.id, phase_id=phase.id, number=number,
                       remediation=is_remediation, agent=phase.agent, attempt_dir=str(attempt_dir),
                       resume_session=resume_session, note=note),
            phase_state,
            [PhaseStateChanged(
                plan_id=self.plan.id, phase_id=phase.id, attempt=number, state=phase_state,
                message=f"{phase.id} attempt {self._attempt_label(record, number, phase, person)}: {what}"
                + (f" (resuming session {resume_session})" if resume_session else ""),
            )],
        )
        failpoints.hit("remediate.after_intent" if is_remediation else "launch.after_intent")
        try:
            spec = self._prepare(phase, attempt_id, number, attempt_dir, remediation, resume_session,
                                 is_remediation)
            self.executor.spawn(spec)
        except StartError as exc:
            self._fail_unstarted(attempt_id, phase, number, str(exc))
            return None
        except (CoordError, OSError, ValueError) as exc:  # ValueError: OutsideWorkspace, a text that cannot be encoded
            self._fail_unstarted(attempt_id, phase, number, f"could not start the worker: {exc}")
            return None
        self.state.launching[attempt_id] = Launching(phase, number, resume_session)
        if not defer:
            self._settle_all_launches()
            recorded = self.store.attempt(attempt_id)
            if recorded is not None and recorded.state == AttemptState.FAILED:
                return None  # it did not start (the reason is its verdict)
        return attempt_id

    def _settle_all_launches(self) -> None:
        """Wait until every launching attempt is recorded as running or as not started (each within the
        executor's identity timeout): for a person's stop or remediation, which act on running attempts."""
        while self.state.launching:
            self._settle_launches()
            if self.state.launching:
                time.sleep(IDENTITY_POLL)

    def _settle_launches(self) -> bool:
        """Record every launching attempt whose supervisor has said who runs it (or failed to start), without
        waiting: a burst of launches never holds up the loop, which looks again on its next pass.

        Returns:
            True when any attempt was settled (its worker may already have ended: the caller polls for exits).
        """
        settled = False
        for attempt_id, launching in list(self.state.launching.items()):
            found = self.executor.started(attempt_id)
            if found is None:
                continue
            settled = True
            del self.state.launching[attempt_id]
            if isinstance(found, StartError):
                self._fail_unstarted(attempt_id, launching.phase, launching.number, str(found))
                continue
            failpoints.hit("launch.after_identity")
            self._record_running(attempt_id, launching.phase, launching.number, found, launching.resume_session,
                                 adopted=False)
            self.state.ended.add(attempt_id)  # a worker quicker than this settling may have ended already
        return settled

    def _unverified_ancestors(self, phase: Phase) -> list[str]:
        """The phases ``phase`` builds on, directly or not, that passed on unverified existing evidence."""
        unverified = {record.phase_id for record in self.store.phases(self.plan.id) if record.unverified}
        return [phase_id for phase_id in self.plan.ancestors(phase) if phase_id in unverified] if unverified else []

    def _prepare(self, phase: Phase, attempt_id: str, number: int, attempt_dir: Path,
                 remediation: RemediationContext | None, resume_session: str | None,
                 is_remediation: bool) -> SupervisorSpec:
        """Create the attempt folder with its prompt (and protected snapshot); return the supervisor's spec."""
        records_dir = self.paths.records_dir(self.plan.id, phase.id, number)
        set_aside_stale(attempt_dir)
        set_aside_stale(records_dir)
        placement = self._git_before(phase, number, is_remediation)
        # In a worktree, the worker's own paths (workdir, report and marker) are there; coord's stay here.
        workspace = placement.workspace if placement is not None else self.workspace
        attempt_dir.mkdir(parents=True)
        prompt_path = attempt_dir / PROMPT_FILE
        call = render_call(self.renderer, self.plan, phase, attempt_number=number,
                           remediation=remediation) if phase.mcp is not None else None
        # An MCP phase's worker gets its call, not a prompt: prompt.md (the dashboard's Prompt tab) shows the call.
        # Not fsynced: only this attempt's worker reads it, and a power cut that could lose it ends the worker.
        write_atomic(prompt_path, call_prompt(phase, call) if call is not None else self.renderer.render(
            self.plan, phase, attempt_number=number, remediation=remediation,
            unverified_dependencies=self._unverified_ancestors(phase)), inside=self.workspace, durable=False)
        artifacts = self.renderer.artifact_paths(self.plan, phase)
        baseline.write(baseline.take(self.workspace, phase.protected, (artifacts.report, artifacts.completed),
                                     self._other_markers(phase), worker_root=workspace),
                       records_dir, attempt_dir, self.workspace)
        workdir = workspace / phase.workdir
        profile = self.plan.agents[phase.agent]
        command = get_agent(profile).build_command(LaunchRequest(
            prompt_path=prompt_path, attempt_dir=attempt_dir, workdir=workdir, resume_session=resume_session,
            script=tuple(phase.script), phase_id=phase.id, workspace=workspace, timeout=phase.policy.timeout,
            kill_grace=phase.policy.kill_grace, records_dir=records_dir, mcp_call=call))
        env = {
            "COORD_ATTEMPT_ID": attempt_id,
            "COORD_PLAN_ID": self.plan.id,
            "COORD_PHASE_ID": phase.id,
            "COORD_ATTEMPT": str(number),
            "COORD_REMEDIATION": "1" if is_remediation else "0",
            "COORD_WORKSPACE": str(workspace) if placement is not None else self.plan.workspace,
            "COORD_REPORT_PATH": str(workspace / artifacts.report),
            "COORD_COMPLETED_PATH": str(workspace / artifacts.completed),
            "COORD_PROMPT_FILE": str(prompt_path),
        }
        return supervisor_spec(attempt_id, phase.id, number, command, cwd=workdir, attempt_dir=attempt_dir,
                               records_dir=records_dir, env=env, policy=phase.policy,
                               socket_path=str(self.listener.path) if self.listener is not None else None)

    def _record_running(self, attempt_id: str, phase: Phase, number: int, identity: Identity,
                        resume_session: str | None, adopted: bool) -> None:
        attempt = self.store.attempt(attempt_id)
        verb = "reattached" if adopted else "launched"
        log = self.paths.attempt_dir(self.plan.id, phase.id, number) / LOG_FILE
        self.store.mark_running(attempt_id, identity.supervisor_pid, identity.worker_pid, identity.started_at, [
            AttemptLaunched(
                plan_id=self.plan.id, phase_id=phase.id, attempt=number, worker_pid=identity.worker_pid,
                supervisor_pid=identity.supervisor_pid, remediation=number > 1, resume_session=resume_session,
                message=f"{phase.id} attempt {number} {verb} (worker pid {identity.worker_pid}, "
                f"log {self._relative(log)})",
            )])
        if identity.worker_pid is not None:  # an adopted worker's line may be missing if its launcher died first
            self.store.append_pid_line(self.plan.id, phase.id, identity.worker_pid, number, identity.supervisor_pid,
                                       unless_present=adopted)
        self.state.watches[attempt_id] = Watch(
            attempt_id=attempt_id, phase_id=phase.id, number=number,
            next_cycle_at=self.clock() + phase.policy.poll_interval,
            cycle=attempt.cycle if attempt is not None else 0,
        )

    def _fail_unstarted(self, attempt_id: str, phase: Phase, number: int, reason: str) -> None:
        verdict = Verdict(passed=False, reason=reason, checks=(CheckResult("exit", "fail", reason),))
        self._write_evidence(self.paths.attempt_dir(self.plan.id, phase.id, number), verdict)
        self._commit_verdict(attempt_id, phase, number, verdict, attempt_state=AttemptState.FAILED)
