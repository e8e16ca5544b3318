"""Shell commands out of a plan's bash blocks: where each command ends, and how coord must run it.

Who uses it: ``markdown_plans`` turns the bash blocks under verification headings into ``verify`` entries with
``split_commands`` (whole commands with the comments that introduce them) and ``make_command`` (expectation,
``shell: true`` or ``bash -c``); the tests call both directly. The small shell lexer here (quotes, comments,
continuations, open ``if``/``case``/``do``/``{``/``(``, heredocs) only classifies text; nothing is run.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    """One command of a bash block."""

    run: str
    expect: str
    shell: bool
    line: int
    """0-based line of the command's first line in its document."""


def _shell_states(text: str) -> tuple[list[str], str | None, bool]:
    """Classify each character of shell text: ``c`` code, ``q`` single-quoted, ``d`` double-quoted, ``#`` comment.

    Returns:
        (states, the quote still open at the end or None, True when the text ends inside a line continuation).
    """
    states: list[str] = []
    quote: str | None = None
    comment = False
    word_start = True
    index = 0
    while index < len(text):
        char = text[index]
        if comment:
            comment = char != "\n"
            states.append("#" if comment else "c")
            word_start = not comment
        elif quote == "'":
            states.append("q")
            quote = None if char == "'" else quote
        elif quote == '"':
            if char == "\\" and index + 1 < len(text):
                states.extend("dd")
                index += 2
                continue
            states.append("d")
            quote = None if char == '"' else quote
        elif char == "\\" and index + 1 < len(text):
            states.extend("cc")
            index += 2
            word_start = False
            continue
        elif char in "'\"":
            quote = char
            states.append("q" if char == "'" else "d")
            word_start = False
        elif char == "#" and word_start:
            comment = True
            states.append("#")
        else:
            states.append("c")
            word_start = char.isspace() or char in ";&|()<>"
        index += 1
    continued = text.endswith("\\") and (not states or states[-1] == "c") and quote is None
    return states, quote, continued


def _code_only(text: str, states: list[str]) -> str:
    """The text with quoted characters replaced by ``x`` and comments removed (for syntax checks)."""
    return "".join("x" if state in "qd" else char for char, state in zip(text, states, strict=True)
                   if state != "#")


_CLOSERS = {"fi": "if", "esac": "case", "done": "do", "}": "{"}
_COMMAND_START = {None, ";", "&&", "||", "|", "&", "\n", "(", ")", "{", "do", "then", "else", "elif", "!"}
_TOKEN_RE = re.compile(r"&&|\|\||[;&|()\n]|[^\s;&|()]+")


def _open_constructs(code: str) -> int:
    """How many ``if``/``case``/``do``/``{``/``(`` are still open (keywords count only in command position).

    Inside ``case`` the ``)`` of patterns closes nothing.
    """
    stack: list[str] = []
    previous: str | None = None
    for token in _TOKEN_RE.findall(code):
        at_start = previous in _COMMAND_START
        if token == "(" and (not stack or stack[-1] != "case"):
            stack.append("(")
        elif token == ")" and stack and stack[-1] == "(":
            stack.pop()
        elif at_start and token in ("if", "case", "do", "{"):
            stack.append(token)
        elif at_start and token in _CLOSERS and stack and stack[-1] == _CLOSERS[token]:
            stack.pop()
        previous = token
    return len(stack)


def _complete(text: str) -> bool:
    """True when ``text`` is a whole shell command: quotes closed, no continuation, constructs closed."""
    states, quote, continued = _shell_states(text)
    if quote is not None or continued:
        return False
    code = _code_only(text, states).rstrip()
    if code.endswith(("&&", "||", "|")):
        return False
    return _open_constructs(code) == 0


def _strip_comments(text: str) -> str:
    """Drop comments (whole lines and trailing ``# …``), keeping quoted text verbatim."""
    states, _, _ = _shell_states(text)
    kept = "".join(char for char, state in zip(text, states, strict=True) if state != "#")
    return "\n".join(line.rstrip() for line in kept.splitlines() if line.strip())


_HEREDOC_RE = re.compile(r"<<-?\s*(['\"]?)(\w+)\1")
EXPECT_FAIL_COMMENT_RE = re.compile(
    r"expect(?:ed|s)?\s+(?:to\s+)?fail|must\s+fail|should\s+fail|fails?\s+as\s+expected", re.IGNORECASE
)
"""A comment saying the commands after it must fail (``# EXPECTED TO FAIL``); also read by ``markdown_plans``."""
_FAIL_SUFFIX_RE = re.compile(r"\s*&&\s*exit\s+1\s*$")
_SHELL_CHARS = set("|&;<>()$`*?[]{}~!\n")
_BASH_ONLY_RE = re.compile(
    r"(?<![$\w])\{[^{}\s]*\.\.[^{}\s]*\}|(?<![$\w])\{[^{}\s,]+,[^{}\s]*\}|\[\[|[<>]\(|\$'|&>|\bshopt\b|\bsource\b"
)


