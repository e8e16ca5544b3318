"""Attempts that run at the same time, each in a git worktree of its own, merged back one at a time
(docs/design.md §17).

Who calls it: launching (``_worktree_launch``: where the worker runs), judging (``_merge_waits`` and
``_merge_attempt`` before the checks, ``_settle_merge`` once the verdict is in, ``_release_worktree`` once it is
recorded) and the start of a run (``_sweep_worktrees``). In a git working tree, a run with ``--max-parallel``
above 1 puts every attempt in a worktree (and a remediation of an attempt that had one gets one too); a run of one
attempt at a time works in the working tree itself, as without git.

An attempt's life in a worktree: its worktree is checked out from the run's last checkpoint (a remediation's from
the failed attempt's merged tree, conflict markers included) → its worker ends, and its tree is kept as a ref → it
waits while an attempt of an earlier phase that started before it ended is not yet judged, or another merge is
being judged (merges go one at a time, in plan order) → its report and marker, when under ``tmp/`` (which no tree
holds), are copied from the worktree into the workspace → its tree is merged three-way into the working tree's
from the commit it forked from: a conflict is a FAIL with the files and hunks, a clean merge is written into the
working tree and verification runs there → a PASS commits the merged tree as the checkpoint; a FAIL puts the
working tree back as it was before the merge → the worktree is removed (its trees stay as refs).
"""

from __future__ import annotations

import os
import stat
import time
from concurrent.futures import Future
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from coordinator.engine.core import EngineCore
from coordinator.git.checkpoints import AttemptMerge
from coordinator.git.repo import GitError
from coordinator.git.worktrees import RECORD_FILE, Placement
from coordinator.judge.verdict import CheckResult, Verdict
from coordinator.paths import OutsideWorkspace, lexically_inside, open_inside
from coordinator.plan.model import Phase
from coordinator.state.records import AttemptRecord
from coordinator.states import AttemptState
from coordinator.util import failpoints
from coordinator.util.files import read_json, write_atomic, write_json_atomic
from coordinator.util.timefmt import epoch_seconds

MAX_COPIED_BYTES = 16 * 1024 * 1024
"""The largest report or marker copied from a worktree into the workspace, in bytes."""


def settled(verdict: Verdict) -> Future[Verdict]:
    """A verdict reached without running the checks, in the form the judge threads hand theirs back."""
    future: Future[Verdict] = Future()
    future.set_result(verdict)
    return future


