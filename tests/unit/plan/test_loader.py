"""The plan loader as a user meets it: real plan files and the exact problem lines ``coord validate`` prints.

Each bad plan is a real file in a temporary workspace; the assertions are the full ``file:line:column: field:
message`` strings.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from coordinator.errors import ExitStatus, PlanError
from coordinator.plan.model import AgentProfile, Policy, VerifyCommand
from coordinator.prompts.validate import load_checked_plan as load_plan
from coordinator.prompts.validate import validate_checked_plan as validate_plan
from coordinator.util.timefmt import parse_duration

PLAN = Path("plans/P.yaml")


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Return an empty workspace that is also the current directory, as when a user runs ``coord`` there."""
    (tmp_path / "plans").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(workspace: Path, text: str | bytes, name: Path = PLAN) -> Path:
    target = workspace / name
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        target.write_bytes(text)
    else:
        target.write_text(text, encoding="utf-8")
    return name


def problems(workspace: Path, text: str | bytes) -> list[str]:
    return [str(problem) for problem in validate_plan(write(workspace, text), workspace)]


# --------------------------------------------------------------------------------------------------------------
# A valid plan


VALID = """\
plan: PLAN-20251018-STATELESSPROVIDER2
title: Stateless provider refactor
agents:
  codex-mini: {base: codex, model: gpt-5.1-codex-mini, sandbox: workspace-write, config: ["a=b"], env: {X: "1"}}
policy:
  poll_interval: 5m
  max_attempts: 2
  kill_grace: 10s
artifacts:
  report: project-plans/x/reports/{{ phase.id }}-worker.md
  completed: project-plans/x/.completed/{{ phase.id }}.md
phases:
  - id: P0.5
    kind: stub
    instructions: Create the skeleton.
    verify:
      - run: npm test -- --run openai.stateless.stub
        timeout: 1.5m
  - id: P02a-V
    kind: test
    instructions_file: plan/02.md
    verify:
      - "npm test"
      - run: npm test -- --run x
        expect: fail
        timeout: 250ms
    policy: {max_cycles: 12, poll_interval: 30}
    checks: {report: false}
  - id: P07a
    kind: impl
    title: OpenAI/Responses provider
    depends_on: []
    agent: codex-mini
  - id: P08
    kind: verify
    agent: shell
    script: "make build && make test"
    depends_on: [P0.5, P07a]
    workdir: sub
"""


def test_valid_plan_loads_with_defaults_merged_and_durations_parsed(workspace: Path) -> None:
    (workspace / "plan").mkdir()
    (workspace / "plan" / "02.md").write_text("Write the failing tests.\n", encoding="utf-8")
    (workspace / "sub").mkdir()

    plan = load_plan(write(workspace, VALID), workspace)

    assert plan.id == "PLAN-20251018-STATELESSPROVIDER2"
    assert plan.path == "plans/P.yaml"
    assert plan.workspace == str(workspace.resolve())
    assert [phase.id for phase in plan.phases] == ["P0.5", "P02a-V", "P07a", "P08"]
    first, second, third, fourth = plan.phases
    # depends_on: none for the first phase, the previous phase by default, [] means none, explicit lists kept.
    assert first.depends_on == ()
    assert second.depends_on == ("P0.5",)
    assert third.depends_on == ()
    assert fourth.depends_on == ("P0.5", "P07a")
    # The plan policy applies everywhere; a phase overrides field by field.
    assert plan.policy == Policy(poll_interval=300.0, max_attempts=2, kill_grace=10.0)
    assert first.policy == plan.policy
    assert second.policy == Policy(poll_interval=30.0, max_cycles=12, max_attempts=2, kill_grace=10.0)
    assert second.checks.report is False and second.checks.verify is True
    assert first.verify == (VerifyCommand(run="npm test -- --run openai.stateless.stub", timeout=90.0),)
    assert second.verify == (
        VerifyCommand(run="npm test"),
        VerifyCommand(run="npm test -- --run x", expect="fail", timeout=0.25),
    )
    assert second.instructions == "Write the failing tests.\n"
    assert second.instructions_file == "plan/02.md"
    assert (first.title, third.title) == ("P0.5", "OpenAI/Responses provider")
    assert [phase.index for phase in plan.phases] == [0, 1, 2, 3]
    assert (first.agent, third.agent, fourth.agent) == ("codex", "codex-mini", "shell")
    assert fourth.script == ("make build && make test",)
    assert (first.workdir, fourth.workdir) == (".", "sub")
    assert set(plan.agents) == {"codex", "claude", "shell", "mcp", "codex-mini"}
    assert plan.agents["claude"] == AgentProfile(name="claude", base="claude")
    assert plan.agents["codex-mini"] == AgentProfile(
        name="codex-mini",
        base="codex",
        model="gpt-5.1-codex-mini",
        sandbox="workspace-write",
        config=("a=b",),
        env=(("X", "1"),),
    )