def split_commands(lines: Iterable[str], first_line: int = 0) -> tuple[list[tuple[str, tuple[str, ...], int]],
                                                                         list[tuple[int, str]]]:
    """Split a bash block into whole commands with the comments that introduce them.

    A command spans several lines while a quote, ``\\`` continuation, trailing ``&&``/``||``/``|``,
    ``if``/``for``…``done``/``{``/``(`` or heredoc is open. Comment lines apply to the commands after them up to
    the next blank line or comment line.

    Args:
        lines: the block's lines.
        first_line: 0-based document line of the first of them (for positions).

    Returns:
        ([(command text with comments dropped, its comment lines, 0-based line)], [(0-based line, problem)]),
        where a problem is a command that never ended (kept as it is).
    """
    commands: list[tuple[str, tuple[str, ...], int]] = []
    problems: list[tuple[int, str]] = []
    comments: list[str] = []
    after_command = False
    buffer: list[str] = []
    start = 0
    heredoc: str | None = None
    for offset, line in enumerate(lines):
        number = first_line + offset
        if not buffer:
            stripped = line.strip()
            if not stripped:
                comments, after_command = [], False
                continue
            if stripped.startswith("#"):
                comments = [stripped] if after_command else [*comments, stripped]
                after_command = False
                continue
            start = number
        buffer.append(line)
        if heredoc is not None:
            # A heredoc body is data: kept verbatim, comments and quotes included.
            if line.strip() == heredoc:
                heredoc = None
                commands.append(("\n".join(buffer), tuple(comments), start))
                after_command, buffer = True, []
            continue
        found = _HEREDOC_RE.search(line)
        if found and _complete("\n".join(buffer)):
            heredoc = found.group(2)
            continue
        text = "\n".join(buffer)
        if _complete(text):
            cleaned = _strip_comments(text)
            if cleaned:
                commands.append((cleaned, tuple(comments), start))
                after_command = True
            buffer = []
    if buffer:
        problems.append((start, "the command never ends (open quote, `\\` or block); kept as written"))
        commands.append((_strip_comments("\n".join(buffer)) or "\n".join(buffer), tuple(comments), start))
    return commands, problems


def make_command(text: str, comments: tuple[str, ...], red_heading: bool, line: int) -> Command:
    """Turn one command of a bash block into a verify entry: expectation, shell need, bash-only wrapping.

    ``cmd && exit 1`` exits non-zero whether ``cmd`` fails (``&&`` short-circuits) or passes (``exit 1``), so it
    cannot tell a red suite from a green one; coord runs ``cmd`` and expects it to fail instead. Idioms that do
    invert (``rg x && exit 1 || true``, ``… && echo "passed unexpectedly" && exit 1 || echo ok``) are kept.

    Args:
        text: the command with comments dropped (from :func:`split_commands`).
        comments: the comment lines introducing it (``# EXPECTED TO FAIL`` makes it expect failure).
        red_heading: it sits under a ``RED`` heading (``### RED Gate``), where the tests must fail.
        line: 0-based document line, kept for messages.

    Returns:
        The command to run (``bash -c '…'`` for bash-only syntax such as ``{001..005}``), its expectation, and
        whether it needs ``/bin/sh -c`` (pipes, ``&&``, expansions, globs, several lines).
    """
    expect = "pass"
    suffix = _FAIL_SUFFIX_RE.search(text)
    if suffix and text[:suffix.start()].strip():
        text = text[:suffix.start()].rstrip()
        expect = "fail"
    if red_heading or any(EXPECT_FAIL_COMMENT_RE.search(comment) for comment in comments):
        expect = "fail"
    states, _, _ = _shell_states(text)
    code = _code_only(text, states)
    # `$` and backticks still expand inside double quotes: `rg "REQ-$req"` needs a shell.
    quoted_expansion = any(char in "$`" and state == "d" for char, state in zip(text, states, strict=True))
    first_word = code.split(maxsplit=1)[0] if code.split() else ""
    # The plan author's own command (plan code, trusted: docs/design.md §4) needs `shell: true` in the plan when it
    # uses pipes, redirections or expansions; coord then runs it with /bin/sh -c, never any substituted value.
    needs_shell = any(char in _SHELL_CHARS for char in code) or quoted_expansion or "=" in first_word
    if _BASH_ONLY_RE.search(code):
        return Command(f"bash -c {shlex.quote(text)}", expect, False, line)
    if not needs_shell:
        try:
            shlex.split(text)
        except ValueError:
            needs_shell = True
    return Command(text, expect, needs_shell, line)
