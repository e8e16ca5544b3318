"""Phases that run at the same time, each in a git worktree of its own, through the real ``coord`` CLI on real
repositories the tests create: merged back in plan order, verification on the merged tree, a merge conflict judged
and resolved by the remediation in its worktree, ``coord status`` listing the run's worktrees, none left after,
and a coordinator SIGKILLed at every step of a merge restarted into the same final state."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import (
    FIXTURES_DIR,
    coord,
    git,
    git_repository,
    start_coord,
    status,
    status_if_recorded,
    wait_until,
    write_plan,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return git_repository(tmp_path / "ws", ("README.md", "project\n"), (".gitignore", "*.log\n"))


def shell_phase(phase_id: str, *script: str, **extra: Any) -> dict[str, Any]:
    return {"id": phase_id, "kind": "impl", "title": f"{phase_id} work", "agent": "shell", "script": list(script),
            "checks": {"report": False, "completed": False}, **extra}


def evidence(workspace: Path, phase_id: str, number: int) -> dict[str, Any]:
    return json.loads((workspace / "tmp" / "PLAN-T" / phase_id / str(number) / "evidence.json").read_text())


def checkpointed_phases(repo: Path) -> list[str]:
    """The phases of the run branch's checkpoints, oldest first."""
    return git(repo, "log", "--reverse", "--format=%(trailers:key=Coord-Phase,valueonly)", "coord/PLAN-T").split()


def no_worktrees_left(repo: Path) -> None:
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert git(repo, "branch", "--list", "coord/PLAN-T--*") == ""