def test_minimal_plan_gets_documented_defaults(workspace: Path) -> None:
    plan = load_plan(write(workspace, "plan: X\nphases:\n  - {id: P01, kind: impl}\n"), workspace)

    assert (plan.title, plan.agent, plan.workdir) == ("X", "codex", ".")
    assert plan.policy == Policy()
    assert plan.phases[0].policy == Policy(poll_interval=300.0, max_cycles=6, max_attempts=3, kill_grace=10.0)
    assert plan.artifacts.report == "reports/{{ phase.id }}-worker.md"


def test_absolute_plan_path_inside_the_workspace_is_reported_relative(workspace: Path) -> None:
    write(workspace, "plan: X\nphases:\n  - {id: P01, kind: impl, dependz: []}\n")

    found = [str(p) for p in validate_plan(workspace / PLAN, workspace)]

    assert found == ["plans/P.yaml:3:27: phases[0]: unknown key 'dependz' (did you mean 'depends_on'?)"]


def test_a_plan_in_another_workspace_may_be_named_relative_to_it(tmp_path: Path) -> None:
    write(tmp_path, "plan: X\nphases:\n  - {id: P01, kind: impl}\n")

    assert load_plan(PLAN, tmp_path).phases[0].id == "P01"


# --------------------------------------------------------------------------------------------------------------
# YAML-level problems


def test_E2_unknown_key_names_the_phase_and_suggests_the_right_key(workspace: Path) -> None:
    text = """\
plan: X
phases:
  - id: P01
    kind: stub
  - id: P02
    kind: impl
  - id: P03
    kind: impl
    dependz: [P01]
"""
    assert problems(workspace, text) == [
        "plans/P.yaml:9:5: phases[2]: unknown key 'dependz' (did you mean 'depends_on'?)"
    ]


def test_unknown_top_level_key_without_a_close_match_lists_the_known_keys(workspace: Path) -> None:
    found = problems(workspace, "plan: X\nzzz: 1\nphases:\n  - {id: P01, kind: impl}\n")

    assert found == [
        "plans/P.yaml:2:1: unknown key 'zzz' (expected one of: agent, agents, artifacts, budget, checks, git, "
        "mcp_servers, notify, phases, plan, policy, prices, title, workdir)"
    ]


def test_E3_duplicate_mapping_key_is_reported_with_the_first_line(workspace: Path) -> None:
    text = "plan: X\nphases:\n  - id: P01\n    id: P02\n    kind: stub\n"

    assert problems(workspace, text) == ["plans/P.yaml:4:5: phases[0]: duplicate key 'id' (first at line 3)"]


def test_yaml_anchors_and_aliases_are_refused(workspace: Path) -> None:
    text = "plan: X\npolicy: &p {max_cycles: 3}\nphases:\n  - id: P01\n    kind: stub\n    policy: *p\n"

    assert problems(workspace, text) == [
        "plans/P.yaml:2:9: YAML anchors are not allowed",
        "plans/P.yaml:6:13: YAML aliases are not allowed",
    ]


def test_E11_alias_bomb_is_refused_quickly(workspace: Path) -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    started = time.monotonic()

    found = problems(workspace, "\n".join(lines) + "\n")

    assert time.monotonic() - started < 1.0
    assert "plans/P.yaml:2:8: YAML aliases are not allowed (72 found)" in found
    assert "plans/P.yaml:1:4: YAML anchors are not allowed (9 found)" in found


def test_E1_yaml_syntax_error_has_the_parser_position(workspace: Path) -> None:
    found = problems(workspace, "plan: X\nphases: [\n  {id: P01, kind: stub}\n")

    assert len(found) == 1
    assert found[0].startswith("plans/P.yaml:4:1: expected ',' or ']'")


