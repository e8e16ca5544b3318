"""The engine's git steps (``git.checkpoints``): the run's branch at start, each attempt's tree before and after,
a checkpoint commit before a PASS is recorded, the last checkpoint restored for ``remediation_base: checkpoint``.
With ``--max-parallel`` above 1 each attempt works in a worktree of its own (``engine.worktree_steps``).

A git failure never stops a run: it is one warning, and the run goes on without checkpoints (the verdicts do not
depend on git). Workspaces outside a git working tree, and plans with ``git: off``, have no git steps at all.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from typing import Any

from coordinator.engine.worktree_steps import WorktreeMixin
from coordinator.git.checkpoints import Checkpoints
from coordinator.git.repo import GitError
from coordinator.git.worktrees import Placement, Worktrees
from coordinator.judge.verdict import Verdict
from coordinator.plan.model import Phase
from coordinator.util import failpoints


class GitMixin(WorktreeMixin):
    """The git steps of :class:`coordinator.engine.engine.Engine`."""

    def _git_start(self) -> None:
        """Open the workspace's repository (unless ``git: off``) and make sure the run's branch exists."""
        if not self.plan.git:
            return
        try:
            checkpoints = Checkpoints.open(self.workspace, self.paths.state_dir, self.plan.id)
            if checkpoints is None:
                return
            tip = checkpoints.begin_run(datetime.now(timezone.utc))
        except (GitError, ValueError, OSError) as exc:
            self._git_failed(exc)
            return
        self.checkpoints = checkpoints
        self.worktrees = Worktrees(checkpoints.repo, self.plan.id, self.paths.state_dir, checkpoints.workspace_in_repo)
        parallel = (f"; with --max-parallel {self.options.max_parallel} each attempt works in a worktree of its own "
                    f"({self.worktrees.folder}), merged back in plan order") if self.options.max_parallel > 1 else ""
        self._notice(f"git: checkpoints go to {checkpoints.branch.removeprefix('refs/heads/')} (at {tip[:12]}); "
                     f"your HEAD, index and branches are not touched, and no hook runs for these snapshots{parallel}")

    def _git_adopted(self) -> None:
        """Once the workers an earlier coordinator left are adopted: set aside the attempt refs of an earlier
        store (a run whose store is new, no attempt adopted), and remove worktrees no attempt under way has."""
        if self.checkpoints is None:
            return
        if not self.store.attempts(self.plan.id):
            stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            try:
                moved = self.checkpoints.set_aside_stale_refs(stamp)
            except GitError as exc:
                self._git_failed(exc)
                return
            if moved:
                self._notice(f"git: {moved} attempt ref(s) of an earlier run of {self.plan.id} (whose state was "
                             f"deleted) moved to refs/coord-stale/{stamp}/", level="warning")
        self._sweep_worktrees()

    def _git_failed(self, exc: Exception) -> None:
        self.checkpoints = None  # self.worktrees stays: attempts in worktrees keep theirs, and their work
        self._notice(f"git: {exc}; going on without checkpoints", level="warning")

    def _git_before(self, phase: Phase, number: int, is_remediation: bool) -> Placement | None:
        """Before an attempt's worker starts: in a parallel run, check out its worktree and return where it works
        (``engine.worktree_steps``). Otherwise, for a remediation with ``remediation_base: checkpoint``, put the
        working tree back to the last checkpoint (the failed attempt's tree is already kept as its ref); then
        record the tree the attempt starts from, and return None (it works in the workspace)."""
        if self.checkpoints is None:
            return None
        if self._uses_worktree(phase, number):
            try:
                return self._worktree_launch(phase, number, is_remediation)
            except (GitError, OSError) as exc:  # this attempt's failure to start, not the run's: it never shares
                raise GitError(f"cannot check out its worktree: {exc}") from exc
        try:
            if is_remediation and phase.policy.remediation_base == "checkpoint":
                tip = self.checkpoints.restore_checkpoint()
                if tip is not None:
                    self._notice(f"{phase.id} attempt {number} starts from the last checkpoint ({tip[:12]})",
                                 phase_id=phase.id)
            self.checkpoints.before_attempt(phase.id, number, datetime.now(timezone.utc))
        except (GitError, OSError) as exc:
            self._git_failed(exc)
        failpoints.hit("git.after_before_ref")
        return None

    def _git_after(self, phase: Phase, number: int) -> dict[str, Any] | None:
        """When an attempt's worker has ended: keep its tree as ``refs/coord/<plan>/<phase>/<attempt>`` and return
        the evidence's ``git`` object (commits before and after, files changed), or None without git."""
        if self.checkpoints is None:
            return None
        placement = self._placement(phase.id, number)
        if placement is not None and not placement.root.is_dir():
            return None  # a worker deleted its own worktree: a FAIL of that attempt (_merge_attempt), not of git
        try:
            changes = self.checkpoints.after_attempt(phase.id, number, datetime.now(timezone.utc),
                                                     placement.repo if placement is not None else None)
        except (GitError, OSError) as exc:
            if placement is not None:  # the worktree a worker could break, not the repository
                self._notice(f"{phase.id} attempt {number}: cannot record its worktree's tree: {exc}",
                             level="warning", phase_id=phase.id)
            else:
                self._git_failed(exc)
            return None
        failpoints.hit("git.after_attempt_ref")
        return changes.to_dict() if changes is not None else None

    def _git_checkpoint(self, phase: Phase, number: int, verdict: Verdict, attempt_id: str) -> Verdict:
        """Before a verdict is recorded: for a PASS, commit the attempt's tree (merged, for one in a worktree) on
        the run's branch and return the verdict with the checkpoint in its ``git`` evidence; for a FAIL of a
        merged attempt, put the working tree back as it was before the merge."""
        if self.checkpoints is None or verdict.git is None:
            return verdict
        try:
            merged_tree = self._settle_merge(verdict)
            if not verdict.passed:
                return verdict
            commit = self.checkpoints.checkpoint(phase.id, number, phase.title, phase.kind, verdict.label,
                                                 verdict.reason, datetime.now(timezone.utc), merged_tree, attempt_id)
        except (GitError, OSError) as exc:
            if self._placement(phase.id, number) is None:
                self._git_failed(exc)
            else:  # attempts in worktrees need git to go on: this one's checkpoint is lost, not the run's git
                self._notice(f"{phase.id} attempt {number}: git: {exc}; its verdict stands without a checkpoint",
                             level="warning", phase_id=phase.id)
            return verdict
        failpoints.hit("git.after_checkpoint")
        return dataclasses.replace(verdict, git={**verdict.git, "checkpoint": commit})
