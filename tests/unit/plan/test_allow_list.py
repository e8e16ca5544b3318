"""The shell agent's allow-list as a plan author meets it: what ``coord validate`` refuses (with ``file:line:col``)
and what it admits, how (argv or shell), and the user's own config file's list on top of the plan's."""

from __future__ import annotations

from pathlib import Path

import pytest

from coordinator.plan.allow_list import decide, parse_entry
from coordinator.plan.model import AllowedCommand
from coordinator.prompts.validate import load_checked_plan, validate_checked_plan

PLAN = Path("plans/P.yaml")

HEADER = """\
plan: P
agent: tools
agents:
  tools:
    base: shell
    allow:
      - python3 -m unittest ...
      - mkdir -p tmp/**
      - cp tmp/src/*.py tmp/dist/
      - command: printf ...
        shell: true
      - command: grep -q ok tmp/**
        shell: true
phases:
  - id: P01
    kind: impl
    script:
"""


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "plans").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COORD_CONFIG", str(tmp_path / "no-user-config.yaml"))
    return tmp_path


def problems(workspace: Path, *script: str) -> list[str]:
    text = HEADER + "".join(f"      - {line}\n" for line in script)
    (workspace / PLAN).write_text(text, encoding="utf-8")
    return [str(problem) for problem in validate_checked_plan(PLAN, workspace)]


def rules(*entries: str | tuple[str, bool]) -> tuple[tuple[AllowedCommand, ...], ...]:
    parsed = [parse_entry(entry, False, "test") if isinstance(entry, str) else parse_entry(entry[0], entry[1], "test")
              for entry in entries]
    return (tuple(parsed),)


def test_a_disallowed_command_is_refused_at_validate_with_its_position(workspace: Path) -> None:
    assert problems(workspace, "mkdir -p tmp/dist", "rm -rf tmp") == [
        "plans/P.yaml:19:9: phases[0].script[1]: `rm -rf tmp` is not allowed: no entry of agents.tools.allow "
        "admits it",
    ]


def test_shell_metacharacters_need_an_entry_that_may_use_a_shell(workspace: Path) -> None:
    found = problems(workspace, "'python3 -m unittest discover > tmp/out.txt'", "'mkdir -p tmp/a; rm -rf /'",
                     "'printf done | sh'")
    assert found == [
        "plans/P.yaml:18:9: phases[0].script[0]: `python3 -m unittest discover` in `python3 -m unittest discover > "
        "tmp/out.txt` is allowed only without a shell, and this entry uses shell syntax (give its allow-list entry "
        "`shell: true`, or write it as one plain command)",
        "plans/P.yaml:19:9: phases[0].script[1]: `mkdir -p tmp/a` in `mkdir -p tmp/a; rm -rf /` is allowed only "
        "without a shell, and this entry uses shell syntax (give its allow-list entry `shell: true`, or write it as "
        "one plain command)",
        "plans/P.yaml:20:9: phases[0].script[2]: `sh` in `printf done | sh` is not admitted by agents.tools.allow",
    ]


def test_admitted_entries_validate_and_plain_ones_run_without_a_shell(workspace: Path) -> None:
    assert problems(workspace, "mkdir -p tmp/dist", "python3 -m unittest discover -s tmp/tests",
                    "cp tmp/src/calc.py tmp/dist/", """'printf "%s\\n" ok > "$COORD_REPORT_PATH"'""",
                    "'grep -q ok tmp/out.txt && printf yes'") == []
    plan = load_checked_plan(PLAN, workspace)
    allowed = plan.agents["tools"].allow_lists
    assert decide("mkdir -p tmp/dist", allowed).argv == ("mkdir", "-p", "tmp/dist")
    assert decide("python3 -m unittest discover -s tmp/tests", allowed).argv[-2:] == ("-s", "tmp/tests")
    shell_entry = decide('printf "%s\\n" ok > "$COORD_REPORT_PATH"', allowed)
    assert shell_entry.argv is None and shell_entry.refusal is None  # run by /bin/sh -c


