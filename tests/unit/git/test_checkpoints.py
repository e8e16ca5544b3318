"""``git.checkpoints`` on real repositories: snapshots that leave the person's index alone, the same commit when a
step is redone after a crash, a checkpoint found instead of made twice, and a restore that removes what the
failed attempt added while keeping ignored files and coord's ``tmp/``."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from coordinator.git.checkpoints import Checkpoints
from coordinator.git.repo import GitError, Repo
from tests.helpers import git, git_repository

WHEN = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = git_repository(tmp_path / "ws", ("kept.txt", "kept\n"), (".gitignore", "*.o\n"))
    (root / "tmp").mkdir()
    (root / "tmp" / "attempt.log").write_text("coord's own\n")
    return root


def open_checkpoints(workspace: Path, tmp_path: Path) -> Checkpoints:
    found = Checkpoints.open(workspace, tmp_path / "state", "PLAN-X")
    assert found is not None
    return found


def test_an_attempt_is_recorded_once_and_its_checkpoint_never_twice(workspace: Path, tmp_path: Path) -> None:
    checkpoints = open_checkpoints(workspace, tmp_path)
    start = checkpoints.begin_run(WHEN)
    assert checkpoints.begin_run(WHEN) == start
    before = checkpoints.before_attempt("P01", 1, WHEN)
    (workspace / "new.py").write_text("print(1)\n")
    (workspace / "obj.o").write_text("ignored\n")
    changes = checkpoints.after_attempt("P01", 1, WHEN)
    assert changes is not None and changes.before == before
    assert [(change.path, change.added) for change in changes.files] == [("new.py", 1)]
    (workspace / "later.py").write_text("after the attempt ended\n")
    again = checkpoints.after_attempt("P01", 1, WHEN)  # judged again after a crash: the first tree stays
    assert again is not None and again.after == changes.after
    first = checkpoints.checkpoint("P01", 1, "title", "impl", "PASS", "all checks passed", WHEN)
    assert checkpoints.checkpoint("P01", 1, "title", "impl", "PASS", "all checks passed", WHEN) == first
    assert git(workspace, "rev-list", "--count", "coord/PLAN-X") == "3"  # start, before coord, P01
    assert git(workspace, "status", "--porcelain").splitlines() == ["?? later.py", "?? new.py", "?? tmp/"]


def test_restore_puts_the_checkpoint_back_and_keeps_ignored_files_and_tmp(workspace: Path, tmp_path: Path) -> None:
    checkpoints = open_checkpoints(workspace, tmp_path)
    checkpoints.begin_run(WHEN)
    (workspace / "kept.txt").write_text("broken by a failed attempt\n")
    (workspace / "stray.py").write_text("half done\n")
    (workspace / "cache.o").write_text("ignored\n")
    checkpoints.restore_checkpoint()
    assert (workspace / "kept.txt").read_text() == "kept\n"
    assert not (workspace / "stray.py").exists()
    assert (workspace / "cache.o").exists() and (workspace / "tmp" / "attempt.log").exists()


def test_outside_a_repository_there_are_no_checkpoints(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    assert Checkpoints.open(plain, tmp_path / "state", "PLAN-X") is None
    repo = Repo(plain, tmp_path / "index")
    with pytest.raises(GitError, match="exited 128"):
        repo.git("rev-parse", "HEAD")