def test_tab_indentation_is_a_syntax_error_with_position(workspace: Path) -> None:
    found = problems(workspace, "plan: X\nphases:\n\t- id: P01\n")

    assert len(found) == 1
    assert found[0].startswith("plans/P.yaml:3:1: found character '\\t' that cannot start any token")


def test_E10_python_tags_are_refused_and_nothing_runs(workspace: Path) -> None:
    canary = workspace / "PWNED"
    text = f'plan: !!python/object/apply:os.system ["touch {canary}"]\nphases:\n  - {{id: P01, kind: stub}}\n'

    assert problems(workspace, text) == ["plans/P.yaml:1:7: unsupported YAML tag '!!python/object/apply:os.system'"]
    assert not canary.exists()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "plans/P.yaml: plan is empty"),
        (b"# only a comment\n\n", "plans/P.yaml: plan is empty"),
        (b"   \n", "plans/P.yaml: plan is empty"),
        (b'plan: X\ntitle: "ab\xffc"\n', "plans/P.yaml: not UTF-8 (byte 0xff at offset 18)"),
        (b"\xff\xfep\x00l\x00", "plans/P.yaml: not UTF-8 (byte 0xff at offset 0)"),
        (b"- a\n- b\n", "plans/P.yaml:1:1: plan must be a mapping (plan, title, phases, ...), got a list"),
        (b"just text\n", "plans/P.yaml:1:1: plan must be a mapping (plan, title, phases, ...), got 'just text'"),
        (b"plan: X\x00\n", "plans/P.yaml:1:8: control character #x0000 is not allowed"),
    ],
)
def test_E13_unusable_files(workspace: Path, content: bytes, expected: str) -> None:
    assert problems(workspace, content) == [expected]


def test_utf8_bom_is_accepted(workspace: Path) -> None:
    plan = load_plan(write(workspace, "\ufeffplan: X\nphases:\n  - {id: P01, kind: impl}\n"), workspace)

    assert plan.id == "X"


def test_plan_over_one_mebibyte_is_refused(workspace: Path) -> None:
    text = "plan: X\nphases:\n  - {id: P01, kind: impl}\n" + "# padding\n" * 110_000

    assert problems(workspace, text) == ["plans/P.yaml: plan exceeds 1 MiB"]


def test_missing_plan_file(workspace: Path) -> None:
    found = [str(p) for p in validate_plan(Path("plans/nope.yaml"), workspace)]

    assert found == ["plans/nope.yaml: cannot read plan: no such file"]


def test_dates_stay_strings(workspace: Path) -> None:
    plan = load_plan(write(workspace, "plan: X\ntitle: 2025-10-18\nphases:\n  - {id: P01, kind: impl}\n"), workspace)

    assert plan.title == "2025-10-18"


# --------------------------------------------------------------------------------------------------------------
# Schema: types and ranges


def test_E12_wrong_types_and_ranges_are_all_reported_with_field_paths(workspace: Path) -> None:
    text = """\
plan: X
policy:
  max_attempts: 0
  poll_interval: -5
  kill_grace: 5 minutes
  remediation: later
phases:
  - id: P01
    kind: stub
    title: 5
    verify:
      - run: pytest -q
        expect: ok
        timeout: true
  - id: P02
    kind: impl
    verify: {run: x}
    policy: {max_cycles: 1.5}
"""
    assert problems(workspace, text) == [
        "plans/P.yaml:3:17: policy.max_attempts: must be at least 1, got 0",
        "plans/P.yaml:4:18: policy.poll_interval: duration must not be negative, got -5",
        "plans/P.yaml:5:15: policy.kill_grace: expected a duration such as 300, '10s', '5m', '1h' or '250ms', "
        "got '5 minutes'",
        "plans/P.yaml:6:16: policy.remediation: must be one of 'fresh' or 'resume', got 'later'",
        "plans/P.yaml:10:12: phases[0].title: expected a string, got 5 (put it in quotes)",
        "plans/P.yaml:13:17: phases[0].verify[0].expect: must be one of 'pass', 'fail' or 'no-output', got 'ok'",
        "plans/P.yaml:14:18: phases[0].verify[0].timeout: expected a duration such as 300, '10s', '5m', '1h' or "
        "'250ms', got True",
        "plans/P.yaml:17:13: phases[1].verify: expected a list, got a mapping",
        "plans/P.yaml:18:26: phases[1].policy.max_cycles: expected a whole number, got 1.5",
    ]


