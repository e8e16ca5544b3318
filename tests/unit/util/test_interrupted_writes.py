"""The sweep of temporary files that killed writers left behind (``util.files.remove_interrupted_writes``)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from coordinator.paths import OutsideWorkspace
from coordinator.util.files import remove_interrupted_writes, write_atomic


def test_only_the_leftovers_of_dead_writers_are_removed(tmp_path: Path) -> None:
    folder = tmp_path / "tmp/PLAN/P01/1"
    write_atomic(folder / "evidence.json", "{}")
    ended = subprocess.Popen(["true"])
    ended.wait()
    leftovers = [folder / ".evidence.json.0123456789ab.tmp", folder / f".tmp-exit.json-{ended.pid}-12345"]
    in_flight = folder / f".tmp-exit.json-{os.getpid()}-12345"  # a live supervisor's write: not ours to delete
    lookalikes = [folder / "notes.tmp", folder / ".evidence.json.short.tmp"]
    for path in [*leftovers, in_flight, *lookalikes]:
        path.write_text("torn")

    removed = remove_interrupted_writes(tmp_path / "tmp/PLAN", inside=tmp_path)

    assert sorted(removed) == sorted(leftovers)
    assert [path for path in leftovers if path.exists()] == []
    assert in_flight.exists() and all(path.exists() for path in lookalikes)
    assert (folder / "evidence.json").read_text() == "{}"


def test_a_folder_linked_out_of_the_workspace_is_not_followed(tmp_path: Path) -> None:
    workspace, elsewhere = tmp_path / "ws", tmp_path / "elsewhere"
    (workspace / "tmp/PLAN").mkdir(parents=True)
    elsewhere.mkdir()
    victim = elsewhere / ".precious.0123456789ab.tmp"
    victim.write_text("not coord's")
    (workspace / "tmp/PLAN/P01").symlink_to(elsewhere)

    assert remove_interrupted_writes(workspace / "tmp/PLAN", inside=workspace) == []
    assert victim.exists()

    (workspace / "tmp/PLAN").rename(workspace / "tmp/moved")
    (workspace / "tmp/PLAN").symlink_to(elsewhere)
    with pytest.raises(OutsideWorkspace):
        remove_interrupted_writes(workspace / "tmp/PLAN", inside=workspace)
    assert victim.exists()


def test_a_missing_folder_is_nothing_to_do(tmp_path: Path) -> None:
    assert remove_interrupted_writes(tmp_path / "absent") == []
