"""Judging an ended attempt: read its exit record, summarize its log (tokens, cost), run the checks on a judge
thread, then commit the verdict and the phase's next state (``rules.phase_after_verdict``) in one transaction.

Judging is idempotent: a coordinator killed mid-judging leaves the attempt ``checking`` and the next one judges
it again from the same files. ``priced_summary`` is shared with ``coord exec``.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from coordinator.agents import Agent, AgentSummary, get_agent, pricing
from coordinator.agents.pricing import PricedAttempt
from coordinator.agents.usage_limits import UsageLimit, find_usage_limit
from coordinator.engine.core import EngineCore, Judging
from coordinator.engine.rules import phase_after_verdict
from coordinator.engine.worktree_steps import settled
from coordinator.judge import baseline
from coordinator.judge.checks import JudgeInput, judge
from coordinator.judge.verdict import CheckResult, Verdict
from coordinator.paths import OutsideWorkspace
from coordinator.plan.model import AgentProfile, Phase, Price
from coordinator.process.records import LOG_FILE
from coordinator.state.events import AttemptEnded, PhaseStateChanged, VerdictReached
from coordinator.state.records import AttemptEnd, AttemptRecord
from coordinator.states import AttemptState, PhaseState
from coordinator.util import failpoints
from coordinator.util.files import read_json, write_json_atomic
from coordinator.util.timefmt import format_elapsed

USAGE_LIMIT_PREFIX = "usage limit: "
"""How the reason of an attempt a usage limit stopped begins (limits in a row are counted by it)."""
MAX_LIMIT_WAIT = 86400.0
"""The longest back-off after usage limits in a row (a day), in seconds."""


def priced_summary(agent: Agent, profile: AgentProfile, attempt_dir: Path, prices: dict[str, Price],
                   previous_usage: dict[str, Any] | None = None) -> tuple[AgentSummary, PricedAttempt | None]:
    """The attempt's summary — its own tokens, and its cost in USD: the agent's own figure (Claude Code reports
    one), else priced from ``prices`` or the packaged table for the profile's model — with the price used."""
    summary = agent.summarize(attempt_dir / LOG_FILE, attempt_dir, previous_usage=previous_usage)
    priced = None
    if summary.cost_usd is None:
        priced = pricing.price_attempt(profile, summary.input_tokens, summary.cached_input_tokens,
                                       summary.output_tokens, prices)
        if priced is not None:
            summary = replace(summary, cost_usd=priced.cost_usd)
    return summary, priced


