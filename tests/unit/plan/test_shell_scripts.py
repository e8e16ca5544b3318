"""``shell_scripts.read_block``: a plan's bash block read as its author's script (issue 11, point 1)."""

from __future__ import annotations

from coordinator.plan.importers.shell_scripts import ERREXIT_LINE, read_block


def checks(text: str, **kw: object) -> list[tuple[str, str, str | None]]:
    reading = read_block(text.strip("\n").split("\n"), 0, **kw)  # type: ignore[arg-type]
    return [(check.run, check.expect, check.shell) for check in reading.checks]


def test_compound_commands_heredocs_and_continuations_are_never_cut() -> None:
    block = "\n".join([
        "for f in a b; do",
        '  test -f "$f"',
        "done",
        "cat <<'END' > out.txt",
        "it's # data",
        "END",
        "npm test \\",
        "  --run x",
    ])
    ((run, expect, shell),) = checks(block)
    assert (expect, shell) == ("pass", "bash")
    assert run == ERREXIT_LINE + "\n" + block


def test_a_shebang_or_a_test_of_dollar_question_keeps_the_block_as_written() -> None:
    block = "npm test\nif [ $? -ne 0 ]; then\n  echo failed; exit 1\nfi"
    assert checks(block) == [(block, "pass", "bash")]  # no `set -e`: the script handles failures itself
    shebang = "#!/bin/bash\n# 1. one\nnpm test\n# 2. two\nnpm run lint"
    assert checks(shebang) == [(shebang, "pass", "bash")]  # never divided


def test_marked_checks_carry_the_shell_state_before_them() -> None:
    block = "cd packages/core\n# 1. Tests\nnpm test\n# 2. No stale imports\n# Expected: ZERO hits\ngrep -rn old src"
    assert checks(block) == [
        (f"{ERREXIT_LINE}\ncd packages/core\nnpm test", "pass", "bash"),
        ("cd packages/core\ngrep -rn old src", "no-output", "bash"),
    ]


def test_prose_blocks_are_instructions() -> None:
    reading = read_block(["# Run these by hand", 'echo "Now check the UI"', "cd docs"], 0)
    assert reading.checks == [] and reading.instructions_only == "it only prints or changes directory"


def test_a_block_that_does_not_parse_is_one_script_with_a_note() -> None:
    reading = read_block(['echo "never closed', "npm test"], 4)
    assert len(reading.checks) == 1 and reading.notes[0][0] == 4 and "does not parse" in reading.notes[0][1]


def test_agents_are_found_behind_wrappers_and_builtins_are_not_agents() -> None:
    reading = read_block(["env OPENAI_API_KEY=x codex exec 'fix it'", "npx claude -p hi", "npm test"], 0)
    assert [note for _, note in reading.notes] == [
        "`env OPENAI_API_KEY=x codex exec 'fix it'` starts the agent CLI `codex`: left out of the checks (coord "
        "never runs it as verification); it stays in the instructions",
        "`npx claude -p hi` starts the agent CLI `claude`: left out of the checks (coord never runs it as "
        "verification); it stays in the instructions",
    ]
    loop = ["for f in a b; do", '  [ -f "$f" ] || continue', "  grep -q x \"$f\"", "done"]
    reading = read_block(loop, 0)
    assert reading.notes == [] and len(reading.checks) == 1


def test_lines_are_document_lines_past_leading_blank_ones() -> None:
    reading = read_block(["", "   ", "npm test", "codex exec 'x'"], 10)
    assert [check.line for check in reading.checks] == [12]
    assert [line for line, _ in reading.notes] == [13]
