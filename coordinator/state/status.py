"""``coord status``: the run's phases read from the store (read-only; works while a coordinator writes).

``collect_status`` builds the stable JSON document of docs/design.md §3 (``coord status --json``, and the
dashboard's view model); ``coordinator.cli.status_table`` prints it for people.
"""

from __future__ import annotations

import time
from typing import Any

from coordinator.git.worktrees import INDEX_SUFFIX, RECORD_FILE, plan_folder
from coordinator.paths import WorkspacePaths
from coordinator.process.records import ExitRecord
from coordinator.state.lock import is_locked
from coordinator.state.records import AttemptRecord
from coordinator.state.store import Store
from coordinator.states import ENDED_PLAN_STATES, ENDED_UNJUDGED, LIVE_ATTEMPT_STATES, PhaseState
from coordinator.util.files import read_json
from coordinator.util.timefmt import epoch_seconds


def collect_status(paths: WorkspacePaths, plan_id: str, now: float | None = None,
                   store: Store | None = None) -> dict[str, Any]:
    """The status document of one plan.

    Args:
        paths: the workspace.
        plan_id: the plan to describe.
        now: the clock (seconds since the epoch) for elapsed times of running attempts; default ``time.time()``.
        store: an open store to read (the dashboard keeps one); default: open a read-only one for this call.

    Returns:
        ``{"plan", "title", "path", "state", "paused", "started_at", "ended_at", "tampered", "phases": [...],
        "totals": {...}, "worktrees": [...]}`` (``ended_at`` is None while a coordinator runs the plan;
        ``worktrees``: the git worktrees of its attempts on disk, each ``phase, attempt, path, branch,
        attempt_state``; ``tampered`` is None unless a
        worker changed coord's files, then the first such change); each phase
        has ``id, kind, title, state, attempts, remediations, pid, elapsed_s, cycle, tokens, cost_usd, verdict,
        verdict_source, reason, stop_reason, session_id, commands, file_changes, last_message`` (``stop_reason``,
        ``session_id`` and ``last_message`` of the latest attempt; counts over all attempts;
        ``uncounted_attempts``: of them, rejected session resumes, not counted against ``max_attempts``;
        ``unverified``: passed on existing evidence whose verification was not re-run; ``totals["unverified"]``
        counts them).
        ``pid`` is the running worker's pid (None when none runs); ``elapsed_s`` covers the latest attempt.
    """
    own = store is None
    if store is None:
        store = Store.open_readonly(paths)
        assert store is not None
    now = time.time() if now is None else now
    try:
        plan = store.plan(plan_id)
        by_phase: dict[str, list[AttemptRecord]] = {}
        for attempt in store.attempts(plan_id):
            by_phase.setdefault(attempt.phase_id, []).append(attempt)
        phases: list[dict[str, Any]] = []
        totals: dict[str, Any] = {"phases": 0, "passed": 0, "failed": 0, "blocked": 0, "waiting": 0, "running": 0,
                                  "unverified": 0, "attempts": 0,
                                  "remediations": 0, "tokens": 0, "cost_usd": 0.0}
        unwatched = not is_locked(paths)  # no coordinator: an attempt that ended stays unjudged until one runs
        for row in store.phases(plan_id):
            attempts = by_phase.get(row.phase_id, [])
            last = attempts[-1] if attempts else None
            running = last is not None and last.state in LIVE_ATTEMPT_STATES
            state: str = row.state
            reason = row.reason
            ended = _unjudged_exit(paths, last) if last is not None and running and unwatched else None
            if ended is not None:
                running, state = False, ENDED_UNJUDGED
                reason = (f"its worker ended ({ended}) while no coordinator ran; "
                          f"`coord run {plan.path if plan else 'PLAN'}` judges it")
            tokens = sum(a.input_tokens + a.output_tokens for a in attempts)
            costs = [a.cost_usd for a in attempts if a.cost_usd is not None]
            elapsed = None
            started = epoch_seconds(last.started_at) if last is not None else None
            if last is not None and started is not None:
                end = now if running else (epoch_seconds(last.ended_at) or now)
                elapsed = round(max(0.0, end - started), 1)
            phases.append({
                "id": row.phase_id,
                "kind": row.kind,
                "title": row.title,
                "state": str(state),
                "attempts": len(attempts),
                "uncounted_attempts": row.uncounted_attempts,
                "remediations": sum(1 for a in attempts if a.remediation),
                "pid": last.worker_pid if last is not None and running else None,
                "elapsed_s": elapsed,
                "cycle": last.cycle if last is not None else 0,
                "tokens": tokens,
                "cost_usd": round(sum(costs), 6) if costs else None,
                "verdict": row.verdict,
                "verdict_source": row.verdict_source,
                "unverified": row.unverified,
                "reason": reason,
                "stop_reason": last.stop_reason if last is not None else None,
                "session_id": last.session_id if last is not None else None,
                "commands": sum(a.commands for a in attempts),
                "file_changes": sum(a.file_changes for a in attempts),
                "last_message": last.last_message if last is not None else None,
            })
            totals["phases"] += 1
            totals["attempts"] += len(attempts)
            totals["remediations"] += phases[-1]["remediations"]
            totals["tokens"] += tokens
            totals["cost_usd"] += sum(costs)
            if row.state in (PhaseState.PASSED, PhaseState.FAILED, PhaseState.BLOCKED, PhaseState.WAITING):
                totals[str(row.state)] += 1
            if running:
                totals["running"] += 1
            totals["unverified"] += int(phases[-1]["unverified"])
        totals["cost_usd"] = round(totals["cost_usd"], 6)
        return {
            "plan": plan_id,
            "title": plan.title if plan else "",
            "path": plan.path if plan else None,
            "state": str(plan.state) if plan else "unknown",
            "paused": bool(plan.paused) if plan else False,
            "started_at": plan.started_at if plan else None,
            # When the run stopped (finished, or detached with workers left): its clock stops there too.
            "ended_at": plan.updated_at if plan and plan.state in ENDED_PLAN_STATES else None,
            # A worker changed coord's files behind its back (the first thing seen); the events say the rest.
            "tampered": plan.tampered if plan else None,
            "phases": phases,
            "totals": totals,
            "worktrees": _worktrees(paths, plan_id, by_phase),
        }
    finally:
        if own:
            store.close()


