"""``git.worktrees`` and the merge steps of ``git.checkpoints`` on real repositories: a worktree per attempt on a
branch of its own, outside the workspace; two attempts' trees merged three-way into the working tree's, clean or
with the conflict's files and hunks; the same merge found after a crash; a worker that deletes its worktree's
``.git`` never pointing coord at another repository; and the clean-up that leaves nothing behind."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from coordinator.git.checkpoints import Checkpoints
from coordinator.git.worktrees import Worktrees
from tests.helpers import git, git_repository

WHEN = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def checkpoints(tmp_path: Path) -> Checkpoints:
    root = git_repository(tmp_path / "ws", ("shared.txt", "a\nb\nc\n"), (".gitignore", "*.o\n"))
    found = Checkpoints.open(root, tmp_path / "state", "PLAN-X")
    assert found is not None
    found.begin_run(WHEN)
    return found


def start_in_worktree(checkpoints: Checkpoints, worktrees: Worktrees, phase_id: str) -> Path:
    start = checkpoints.start_point(phase_id, None, "attempt")
    assert start is not None
    before = checkpoints.before_attempt(phase_id, 1, WHEN, start)
    return worktrees.create(phase_id, before).root


def end_in_worktree(checkpoints: Checkpoints, worktrees: Worktrees, phase_id: str) -> None:
    assert checkpoints.after_attempt(phase_id, 1, WHEN, worktrees.placement(phase_id).repo) is not None


def test_two_attempts_in_worktrees_merge_cleanly_then_conflict(checkpoints: Checkpoints, tmp_path: Path) -> None:
    workspace = checkpoints.repo.root
    worktrees = Worktrees(checkpoints.repo, "PLAN-X", tmp_path / "state", ".")
    first = start_in_worktree(checkpoints, worktrees, "P01")
    second = start_in_worktree(checkpoints, worktrees, "P02")
    assert first.parent == second.parent == tmp_path / "state" / "worktrees" / "PLAN-X"
    assert git(first, "branch", "--show-current") == "coord/PLAN-X--P01"
    (first / "shared.txt").write_text("a\nONE\nc\n")
    (first / "one.txt").write_text("1\n")
    (second / "shared.txt").write_text("a\nTWO\nc\n")
    end_in_worktree(checkpoints, worktrees, "P01")
    end_in_worktree(checkpoints, worktrees, "P02")

    merge = checkpoints.merge_attempt("P01", 1, WHEN)
    assert merge is not None and merge.conflicts == ()
    checkpoints.apply_merge(merge)
    assert (workspace / "shared.txt").read_text() == "a\nONE\nc\n" and (workspace / "one.txt").exists()
    assert checkpoints.merge_attempt("P01", 1, WHEN) == merge  # found again, never redone on a changed tree
    checkpoints.checkpoint("P01", 1, "one", "impl", "PASS", "ok", WHEN, merge.tree)

    conflict = checkpoints.merge_attempt("P02", 1, WHEN)
    assert conflict is not None and conflict.conflicts == ("shared.txt",)
    assert conflict.hunks.startswith("shared.txt:\n<<<<<<< refs/coord-tree/PLAN-X/P02/1\nONE\n=======\nTWO\n")
    assert (workspace / "shared.txt").read_text() == "a\nONE\nc\n"  # a conflict is never written in
    # Its remediation starts from the merge with the markers in, forked from the tree it conflicted with.
    start = checkpoints.start_point("P02", 1, "attempt")
    assert start is not None and start.fork == conflict.ours
    assert "<<<<<<<" in git(workspace, "show", f"{start.tree}:shared.txt")
    assert checkpoints.start_point("P02", 1, "checkpoint").tree == checkpoints.tree_of(checkpoints.tip() or "")


def test_a_failed_merge_is_undone_and_the_worktrees_are_removed(checkpoints: Checkpoints, tmp_path: Path) -> None:
    workspace = checkpoints.repo.root
    (workspace / "mine.txt").write_text("a person's edit during the run\n")
    worktrees = Worktrees(checkpoints.repo, "PLAN-X", tmp_path / "state", ".")
    root = start_in_worktree(checkpoints, worktrees, "P01")
    (root / "added.txt").write_text("new\n")
    (root / "shared.txt").unlink()
    end_in_worktree(checkpoints, worktrees, "P01")
    merge = checkpoints.merge_attempt("P01", 1, WHEN)
    assert merge is not None
    checkpoints.apply_merge(merge)
    assert (workspace / "added.txt").exists() and not (workspace / "shared.txt").exists()
    (workspace / "during.txt").write_text("written while the checks ran\n")
    assert checkpoints.undo_merge(merge, WHEN) == ()
    assert not (workspace / "added.txt").exists() and (workspace / "shared.txt").read_text() == "a\nb\nc\n"
    assert (workspace / "mine.txt").exists()  # a person's edit from before the merge stays
    assert (workspace / "during.txt").exists()  # and one since: only what the merge brought is taken back

    stray = worktrees.path("P09")
    stray.mkdir(parents=True)  # a crash in `git worktree add`
    assert worktrees.sweep(keep={"P05"}) == ["P01", "P09"]
    assert worktrees.owned() == [] and not root.exists() and not stray.exists()
    assert git(workspace, "branch", "--list", "coord/PLAN-X--*") == ""
    assert git(workspace, "worktree", "list", "--porcelain").count("worktree ") == 1


def test_a_worktree_whose_git_file_a_worker_deleted_is_never_taken_for_another_repository(
        checkpoints: Checkpoints, tmp_path: Path) -> None:
    worktrees = Worktrees(checkpoints.repo, "PLAN-X", tmp_path / "state", ".")
    outer = git_repository(tmp_path / "state", ("outer.txt", "someone else's\n"))  # a home folder under git
    placement = worktrees.create("P01", checkpoints.tip() or "")
    assert placement.repo.git_dir is not None  # named when it was made, before any worker ran
    (placement.root / "work.txt").write_text("done\n")
    (placement.root / ".git").unlink()
    tree = placement.repo.snapshot(checkpoints.exclude)  # still its own repository, not the one above
    names = git(checkpoints.repo.root, "ls-tree", "-r", "--name-only", tree).split()
    assert "work.txt" in names and "shared.txt" in names and "outer.txt" not in names
    assert git(outer, "status", "--porcelain") == "?? worktrees/"


def test_a_submodule_a_new_worktree_leaves_empty_keeps_its_commit(checkpoints: Checkpoints, tmp_path: Path) -> None:
    library = git_repository(tmp_path / "lib", ("lib.txt", "library\n"))
    workspace = checkpoints.repo.root
    git(workspace, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(library), "lib")
    git(workspace, "commit", "-q", "-m", "add lib")
    worktrees = Worktrees(checkpoints.repo, "PLAN-X", tmp_path / "state", ".")
    placement = worktrees.create("P01", git(workspace, "rev-parse", "HEAD"))
    assert not any((placement.root / "lib").iterdir())  # git checks submodules out only when asked
    tree = placement.repo.snapshot(checkpoints.exclude, checkpoints.tree_of(git(workspace, "rev-parse", "HEAD")))
    assert git(workspace, "ls-tree", tree, "lib").startswith("160000 commit ")  # not taken as deleted
