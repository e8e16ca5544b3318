"""The git CLI as coord uses it: snapshots of a working tree as commits, refs moved by compare-and-swap, diffs.

Who uses it: ``git.checkpoints`` (the per-phase checkpoints, failed attempts' refs, remediation bases) and
``coord diff``. Every call is ``git`` with an argv list (never a shell), ``GIT_*`` variables that could point it
elsewhere removed, and, for snapshots, an index file of coord's own (``GIT_INDEX_FILE`` in the state directory):
the person's index, HEAD and branches are never read into or written. Plumbing only (``write-tree``,
``commit-tree``, ``update-ref``), so no hook runs and nothing is pushed, forced or rewritten.

The git CLI rather than a library (pygit2, GitPython, dulwich): it is what every user has, its worktree, ignore
and attribute handling is the reference, and its plumbing is a stable interface.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from coordinator.errors import CoordError

GIT_TIMEOUT = 120.0
"""Seconds any one git command may take before it is killed and counted as failed."""
_SCRUBBED = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES",
             "GIT_NAMESPACE", "GIT_CEILING_DIRECTORIES", "GIT_COMMON_DIR")


class GitError(CoordError):
    """A git command failed; the message names the command and git's own last line."""


@dataclass(frozen=True)
class MergeResult:
    """A three-way merge computed without a working tree (``git merge-tree --write-tree``).

    Attributes:
        tree: the merged tree; a conflicted file holds git's conflict markers in it.
        conflicts: repository-relative paths of the files that conflict (empty: a clean merge).
    """

    tree: str
    conflicts: tuple[str, ...]

    @property
    def clean(self) -> bool:
        return not self.conflicts


@dataclass(frozen=True)
class Worktree:
    """One entry of ``git worktree list --porcelain``."""

    path: Path
    head: str | None
    branch: str | None
    """The full ref it has checked out (``refs/heads/…``), None when detached."""


@dataclass(frozen=True)
class FileChange:
    """One file an attempt changed (``git diff --numstat``): added and deleted line counts, None for binary."""

    path: str
    added: int | None
    deleted: int | None