def _worktrees(paths: WorkspacePaths, plan_id: str,
               attempts: dict[str, list[AttemptRecord]]) -> list[dict[str, Any]]:
    """The run's worktrees on disk (``git.worktrees``), each ``{"phase", "attempt", "path", "branch",
    "attempt_state"}`` (the phase's latest attempt that had a worktree), read without running git."""
    folder = plan_folder(paths.state_dir, plan_id)
    try:
        names = sorted(child.name for child in folder.iterdir()
                       if child.is_dir() and not child.name.endswith(INDEX_SUFFIX))
    except OSError:
        return []
    found = []
    for phase_id in names:
        for attempt in reversed(attempts.get(phase_id, [])):
            record = read_json(paths.records_dir(plan_id, phase_id, attempt.number) / RECORD_FILE)
            if isinstance(record, dict):
                found.append({"phase": phase_id, "attempt": attempt.number, "path": str(folder / phase_id),
                              "branch": str(record.get("branch", "")).removeprefix("refs/heads/"),
                              "attempt_state": str(attempt.state)})
                break
        else:
            found.append({"phase": phase_id, "attempt": None, "path": str(folder / phase_id), "branch": None,
                          "attempt_state": None})
    return found


def _unjudged_exit(paths: WorkspacePaths, attempt: AttemptRecord) -> str | None:
    """How the attempt's worker ended, from the ``exit.json`` its supervisor wrote, or None while it runs."""
    record = ExitRecord.read(paths.records_dir(attempt.plan_id, attempt.phase_id, attempt.number),
                             attempt.attempt_id)
    return record.how if record is not None else None