def test_arguments_match_path_aware_globs() -> None:
    allowed = rules("cp tmp/src/*.py tmp/dist/", "mkdir -p tmp/**", "ls")
    assert decide("cp tmp/src/a.py tmp/dist/", allowed).argv is not None
    assert decide("cp tmp/src/sub/a.py tmp/dist/", allowed).refusal is not None  # `*` stays in one component
    assert decide("mkdir -p tmp/a/b/c", allowed).argv is not None  # `**` spans them
    assert decide("mkdir -p tmp/../../etc", allowed).refusal is not None  # `..` only where the pattern has it
    assert decide("mkdir -p /tmp/x", allowed).refusal is not None
    assert decide("ls -la", allowed).refusal is not None  # no `...`: no further arguments
    assert decide("/bin/ls", allowed).refusal is not None  # the program is matched exactly


def test_non_literal_programs_and_arguments_are_refused_inside_a_shell_entry() -> None:
    allowed = rules(("printf ...", True), ("cat tmp/*", True), ("cat **", False))
    assert decide('printf x > "$OUT"', allowed).refusal is None  # a redirect's target is not an argument
    refused = decide('$TOOL --version', allowed).refusal
    assert refused is not None and "not a literal name" in refused
    assert decide('cat tmp/$NAME | printf x', allowed).refusal is not None  # `$NAME` matches only `**`/`...`
    assert decide('cat tmp/a.txt | printf x', allowed).refusal is None
    assert decide("printf 'unclosed", allowed).refusal is not None  # does not parse


def test_the_user_config_list_applies_on_top_of_the_plans(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = workspace / "config.yaml"
    config.write_text("shell:\n  allow:\n    - mkdir -p tmp/dist\n    - {command: 'printf ...', shell: true}\n",
                      encoding="utf-8")
    monkeypatch.setenv("COORD_CONFIG", str(config))
    assert problems(workspace, "mkdir -p tmp/dist", "python3 -m unittest discover") == [
        f"plans/P.yaml:19:9: phases[0].script[1]: `python3 -m unittest discover` is not allowed: no entry of "
        f"{config} admits it",
    ]
    # The built-in `shell` profile, which has no list of its own, gets the user's.
    (workspace / PLAN).write_text("plan: P\nagent: shell\nphases:\n  - {id: P01, kind: impl, script: [ls]}\n",
                                  encoding="utf-8")
    assert [str(p) for p in validate_checked_plan(PLAN, workspace)] == [
        f"plans/P.yaml:4:36: phases[0].script[0]: `ls` is not allowed: no entry of {config} admits it",
    ]


def test_bad_allow_entries_are_reported_where_they_are(workspace: Path) -> None:
    (workspace / PLAN).write_text("""\
plan: P
agents:
  tools: {base: shell, allow: ["'open", "*.sh run", "make ... all"]}
  smart: {base: codex, allow: [ls]}
phases:
  - {id: P01, kind: impl, agent: tools, script: [make]}
""", encoding="utf-8")
    found = [str(problem) for problem in validate_checked_plan(PLAN, workspace)]
    assert found == [
        "plans/P.yaml:3:32: agents.tools.allow[0]: No closing quotation",
        "plans/P.yaml:3:41: agents.tools.allow[1]: the program '*.sh' must be a name or path, not a pattern",
        "plans/P.yaml:3:53: agents.tools.allow[2]: '...' may only be the last word (any further arguments)",
        "plans/P.yaml:4:24: agents.smart.allow: 'allow' restricts the shell agent's commands; this profile's base "
        "is 'codex'",
        # Every entry refused: the list admits nothing (it still restricts: no entry is not "anything goes").
        "plans/P.yaml:6:50: phases[0].script[0]: `make` is not allowed: no entry of its allow-list (which admits "
        "nothing) admits it",
    ]
