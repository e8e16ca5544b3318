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
TRAILER_ATTEMPT_ID = "Coord-Attempt-Id"
"""The attempt's id (the store's): what finds a checkpoint already made, even on a branch an earlier store's run
left with the same phase and attempt numbers."""
_REF_FAMILIES = ("refs/coord", "refs/coord-before", "refs/coord-tree", "refs/coord-merge")
CONFLICT_LINES = 60
"""Lines of conflict hunks kept per file in the evidence (and so in the remediation prompt)."""
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


@dataclass(frozen=True)
class StartPoint:
    """What an attempt in a worktree starts from: the tree checked out, and the commit it forks from (the run's
    last checkpoint, or the tree a failed attempt was merged into): its merge base when merged back."""

    tree: str
    fork: str


@dataclass(frozen=True)
class AttemptMerge:
    """An attempt's tree merged into the working tree's (``refs/coord-tree/…`` into which
    ``refs/coord/…`` is merged, the result ``refs/coord-merge/…``)."""

    ours: str
    """The commit of the working tree the attempt was merged into."""
    merged: str
    """The merge commit (parents: ``ours`` and the attempt's tree); its tree holds conflict markers if any."""
    tree: str
    conflicts: tuple[str, ...]
    hunks: str = ""
    """The conflicted files' hunks, marker to marker (``CONFLICT_LINES`` per file at most)."""

    def to_dict(self) -> dict[str, object]:
        """The ``merge`` object of the evidence's ``git``."""
        return {"into": self.ours, "merged": self.merged, "conflicts": list(self.conflicts)}


def git_date(moment: datetime) -> str:
    """A git date (``@SECONDS +0000``) for an aware datetime."""
    return f"@{int(moment.timestamp())} +0000"


