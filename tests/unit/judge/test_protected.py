"""Which files a phase's ``protected`` globs cover, and that hashing them never follows a link."""

from __future__ import annotations

from pathlib import Path

import pytest

from coordinator.judge.protected import changes, snapshot
from coordinator.paths import OutsideWorkspace


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for relative in ["tests/test_a.py", "tests/unit/test_b.py", "tests/unit/deep/test_c.py", "tests/.hidden.py",
                     "tests/data.json", "src/app.py", ".git/config", "tests/.git/HEAD"]:
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(relative)
    return tmp_path


@pytest.mark.parametrize("pattern, expected", [
    ("tests/*.py", ["tests/.hidden.py", "tests/test_a.py"]),
    ("tests/**/*.py", ["tests/.hidden.py", "tests/test_a.py", "tests/unit/deep/test_c.py", "tests/unit/test_b.py"]),
    ("tests/**", ["tests/.hidden.py", "tests/data.json", "tests/test_a.py", "tests/unit/deep/test_c.py",
                  "tests/unit/test_b.py"]),
    ("**/test_*.py", ["tests/test_a.py", "tests/unit/deep/test_c.py", "tests/unit/test_b.py"]),
    ("src/app.py", ["src/app.py"]),
    ("./src/app.py", ["src/app.py"]),
    ("missing/*.py", []),
    ("**/config", []),  # never under .git
])
def test_globs_select_the_files_a_person_expects(tree: Path, pattern: str, expected: list[str]) -> None:
    assert sorted(snapshot(tree, [pattern])) == expected


def test_a_change_an_addition_and_a_deletion_are_each_named(tree: Path) -> None:
    before = snapshot(tree, ["tests/**"])
    (tree / "tests/test_a.py").write_text("rewritten")
    (tree / "tests/unit/test_b.py").unlink()
    (tree / "tests/test_new.py").write_text("new")

    assert changes(before, snapshot(tree, ["tests/**"])) == [
        "tests/test_a.py (changed)", "tests/test_new.py (added)", "tests/unit/test_b.py (deleted)"]


def test_a_link_below_the_pattern_is_recorded_as_the_link_never_read(
        tree: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    outside = tmp_path_factory.mktemp("outside")
    (outside / "test_secret.py").write_text("secret")
    (tree / "tests/linked").symlink_to(outside)
    (tree / "tests/test_link.py").symlink_to(outside / "test_secret.py")

    hashes = snapshot(tree, ["tests/**"])

    assert hashes["tests/linked"] == f"symlink:{outside}"
    assert hashes["tests/test_link.py"] == f"symlink:{outside / 'test_secret.py'}"
    assert not any(path.startswith("tests/linked/") for path in hashes)


def test_a_fixed_folder_leading_out_of_the_workspace_cannot_be_checked(
        tree: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    outside = tmp_path_factory.mktemp("outside")
    (tree / "vendor").symlink_to(outside)
    (tree / "inner").symlink_to(tree / "src")

    with pytest.raises(OutsideWorkspace, match="resolves outside the workspace"):
        snapshot(tree, ["vendor/*.py"])
    assert sorted(snapshot(tree, ["inner/*.py"])) == ["inner/app.py"]  # a link that stays inside is followed
