"""Every attempt's work as git facts: a checkpoint commit per passed phase on the run's own branch, every attempt's
tree before and after as refs, and the files it changed.

Who uses it: the engine (``begin_run`` at start, ``before_attempt`` at launch, ``after_attempt`` when a worker
ends, ``checkpoint`` before a PASS is committed, ``restore_checkpoint`` for ``remediation_base: checkpoint``) and
``coord diff``.

Where the work lands (docs/design.md §17): on ``refs/heads/coord/<plan>``, a branch coord creates, whose first
commit ("before coord") is the working tree as the run found it, dirty or not, on top of HEAD. The workers edit
the person's working tree as before; the person's HEAD, index and branches never move. Refs kept:
``refs/coord-before/<plan>/<phase>/<attempt>`` (the tree the attempt started from) and
``refs/coord/<plan>/<phase>/<attempt>`` (the tree it left, taken before anything resets it). Commits are made
with plumbing, so no hook runs (they are snapshots on coord's branch, not the person's commits), and with fixed
dates, so a step redone after a crash makes the same commit, never a second one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from coordinator.git.repo import FileChange, GitError, Repo

TRAILER_PLAN = "Coord-Plan"
TRAILER_PHASE = "Coord-Phase"
TRAILER_ATTEMPT = "Coord-Attempt"
_HISTORY_SEARCHED = 500
"""Commits of the run's branch searched for a checkpoint already made (a crash between commit and record)."""


@dataclass(frozen=True)
class AttemptChanges:
    """What one attempt changed: the commits of its trees before and after, and the files between them."""

    before: str
    after: str
    files: tuple[FileChange, ...]

    @property
    def stat(self) -> str:
        """``3 files changed, +10 −2`` (binary files count as changed, with no lines)."""
        added = sum(change.added or 0 for change in self.files)
        deleted = sum(change.deleted or 0 for change in self.files)
        return f"{len(self.files)} file(s) changed, +{added} -{deleted}"

    def to_dict(self) -> dict[str, object]:
        """The ``git`` object of ``evidence.json``."""
        return {"before": self.before, "after": self.after, "stat": self.stat,
                "files": [{"path": change.path, "added": change.added, "deleted": change.deleted}
                          for change in self.files]}


def git_date(moment: datetime) -> str:
    """A git date (``@SECONDS +0000``) for an aware datetime."""
    return f"@{int(moment.timestamp())} +0000"


