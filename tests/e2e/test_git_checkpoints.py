"""Every attempt's work as git facts, through the real ``coord`` CLI on real repositories the tests create: a
checkpoint commit per passed phase on ``coord/<plan>`` with trailers, the person's HEAD, index and branch never
moved, every attempt's tree kept as a ref, the files it changed in its evidence, ``coord diff``, and both
remediation bases."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import coord, db_rows, git, git_repository, write_plan

pytestmark = pytest.mark.slow


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository with one commit on ``main`` and an uncommitted change, as a person leaves it."""
    workspace = git_repository(tmp_path / "ws", ("README.md", "project\n"), (".gitignore", "*.log\n"))
    (workspace / "README.md").write_text("project, edited\n")  # uncommitted
    return workspace


def shell_phase(phase_id: str, *script: str, kind: str = "impl", **extra: Any) -> dict[str, Any]:
    return {"id": phase_id, "kind": kind, "title": f"{phase_id} work", "agent": "shell", "script": list(script),
            "checks": {"report": False, "completed": False}, **extra}


def evidence(workspace: Path, phase_id: str, number: int) -> dict[str, Any]:
    return json.loads((workspace / "tmp" / "PLAN-T" / phase_id / str(number) / "evidence.json").read_text())


def test_passed_phases_are_checkpoints_on_the_runs_branch_and_nothing_of_the_persons_moves(repo: Path) -> None:
    head, index = git(repo, "rev-parse", "HEAD"), git(repo, "ls-files", "--stage")
    plan = write_plan(repo, [shell_phase("P01", "mkdir -p src", "echo one > src/a.py"),
                             shell_phase("P02", "echo two >> src/a.py", "echo b > src/b.py", "echo x > build.log")])
    result = coord(repo, "run", str(plan), "--headless")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "git: checkpoints go to coord/PLAN-T" in result.stdout and "no hook runs" in result.stdout

    log = git(repo, "log", "--format=%s", "coord/PLAN-T").splitlines()
    assert log == ["coord: PLAN-T P02 impl: P02 work", "coord: PLAN-T P01 impl: P01 work",
                   "coord: PLAN-T before coord", "start"]
    trailers = git(repo, "log", "-1", "--format=%(trailers:only,unfold)", "coord/PLAN-T")
    attempt_id = db_rows(repo, "SELECT attempt_id FROM attempts WHERE phase_id='P02'")[0]["attempt_id"]
    assert trailers.splitlines() == ["Coord-Plan: PLAN-T", "Coord-Phase: P02", "Coord-Attempt: 1",
                                     f"Coord-Attempt-Id: {attempt_id}"]
    before = git(repo, "show", "coord/PLAN-T~2:README.md")
    assert before == "project, edited"  # the dirty tree became the "before coord" commit
    files = git(repo, "ls-tree", "-r", "--name-only", "coord/PLAN-T").splitlines()
    assert "src/b.py" in files and not any(name.startswith("tmp/") for name in files)  # coord's files never
    assert "build.log" not in files  # .gitignore holds
    assert git(repo, "rev-parse", "HEAD") == head and git(repo, "branch", "--show-current") == "main"
    assert git(repo, "ls-files", "--stage") == index  # the person's index is untouched

    found = evidence(repo, "P02", 1)["git"]
    assert found["checkpoint"] == git(repo, "rev-parse", "coord/PLAN-T")
    assert {item["path"] for item in found["files"]} == {"src/a.py", "src/b.py"}
    assert found["stat"] == "2 file(s) changed, +2 -0"
    diff = coord(repo, "diff", "P02")
    assert diff.returncode == 0 and "+two" in diff.stdout and "src/b.py" in diff.stdout

    again = coord(repo, "run", str(plan), "--headless")  # nothing to do: no new commit
    assert again.returncode == 0
    assert len(git(repo, "log", "--format=%H", "coord/PLAN-T").splitlines()) == 4


@pytest.mark.parametrize("base", ["attempt", "checkpoint"])
def test_a_failed_attempt_is_kept_as_a_ref_and_the_remediation_starts_from_the_chosen_base(repo: Path,
                                                                                            base: str) -> None:
    fail_first = 'if [ "$COORD_ATTEMPT" = 1 ]; then echo half > half.txt; exit 1; fi'
    plan = write_plan(repo, [shell_phase("P01", fail_first, "test -f half.txt && echo kept > seen.txt || true",
                                         policy={"remediation_base": base})])
    result = coord(repo, "run", str(plan), "--headless")
    assert result.returncode == 0, result.stdout + result.stderr
    failed = git(repo, "rev-parse", "refs/coord/PLAN-T/P01/1")
    assert git(repo, "show", f"{failed}:half.txt") == "half"  # the failed attempt's tree, kept
    assert evidence(repo, "P01", 1)["git"]["files"] == [{"path": "half.txt", "added": 1, "deleted": 0}]
    continued = (repo / "seen.txt").exists()
    assert continued == (base == "attempt")  # the default continues the work; `checkpoint` starts clean
    assert (repo / "half.txt").exists() == (base == "attempt")


