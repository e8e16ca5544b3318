"""Plans found by fuzzing that `coord validate` once accepted and `coord run` then crashed on (exit 70, or an
attempt stuck in `launching`), or that hung or took seconds: each is now a clear problem, or fast."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from coordinator.prompts.validate import validate_checked_plan as validate_plan


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "plans").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def problems(workspace: Path, text: str) -> list[str]:
    path = workspace / "plans" / "P.yaml"
    path.write_text(text, encoding="utf-8")
    return [str(problem) for problem in validate_plan(path, workspace)]


PHASE = "phases:\n  - id: P01\n    kind: stub\n"


@pytest.mark.parametrize(("policy", "message"), [
    ("log_cap_mib: .inf", "policy.log_cap_mib: Input should be a finite number"),
    ("log_cap_mib: 1.0e+303", "policy.log_cap_mib: Input should be less than or equal to 1048576"),
    ("poll_interval: 1.0e+19", "policy.poll_interval: Input should be less than or equal to 2592000"),
    ("kill_grace: 1.0e+19", "policy.kill_grace: Input should be less than or equal to 2592000"),
])
def test_numbers_the_os_cannot_wait_for_are_plan_problems(workspace: Path, policy: str, message: str) -> None:
    [problem] = problems(workspace, f"plan: F\npolicy:\n  {policy}\n{PHASE}")
    assert problem.startswith("plans/P.yaml:3:") and message in problem


def test_a_verify_timeout_past_thirty_days_is_a_plan_problem(workspace: Path) -> None:
    [problem] = problems(workspace, "plan: F\n" + PHASE + "    verify: [{run: 'true', timeout: 1.0e+19}]\n")
    assert "phases[0].verify[0].timeout: Input should be less than or equal to 2592000" in problem


def test_a_lone_surrogate_in_text_is_a_plan_problem(workspace: Path) -> None:
    text = 'plan: F\nphases:\n  - id: P01\n    kind: stub\n    title: "a\\ud800b"\n    instructions: "\\udfff"\n'
    assert problems(workspace, text) == [
        "plans/P.yaml:5:12: phases[0].title: text holds an invalid character (lone surrogate U+D800 at position 1)",
        "plans/P.yaml:6:19: phases[0].instructions: text holds an invalid character (lone surrogate U+DFFF at "
        "position 0)",
    ]


def test_a_protected_pattern_with_a_partial_double_star_is_a_plan_problem(workspace: Path) -> None:
    [problem] = problems(workspace, "plan: F\n" + PHASE + "    protected: ['tests/a**']\n")
    assert "phases[0].protected[0]: pattern 'tests/a**': '**' must be a whole path component" in problem


@pytest.mark.parametrize("field", ["instructions_file", "workdir"])
def test_a_symlink_loop_in_a_plan_path_is_a_plan_problem(workspace: Path, field: str) -> None:
    (workspace / "loop").symlink_to(workspace / "loop")
    [problem] = problems(workspace, "plan: F\n" + PHASE + f"    {field}: loop/x\n")
    assert f"phases[0].{field}:" in problem and "symlink loop" in problem


def test_a_plan_path_that_is_a_fifo_is_refused_without_waiting(workspace: Path) -> None:
    fifo = workspace / "plans" / "F.yaml"
    os.mkfifo(fifo)
    assert [str(problem) for problem in validate_plan(fifo, workspace)] == [
        "plans/F.yaml: cannot read plan: not a regular file"]


def test_every_dependency_cycle_of_a_large_plan_is_reported_once(workspace: Path) -> None:
    lines = ["plan: F", "phases:"]
    for index in range(4000):  # 2,000 pairs that depend on each other
        partner = index + 1 if index % 2 == 0 else index - 1
        lines += [f"  - id: P{index:04d}", "    kind: stub", f"    depends_on: [P{partner:04d}]"]
    found = problems(workspace, "\n".join(lines) + "\n")
    assert len(found) == 2000
    assert found[0] == "plans/P.yaml:5:18: phases[0].depends_on[0]: dependency cycle: P0000 → P0001 → P0000 (each " \
        "depends on the next)"