class Checkpoints:
    """The git side of one plan's run in one repository.

    Args:
        repo: the repository whose working tree holds the workspace.
        plan_id: the plan (branch and ref names).
        exclude: repository-relative paths never snapshotted (coord's ``tmp/`` of the workspace).
    """

    def __init__(self, repo: Repo, plan_id: str, exclude: tuple[str, ...]) -> None:
        self.repo = repo
        self.plan_id = plan_id
        self.exclude = exclude
        self.branch = f"refs/heads/coord/{plan_id}"

    @staticmethod
    def open(workspace: Path, state_dir: Path, plan_id: str) -> Checkpoints | None:
        """The checkpoints of ``plan_id`` when ``workspace`` is inside a git working tree, else None."""
        repo = Repo.find(workspace, state_dir / "git-index")
        if repo is None:
            return None
        tmp = (workspace.resolve() / "tmp").relative_to(repo.root.resolve()).as_posix()
        return Checkpoints(repo, plan_id, (tmp,))

    def attempt_ref(self, phase_id: str, number: int) -> str:
        return f"refs/coord/{self.plan_id}/{phase_id}/{number}"

    def before_ref(self, phase_id: str, number: int) -> str:
        return f"refs/coord-before/{self.plan_id}/{phase_id}/{number}"

    def tip(self) -> str | None:
        """The run branch's last commit, or None before ``begin_run``."""
        return self.repo.resolve(self.branch)

    def begin_run(self, moment: datetime) -> str:
        """Make sure the run's branch exists: on first use, its "before coord" commit holds the working tree as it
        is (uncommitted changes included) on top of HEAD. Returns the branch's tip.

        Raises:
            GitError: git failed.
        """
        tip = self.tip()
        if tip is not None:
            return tip
        head = self.repo.head()
        tree = self.repo.snapshot(self.exclude)
        message = (f"coord: {self.plan_id} before coord\n\nThe working tree as `coord run` found it.\n\n"
                   f"{TRAILER_PLAN}: {self.plan_id}\n")
        commit = self.repo.commit(tree, [head] if head else [], message, git_date(moment))
        self.repo.move_ref(self.branch, commit, None)
        return self.tip() or commit

    def before_attempt(self, phase_id: str, number: int, moment: datetime) -> str:
        """Record the tree an attempt starts from (``refs/coord-before/…``) and return its commit; an attempt whose
        tree was already recorded (a launch redone after a crash) keeps the first one."""
        ref = self.before_ref(phase_id, number)
        found = self.repo.resolve(ref)
        if found is not None:
            return found
        tip = self.tip()
        tree = self.repo.snapshot(self.exclude)
        commit = self.repo.commit(tree, [tip] if tip else [], f"coord: {phase_id} attempt {number} starts\n",
                                  git_date(moment))
        self.repo.move_ref(ref, commit, None)
        return commit

    def after_attempt(self, phase_id: str, number: int, moment: datetime) -> AttemptChanges | None:
        """Record the tree an attempt left (``refs/coord/<plan>/<phase>/<attempt>``), once: judged again after a
        crash, the attempt keeps the tree taken the first time. None when its start was never recorded."""
        before = self.repo.resolve(self.before_ref(phase_id, number))
        if before is None:
            return None
        ref = self.attempt_ref(phase_id, number)
        after = self.repo.resolve(ref)
        if after is None:
            tree = self.repo.snapshot(self.exclude)
            after = self.repo.commit(tree, [before], f"coord: {phase_id} attempt {number} ended\n", git_date(moment))
            self.repo.move_ref(ref, after, None)
        return AttemptChanges(before, after, tuple(self.repo.changes(before, after)))

    def checkpoint(self, phase_id: str, number: int, title: str, kind: str, verdict: str, reason: str,
                   moment: datetime) -> str | None:
        """Commit a passed attempt's tree on the run's branch, with trailers a script can read; returns the
        checkpoint commit. Already made (a crash between this and the verdict's record): the one made is
        returned. None when the attempt's tree was never recorded.

        Raises:
            GitError: git failed, or the branch moved under coord twice in a row.
        """
        after = self.repo.resolve(self.attempt_ref(phase_id, number))
        if after is None:
            return None
        existing = self._existing_checkpoint(phase_id, number)
        if existing is not None:
            return existing
        tree = self.repo.git("rev-parse", f"{after}^{{tree}}")
        message = (f"coord: {self.plan_id} {phase_id} {kind}: {title}\n\n"
                   f"Attempt {number} passed: {verdict} — {reason}\n\n"
                   f"{TRAILER_PLAN}: {self.plan_id}\n{TRAILER_PHASE}: {phase_id}\n{TRAILER_ATTEMPT}: {number}\n")
        for _ in range(2):
            tip = self.tip()
            commit = self.repo.commit(tree, [tip] if tip else [], message, git_date(moment))
            if self.repo.move_ref(self.branch, commit, tip):
                return commit
        raise GitError(f"{self.branch} moved while coord was committing {phase_id}'s checkpoint")

    def _existing_checkpoint(self, phase_id: str, number: int) -> str | None:
        tip = self.tip()
        if tip is None:
            return None
        out = self.repo.git("log", f"-n{_HISTORY_SEARCHED}", "--format=%H%x00%(trailers:only,unfold)%x01", tip)
        wanted = {f"{TRAILER_PHASE}: {phase_id}", f"{TRAILER_ATTEMPT}: {number}", f"{TRAILER_PLAN}: {self.plan_id}"}
        for record in out.split("\x01"):
            commit, _, trailers = record.strip().partition("\x00")
            if commit and wanted <= {line.strip() for line in trailers.splitlines()}:
                return commit
        return None

    def restore_checkpoint(self) -> str | None:
        """Put the working tree back to the run branch's tip (``remediation_base: checkpoint``); returns the tip,
        None when there is no branch yet. Ignored files and coord's ``tmp/`` stay."""
        tip = self.tip()
        if tip is not None:
            self.repo.restore(self.repo.git("rev-parse", f"{tip}^{{tree}}"), self.exclude)
        return tip

    def diff(self, phase_id: str, number: int) -> str | None:
        """The patch of one attempt (its tree before against after), or None when either was not recorded."""
        before = self.repo.resolve(self.before_ref(phase_id, number))
        after = self.repo.resolve(self.attempt_ref(phase_id, number))
        if before is None or after is None:
            return None
        return self.repo.diff(before, after)