def test_git_off_and_no_repository_run_without_checkpoints(tmp_path: Path, repo: Path) -> None:
    plan = write_plan(repo, [shell_phase("P01", "echo a > a.txt")], git=False)
    assert coord(repo, "run", str(plan), "--headless").returncode == 0
    assert subprocess.run(["git", "rev-parse", "--verify", "--quiet", "coord/PLAN-T"], cwd=repo).returncode != 0
    assert "git" not in evidence(repo, "P01", 1)
    plain = tmp_path / "plain"
    plain.mkdir()
    plan = write_plan(plain, [shell_phase("P01", "echo a > a.txt")])
    result = coord(plain, "run", str(plan), "--headless")
    assert result.returncode == 0 and "git:" not in result.stdout
    assert coord(plain, "diff", "P01").returncode == 2


@pytest.mark.parametrize("point", ["git.after_before_ref", "git.after_attempt_ref", "git.after_checkpoint",
                                   "finish.after_verdict_commit"])
def test_a_coordinator_killed_at_each_git_step_ends_with_one_checkpoint_per_phase(repo: Path, point: str) -> None:
    plan = write_plan(repo, [shell_phase("P01", "echo one > one.txt"), shell_phase("P02", "echo two > two.txt")])
    crashed = coord(repo, "run", str(plan), "--headless", env={"COORD_FAILPOINTS": f"{point}=kill"})
    assert crashed.returncode == -9, crashed.stdout + crashed.stderr
    again = coord(repo, "run", str(plan), "--headless")
    assert again.returncode == 0, again.stdout + again.stderr
    phases = git(repo, "log", "--format=%(trailers:key=Coord-Phase,valueonly)", "coord/PLAN-T").split()
    assert phases == ["P02", "P01"]  # no checkpoint lost, none made twice
    tree = git(repo, "ls-tree", "-r", "--name-only", "coord/PLAN-T").splitlines()
    assert {"one.txt", "two.txt"} <= set(tree)
    assert git(repo, "worktree", "list").count("\n") == 0  # no stray worktree


def test_a_worker_whose_word_and_work_disagree_is_flagged_in_its_evidence(repo: Path) -> None:
    claims = "printf 'Status: PASS\\nUpdated `README.md` and `src/new.py`.\\n' > \"$COORD_REPORT_PATH\""
    marker = "printf '# P01 completed\\n' > \"$COORD_COMPLETED_PATH\""
    plan = write_plan(repo, [
        {"id": "P01", "kind": "impl", "title": "claims", "agent": "shell",
         "script": ["mkdir -p reports .completed", claims, marker]},
        {"id": "P02", "kind": "impl", "title": "partly", "agent": "shell", "checks": {"completed": False},
         "script": ["mkdir -p src", "echo x > src/new.py", claims.replace("P01", "P02")]},
    ])
    assert coord(repo, "run", str(plan), "--headless").returncode == 0
    nothing = next(check for check in evidence(repo, "P01", 1)["checks"] if check["name"] == "changes")
    assert nothing["status"] == "warn" and nothing["detail"].endswith("an impl attempt that changed no file")
    partly = next(check for check in evidence(repo, "P02", 1)["checks"] if check["name"] == "changes")
    assert partly["status"] == "warn"
    assert partly["detail"].startswith("the report names files this attempt did not change: README.md; it changed")


def test_a_run_whose_state_was_deleted_sets_the_old_refs_aside_and_checkpoints_anew(repo: Path) -> None:
    import shutil

    from tests.helpers import store_file

    plan = write_plan(repo, [shell_phase("P01", "echo $RANDOM$RANDOM > run.txt")])
    assert coord(repo, "run", str(plan), "--headless").returncode == 0
    first = git(repo, "rev-parse", "refs/coord/PLAN-T/P01/1")
    shutil.rmtree(store_file(repo).parent)  # the state directory is gone; the repository keeps coord's refs
    again = coord(repo, "run", str(plan), "--headless")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "moved to refs/coord-stale/" in again.stdout
    assert git(repo, "rev-parse", "refs/coord/PLAN-T/P01/1") != first  # this run's attempt 1, not the old one
    stale = git(repo, "for-each-ref", "--format=%(objectname)", "refs/coord-stale/").split()
    assert first in stale
    phases = git(repo, "log", "--format=%(trailers:key=Coord-Phase,valueonly)", "coord/PLAN-T").split()
    assert phases == ["P01", "P01"]  # a new checkpoint, not the old one taken for it
    assert git(repo, "show", "coord/PLAN-T:run.txt") == (repo / "run.txt").read_text().strip()