class JudgingMixin(EngineCore):
    """Turning ended attempts into committed verdicts."""

    def _finish_attempt(self, attempt: AttemptRecord) -> None:
        """Judge an ended attempt: summary, checks, verdict, then the phase's next state. Idempotent."""
        if attempt.attempt_id in self.state.merge_waiting and self._merge_waits(attempt):
            return  # still not its turn to merge (looked at again on each file poll)
        phase = self.plan.phase(attempt.phase_id)
        exit_record = self.executor.result(self._handle(attempt))
        failpoints.hit("finish.after_exit_read")
        self.state.watches.pop(attempt.attempt_id, None)
        profile = self.plan.agents.get(attempt.agent) or self.plan.agents[phase.agent]
        agent = get_agent(profile)
        summary, priced = priced_summary(agent, profile, attempt.directory, self.plan.prices,
                                         self._previous_usage(attempt))
        try:
            summary.write(attempt.directory, priced.basis if priced is not None else None, inside=self.workspace)
        except OutsideWorkspace as exc:  # the summary is in the store too
            self.store.record_tampering(self.plan.id, f"{self._relative(attempt.directory / 'summary.json')} "
                                        f"not written: {exc}")
        except OSError as exc:
            self._notice(f"cannot write {self._relative(attempt.directory / 'summary.json')}: {exc}",
                         level="warning")
        stop_reason = attempt.stop_reason or (exit_record.stop_request if exit_record else None)
        if attempt.state != AttemptState.CHECKING:
            how = exit_record.how if exit_record is not None else "exit code None"
            self.store.mark_checking(attempt.attempt_id, AttemptEnd(
                ended_at=exit_record.ended_at if exit_record else None,
                exit_code=exit_record.exit_code if exit_record else None,
                signal=exit_record.signal if exit_record else None,
                stop_reason=stop_reason, session_id=summary.session_id, input_tokens=summary.input_tokens,
                cached_input_tokens=summary.cached_input_tokens, output_tokens=summary.output_tokens,
                cost_usd=summary.cost_usd, last_message=summary.last_message, commands=summary.commands,
                file_changes=summary.file_changes,
            ), [AttemptEnded(
                plan_id=self.plan.id, phase_id=phase.id, attempt=attempt.number,
                exit_code=exit_record.exit_code if exit_record else None,
                signal=exit_record.signal if exit_record else None, stop_reason=stop_reason,
                message=f"{phase.id} attempt {attempt.number} ended ({how}"
                + (f", {stop_reason}" if stop_reason else "") + "); checking",
            )])
        artifacts = self.renderer.artifact_paths(self.plan, phase)
        changes = self._git_after(phase, attempt.number)  # its tree kept as a ref before any remediation resets it
        if self._merge_waits(attempt):
            self.state.merge_waiting.add(attempt.attempt_id)
            return  # checking, and judged when the merges before it are done (the file poll comes back to it)
        self.state.merge_waiting.discard(attempt.attempt_id)
        placement = self._placement(phase.id, attempt.number)
        changes, unmerged = self._merge_attempt(phase, attempt, changes, stopped=stop_reason is not None)
        if unmerged is not None:
            self.state.judging[attempt.attempt_id] = Judging(
                future=settled(unmerged), phase=phase, number=attempt.number,
                stopped_by_person=attempt.attempt_id in self.state.stopped_waiting)
            return
        records_dir = self.paths.records_dir(self.plan.id, phase.id, attempt.number)
        self._flag_markers_written_for_others(phase, attempt.number, records_dir)
        stop_detail = attempt.reason if stop_reason else None
        judge_input = JudgeInput(
            workspace=self.workspace,
            phase=phase,
            workdir=self.workspace / phase.workdir,
            attempt_dir=attempt.directory,
            report_path=artifacts.report,
            completed_path=artifacts.completed,
            exit_code=exit_record.exit_code if exit_record else None,
            exit_signal=exit_record.signal if exit_record else None,
            stop_reason=stop_detail or stop_reason,
            summary=summary,
            requires_completed_turn=agent.requires_completed_turn,
            expected_session=attempt.resume_session,
            env={"COORD_ATTEMPT_ID": attempt.attempt_id},
            start_error=exit_record.start_error if exit_record else None,
            leftovers=exit_record.leftovers if exit_record else {},
            unkillable=exit_record.unkillable if exit_record else (),
            output_disk_full=exit_record.output_disk_full if exit_record else False,
            records_dir=records_dir,
            forged_marker=read_json(self.paths.records_phase_dir(self.plan.id, phase.id) / baseline.FORGED_MARKER),
            git=changes,
            worker_root=placement.workspace if placement is not None else None,
        )
        # Verification commands may run for minutes: judge on a thread so the loop keeps serving pushes,
        # commands and the hang policy of other attempts meanwhile.
        rejected_resume = (attempt.resume_session is not None and summary.session_id is None and not stop_reason
                           and exit_record is not None and exit_record.exit_code not in (None, 0))
        ended_well = exit_record is not None and exit_record.exit_code == 0 and (
            summary.completed or not agent.requires_completed_turn)
        limit = None if ended_well or stop_reason else find_usage_limit(
            f"{summary.error or ''}\n{summary.last_message or ''}", datetime.now().astimezone())
        self.state.judging[attempt.attempt_id] = Judging(
            future=self._judge_on_thread(judge, judge_input), phase=phase, number=attempt.number,
            stopped_by_person=stop_reason == "stopped", rejected_resume=rejected_resume, usage_limit=limit)

    def _flag_markers_written_for_others(self, phase: Phase, number: int, records_dir: Path) -> None:
        """Say so when the worker wrote another phase's completion marker, and keep the forgery's identity with
        that phase's records, so the marker never counts as its evidence (only a rewrite by its own worker does)."""
        written = baseline.markers_written_for_others(baseline.read(records_dir), self.workspace,
                                                      self._idle_phase_attempts())
        for other, path, identity in written:
            by = f"{phase.id} attempt {number}"
            try:
                write_json_atomic(self.paths.records_phase_dir(self.plan.id, other) / baseline.FORGED_MARKER,
                                  {"path": path, "identity": identity, "by": by})
            except OSError as exc:
                self._notice(f"cannot record the forged marker {path}: {exc}", level="warning", phase_id=phase.id)
            self._notice(f"{by}: the worker wrote {path}, the completion marker of {other}; it will not count as "
                         f"{other}'s evidence", level="warning", phase_id=phase.id)

    def _previous_usage(self, attempt: AttemptRecord) -> dict[str, Any] | None:
        """On a resumed session, the thread-cumulative usage its predecessor recorded (to count only ours)."""
        if not attempt.resume_session:
            return None
        earlier = self.store.earlier_attempt_of_session(attempt, attempt.resume_session)
        return AgentSummary.cumulative_usage_in(earlier.directory) if earlier is not None else None

    def _collect_verdicts(self) -> None:
        """Commit the verdicts of attempts whose checks have finished."""
        for attempt_id, judging in list(self.state.judging.items()):
            if not judging.future.done():
                continue
            del self.state.judging[attempt_id]
            try:
                verdict = judging.future.result()
            except Exception as exc:  # a check crashed: judge FAIL with the reason rather than lose the attempt
                reason = f"coord could not check this attempt: {exc!r}"
                verdict = Verdict(passed=False, reason=reason, checks=(CheckResult("checks", "fail", reason),))
            verdict = self._git_checkpoint(judging.phase, judging.number, verdict, attempt_id)  # before it is recorded
            if judging.usage_limit is not None and not verdict.passed:
                verdict = replace(verdict, reason=f"{USAGE_LIMIT_PREFIX}{judging.usage_limit.message}")
                self._write_evidence(self.paths.attempt_dir(self.plan.id, judging.phase.id, judging.number), verdict)
                self._wait_for_limit(attempt_id, judging.phase, judging.number, verdict, judging.usage_limit)
                self._release_worktree(judging.phase.id, judging.number)
                continue
            self._write_evidence(self.paths.attempt_dir(self.plan.id, judging.phase.id, judging.number), verdict)
            state = AttemptState.LOST if judging.lost else (
                AttemptState.PASSED if verdict.passed else AttemptState.FAILED)
            self._commit_verdict(attempt_id, judging.phase, judging.number, verdict, attempt_state=state,
                                 stopped_by_person=judging.stopped_by_person,
                                 uncounted=judging.rejected_resume and not verdict.passed)
            failpoints.hit("finish.after_verdict_commit")

    def _mark_lost(self, attempt: AttemptRecord, reason: str) -> None:
        """Judge an attempt lost. What it left running is killed on a judge thread (a grace period each), so one
        lost attempt never holds up the reattaching of the others; the verdict is committed when that is done."""
        phase = self.plan.phase(attempt.phase_id)
        self.state.watches.pop(attempt.attempt_id, None)

        def lost_verdict() -> Verdict:
            killed = self.executor.kill_processes(attempt.attempt_id, phase.policy.kill_grace)
            why = reason + (f" (killed leftover processes {killed})" if killed else "")
            return Verdict(passed=False, reason=why, checks=(CheckResult("exit", "fail", why),), source="lost")

        self.state.judging[attempt.attempt_id] = Judging(
            future=self._judge_on_thread(lost_verdict), phase=phase, number=attempt.number, stopped_by_person=False,
            lost=True)

    def _wait_for_limit(self, attempt_id: str, phase: Phase, number: int, verdict: Verdict,
                        limit: UsageLimit) -> None:
        """Park a phase whose attempt the agent's usage limit stopped: the attempt is not counted, the phase
        waits (``WAITING``) until the reset — the agent's own time, else ``limit_wait`` doubled for each limit in
        a row (also when the limit was still there after a reset), at most a day."""
        now = time.time()
        in_a_row = 1
        for earlier in reversed(self.store.attempts(self.plan.id, phase.id)):
            if earlier.attempt_id == attempt_id:
                continue
            if not (earlier.reason or "").startswith(USAGE_LIMIT_PREFIX):
                break
            in_a_row += 1
        backoff = min(phase.policy.limit_wait * 2 ** (in_a_row - 1), MAX_LIMIT_WAIT)
        if limit.resets_at is not None and limit.resets_at > now:
            until = limit.resets_at if in_a_row == 1 else max(limit.resets_at, now + backoff)
            said = "" if until == limit.resets_at else f" (limit {in_a_row} in a row: backing off)"
        else:
            until = now + backoff
            said = (" (the agent named no reset time coord can read: waiting `limit_wait`)" if limit.resets_at is None
                    else f" (limit {in_a_row} in a row: backing off)")
        when = datetime.fromtimestamp(until).astimezone().strftime("%Y-%m-%d %H:%M %Z")
        reason = (f"waiting for the {phase.agent} usage limit to reset at {when} (in "
                  f"{format_elapsed(until - now, with_seconds=False)}){said}; {limit.message}")
        self.store.commit_verdict(
            attempt_id, AttemptState.FAILED, verdict.label, verdict.reason, verdict.source, PhaseState.WAITING,
            reason, [PhaseStateChanged(
                plan_id=self.plan.id, phase_id=phase.id, attempt=number, state=PhaseState.WAITING,
                message=f"{phase.id} {reason}; attempt {number} is not counted, and every phase on agent "
                        f"{phase.agent!r} waits with it")],
            uncounted=True, waiting_until=until)

    def _commit_verdict(self, attempt_id: str, phase: Phase, number: int, verdict: Verdict, *,
                        attempt_state: AttemptState, stopped_by_person: bool = False, uncounted: bool = False) -> None:
        standalone = self.options.remediate_only is not None
        record = self.store.phase(self.plan.id, phase.id)
        counted = (record.counted_attempts if record is not None else number) - int(uncounted)
        outcome = phase_after_verdict(verdict.passed, verdict.reason, counted, phase.policy.max_attempts,
                                      stopped_by_person=stopped_by_person, standalone_remediation=standalone)
        events: list[Any] = [VerdictReached(
            plan_id=self.plan.id, phase_id=phase.id, attempt=number, passed=verdict.passed, reason=verdict.reason,
            message=f"{phase.id} attempt {number}: {verdict.label} — {verdict.reason}",
        )]
        if outcome.state != PhaseState.PASSED:
            if outcome.state == PhaseState.BLOCKED:
                follows = f" after {counted} attempt(s); dependents will not start"
            elif standalone:
                follows = ""
            elif uncounted:
                follows = (f"; the agent rejected the session resume, so attempt {number} is not counted: a fresh "
                           f"worker follows (attempt {number + 1}, {counted + 1}/{phase.policy.max_attempts})")
            else:
                follows = f"; remediation attempt {number + 1}/{phase.policy.max_attempts} follows"
            events.append(PhaseStateChanged(
                plan_id=self.plan.id, phase_id=phase.id, attempt=number, state=outcome.state,
                message=f"{phase.id} {outcome.state}{follows}",
            ))
        self.store.commit_verdict(attempt_id, attempt_state, verdict.label, verdict.reason, verdict.source,
                                  outcome.state, outcome.reason, events, uncounted=uncounted)
        self._release_worktree(phase.id, number)
        self.state.stopped_waiting.discard(attempt_id)

    def _stop_checks(self, attempt: AttemptRecord) -> None:
        """A person's stop while the attempt is being judged: end its verification commands (they carry the
        attempt's cookie), so the verdict comes now, as stopped by a person."""
        judging = self.state.judging.get(attempt.attempt_id)
        if judging is not None:
            judging.stopped_by_person = True
        if attempt.attempt_id in self.state.merge_waiting:  # not merged yet: it never will be
            self.state.stopped_waiting.add(attempt.attempt_id)
            self.state.merge_waiting.discard(attempt.attempt_id)
            self.state.wake = True
        self._notice(f"{attempt.phase_id} attempt {attempt.number}: stopped by a person (coord stop) while its "
                     "checks ran; ending its verification commands", phase_id=attempt.phase_id)
        # Signalled, not killed and reaped here: the judge's own wait must see how they ended (a child reaped
        # by someone else reads as exit 0 to it), and its verify runner kills what is left of each group.
        self.executor.interrupt(attempt.attempt_id)

    # --- watching ----------------------------------------------------------------------------------------