class Repo:
    """A git working tree coord checkpoints.

    Args:
        root: the top of the working tree (``git rev-parse --show-toplevel``).
        index_file: coord's own index for snapshots (``STATE/git-index``); created on first use.
        git_dir: the repository's git directory, named rather than found from ``root`` (a worktree's, so that a
            worker that deleted its ``.git`` file never points coord at a repository above it).
    """

    def __init__(self, root: Path, index_file: Path, git_dir: Path | None = None) -> None:
        self.root = root
        self.index_file = index_file
        self.git_dir = git_dir

    @staticmethod
    def find(workspace: Path, index_file: Path) -> Repo | None:
        """The repository whose working tree holds ``workspace``, or None when there is none (or no git)."""
        try:
            result = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=workspace, env=_environment(),
                                    capture_output=True, text=True, timeout=GIT_TIMEOUT, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired):
            return None
        if result.returncode != 0 or not result.stdout.strip():
            return None
        return Repo(Path(result.stdout.strip()), index_file)

    def git(self, *args: str, env: Mapping[str, str] | None = None, input_text: str | None = None,
            check: bool = True) -> str:
        """Run ``git ARGS`` in the working tree; returns its stdout without the last newline.

        Raises:
            GitError: it exited non-zero (when ``check``), could not start, or ran past ``GIT_TIMEOUT``.
        """
        try:
            result = subprocess.run(self._argv(args), cwd=self.root, env=_environment(env), capture_output=True,
                                    text=True, timeout=GIT_TIMEOUT, input=input_text,
                                    stdin=None if input_text is not None else subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise GitError(f"`git {' '.join(args[:3])}` failed: {exc}") from exc
        if check and result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["(no message)"])[-1]
            raise GitError(f"`git {' '.join(args[:3])}` exited {result.returncode}: {last}")
        return result.stdout.removesuffix("\n")

    def _argv(self, args: Sequence[str]) -> list[str]:
        if self.git_dir is None:
            return ["git", *args]
        return ["git", f"--git-dir={self.git_dir}", f"--work-tree={self.root}", *args]

    def head(self) -> str | None:
        """The commit HEAD names, or None in a repository without commits."""
        found = self.git("rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False)
        return found or None

    def resolve(self, ref: str) -> str | None:
        """The commit ``ref`` names, or None when it names none."""
        found = self.git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
        return found or None

    def snapshot(self, exclude: Sequence[str] = (), base: str | None = None) -> str:
        """The tree of the working tree as it is now (tracked and untracked files, ``.gitignore`` respected),
        built in coord's own index; ``exclude`` lists workspace-relative paths left out (coord's ``tmp/``).

        The index starts from ``base`` (a tree; default HEAD's), so a submodule that is not checked out (an empty
        folder, as in a new worktree) keeps its commit instead of being taken as deleted."""
        env = {"GIT_INDEX_FILE": str(self.index_file)}
        self.index_file.parent.mkdir(parents=True, exist_ok=True)
        start = base or (f"{head}^{{tree}}" if (head := self.head()) else None)
        self.git("read-tree", *([start] if start else ["--empty"]), env=env)
        self.git("add", "--all", "--", ":/", env=env)
        # Removed after, not excluded by pathspec (git refuses a pathspec that names ignored files); forced, as
        # a file there that changed since `add` (a worker's log) would otherwise make `rm --cached` refuse.
        if exclude:
            self.git("rm", "-r", "-q", "-f", "--cached", "--ignore-unmatch", "--", *(f":/{path}" for path in exclude),
                     env=env)
        return self.git("write-tree", env=env)

    def commit(self, tree: str, parents: Sequence[str], message: str, when: str) -> str:
        """A commit of ``tree`` on ``parents`` with ``message``, author and committer ``coord`` at ``when`` (a git
        date, e.g. ``@1764612000 +0000``): the same inputs give the same commit id, so a commit made again after a
        crash is the same commit, never a duplicate."""
        env = {"GIT_AUTHOR_NAME": "coord", "GIT_AUTHOR_EMAIL": "coord@localhost", "GIT_AUTHOR_DATE": when,
               "GIT_COMMITTER_NAME": "coord", "GIT_COMMITTER_EMAIL": "coord@localhost", "GIT_COMMITTER_DATE": when}
        args = ["commit-tree", tree]
        for parent in parents:
            args += ["-p", parent]
        return self.git(*args, "-F", "-", env=env, input_text=message)

    def move_ref(self, ref: str, new: str, old: str | None) -> bool:
        """Point ``ref`` at ``new`` if it still names ``old`` (None: if it does not exist yet); False when it had
        moved on (someone else's change wins, nothing is overwritten)."""
        args = ["update-ref", "-m", "coord checkpoint", ref, new, old or "0" * 40]
        try:
            self.git(*args)
        except GitError:
            return self.resolve(ref) == new
        return True

    def changes(self, before: str, after: str, inside: str = ".") -> list[FileChange]:
        """The files that differ between two commits or trees, with line counts (renames not detected); with
        ``inside`` (a folder of the repository, POSIX), only those in it, relative to it."""
        relative = [f"--relative={inside}"] if inside != "." else []
        out = self.git("diff", "--numstat", "--no-renames", "-z", *relative, before, after)
        changes = []
        for record in out.split("\0"):
            if not record.strip():
                continue
            added, deleted, path = record.split("\t", 2)
            changes.append(FileChange(path, None if added == "-" else int(added),
                                      None if deleted == "-" else int(deleted)))
        return changes

    def diff(self, before: str, after: str) -> str:
        """The patch between two commits or trees (``git diff --stat --patch``), as text."""
        return self.git("diff", "--stat", "--patch", "--no-color", before, after)

    def restore(self, tree: str, exclude: Sequence[str] = ()) -> None:
        """Make the working tree match ``tree``: its files written, files it does not have (tracked by a snapshot
        of now) removed; ignored files and ``exclude`` are left alone. The person's index is not touched."""
        current = self.snapshot(exclude)
        env = {"GIT_INDEX_FILE": str(self.index_file)}
        self.git("read-tree", "-m", "-u", current, tree, env=env)


    def merge(self, ours: str, theirs: str) -> MergeResult:
        """Merge commit ``theirs`` into commit ``ours`` (their merge base found from history) into a new tree,
        touching no working tree or index. Conflict markers are labelled with the two names as given.

        Raises:
            GitError: git failed for another reason than a conflict.
        """
        args = ("merge-tree", "--write-tree", "-z", "--name-only", "--no-messages", ours, theirs)
        try:
            result = subprocess.run(self._argv(args), cwd=self.root, env=_environment(), capture_output=True,
                                    text=True, timeout=GIT_TIMEOUT, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise GitError(f"`git merge-tree` failed: {exc}") from exc
        if result.returncode not in (0, 1):
            last = (result.stderr.strip().splitlines() or ["(no message)"])[-1]
            raise GitError(f"`git merge-tree` exited {result.returncode}: {last}")
        # -z output: TREE NUL, then each conflicted path NUL (a path once per stage), then an empty field.
        tree, _, rest = result.stdout.partition("\0")
        conflicts = []
        for field in rest.split("\0"):
            if not field:
                break
            if field not in conflicts:
                conflicts.append(field)
        return MergeResult(tree.strip(), tuple(conflicts))

    def read_blob(self, tree: str, path: str) -> str:
        """The text of ``path`` in ``tree`` (undecodable bytes replaced); empty when it has none."""
        try:
            result = subprocess.run(self._argv(("cat-file", "blob", f"{tree}:{path}")), cwd=self.root,
                                    env=_environment(), capture_output=True, timeout=GIT_TIMEOUT,
                                    stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return result.stdout.decode("utf-8", "replace") if result.returncode == 0 else ""

    def worktrees(self) -> list[Worktree]:
        """Every worktree of the repository, the main one first (``git worktree list --porcelain``)."""
        found: list[Worktree] = []
        path: Path | None = None
        head = branch = None
        for line in [*self.git("worktree", "list", "--porcelain").splitlines(), ""]:
            if line.startswith("worktree "):
                path = Path(line.removeprefix("worktree "))
            elif line.startswith("HEAD "):
                head = line.removeprefix("HEAD ")
            elif line.startswith("branch "):
                branch = line.removeprefix("branch ")
            elif not line and path is not None:
                found.append(Worktree(path, head, branch))
                path, head, branch = None, None, None
        return found


def _environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in _SCRUBBED}
    env.setdefault("GIT_TERMINAL_PROMPT", "0")
    env["GIT_OPTIONAL_LOCKS"] = "0"
    env.update(extra or {})
    return env