def test_missing_required_keys(workspace: Path) -> None:
    text = "title: no id\nphases:\n  - kind: stub\n  - id: P02\n"

    assert problems(workspace, text) == [
        "plans/P.yaml:1:1: missing required key 'plan'",
        "plans/P.yaml:3:5: phases[0]: missing required key 'id'",
        "plans/P.yaml:4:5: phases[1]: missing required key 'kind'",
    ]


def test_empty_phase_list(workspace: Path) -> None:
    assert problems(workspace, "plan: X\nphases: []\n") == [
        "plans/P.yaml:2:9: phases: must not be empty (at least 1 item)"
    ]


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (300, 300.0),
        (0.2, 0.2),
        ("5m", 300.0),
        ("10s", 10.0),
        ("1h", 3600.0),
        ("2h", 7200.0),
        ("1.5m", 90.0),
        ("250ms", 0.25),
        ("1h30m", 5400.0),
        (" 45 ", 45.0),
        ("0", 0.0),
    ],
)
def test_parse_duration_accepts(value: object, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["", "5 minutes", "-5m", "m", "5x", True, None, -1, float("nan"), [5]])
def test_parse_duration_rejects(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


# --------------------------------------------------------------------------------------------------------------
# Phase ids and dependencies


def test_E4_duplicate_phase_ids_including_case_fold(workspace: Path) -> None:
    text = """\
plan: X
phases:
  - id: P01
    kind: stub
  - id: P01
    kind: impl
  - id: p01
    kind: impl
"""
    assert problems(workspace, text) == [
        "plans/P.yaml:5:9: phases[1].id: duplicate phase id 'P01' (first at line 3)",
        "plans/P.yaml:7:9: phases[2].id: duplicate phase id 'p01' (same as 'P01' at line 3 apart from case; "
        "file names would collide on case-insensitive filesystems)",
    ]


def test_E6_unknown_and_self_dependencies(workspace: Path) -> None:
    text = "plan: X\nphases:\n  - id: P01\n    kind: stub\n  - id: P02\n    kind: impl\n    depends_on: [P99, P02]\n"

    assert problems(workspace, text) == [
        "plans/P.yaml:7:18: phases[1].depends_on[0]: depends on unknown phase 'P99'",
        "plans/P.yaml:7:23: phases[1].depends_on[1]: phase 'P02' depends on itself",
    ]


def test_E5_dependency_cycle(workspace: Path) -> None:
    text = """\
plan: X
phases:
  - id: P01
    kind: stub
    depends_on: [P02]
  - id: P02
    kind: impl
    depends_on: [P03]
  - id: P03
    kind: impl
    depends_on: [P01]
"""
    assert problems(workspace, text) == [
        "plans/P.yaml:5:18: phases[0].depends_on[0]: dependency cycle: P01 → P02 → P03 → P01 (each depends on the next)"
    ]


def test_cycle_through_a_default_dependency(workspace: Path) -> None:
    text = "plan: X\nphases:\n  - id: P01\n    kind: stub\n    depends_on: P02\n  - id: P02\n    kind: impl\n"

    assert problems(workspace, text) == [
        "plans/P.yaml:5:17: phases[0].depends_on[0]: dependency cycle: P01 → P02 → P01 (each depends on the next)"
    ]


@pytest.mark.parametrize(
    "bad_id",
    [
        "../x",
        "a/b",
        "P01;touch PWNED",
        "$(touch PWNED)",
        "`touch PWNED`",
        "-P01",
        "P..1",
        "Pé",
        "P" * 65,
        ".hidden",
        "P 01",
    ],
)
def test_E7_hostile_phase_ids_are_rejected(workspace: Path, bad_id: str) -> None:
    """Also E8: ids carrying shell metacharacters are rejected here, and nothing runs."""
    text = f"plan: X\nphases:\n  - id: {bad_id!r}\n    kind: stub\n"

    found = problems(workspace, text)

    assert found[0] == (
        f"plans/P.yaml:3:9: phases[0].id: phase id {bad_id!r} must match ^[A-Za-z0-9][A-Za-z0-9._-]{{0,63}}$ "
        "without '..'"
    )
    assert not list(workspace.rglob("PWNED"))


@pytest.mark.parametrize("good_id", ["P0.5", "P02a-V", "P07a", "P01", "P" * 64])
def test_real_phase_ids_are_accepted(workspace: Path, good_id: str) -> None:
    plan = load_plan(write(workspace, f"plan: X\nphases:\n  - id: {good_id}\n    kind: stub\n"), workspace)

    assert plan.phases[0].id == good_id


def test_hostile_plan_id(workspace: Path) -> None:
    found = problems(workspace, "plan: ../evil\nphases:\n  - {id: P01, kind: stub}\n")

    assert found == [
        "plans/P.yaml:1:7: plan: plan id '../evil' must match ^[A-Za-z0-9][A-Za-z0-9._-]*$ without '..' "
        "(at most 128 characters)"
    ]


# --------------------------------------------------------------------------------------------------------------
# Paths inside the workspace


@pytest.mark.parametrize(
    ("report", "message"),
    [
        ("../../etc/passwd", "'../../etc/passwd' resolves outside the workspace"),
        ("/etc/passwd", "'/etc/passwd' is absolute; paths must be relative to the workspace"),
        ("reports/../../x/{{ phase.id }}.md", "'reports/../../x/P01.md' resolves outside the workspace"),
    ],
)
def test_E9_artifact_path_leaving_the_workspace(
    workspace: Path, tmp_path_factory: pytest.TempPathFactory, report: str, message: str
) -> None:
    (workspace / "link").symlink_to(tmp_path_factory.mktemp("elsewhere"))
    text = f"plan: X\nartifacts:\n  report: '{report}'\nphases:\n  - id: P01\n    kind: stub\n"

    assert problems(workspace, text) == [f"plans/P.yaml:3:11: artifacts.report: {message} (phase P01)"]


def test_an_artifact_path_through_a_link_out_is_not_a_plan_problem(
    workspace: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A link at an artifact path is a worker's doing, checked when the judge opens the file (a FAIL of that
    check); were it a plan problem, a worker could make every later `coord run` and `validate` refuse the plan."""
    (workspace / "link").symlink_to(tmp_path_factory.mktemp("elsewhere"))
    text = "plan: X\nartifacts:\n  report: 'link/{{ phase.id }}.md'\nphases:\n  - id: P01\n    kind: stub\n"

    assert problems(workspace, text) == []


def test_artifact_path_that_does_not_render(workspace: Path) -> None:
    text = """\
plan: X
artifacts:
  completed: "{{ phase.nope }}"
phases:
  - {id: P01, kind: stub}
  - {id: P02, kind: stub}
"""
    assert problems(workspace, text) == [
        "plans/P.yaml:3:14: artifacts.completed: 'phase.nope' is undefined (phase P01)"
    ]


def test_artifact_paths_shared_by_phases_or_by_report_and_marker(workspace: Path) -> None:
    text = """\
plan: X
artifacts:
  report: reports/worker.md
  completed: reports/worker.md
phases:
  - {id: P01, kind: stub}
  - {id: P02, kind: stub}
"""
    assert problems(workspace, text) == [
        "plans/P.yaml:3:11: artifacts.report: renders to 'reports/worker.md' for both P01 and P02; "
        "include {{ phase.id }} in it",
        "plans/P.yaml:4:14: artifacts.completed: renders to the same path as artifacts.report ('reports/worker.md')",
        "plans/P.yaml:4:14: artifacts.completed: renders to 'reports/worker.md' for both P01 and P02; "
        "include {{ phase.id }} in it",
    ]


def test_protected_patterns_must_stay_inside(workspace: Path) -> None:
    text = """\
plan: X
phases:
  - id: P01
    kind: impl
    protected: [tests/**/*.py, ../other/tests/*.py, /etc/*]
  - id: P02
    kind: impl
    protected: src/calc.py
"""
    assert problems(workspace, text) == [
        "plans/P.yaml:5:32: phases[0].protected[1]: pattern '../other/tests/*.py' must stay inside the workspace "
        "(relative, no '..')",
        "plans/P.yaml:5:53: phases[0].protected[2]: pattern '/etc/*' must stay inside the workspace "
        "(relative, no '..')",
    ]


def test_instructions_file_and_workdir_must_stay_inside(workspace: Path) -> None:
    text = """\
plan: X
workdir: ../elsewhere
phases:
  - id: P01
    kind: stub
    instructions_file: ../secret.md
    workdir: /etc
  - id: P02
    kind: stub
    instructions_file: plan/missing.md
  - id: P03
    kind: stub
    instructions: inline
    instructions_file: plan/missing.md
"""
    assert problems(workspace, text) == [
        "plans/P.yaml:2:10: workdir: '../elsewhere' resolves outside the workspace",
        "plans/P.yaml:6:24: phases[0].instructions_file: '../secret.md' resolves outside the workspace",
        "plans/P.yaml:7:14: phases[0].workdir: '/etc' is absolute; paths must be relative to the workspace",
        "plans/P.yaml:10:24: phases[1].instructions_file: 'plan/missing.md' not found",
        "plans/P.yaml:14:24: phases[2].instructions_file: give either 'instructions' or 'instructions_file', not both",
    ]


# --------------------------------------------------------------------------------------------------------------
# Agents and kinds


def test_agent_problems(workspace: Path) -> None:
    text = """\
plan: X
agent: robot
agents:
  mini: {base: codex, sandbox: workspace-write, dangerous: true, config: [foo]}
  other: {model: x}
  claude: {base: codex}
  wild: {base: codex, sandbox: everything}
phases:
  - id: P01
    kind: stub
    agent: nope
  - id: P02
    kind: impl
    agent: shell
"""
    assert problems(workspace, text) == [
        "plans/P.yaml:2:8: agent: unknown agent 'robot' (known: codex, claude, shell, mcp, mini, other, wild)",
        "plans/P.yaml:4:60: agents.mini.dangerous: dangerous: true needs sandbox: danger-full-access",
        "plans/P.yaml:4:75: agents.mini.config[0]: expected 'key=value', got 'foo'",
        "plans/P.yaml:5:10: agents.other: agent 'other' needs a 'base' (one of codex, claude, shell, mcp)",
        "plans/P.yaml:6:18: agents.claude.base: built-in agent 'claude' cannot change its base to 'codex'",
        "plans/P.yaml:7:32: agents.wild.sandbox: must be one of 'read-only', 'workspace-write' or "
        "'danger-full-access', got 'everything'",
        "plans/P.yaml:11:12: phases[0].agent: unknown agent 'nope' (known: codex, claude, shell, mcp, mini, other, "
        "wild)",
        "plans/P.yaml:12:5: phases[1]: agent 'shell' runs the phase's 'script', but the phase has none",
    ]


def test_dangerous_agent_with_full_access_is_accepted(workspace: Path) -> None:
    text = """\
plan: X
agent: yolo
agents:
  yolo: {base: codex, sandbox: danger-full-access, dangerous: true}
phases:
  - {id: P01, kind: stub}
"""
    plan = load_plan(write(workspace, text), workspace)

    assert plan.phases[0].agent == "yolo"
    assert plan.agents["yolo"].dangerous is True


def test_kind_without_template_and_custom_kind_with_one(workspace: Path) -> None:
    text = "plan: X\nphases:\n  - {id: P01, kind: docs}\n  - {id: P02, kind: remediate}\n  - {id: P03, kind: a/b}\n"

    assert problems(workspace, text) == [
        "plans/P.yaml:3:21: phases[0].kind: no template for kind 'docs': add templates/docs.md.j2 "
        "(built-in kinds: stub, test, impl, verify)",
        "plans/P.yaml:4:21: phases[1].kind: kind 'remediate' is reserved for remediation prompts",
        "plans/P.yaml:5:21: phases[2].kind: kind 'a/b' must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$ without '..'",
    ]

    (workspace / "templates").mkdir()
    (workspace / "templates" / "docs.md.j2").write_text("Write docs for {{ phase.id }}.\n", encoding="utf-8")
    plan = load_plan(write(workspace, "plan: X\nphases:\n  - {id: P01, kind: docs}\n"), workspace)
    assert plan.phases[0].kind == "docs"


def test_verify_command_that_cannot_be_split(workspace: Path) -> None:
    text = 'plan: X\nphases:\n  - id: P01\n    kind: stub\n    verify: ["echo \'unclosed"]\n'

    assert problems(workspace, text) == [
        "plans/P.yaml:5:14: phases[0].verify[0].run: cannot split into arguments: No closing quotation"
    ]


# --------------------------------------------------------------------------------------------------------------
# Templates, dry-rendered at load


def test_F2_template_variable_that_does_not_exist(workspace: Path) -> None:
    (workspace / "templates").mkdir()
    (workspace / "templates" / "impl.md.j2").write_text(
        "# {{ phase.id }}\n\n{{ phase.instructions }}\n\n\n\nTests: {{ phase.tests }}\n", encoding="utf-8"
    )
    text = "plan: X\nphases:\n  - {id: P01, kind: stub}\n  - {id: P02, kind: stub}\n  - {id: P03, kind: impl}\n"

    assert problems(workspace, text) == ["templates/impl.md.j2:7: 'phase.tests' is undefined (rendering P03)"]


def test_F1_template_syntax_error_and_empty_prompt(workspace: Path) -> None:
    """Every prompt is rendered dry at load: a template syntax error names file and line; also F6 (a prompt that
    renders empty)."""
    (workspace / "templates").mkdir()
    (workspace / "templates" / "remediate.md.j2").write_text("ok\n\n{% if %}\n", encoding="utf-8")
    (workspace / "templates" / "stub.md.j2").write_text("   \n{# nothing #}\n", encoding="utf-8")
    text = "plan: X\nphases:\n  - {id: P01, kind: stub}\n  - {id: P02, kind: impl}\n"

    assert problems(workspace, text) == [
        "templates/stub.md.j2: phase P01: rendered prompt is empty",
        "templates/remediate.md.j2:3: Expected an expression, got 'end of statement block' (rendering P01 remediation)",
    ]


def test_load_plan_raises_with_every_problem(workspace: Path) -> None:
    text = "plan: X\nphases:\n  - {id: P01, kind: stub, dependz: []}\n  - {id: P01, kind: impl}\n"

    with pytest.raises(PlanError) as raised:
        load_plan(write(workspace, text), workspace)

    assert raised.value.exit_status == ExitStatus.USAGE
    assert [str(p) for p in raised.value.problems] == [
        "plans/P.yaml:3:27: phases[0]: unknown key 'dependz' (did you mean 'depends_on'?)",
        "plans/P.yaml:4:10: phases[1].id: duplicate phase id 'P01' (first at line 3)",
    ]
    assert str(raised.value) == "\n".join(str(p) for p in raised.value.problems)


def test_unreadable_instructions_file(workspace: Path) -> None:
    (workspace / "plan").mkdir()
    (workspace / "plan" / "bin.md").write_bytes(b"ok\xfe")
    text = "plan: X\nphases:\n  - {id: P01, kind: stub, instructions_file: plan/bin.md}\n"

    assert problems(workspace, text) == [
        "plans/P.yaml:3:46: phases[0].instructions_file: 'plan/bin.md' is not UTF-8 (offset 2)"
    ]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files regardless of mode")
def test_unreadable_plan_file(workspace: Path) -> None:
    path = write(workspace, "plan: X\n")
    (workspace / path).chmod(0)

    assert problems_for(workspace, path) == ["plans/P.yaml: cannot read plan: Permission denied"]


def problems_for(workspace: Path, path: Path) -> list[str]:
    return [str(problem) for problem in validate_plan(path, workspace)]


def test_budget_is_loaded_and_checked(workspace: Path) -> None:
    good = "plan: X\nbudget: {max_cost: 2.5, max_tokens: 100000}\nphases:\n  - {id: P01, kind: stub}\n"
    plan = load_plan(write(workspace, good), workspace)
    assert (plan.budget.max_cost, plan.budget.max_tokens) == (2.5, 100000)
    found = problems(workspace, "plan: X\nbudget: {max_cost: -1, tokens: 5}\nphases:\n  - {id: P01, kind: stub}\n")
    assert any("budget.max_cost" in problem for problem in found)
    assert any("unknown key 'tokens'" in problem for problem in found)