class WorktreeMixin(EngineCore):
    """The worktree steps of :class:`coordinator.engine.engine.Engine`."""

    def _worktree_record(self, phase_id: str, number: int) -> dict[str, Any] | None:
        """The attempt's ``worktree.json`` (``git.worktrees.RECORD_FILE``), or None when it had no worktree."""
        record = read_json(self.paths.records_dir(self.plan.id, phase_id, number) / RECORD_FILE)
        return record if isinstance(record, dict) else None

    def _placement(self, phase_id: str, number: int) -> Placement | None:
        """Where an attempt works, if in a worktree (its record says so), else None."""
        record = self._worktree_record(phase_id, number) if self.worktrees is not None else None
        if self.worktrees is None or record is None:
            return None
        git_dir = record.get("git_dir")
        return self.worktrees.placement(phase_id, Path(git_dir) if isinstance(git_dir, str) else None)

    def _uses_worktree(self, phase: Phase, number: int) -> bool:
        if self.worktrees is None or self.checkpoints is None:
            return False
        return self.options.max_parallel > 1 or (number > 1 and self._placement(phase.id, number - 1) is not None)

    def _worktree_launch(self, phase: Phase, number: int, is_remediation: bool) -> Placement | None:
        """Check out the attempt's worktree and record it (before its worker starts); None when there is no
        start point (no run branch).

        Raises:
            GitError, OSError: git or the record failed.
        """
        assert self.checkpoints is not None and self.worktrees is not None
        previous = number - 1 if is_remediation and number > 1 else None
        start = self.checkpoints.start_point(phase.id, previous, phase.policy.remediation_base)
        if start is None:
            return None
        before = self.checkpoints.before_attempt(phase.id, number, datetime.now(timezone.utc), start)
        placement = self.worktrees.create(phase.id, before)
        (placement.workspace / phase.workdir).mkdir(parents=True, exist_ok=True)  # an empty or ignored folder
        write_json_atomic(self.paths.records_dir(self.plan.id, phase.id, number) / RECORD_FILE, {
            "root": str(placement.root), "branch": placement.branch, "before": before, "fork": start.fork,
            "git_dir": str(placement.repo.git_dir), "launched": time.time()})
        failpoints.hit("git.after_worktree")
        return placement

    def _merge_waits(self, attempt: AttemptRecord) -> bool:
        """Whether an ended attempt in a worktree must wait before it is merged: another attempt's merge is
        being judged, or an attempt of an earlier phase (plan order) that started before this one ended is not
        merged yet. A merge already recorded for it goes on (it was under way when a coordinator died)."""
        if self._placement(attempt.phase_id, attempt.number) is None or self.checkpoints is None:
            return False
        if attempt.attempt_id in self.state.stopped_waiting or self.checkpoints.repo.resolve(
                self.checkpoints.merge_ref(attempt.phase_id, attempt.number)):
            return False
        order = {phase.id: phase.index for phase in self.plan.phases}
        # The store's times are whole seconds, rounded down: one launched in the second it ended counts as before.
        ended = (epoch_seconds(attempt.ended_at) or time.time()) + 1.0
        for other in self.store.active_attempts(self.plan.id):
            if other.attempt_id == attempt.attempt_id:
                continue
            record = self._worktree_record(other.phase_id, other.number)
            if record is None:
                if other.state in (AttemptState.RUNNING, AttemptState.LAUNCHING):
                    return True  # a worker editing the working tree itself (a run started one at a time)
                continue
            if other.state == AttemptState.CHECKING and self.checkpoints.repo.resolve(
                    self.checkpoints.merge_ref(other.phase_id, other.number)):
                return True
            launched = record.get("launched")
            earlier = order.get(other.phase_id, 1 << 30) < order.get(attempt.phase_id, 1 << 30)
            if earlier and isinstance(launched, (int, float)) and launched < ended:
                return True
        return False

    def _merge_attempt(self, phase: Phase, attempt: AttemptRecord, changes: dict[str, Any] | None,
                       stopped: bool) -> tuple[dict[str, Any] | None, Verdict | None]:
        """Bring an ended worktree attempt's work into the workspace before it is checked: its report and
        marker copied, its tree merged. Returns the evidence's ``git`` object (with ``merge``) and, when the
        checks cannot run (a conflict, a worktree gone), the verdict. An attempt stopped or hung is not merged
        (its checks are skipped)."""
        placement = self._placement(phase.id, attempt.number)
        if placement is None or stopped:
            return changes, None
        if self.checkpoints is None:
            reason = (f"git failed earlier in this run (see its warning), so its work cannot be merged; it stays in "
                      f"its worktree {placement.root}")
            return changes, Verdict(passed=False, reason=reason, checks=(CheckResult("merge", "fail", reason),))
        if attempt.attempt_id in self.state.stopped_waiting:
            reason = (f"stopped by a person (coord stop) while it waited to be merged; its work was not merged "
                      f"(its tree is {self.checkpoints.attempt_ref(phase.id, attempt.number)})")
            return changes, Verdict(passed=False, reason=reason, git=changes,
                                    checks=(CheckResult("merge", "skipped", reason),))
        if changes is None:
            reason = (f"its worktree {placement.root} is gone or unreadable, so its work cannot be taken"
                      if not placement.root.is_dir() else "coord could not record its worktree's tree (see the "
                      "warning before this verdict)")
            return None, Verdict(passed=False, reason=reason, checks=(CheckResult("merge", "fail", reason),))
        self._copy_evidence(phase, placement)
        try:
            merge = self.checkpoints.merge_attempt(phase.id, attempt.number, datetime.now(timezone.utc))
            failpoints.hit("git.after_merge_ref")
            if merge is None:
                return changes, None
            changes = {**changes, "merge": merge.to_dict()}
            if merge.conflicts:
                shown = ", ".join(merge.conflicts[:10]) + (" …" if len(merge.conflicts) > 10 else "")
                reason = (f"merge conflict: its changes conflict with the workspace's in {shown}; nothing of it "
                          f"was merged, and the remediation resolves the conflict markers in its worktree")
                return changes, Verdict(passed=False, reason=reason, git=changes, checks=(
                    CheckResult("merge", "fail", reason, output_tail=merge.hunks),))
            self.checkpoints.apply_merge(merge)
            failpoints.hit("git.after_merge_applied")
        except (GitError, OSError) as exc:
            reason = f"coord could not merge its worktree into the workspace: {exc}"
            return changes, Verdict(passed=False, reason=reason, git=changes,
                                    checks=(CheckResult("merge", "fail", reason),))
        return changes, None

    def _copy_evidence(self, phase: Phase, placement: Placement) -> None:
        """Copy the report and marker the worker wrote in its worktree under ``tmp/`` into the workspace (under
        ``tmp/`` no tree holds them, so no merge brings them). A link, a folder or a missing file is not copied:
        the workspace's own file (if any) is judged, and an untouched one counts as left over."""
        artifacts = self.renderer.artifact_paths(self.plan, phase)
        for relative in (artifacts.report, artifacts.completed):
            try:
                relative = lexically_inside(relative)
            except ValueError:
                continue
            if relative.split("/", 1)[0] != "tmp":
                continue  # a file of the tree: the merge brings it
            try:
                fd = open_inside(placement.workspace, placement.workspace / relative)
            except (OutsideWorkspace, OSError, ValueError):
                continue
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    continue
                data = os.read(fd, MAX_COPIED_BYTES)
            except OSError:
                continue
            finally:
                os.close(fd)
            try:
                write_atomic(self.workspace / relative, data, inside=self.workspace)
            except (OutsideWorkspace, OSError) as exc:
                self._notice(f"cannot copy {relative} from {phase.id}'s worktree: {exc}", level="warning",
                             phase_id=phase.id)

    def _settle_merge(self, verdict: Verdict) -> str | None:
        """Once a merged attempt's verdict is in: the tree to commit as its checkpoint (a PASS), or the working
        tree put back as it was before the merge (a FAIL). None when it was not merged."""
        merge = (verdict.git or {}).get("merge")
        if self.checkpoints is None or not isinstance(merge, dict) or merge.get("conflicts"):
            return None
        if verdict.passed:
            return self.checkpoints.tree_of(str(merge["merged"]))
        merged = str(merge["merged"])
        kept = self.checkpoints.undo_merge(AttemptMerge(str(merge["into"]), merged, self.checkpoints.tree_of(merged),
                                                        ()), datetime.now(timezone.utc))
        if kept:
            self._notice(f"the failed attempt's changes to {', '.join(kept[:10])} could not be taken back out of the "
                         f"working tree (they were changed again since the merge); the working tree keeps them",
                         level="warning")
        failpoints.hit("git.after_merge_undone")
        return None

    def _release_worktree(self, phase_id: str, number: int) -> None:
        """Remove a judged attempt's worktree, its tree kept as a ref first (a lost attempt's was never taken);
        attempts waiting to merge may go now."""
        placement = self._placement(phase_id, number)
        if placement is None or self.worktrees is None or self.checkpoints is None:
            return  # without git its tree cannot be kept: the worktree stays, with the work
        try:
            if placement.root.is_dir():
                self.checkpoints.after_attempt(phase_id, number, datetime.now(timezone.utc), placement.repo)
            self.worktrees.remove(phase_id)
        except (GitError, OSError) as exc:
            self._notice(f"cannot remove {phase_id} attempt {number}'s worktree: {exc}", level="warning",
                         phase_id=phase_id)
        self.state.wake = True

    def _sweep_worktrees(self) -> None:
        """At start: remove the run's worktrees whose attempts are over (a coordinator died before it could)."""
        if self.worktrees is None:
            return
        keep = {attempt.phase_id for attempt in self.store.active_attempts(self.plan.id)}
        try:
            removed = self.worktrees.sweep(keep)
        except (GitError, OSError) as exc:
            self._notice(f"git: cannot clean up the run's worktrees: {exc}", level="warning")
            return
        if removed:
            self._notice(f"git: removed the worktrees of finished attempts: {', '.join(removed)}")
