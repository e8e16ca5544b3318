"""Worktrees for attempts that run at the same time: one git worktree per attempt, on a branch of its own, in
coord's state directory (out of the workspace, so no tool walking the person's tree ever sees it).

Who uses it: the engine's worktree steps (``engine.worktree_steps``) create one when an attempt launches in a run
with ``--max-parallel`` above 1, and remove it once the attempt's verdict is recorded (its trees are kept as refs
by ``git.checkpoints``); ``coord status`` lists the ones a run owns. Layout (docs/design.md §17):
``STATE/worktrees/<plan>/<phase>`` checked out on ``refs/heads/coord/<plan>--<phase>``, with a snapshot index of
its own beside it (``<phase>.index``). The path is the phase's, made anew for each attempt: an agent that finds
its session to resume by the folder it runs in (Claude Code) finds it again in a remediation.

``git worktree add`` checks files out, so the repository's ``post-checkout`` hook runs as for any checkout; the
only "force" used is ``git worktree remove --force``, for a worktree coord made whose files a worker left
changed (their tree is a ref by then).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from coordinator.git.repo import GitError, Repo

INDEX_SUFFIX = ".index"
RECORD_FILE = "worktree.json"
"""In an attempt's records folder (state directory): the worktree it works in (``root``, ``branch``, ``before``,
``fork``, ``git_dir``, ``launched`` in seconds since the epoch), written before its worker starts."""


def plan_folder(state_dir: Path, plan_id: str) -> Path:
    """Where a plan's worktrees are: ``STATE/worktrees/<plan>``."""
    return state_dir / "worktrees" / plan_id


def phase_of(name: str) -> str:
    """The phase id of a name in a plan's worktree folder (its worktree ``P03``, or its index ``P03.index``)."""
    return name.removesuffix(INDEX_SUFFIX)


@dataclass(frozen=True)
class Placement:
    """Where one attempt works.

    Attributes:
        root: the worktree's top (a checkout of the whole repository).
        workspace: the workspace's counterpart inside it (``root`` itself unless the workspace is a folder of
            the repository).
        branch: the branch checked out there (``refs/heads/coord/<plan>--<phase>``).
        repo: the worktree as a :class:`Repo`, with its own snapshot index.
    """

    root: Path
    workspace: Path
    branch: str
    repo: Repo


@dataclass(frozen=True)
class OwnedWorktree:
    """A worktree of the run's (for the clean-up at start)."""

    phase_id: str
    path: Path
    branch: str | None


class Worktrees:
    """The worktrees of one plan's run.

    Args:
        repo: the repository (its main working tree).
        plan_id: the plan (folder and branch names).
        folder: the state directory (``STATE``).
        workspace_in_repo: the workspace's path inside the repository, POSIX, ``.`` at its top.
    """

    def __init__(self, repo: Repo, plan_id: str, folder: Path, workspace_in_repo: str) -> None:
        self.repo = repo
        self.plan_id = plan_id
        self.folder = plan_folder(folder, plan_id)
        self.workspace_in_repo = workspace_in_repo

    def path(self, phase_id: str) -> Path:
        return self.folder / phase_id

    def branch(self, phase_id: str) -> str:
        return f"refs/heads/coord/{self.plan_id}--{phase_id}"

    def placement(self, phase_id: str, git_dir: Path | None = None) -> Placement:
        """Where an attempt of ``phase_id`` works (whether or not its worktree exists); ``git_dir``: its git
        directory, as recorded when it was made."""
        root = self.path(phase_id)
        index = root.with_name(root.name + INDEX_SUFFIX)
        workspace = root if self.workspace_in_repo == "." else root / self.workspace_in_repo
        return Placement(root, workspace, self.branch(phase_id), Repo(root, index, git_dir))

    def create(self, phase_id: str, commit: str) -> Placement:
        """Check ``commit`` out in a new worktree for an attempt of the phase, on the phase's branch (made or moved
        there: a branch only coord uses). A worktree left at that path (by a crash) is removed first.

        Raises:
            GitError: git failed.
        """
        placement = self.placement(phase_id)
        self.remove(phase_id)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.repo.git("worktree", "add", "--quiet", "-B", placement.branch.removeprefix("refs/heads/"),
                      str(placement.root), commit)
        placement.workspace.mkdir(parents=True, exist_ok=True)
        git_dir = Path(Repo(placement.root, placement.repo.index_file).git("rev-parse", "--absolute-git-dir"))
        return self.placement(phase_id, git_dir)

    def remove(self, phase_id: str) -> bool:
        """Remove the phase's worktree, its index and its branch (if no other worktree has it out); True when
        there was something to remove. A folder git no longer knows (a crash in ``worktree add``, a worker that
        deleted its own worktree) is deleted and git's record of it pruned."""
        placement = self.placement(phase_id)
        registered = {entry.path.resolve(): entry for entry in self.repo.worktrees()}
        entry = registered.pop(placement.root.resolve(), None)
        found = entry is not None or placement.root.exists()
        if entry is not None:
            try:
                self.repo.git("worktree", "remove", "--force", "--force", str(placement.root))
            except GitError:
                pass  # a locked or half-made one: deleted below, and pruned
        if placement.root.exists():
            shutil.rmtree(placement.root, ignore_errors=True)
        placement.repo.index_file.unlink(missing_ok=True)
        if entry is not None and (admin := self._admin_dir(placement.root)) is not None:
            shutil.rmtree(admin, ignore_errors=True)  # git's record of it: `worktree prune` would drop others' too
        if entry is not None and entry.branch == placement.branch and \
                all(other.branch != placement.branch for other in registered.values()):
            if entry.head:
                self.repo.git("update-ref", "-d", placement.branch, entry.head, check=False)
        return found

    def _admin_dir(self, root: Path) -> Path | None:
        """The folder in the repository's ``worktrees/`` that records the worktree at ``root`` (its ``gitdir``
        file names ``root/.git``), or None."""
        common = Path(self.repo.git("rev-parse", "--git-common-dir"))
        folder = (common if common.is_absolute() else self.repo.root / common) / "worktrees"
        try:
            candidates = list(folder.iterdir())
        except OSError:
            return None
        for candidate in candidates:
            try:
                named = Path((candidate / "gitdir").read_text(encoding="utf-8").strip())
            except OSError:
                continue
            if named.parent.resolve() == root.resolve():
                return candidate
        return None

    def owned(self) -> list[OwnedWorktree]:
        """The run's worktrees git knows, by phase."""
        owned = []
        folder = self.folder.resolve()
        for entry in self.repo.worktrees():
            path = entry.path.resolve()
            if path.parent != folder:
                continue
            owned.append(OwnedWorktree(path.name, entry.path, entry.branch))
        return owned

    def sweep(self, keep: set[str]) -> list[str]:
        """Remove every worktree of the run's (and everything left in its folder) but those of the phases in
        ``keep`` (the ones with an attempt under way); returns the phases whose worktree was removed."""
        removed = []
        phases = {item.phase_id for item in self.owned()}
        if self.folder.is_dir():
            phases.update(phase_of(child.name) for child in self.folder.iterdir())
        for phase_id in sorted(phases - keep):
            if self.remove(phase_id):
                removed.append(phase_id)
        return removed
