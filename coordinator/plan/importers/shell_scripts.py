"""A plan's bash block read as the script its author wrote: where its checks are, and what each must do.

Who uses it: ``markdown_plans`` passes every bash block under a verification heading to :func:`read_block` and
turns the :class:`Check` values into ``verify`` entries; the tests call it directly. The block is parsed with the
tree-sitter bash grammar (``tree-sitter-bash``), so a statement is never cut inside an ``if … fi``, a loop, a
heredoc, a quoted string or a ``\\`` continuation. Nothing here runs anything.

The rules (docs/design.md §15, "bash blocks"):
  * a block is **one script** (one ``bash`` process in the phase's workdir), ``set -e`` added in front when it has
    more than one command, so every command must pass, not only the last; a block with a ``#!`` line, one that
    reads ``$?`` or one that does not parse is kept exactly as written, nothing added, nothing divided;
  * it is **divided only where the author marks separate checks**: a comment that numbers a check (``# 3. Verify
    …``, ``# Step 2: …``) or states an expectation (``# EXPECTED TO FAIL``, ``# Expected: ZERO hits``) starts a
    new check, named by that comment; and a ``cmd && exit 1`` statement is a check of its own (``cmd`` expected to
    fail; a search -- ``grep``, ``rg``, ``git grep`` -- expected to print nothing);
  * statements that change the shell (``cd``, ``export``, assignments, ``source``, functions, ``set``) are carried
    into every later check, so a divided block behaves as the whole script would;
  * a check whose expectation is ``fail`` holds one command each: every command the author expected to fail must
    fail on its own (in one script only the last would count);
  * a statement that starts an agent CLI (``codex``, ``claude``, ``gemini``, ``llxprt``, …, or a command given
    ``--prompt``/``--yolo``/``--dangerously-*``) or reaches the network (``curl``, ``wget``, ``ssh``, ``gh``,
    ``git push``/``fetch``/``pull``/``clone``, …) is left out of the checks and reported: coord never runs an
    agent as verification;
  * a block of only ``echo``/``printf``/``cd``/comments is not a check: it stays in the instructions.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

import tree_sitter

from coordinator.plan.bash_syntax import argv_words, parse, plain_command, program_name, text_of, walk
from coordinator.plan.importers.expectations import Expect, Expectation, expectation_of

AGENT_PROGRAMS = frozenset({
    "codex", "claude", "llxprt", "gemini", "aider", "cursor-agent", "opencode", "qwen", "goose", "crush", "copilot",
    "cline", "droid", "kiro-cli", "auggie",
})
"""Agent CLIs never run as verification (matched on the program's base name)."""

AGENT_FLAGS = frozenset({
    "--prompt", "--yolo", "--dangerously-skip-permissions", "--dangerously-bypass-approvals-and-sandbox",
    "--profile-load",
})
"""Arguments that make any program an agent launch (``node scripts/start.js --profile-load … --prompt …``)."""

NETWORK_PROGRAMS = frozenset({"curl", "wget", "ssh", "scp", "sftp", "rsync", "gh", "nc", "ncat", "telnet", "http",
                              "https", "ftp"})
NETWORK_SUBCOMMANDS = {"git": frozenset({"push", "pull", "fetch", "clone", "ls-remote"}),
                       "npm": frozenset({"publish"}), "docker": frozenset({"pull", "push", "login"})}
SEARCH_PROGRAMS = frozenset({"grep", "egrep", "fgrep", "rg", "ag", "ack"})
_PROSE_PROGRAMS = frozenset({"echo", "printf", "cd", "pushd", "popd", ":", "true", "date", "pwd", "clear"})
_STATE_PROGRAMS = frozenset({"cd", "pushd", "popd", "source", ".", "set", "shopt", "alias", "umask", "ulimit",
                             "trap", "unset"})
_STATE_NODES = frozenset({"variable_assignment", "declaration_command", "function_definition"})
_NUMBERED_RE = re.compile(r"^#+\s*(?:(?:step|check|test|phase)\s+)?\d+[a-z]?\s*[.):]\s*\S", re.IGNORECASE)
ERREXIT_LINE = "set -e  # coord import: every command of this check must pass, not only the last"


@dataclass(frozen=True)
class Check:
    """One verify entry read from a block.

    Attributes:
        run: the command (``shell`` None) or the script ``bash -c`` runs.
        expect: what it must do (``VerifyCommand.expect``).
        shell: None for one plain command split into argv, else ``bash`` (or ``sh`` for a ``sh`` block).
        name: the author's comment that marks it (``# 3. Verify no stale imports``), without the ``#``; or None.
        line: 0-based document line of its first statement.
        because: the author's words the expectation comes from, when it is not ``pass``.
    """

    run: str
    expect: Expect
    shell: str | None
    name: str | None
    line: int
    because: str | None = None


@dataclass
class BlockReading:
    """What a block holds: its checks, and what the importer must tell the user about it.

    Attributes:
        checks: the verify entries, in block order.
        notes: ``(0-based line, message)`` warnings: statements left out (agents, network), unclear expectations,
            a block that does not parse.
        instructions_only: why the block is no check at all (it only prints, or only starts an agent), or None.
    """

    checks: list[Check] = field(default_factory=list)
    notes: list[tuple[int, str]] = field(default_factory=list)
    instructions_only: str | None = None


@dataclass
class _Statement:
    node: tree_sitter.Node
    text: str
    row: int
    """0-based row inside the block."""


@dataclass
class _Section:
    marker: str | None = None
    expectation: Expectation | None = None
    statements: list[_Statement] = field(default_factory=list)
    unclear: list[tuple[int, str]] = field(default_factory=list)


def _outside_reach(statement: _Statement) -> str | None:
    """Why a statement must not run as verification (it starts an agent or reaches the network), or None."""
    for node in walk(statement.node):
        if node.type != "command":
            continue
        words = argv_words(node)
        program = program_name(words)
        if program in ("npx", "env", "exec", "nohup", "time", "timeout") and len(words) > 1:
            # `npx codex …`, `env KEY=1 claude …`, `timeout 60 gemini …`: the program is the first plain word after
            words = [word for word in words[1:]
                     if not word.startswith("-") and "=" not in word and not word[:1].isdigit()] or words
            program = program_name(words)
        if program in AGENT_PROGRAMS:
            return f"starts the agent CLI `{program}`"
        flags = sorted({word.split("=", 1)[0] for word in words} & AGENT_FLAGS)
        if flags:
            return f"starts an agent (`{' '.join(words[:2])} … {flags[0]}`)"
        if program in NETWORK_PROGRAMS:
            return f"reaches the network (`{program}`)"
        if len(words) > 1 and words[1] in NETWORK_SUBCOMMANDS.get(program, ()):
            return f"reaches the network (`{program} {words[1]}`)"
    return None


def _changes_state(statement: _Statement) -> bool:
    node = statement.node
    if node.type in _STATE_NODES:
        return True
    return node.type == "command" and program_name(argv_words(node)) in _STATE_PROGRAMS


def _is_prose(statement: _Statement) -> bool:
    node = statement.node
    if node.type == "redirected_statement" and node.children and node.children[0].type == "command":
        return False  # `echo … > file` writes a file
    return node.type == "command" and program_name(argv_words(node)) in _PROSE_PROGRAMS


def _fails_on_success(statement: _Statement) -> tuple[tree_sitter.Node, str] | None:
    """For ``cmd && exit 1`` (nothing after it): the ``cmd`` node and its text."""
    node = statement.node
    if node.type != "list" or len(node.children) != 3 or node.children[1].type != "&&":
        return None
    last = node.children[2]
    if last.type != "command" or argv_words(last) != ["exit", "1"]:
        return None
    return node.children[0], text_of(node.children[0])


def _is_search(node: tree_sitter.Node) -> bool:
    """A command (or the last command of a pipeline) that searches: grep, rg, git grep …"""
    if node.type == "pipeline":
        node = node.children[-1]
    if node.type == "redirected_statement" and node.children:
        node = node.children[0]
    if node.type != "command":
        return False
    words = argv_words(node)
    return program_name(words) in SEARCH_PROGRAMS or words[:2] == ["git", "grep"]


def read_block(lines: tuple[str, ...] | list[str], first_line: int, *, shell: str = "bash", red: bool = False,
               stated: Expectation | None = None) -> BlockReading:
    """Read one fenced shell block into checks.

    Args:
        lines: the block's lines, without the fences.
        first_line: 0-based document line of the first of them (every line in the result is a document line).
        shell: ``bash``, or ``sh`` for a block fenced as ``sh``.
        red: the block sits under a heading that says RED: its checks are expected to fail.
        stated: the expectation the sentence after the block states (``This command should produce no output``);
            it applies when the block is one check.

    Returns:
        The checks and the notes (see :class:`BlockReading`).
    """
    reading = BlockReading()
    offset = next((index for index, line in enumerate(lines) if line.strip()), None)
    if offset is None:
        reading.instructions_only = "it is empty"
        return reading
    script = "\n".join(lines[offset:]).rstrip()  # rows of the parse tree count from its first non-blank line
    tree = parse(script)
    comments: list[_Statement] = []
    statements: list[_Statement] = []
    for node in tree.root_node.children:
        item = _Statement(node, text_of(node), node.start_point.row)
        (comments if node.type == "comment" else statements).append(item)
    at = first_line + offset
    kept, left_out = [], []
    for statement in statements:
        reason = _outside_reach(statement)
        if reason:
            left_out.append(statement)
            reading.notes.append((at + statement.row, f"`{_first_line(statement.text)}` {reason}: left out of "
                                  "the checks (coord never runs it as verification); it stays in the instructions"))
        else:
            kept.append(statement)
    if not kept:
        reading.instructions_only = "it only starts an agent or reaches the network"
        return reading
    if all(_is_prose(item) for item in kept):
        reading.instructions_only = "it only prints or changes directory"
        return reading
    whole = script.startswith("#!") or tree.root_node.has_error or any(
        node.type == "special_variable_name" and text_of(node) == "?" for node in walk(tree.root_node))
    if whole:
        if tree.root_node.has_error:
            reading.notes.append((at, "the block does not parse as bash; kept as one script, exactly as written"))
        expectation = _block_expectation(comments, red, stated, reading, at)
        run = script if not left_out else _without(script, left_out)
        reading.checks.append(Check(run, expectation.expect or "pass", shell, None, at,
                                    expectation.sentence if expectation.expect != "pass" else None))
        return reading
    sections = _sections(comments, kept, at, red)
    if len(sections) == 1 and stated is not None and sections[0].expectation is None:
        sections[0].expectation = stated
    carried: list[_Statement] = []
    for section in sections:
        for unclear_line, sentence in section.unclear:
            reading.notes.append((unclear_line, unclear(sentence)))
        checks, carried = _section_checks(section, carried, shell, at)
        reading.checks.extend(checks)
    if len(reading.checks) == 1 and reading.checks[0].shell and len(sections) == 1 and all(
            _fails_on_success(item) is None for item in kept):
        # Undivided: the script as written, comments included (left-out statements commented out).
        check = reading.checks[0]
        verbatim = _without(script, left_out) if left_out else script
        prefix = f"{ERREXIT_LINE}\n" if check.run.startswith(ERREXIT_LINE) else ""
        reading.checks[0] = dataclasses.replace(check, run=prefix + verbatim)
    if stated is not None and stated.expect is None:
        reading.notes.append((at, unclear(stated.sentence)))
    return reading


def unclear(sentence: str) -> str:
    """The warning for a stated result coord cannot map: the check keeps ``expect: pass``."""
    return (f"the expected result is unclear ({sentence!r}); the check expects exit 0 -- edit `expect` if the "
            "author meant otherwise")


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else text
    return line if len(line) <= 80 else line[:77] + "..."


def _without(script: str, left_out: list[_Statement]) -> str:
    """The script with the left-out statements' lines commented out, so line numbers and the rest stay as written."""
    lines = script.split("\n")
    for statement in left_out:
        for row in range(statement.node.start_point.row, statement.node.end_point.row + 1):
            lines[row] = "# (left out by coord import: not run as verification) " + lines[row]
    return "\n".join(lines)


def _block_expectation(comments: list[_Statement], red: bool, stated: Expectation | None, reading: BlockReading,
                       at: int) -> Expectation:
    for comment in comments:
        found = expectation_of(comment.text)
        if found is not None and found.expect is not None:
            return found
        if found is not None:
            reading.notes.append((at + comment.row, unclear(found.sentence)))
    if red:
        return Expectation("fail", "the block is under a RED heading")
    if stated is not None and stated.expect is not None:
        return stated
    return Expectation("pass", "")


def _sections(comments: list[_Statement], statements: list[_Statement], at: int, red: bool) -> list[_Section]:
    """Divide the statements where a comment marks a new check; each section keeps its marker and expectation."""
    events = sorted([(item.row, 0, item) for item in comments] + [(item.row, 1, item) for item in statements],
                    key=lambda event: (event[0], event[1]))
    sections = [_Section()]
    trailing_rows = {item.node.end_point.row for item in statements}
    for row, is_statement, item in events:
        current = sections[-1]
        if is_statement:
            current.statements.append(item)
            continue
        text = item.text
        found = expectation_of(text)
        numbered = bool(_NUMBERED_RE.match(text))
        if row in trailing_rows and found is not None and found.expect is not None and current.statements:
            # `npm test  # EXPECTED TO FAIL`: the comment speaks for the statement on its own line.
            statement = current.statements.pop()
            sections.append(_Section(text.lstrip("# ").strip(), found, [statement]))
            sections.append(_Section())
            continue
        # A stated pass is the default, not a new check; a numbered comment or a stated fail/no-output is.
        divides = found is not None and found.expect in ("fail", "no-output")
        if (numbered or divides) and current.statements:
            sections.append(_Section())
            current = sections[-1]
        if numbered and (current.marker is None or current.expectation is not None and not _NUMBERED_RE.match(
                "#" + current.marker)):
            current.marker = text.lstrip("#").strip()
        if divides and found is not None and current.expectation is None:
            current.expectation = found
            if current.marker is None:
                current.marker = text.lstrip("#").strip()
        elif found is not None and found.expect is None:
            current.unclear.append((at + row, found.sentence))
    sections = [section for section in sections if section.statements]
    if red:
        for section in sections:
            if section.expectation is None:
                section.expectation = Expectation("fail", "the block is under a RED heading")
    return sections or [_Section()]


def _section_checks(section: _Section, carried: list[_Statement], shell: str,
                    at: int) -> tuple[list[Check], list[_Statement]]:
    """The checks of one section, and the state statements carried into the next.

    ``cmd && exit 1`` and each command of an expected-fail section are checks of their own; the rest of the
    section is one script.
    """
    expect: Expect = section.expectation.expect if section.expectation and section.expectation.expect else "pass"
    because = section.expectation.sentence if section.expectation and expect != "pass" else None
    checks: list[Check] = []
    group: list[_Statement] = []
    before_group = list(carried)

    def flush() -> None:
        nonlocal before_group
        if any(not _changes_state(item) for item in group):
            checks.append(_check([*before_group, *group], expect, section.marker, shell, at, because))
        group.clear()
        before_group = list(carried)

    for statement in section.statements:
        inverted = _fails_on_success(statement)
        if inverted is not None:
            flush()
            node, text = inverted
            own: Expect = "no-output" if _is_search(node) and expect != "fail" else "fail"
            # As a script's last line `cmd && exit 1` exits non-zero either way; the author means "cmd must fail".
            checks.append(_check([*carried, _Statement(node, text, statement.row)], own, section.marker, shell,
                                 at, f"`{_first_line(statement.text)}`"))
            continue
        if expect == "fail" and not _changes_state(statement):
            flush()
            group.append(statement)
            flush()
            continue
        group.append(statement)
        if _changes_state(statement):
            carried = [*carried, statement]
    flush()
    return checks, carried


def _check(statements: list[_Statement], expect: Expect, name: str | None, shell: str, at: int,
           because: str | None) -> Check:
    """One check from statements (carried state first): a plain argv command when it can be, else a script."""
    substantive = [item for item in statements if not _changes_state(item)]
    line = at + substantive[0].row if substantive else at + statements[0].row
    if len(statements) == 1 and plain_command(statements[0].node):
        return Check(statements[0].text, expect, None, name, line, because)
    body = "\n".join(item.text for item in statements)
    if expect == "pass" and len(statements) > 1:
        body = f"{ERREXIT_LINE}\n{body}"
    return Check(body, expect, shell, name, line, because)