def test_parallel_phases_work_in_their_own_worktrees_and_merge_in_plan_order(repo: Path) -> None:
    plan = write_plan(repo, [
        # P01 ends last but merges first; P02's verification sees P01's file: it runs on the merged tree.
        shell_phase("P01", "sleep 1.5", "pwd > where-P01.txt", "echo one > one.txt"),
        shell_phase("P02", "pwd > where-P02.txt", "test ! -e one.txt", "echo two > two.txt",
                    verify=["test -f one.txt", "test -f two.txt"], depends_on=[]),
        shell_phase("P03", "cat one.txt two.txt > both.txt", depends_on=["P01", "P02"]),
    ])
    result = coord(repo, "run", str(plan), "--headless", "--max-parallel", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "each attempt works in a worktree of its own" in result.stdout
    assert "same workdir" not in result.stdout  # the no-git warning is not given: worktrees keep them apart

    assert checkpointed_phases(repo) == ["P01", "P02", "P03"]
    assert (repo / "both.txt").read_text() == "one\ntwo\n"  # the workspace holds every phase's work
    for phase_id in ("P01", "P02"):
        where = Path((repo / f"where-{phase_id}.txt").read_text().strip())
        assert where.name == phase_id and where != repo and not where.is_relative_to(repo)
    merge = evidence(repo, "P02", 1)["git"]["merge"]
    assert merge["conflicts"] == [] and git(repo, "rev-parse", "refs/coord-merge/PLAN-T/P02/1") == merge["merged"]
    assert [item["path"] for item in evidence(repo, "P02", 1)["git"]["files"]] == ["two.txt", "where-P02.txt"]
    no_worktrees_left(repo)


def test_a_merge_conflict_fails_the_later_phase_and_its_remediation_resolves_it(repo: Path) -> None:
    resolve = ("if grep -q '^<<<<<<< ' shared.txt; then printf 'one\\ntwo\\n' > shared.txt; "
               "else echo two > shared.txt; fi")
    plan = write_plan(repo, [
        shell_phase("P01", "sleep 1", "echo one > shared.txt"),
        shell_phase("P02", resolve, verify=["grep -qx two shared.txt"], depends_on=[]),
    ])
    result = coord(repo, "run", str(plan), "--headless", "--max-parallel", "2")
    assert result.returncode == 0, result.stdout + result.stderr

    failed = evidence(repo, "P02", 1)
    assert not failed["passed"] and failed["reason"].startswith("merge conflict")
    assert "shared.txt" in failed["reason"]
    check = next(item for item in failed["checks"] if item["name"] == "merge")
    assert "<<<<<<< refs/coord-tree/PLAN-T/P02/1" in check["output_tail"] and "two" in check["output_tail"]
    assert failed["git"]["merge"]["conflicts"] == ["shared.txt"]
    # The remediation's prompt shows the conflict (a shell phase's prompt is what a model worker would get).
    prompt = (repo / "tmp" / "PLAN-T" / "P02" / "2" / "prompt.md").read_text()
    assert "merge conflict" in prompt and "<<<<<<< refs/coord-tree/PLAN-T/P02/1" in prompt

    assert evidence(repo, "P02", 2)["passed"]
    assert (repo / "shared.txt").read_text() == "one\ntwo\n"
    assert checkpointed_phases(repo) == ["P01", "P02"]
    assert git(repo, "show", "coord/PLAN-T:shared.txt") == "one\ntwo"
    no_worktrees_left(repo)


def test_a_failed_verification_on_the_merged_tree_puts_the_workspace_back(repo: Path) -> None:
    plan = write_plan(repo, [shell_phase("P01", "echo $COORD_ATTEMPT > attempt.txt", "echo x >> README.md",
                                         'pwd > "where-$COORD_ATTEMPT.txt"', verify=["grep -qx 2 attempt.txt"])])
    result = coord(repo, "run", str(plan), "--headless", "--max-parallel", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    first = evidence(repo, "P01", 1)
    assert not first["passed"] and first["git"]["merge"]["conflicts"] == []
    # The remediation continued from the failed attempt's merged tree, and its work is what landed.
    assert (repo / "attempt.txt").read_text() == "2\n"
    assert (repo / "README.md").read_text() == "project\nx\nx\n"
    # A new worktree at the phase's one path: an agent that finds its session by folder resumes it there.
    assert (repo / "where-1.txt").read_text() == (repo / "where-2.txt").read_text()
    assert checkpointed_phases(repo) == ["P01"]
    no_worktrees_left(repo)


def test_coord_status_lists_the_worktrees_a_run_owns(repo: Path) -> None:
    plan = write_plan(repo, [shell_phase("P01", "while [ ! -e go ]; do sleep 0.1; done"),
                             shell_phase("P02", "echo two > two.txt", depends_on=[])])
    running = start_coord(repo, "run", str(plan), "--headless", "--max-parallel", "2")
    try:
        def listed() -> str | None:  # P02 has ended, and waits for P01 (earlier in the plan) to merge first
            out = coord(repo, "status").stdout
            return out if "worktree of P02 attempt 1 (checking)" in out else None
        table = str(wait_until(listed, timeout=30))
        assert "worktree of P01 attempt 1 (running)" in table and "on coord/PLAN-T--P01" in table
        found = json.loads(coord(repo, "status", "--json").stdout)["worktrees"]
        assert [(item["phase"], item["attempt"], item["attempt_state"]) for item in found] == [
            ("P01", 1, "running"), ("P02", 1, "checking")]
        assert not (repo / "two.txt").exists()
        (Path(found[0]["path"]) / "go").write_text("")
        assert running.wait(timeout=60) == 0
    finally:
        if running.poll() is None:
            running.kill()
    assert json.loads(coord(repo, "status", "--json").stdout)["worktrees"] == []
    no_worktrees_left(repo)


@pytest.mark.parametrize("point", ["git.after_worktree", "git.after_attempt_ref", "git.after_merge_ref",
                                   "git.after_merge_applied", "git.after_merge_undone", "git.after_checkpoint",
                                   "finish.after_verdict_commit"])
def test_a_coordinator_killed_at_each_merge_step_ends_in_the_same_state(repo: Path, point: str) -> None:
    plan = write_plan(repo, [
        shell_phase("P01", "echo $COORD_ATTEMPT > one.txt", verify=["grep -qx 2 one.txt"]),
        shell_phase("P02", "sleep 0.5", "echo two > two.txt", depends_on=[]),
    ])
    crashed = coord(repo, "run", str(plan), "--headless", "--max-parallel", "2",
                    env={"COORD_FAILPOINTS": f"{point}=kill"})
    assert crashed.returncode == -9, crashed.stdout + crashed.stderr
    time.sleep(0.5)
    again = coord(repo, "run", str(plan), "--headless", "--max-parallel", "2")
    assert again.returncode == 0, crashed.stdout + "-- restarted --\n" + again.stdout + again.stderr
    assert sorted(checkpointed_phases(repo)) == ["P01", "P02"]  # none lost, none twice
    assert (repo / "one.txt").read_text() == "2\n" and (repo / "two.txt").read_text() == "two\n"
    assert {"one.txt", "two.txt"} <= set(git(repo, "ls-tree", "-r", "--name-only", "coord/PLAN-T").split())
    no_worktrees_left(repo)


def test_a_workspace_inside_a_larger_repository_gets_its_counterpart_in_each_worktree(tmp_path: Path) -> None:
    outer = git_repository(tmp_path / "mono", ("other/keep.txt", "not ours\n"), ("app/README.md", "app\n"))
    workspace = outer / "app"
    plan = write_plan(workspace, [
        shell_phase("P01", "pwd > where-P01.txt", "echo one > one.txt"),
        shell_phase("P02", "echo two > two.txt", "echo edited > ../other/keep.txt", depends_on=[]),
    ])
    result = coord(workspace, "run", str(plan), "--headless", "--max-parallel", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    where = Path((workspace / "where-P01.txt").read_text().strip())
    assert where.name == "app" and where.parent.name == "P01"
    assert (workspace / "one.txt").exists() and (workspace / "two.txt").exists()
    # Files are named relative to the workspace, like the rest of the evidence (the report's claims among them).
    assert [item["path"] for item in evidence(workspace, "P01", 1)["git"]["files"]] == ["one.txt", "where-P01.txt"]
    assert (outer / "other" / "keep.txt").read_text() == "edited\n"  # the repository outside it merges too
    no_worktrees_left(outer)


def test_an_mcp_phase_in_a_worktree_writes_its_report_there_and_its_work_is_merged(repo: Path) -> None:
    server = {"command": ["{{ coord.python }}", str(FIXTURES_DIR / "mcp_server.py")]}
    plan = write_plan(repo, [
        {"id": "P01", "kind": "impl", "title": "note", "agent": "mcp",
         "mcp": {"server": "notes", "tool": "write_note", "arguments": {"path": "notes/P01.md", "text": "hello"}},
         "verify": ["grep -qx hello notes/P01.md"]},
        shell_phase("P02", "echo two > two.txt", depends_on=[]),
    ], mcp_servers={"notes": server}, policy={"timeout": "20s"})
    result = coord(repo, "run", str(plan), "--headless", "--max-parallel", "2", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (repo / "notes" / "P01.md").read_text().strip() == "hello"
    assert (repo / "reports" / "P01-worker.md").read_text().startswith("Status: PASS")
    assert checkpointed_phases(repo) == ["P01", "P02"]


def test_a_remediation_never_passes_on_the_failed_attempts_report_and_marker(repo: Path) -> None:
    writes_evidence = ('if [ "$COORD_ATTEMPT" = 1 ]; then mkdir -p reports .completed; '
                       'printf "Status: PASS\\n" > "$COORD_REPORT_PATH"; '
                       'printf "# P01 completed\\n" > "$COORD_COMPLETED_PATH"; fi')
    plan = write_plan(repo, [{"id": "P01", "kind": "impl", "title": "evidence once", "agent": "shell",
                              "script": [writes_evidence, "echo $COORD_ATTEMPT > n.txt"],
                              "verify": ["grep -qx 2 n.txt"]}])
    result = coord(repo, "run", str(plan), "--headless", "--max-parallel", "2")
    assert result.returncode == 1, result.stdout + result.stderr
    second = evidence(repo, "P01", 2)
    report = next(item for item in second["checks"] if item["name"] == "report")
    assert report["status"] == "fail" and "left from before this attempt" in report["detail"]


def test_a_lost_attempts_work_is_kept_and_its_remediation_continues_it(repo: Path) -> None:
    plan = write_plan(repo, [shell_phase(
        "P01", 'if [ "$COORD_ATTEMPT" = 1 ]; then echo half > half.txt; sleep 60; fi', "test -f half.txt")])
    first = start_coord(repo, "run", str(plan), "--max-parallel", "2")
    identity = repo / "tmp/PLAN-T/P01/1/identity.json"
    wait_until(lambda: identity.exists() and (Path(status(repo)["worktrees"][0]["path"]) / "half.txt").exists())
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    os.killpg(json.loads(identity.read_text())["supervisor_pid"], signal.SIGKILL)  # the worker is lost with it
    second = coord(repo, "run", str(plan), "--headless", "--max-parallel", "2")
    assert second.returncode == 0, second.stdout + second.stderr
    assert git(repo, "show", "refs/coord/PLAN-T/P01/1:half.txt") == "half"  # taken before its worktree went
    assert (repo / "half.txt").read_text() == "half\n" and checkpointed_phases(repo) == ["P01"]
    no_worktrees_left(repo)


def test_a_person_stops_an_attempt_waiting_to_merge_and_it_is_never_merged(repo: Path) -> None:
    plan = write_plan(repo, [shell_phase("P01", "while [ ! -e go ]; do sleep 0.1; done"),
                             shell_phase("P02", "echo two > two.txt", depends_on=[])],
                      policy={"max_attempts": 1})
    running = start_coord(repo, "run", str(plan), "--headless", "--max-parallel", "2")
    try:
        wait_until(lambda: any(item["phase"] == "P02" and item["attempt_state"] == "checking"
                               for item in (status_if_recorded(repo) or {"worktrees": []})["worktrees"]), timeout=30)
        stopped = coord(repo, "stop", "P02")
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        wait_until(lambda: status(repo)["phases"][1]["state"] != "running", timeout=30)
        (Path(status(repo)["worktrees"][0]["path"]) / "go").write_text("")
        running.wait(timeout=60)
    finally:
        if running.poll() is None:
            running.kill()
    assert not (repo / "two.txt").exists()
    assert "while it waited to be merged" in evidence(repo, "P02", 1)["reason"]
    assert checkpointed_phases(repo) == ["P01"]
    no_worktrees_left(repo)
