"""What a remediation worker is told about the attempt before it: the one builder the engine and
``coord render --remediation`` share, so the rendered prompt is the one the worker gets.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from coordinator.agents import can_resume
from coordinator.judge.verdict import EVIDENCE_FILE, Verdict
from coordinator.plan.model import AgentProfile, Phase
from coordinator.process.records import LOG_FILE
from coordinator.prompts.renderer import RemediationContext
from coordinator.state.records import AttemptRecord
from coordinator.util.files import read_tail, workspace_relative

LOG_TAIL_BYTES = 8192
"""How much of a failed attempt's log goes into the remediation prompt."""



@dataclass(frozen=True)
class ResumeChoice:
    """Whether the remediation resumes the previous attempt's agent session."""

    session: str | None
    """The session to resume, or None for a fresh worker."""
    refused: str | None = None
    """Why a wanted resume cannot happen (said to the person), or None."""


def choose_resume(phase: Phase, profile: AgentProfile, previous: AttemptRecord, resume: bool | None) -> ResumeChoice:
    """Resume when asked (``resume``) or, when not said, when the phase's policy says ``resume``; only an agent
    that can resume, only a session the previous attempt recorded, and never after a resume that came back in
    another session (the fallback is a fresh worker, said to the person)."""
    wanted = phase.policy.remediation == "resume" if resume is None else resume
    if not wanted:
        return ResumeChoice(None)
    if previous.resume_session and previous.session_id and previous.session_id != previous.resume_session:
        # The agent answered a resume in another session: resuming that one would build on a lost context.
        return ResumeChoice(None, f"{phase.id}: attempt {previous.number} did not resume session "
                                  f"{previous.resume_session} (the agent answered in {previous.session_id}); "
                                  "remediating with a fresh worker")
    if previous.session_id and can_resume(profile):
        return ResumeChoice(previous.session_id)
    return ResumeChoice(None, f"{phase.id}: cannot resume (no session id from attempt {previous.number}); "
                              "remediating with a fresh worker")


def remediation_context(previous: AttemptRecord, workspace: Path, resumed_session: str | None = None,
                        note: str | None = None) -> RemediationContext:
    """The context of a remediation after ``previous``: its evidence (or, when it left none, a FAIL with the
    reason the store recorded), where its log is and the log's last ``LOG_TAIL_BYTES``."""
    attempt_dir = previous.directory
    verdict = Verdict.read(attempt_dir / EVIDENCE_FILE) or Verdict(
        passed=False, reason=previous.reason or "unknown", checks=(), source="checks")
    log_path = attempt_dir / LOG_FILE
    return RemediationContext(
        previous_attempt=previous.number,
        evidence=verdict.to_dict(),
        log_path=workspace_relative(log_path, workspace),
        log_tail=read_tail(log_path, LOG_TAIL_BYTES),
        resumed_session=resumed_session,
        note=note,
    )