class Checkpoints:
    """The git side of one plan's run in one repository.

    Args:
        repo: the repository whose working tree holds the workspace.
        plan_id: the plan (branch and ref names).
        exclude: repository-relative paths never snapshotted (coord's ``tmp/`` of the workspace).
        workspace_in_repo: the workspace's folder in the repository (POSIX, ``.`` at its top): the files an
            attempt changed are named relative to the workspace, like every other path of the evidence.
    """

    def __init__(self, repo: Repo, plan_id: str, exclude: tuple[str, ...], workspace_in_repo: str = ".") -> None:
        self.repo = repo
        self.plan_id = plan_id
        self.workspace_in_repo = workspace_in_repo
        self.exclude = exclude
        self.branch = f"refs/heads/coord/{plan_id}"

    @staticmethod
    def open(workspace: Path, state_dir: Path, plan_id: str) -> Checkpoints | None:
        """The checkpoints of ``plan_id`` when ``workspace`` is inside a git working tree, else None."""
        repo = Repo.find(workspace, state_dir / "git-index")
        if repo is None:
            return None
        inside = workspace.resolve().relative_to(repo.root.resolve()).as_posix()
        tmp = "tmp" if inside == "." else f"{inside}/tmp"
        return Checkpoints(repo, plan_id, (tmp,), inside)

    def attempt_ref(self, phase_id: str, number: int) -> str:
        return f"refs/coord/{self.plan_id}/{phase_id}/{number}"

    def before_ref(self, phase_id: str, number: int) -> str:
        return f"refs/coord-before/{self.plan_id}/{phase_id}/{number}"

    def ours_ref(self, phase_id: str, number: int) -> str:
        return f"refs/coord-tree/{self.plan_id}/{phase_id}/{number}"

    def merge_ref(self, phase_id: str, number: int) -> str:
        return f"refs/coord-merge/{self.plan_id}/{phase_id}/{number}"

    def tree_of(self, commit: str) -> str:
        return self.repo.git("rev-parse", f"{commit}^{{tree}}")

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

    def before_attempt(self, phase_id: str, number: int, moment: datetime, start: StartPoint | None = None) -> str:
        """Record the tree an attempt starts from (``refs/coord-before/…``) and return its commit: the working
        tree as it is, or (an attempt in a worktree) ``start.tree`` on ``start.fork``. An attempt whose tree was
        already recorded (a launch redone after a crash) keeps the first one."""
        ref = self.before_ref(phase_id, number)
        found = self.repo.resolve(ref)
        if found is not None:
            return found
        if start is not None:
            tree, parents = start.tree, [start.fork]
        else:
            tip = self.tip()
            tree, parents = self.repo.snapshot(self.exclude), [tip] if tip else []
        commit = self.repo.commit(tree, parents, f"coord: {phase_id} attempt {number} starts\n", git_date(moment))
        self.repo.move_ref(ref, commit, None)
        return commit

    def after_attempt(self, phase_id: str, number: int, moment: datetime,
                      source: Repo | None = None) -> AttemptChanges | None:
        """Record the tree an attempt left (``refs/coord/<plan>/<phase>/<attempt>``), once: judged again after a
        crash, the attempt keeps the tree taken the first time. ``source``: the worktree it worked in (default:
        the working tree). None when its start was never recorded."""
        before = self.repo.resolve(self.before_ref(phase_id, number))
        if before is None:
            return None
        ref = self.attempt_ref(phase_id, number)
        after = self.repo.resolve(ref)
        if after is None:
            tree = (source or self.repo).snapshot(self.exclude, self.tree_of(before) if source else None)
            after = self.repo.commit(tree, [before], f"coord: {phase_id} attempt {number} ended\n", git_date(moment))
            self.repo.move_ref(ref, after, None)
        return AttemptChanges(before, after, tuple(self.repo.changes(before, after, self.workspace_in_repo)))

    def checkpoint(self, phase_id: str, number: int, title: str, kind: str, verdict: str, reason: str,
                   moment: datetime, tree: str | None = None, attempt_id: str | None = None) -> str | None:
        """Commit a passed attempt's tree (or ``tree``: the tree it was merged into) on the run's branch, with
        trailers a script can read; returns the checkpoint commit. Already made (a crash between this and the
        verdict's record): the one made is returned. None when the attempt's tree was never recorded.

        Raises:
            GitError: git failed, or the branch moved under coord twice in a row.
        """
        after = self.repo.resolve(self.attempt_ref(phase_id, number))
        if after is None:
            return None
        wanted = {f"{TRAILER_PHASE}: {phase_id}", f"{TRAILER_ATTEMPT}: {number}", f"{TRAILER_PLAN}: {self.plan_id}"}
        if attempt_id is not None:
            wanted.add(f"{TRAILER_ATTEMPT_ID}: {attempt_id}")
        existing = self._existing_checkpoint(wanted)
        if existing is not None:
            return existing
        tree = tree or self.tree_of(after)
        message = (f"coord: {self.plan_id} {phase_id} {kind}: {title}\n\n"
                   f"Attempt {number} passed: {verdict} — {reason}\n\n"
                   f"{TRAILER_PLAN}: {self.plan_id}\n{TRAILER_PHASE}: {phase_id}\n{TRAILER_ATTEMPT}: {number}\n"
                   + (f"{TRAILER_ATTEMPT_ID}: {attempt_id}\n" if attempt_id is not None else ""))
        for _ in range(2):
            tip = self.tip()
            commit = self.repo.commit(tree, [tip] if tip else [], message, git_date(moment))
            if self.repo.move_ref(self.branch, commit, tip):
                return commit
        raise GitError(f"{self.branch} moved while coord was committing {phase_id}'s checkpoint")

    def _existing_checkpoint(self, wanted: set[str]) -> str | None:
        tip = self.tip()
        if tip is None:
            return None
        out = self.repo.git("log", f"-n{_HISTORY_SEARCHED}", "--format=%H%x00%(trailers:only,unfold)%x01", tip)
        for record in out.split("\x01"):
            commit, _, trailers = record.strip().partition("\x00")
            if commit and wanted <= {line.strip() for line in trailers.splitlines()}:
                return commit
        return None

    def set_aside_stale_refs(self, stamp: str) -> int:
        """Move the attempt refs of this plan (``refs/coord/<plan>/…`` and the other families) to
        ``refs/coord-stale/<stamp>/…``: for a run whose store is new, so an earlier store's attempt 1 of a phase
        is never taken for this run's (its trees stay reachable). Returns how many were moved."""
        listed = self.repo.git("for-each-ref", "--format=%(objectname) %(refname)",
                               *(f"{family}/{self.plan_id}/" for family in _REF_FAMILIES))
        moved = 0
        for line in listed.splitlines():
            value, _, ref = line.partition(" ")
            if self.repo.move_ref(f"refs/coord-stale/{stamp}/{ref.removeprefix('refs/')}", value, None):
                self.repo.git("update-ref", "-d", ref, value, check=False)
                moved += 1
        return moved

    def start_point(self, phase_id: str, previous: int | None, base: str) -> StartPoint | None:
        """What a new attempt in a worktree starts from: for a remediation with ``base`` ``attempt``, the tree of
        the failed attempt as merged (conflict markers included, for it to resolve) or, not merged, as it left
        it; otherwise the run's last checkpoint. None before the run's branch exists."""
        tip = self.tip()
        if base == "attempt" and previous is not None:
            merged = self.repo.resolve(self.merge_ref(phase_id, previous))
            if merged is not None:
                return StartPoint(self.tree_of(merged), self.repo.resolve(f"{merged}^1") or merged)
            after = self.repo.resolve(self.attempt_ref(phase_id, previous))
            fork = self.repo.resolve(f"{self.before_ref(phase_id, previous)}^1")
            if after is not None and fork is not None:
                return StartPoint(self.tree_of(after), fork)
        return StartPoint(self.tree_of(tip), tip) if tip is not None else None

    def merge_attempt(self, phase_id: str, number: int, moment: datetime) -> AttemptMerge | None:
        """Merge an attempt's tree (from its worktree) into the working tree's, three-way from the commit it
        forked from, without touching either: the working tree is snapshotted as ``refs/coord-tree/…`` and the
        result kept as ``refs/coord-merge/…``. Once that ref exists the merge is found again as it was (after a
        crash, never redone on a changed tree); until then it is taken afresh. None when the attempt's trees
        were not recorded.

        Raises:
            GitError: git failed, or a recorded merge does not hold the merge of its own parents.
        """
        after = self.repo.resolve(self.attempt_ref(phase_id, number))
        fork = self.repo.resolve(f"{self.before_ref(phase_id, number)}^1")
        if after is None or fork is None:
            return None
        ours_ref, merge_ref = self.ours_ref(phase_id, number), self.merge_ref(phase_id, number)
        merged = self.repo.resolve(merge_ref)
        if merged is None:  # a snapshot taken before a crash may be stale: other merges may have come since
            ours = self.repo.commit(self.repo.snapshot(self.exclude), [fork],
                                    f"coord: the working tree {phase_id} attempt {number} is merged into\n",
                                    git_date(moment))
            if not self.repo.move_ref(ours_ref, ours, self.repo.resolve(ours_ref)):
                raise GitError(f"{ours_ref} moved while coord was merging {phase_id}")
        else:
            ours = self.repo.git("rev-parse", f"{merged}^1")
        # By ref name, so the conflict markers say which side is which.
        result = self.repo.merge(ours_ref, self.attempt_ref(phase_id, number))
        if merged is None:
            state = f"conflicts in {len(result.conflicts)} file(s)" if result.conflicts else "clean"
            merged = self.repo.commit(result.tree, [ours, after],
                                      f"coord: merge {phase_id} attempt {number} ({state})\n", git_date(moment))
            self.repo.move_ref(merge_ref, merged, None)
        if self.tree_of(merged) != result.tree or self.repo.resolve(ours_ref) != ours:
            raise GitError(f"{merge_ref} does not hold the merge of {ours_ref} and the attempt's tree")
        hunks = "\n".join(conflict_hunks(path, self.repo.read_blob(result.tree, path)) for path in result.conflicts)
        return AttemptMerge(ours, merged, result.tree, result.conflicts, hunks)

    def apply_merge(self, merge: AttemptMerge) -> None:
        """Make the working tree the merged tree (a clean merge: verification runs on it)."""
        self.repo.restore(merge.tree, self.exclude)

    def undo_merge(self, merge: AttemptMerge, moment: datetime) -> tuple[str, ...]:
        """Take the attempt's changes back out of the working tree (the attempt failed on the merged tree): the
        merge reverted three-way, so what changed in the working tree since (a person's edits, files the
        verification wrote) stays. Returns the files that could not be reverted for such a change (left as
        they are), empty when all went back.

        Raises:
            GitError: git failed.
        """
        now = self.repo.snapshot(self.exclude)
        if now == merge.tree:  # nothing else changed: straight back
            self.repo.restore(self.tree_of(merge.ours), self.exclude)
            return ()
        # Both sides as children of the merge: the merge base is then the merged tree, and the result is the
        # working tree now less what the merge brought.
        current = self.repo.commit(now, [merge.merged], "coord: the working tree now\n", git_date(moment))
        reverted = self.repo.commit(self.tree_of(merge.ours), [merge.merged],
                                    "coord: the merge taken back\n", git_date(moment))
        result = self.repo.merge(current, reverted)
        if result.conflicts:
            return result.conflicts
        self.repo.restore(result.tree, self.exclude)
        return ()

    def restore_checkpoint(self) -> str | None:
        """Put the working tree back to the run branch's tip (``remediation_base: checkpoint``); returns the tip,
        None when there is no branch yet. Ignored files and coord's ``tmp/`` stay."""
        tip = self.tip()
        if tip is not None:
            self.repo.restore(self.tree_of(tip), self.exclude)
        return tip

    def diff(self, phase_id: str, number: int) -> str | None:
        """The patch of one attempt (its tree before against after), or None when either was not recorded."""
        before = self.repo.resolve(self.before_ref(phase_id, number))
        after = self.repo.resolve(self.attempt_ref(phase_id, number))
        if before is None or after is None:
            return None
        return self.repo.diff(before, after)


def conflict_hunks(path: str, text: str) -> str:
    """The conflicted regions of one file (``<<<<<<<`` to ``>>>>>>>``, markers included) under a ``path:`` line,
    at most ``CONFLICT_LINES`` lines."""
    kept: list[str] = []
    inside = False
    for line in text.splitlines():
        if line.startswith("<<<<<<< "):
            inside = True
        if inside:
            kept.append(line)
        if line.startswith(">>>>>>> "):
            inside = False
        if len(kept) >= CONFLICT_LINES:
            kept.append("…")
            break
    return f"{path}:\n" + "\n".join(kept or ["(a conflict of file modes or of a deleted file: no text hunks)"])
