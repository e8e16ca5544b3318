"""Import plans written for people into coord plan YAML (``coord import``, DESIGN section 2).

Who uses it: ``coordinator.cli.import_cmd`` calls :func:`import_plan`, writes :meth:`ImportResult.yaml_text` and
validates it with the plan loader. Everything here is a pure function of the files read: nothing is written,
nothing is run.

Three formats (``shared/real-plans/NOTES.md``):

``markdown`` -- the phase-plan folders of vybestack/llxprt-code (``project-plans/<slug>/``, NOTES §4-§7):
  * phases are the files ``plan/NN[a-e]-slug.md`` (``P`` prefix and ``NN.N`` accepted), ordered by number, then
    letter, then ``-V`` (``P07`` before ``P07a``; ``P02a`` before ``P02a-V``); ``00-overview.md`` is the plan
    overview unless it has a ``## Phase ID`` of its own; other Markdown files in ``plan/`` are ignored (warned);
  * ``## Subphase P02a: …`` sections inside one file are phases of their own, and a ``### P02a-V Verifier``
    section inside one is a verifier phase; ``-V`` ids listed only in the overview's phase table become verifier
    phases of the phase they name (issue1590's P01-V);
  * the plan id is the overview's ``Plan ID:`` line, else the ``PLAN-….PNN`` of the phase files' ``## Phase ID``
    sections, else ``specification.md``'s ``Plan ID:`` -- never the folder name unless nothing else exists
    (warned); a phase's id is its ``## Phase ID`` (warned when it differs from the file name);
  * the kind comes from the file slug, then the title (``-stub``, ``-tdd``/``-tests``, ``-impl``,
    ``-verification``, ``(RED)``, ``(GREEN)``, …), then an ``a`` suffix (verification); kinds without a template
    (``preflight``, ``analysis``, …) become built-in ones, listed in one warning per kind;
  * ``instructions_file`` is the phase file itself. The plan loader reads whole files, so a subphase (or a
    verifier section) gets inline ``instructions`` instead: its source file and line range, then the author's
    text verbatim (the file's shared head and the subphase section);
  * ``verify`` comes from ``bash``/``sh`` blocks under verification headings (``## Verification Commands``,
    ``### Automated Checks``, ``### Verification (P02a)``, ``### RED Gate``, ``… Checks``), not under
    ``Prerequisites`` or a heading saying ``Deferred``/``do not run`` (warned). Comments are dropped; a command
    is expected to fail after a ``# EXPECTED TO FAIL`` comment (up to the next blank line or comment), under a
    ``RED`` heading, or when written ``cmd && exit 1`` -- which exits non-zero whatever ``cmd`` does, so coord
    runs ``cmd`` itself with ``expect: fail``. Commands with shell syntax get ``shell: true``; bash-only syntax
    (``{001..005}``, ``[[``) runs as ``bash -c '…'``. A ``-V`` phase without commands of its own re-runs those of
    the phase it verifies (the plans' verifier rule "run the verification commands listed in the worker phase");
  * artifacts are ``<folder>/reports/{{ phase.id }}-worker.md`` and ``<folder>/.completed/{{ phase.id }}.md``; a
    folder without ``reports/`` (most real plans) gets ``checks: {report: false}`` (warned).

``spec-kit`` -- GitHub spec-kit ``tasks.md`` (NOTES §11.1): each ``## Phase N: Title`` is a phase ``PNN`` (kind
  ``impl``), in file order; its tasks are ``- [ ] T001 …`` lines, and a phase whose tasks are all ``[X]`` is done
  (the source's own progress record). The plan id is the feature folder's name (``specs/001-albums``).

``taskmaster`` -- claude-task-master ``tasks.json`` (NOTES §11.2; format only): each task of the chosen tag
  (``master`` by default) is a phase ``T<id>`` with its dependencies; ``status: done`` is the progress record;
  subtasks stay in their task's instructions as a checklist. The plan id is ``<project>-<tag>``.

What the importer could not understand is returned as warnings, one line each, never guessed silently; what it
cannot import at all raises :class:`ImportFailed` naming the file (and line).
"""

from __future__ import annotations

import json
import re
import shlex
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from coordinator.errors import UsageError
from coordinator.plan.model import BUILTIN_KINDS

FORMATS = ("markdown", "spec-kit", "taskmaster")
FORMAT_NAMES = {
    "markdown": "markdown phase plan", "spec-kit": "spec-kit tasks.md", "taskmaster": "Taskmaster tasks.json",
}

MAX_SOURCE_BYTES = 4 * 1024 * 1024
"""Largest source file read (the plan loader refuses plan files over 1 MiB anyway)."""


class ImportFailed(UsageError):
    """The source cannot be imported; the message is one line naming the file (and line where known)."""


@dataclass(frozen=True)
class SourceProgress:
    """Completion as the source itself records it (spec-kit checkboxes, Taskmaster ``status``).

    Attributes:
        done: the source says the phase is finished.
        detail: one line saying where that was read, e.g. ``3/3 tasks checked in specs/001-albums/tasks.md``.
    """

    done: bool
    detail: str


@dataclass(frozen=True)
class ImportResult:
    """A converted plan: the document to write, and everything the user should know about it.

    Attributes:
        format: one of :data:`FORMATS`.
        plan_id: the plan id written into the document.
        source: the imported folder or file, workspace-relative.
        document: the plan document (plain dicts, lists and strings), ready for YAML.
        warnings: what could not be understood or was decided by a documented default, one line each.
        progress: per phase id, the source's own completion record; None for markdown plans, whose progress is
            judged from their completion markers and reports by coord's checks.
    """

    format: str
    plan_id: str
    source: str
    document: dict[str, Any]
    warnings: tuple[str, ...] = ()
    progress: dict[str, SourceProgress] | None = None

    @property
    def phase_ids(self) -> list[str]:
        return [phase["id"] for phase in self.document["phases"]]

    def yaml_text(self) -> str:
        """The plan file's text: a comment header naming the source and the warnings, then the document."""
        count = len(self.document["phases"])
        header = [
            f"# Imported by `coord import` from {self.source} ({FORMAT_NAMES[self.format]}): "
            f"{count} phase{'s' if count != 1 else ''}.",
        ]
        if self.warnings:
            header.append("# Import warnings:")
            header.extend(f"#   - {_one_line(warning)}" for warning in self.warnings)
        return "\n".join(header) + "\n" + dump_yaml(self.document)


# --------------------------------------------------------------------------------------------------------------
# YAML output


class _PlanDumper(yaml.SafeDumper):
    """``yaml.SafeDumper`` that writes multi-line strings as literal blocks, so instructions stay readable."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # PyYAML falls back to a quoted style by itself when a block cannot hold the text (e.g. trailing spaces).
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_PlanDumper.add_representer(str, _represent_str)


def dump_yaml(document: dict[str, Any]) -> str:
    """Serialize a plan document with PyYAML's safe dumper (never by hand); key order is kept."""
    # A wide line limit: a folded shell command reads back the same but no longer looks like what was written.
    return yaml.dump(document, Dumper=_PlanDumper, sort_keys=False, allow_unicode=True, width=4096,
                     default_flow_style=False)


def _one_line(text: str) -> str:
    return " ".join(text.split())


# --------------------------------------------------------------------------------------------------------------
# Entry point


def detect_format(source: Path) -> str:
    """Say which importer reads ``source`` (a folder or a file).

    Raises:
        ImportFailed: nothing importable was found.
    """
    if source.is_file():
        if source.suffix == ".json":
            return "taskmaster"
        if source.suffix == ".md":
            return "spec-kit"
        raise ImportFailed(f"{source}: not a plan folder, tasks.md or tasks.json")
    if not source.is_dir():
        raise ImportFailed(f"{source}: no such folder or file")
    if _phase_files(source):
        return "markdown"
    if (source / "tasks.md").is_file():
        return "spec-kit"
    if _taskmaster_file(source) is not None:
        return "taskmaster"
    raise ImportFailed(
        f"{source}: no plan found: expected plan/NN-slug.md phase files (markdown phase plan), "
        "tasks.md (spec-kit) or tasks.json (Taskmaster)"
    )


def import_plan(
    source: Path,
    workspace: Path,
    *,
    fmt: str = "auto",
    tag: str | None = None,
    plan_id: str | None = None,
    has_template: Callable[[str], bool] | None = None,
) -> ImportResult:
    """Convert a plan folder (or a spec-kit/Taskmaster file) into a coord plan document.

    Args:
        source: absolute path of the folder or file; must be inside ``workspace``.
        workspace: absolute workspace root (paths in the document are relative to it).
        fmt: ``auto`` or one of :data:`FORMATS`.
        tag: Taskmaster tag (default ``master``, or the only tag).
        plan_id: use this plan id instead of the one found in the files.
        has_template: tells whether a prompt template exists for a kind; default: the built-in kinds only.

    Returns:
        The document and its warnings.

    Raises:
        ImportFailed: the source is missing, outside the workspace, unreadable or holds no phases.
    """
    workspace = workspace.resolve()
    source = source.resolve()
    if not source.is_relative_to(workspace):
        raise ImportFailed(f"{source}: outside the workspace {workspace}")
    fmt = detect_format(source) if fmt == "auto" else fmt
    if fmt not in FORMATS:
        raise ImportFailed(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    templates = has_template or (lambda kind: kind in BUILTIN_KINDS)
    if fmt == "markdown":
        if not source.is_dir():
            raise ImportFailed(f"{_rel(source, workspace)}: a markdown phase plan is a folder")
        if source.name == "plan" and source.parent.is_relative_to(workspace) and source != workspace:
            # `project-plans/<slug>/plan` names the phase files; the plan (markers, reports) is its parent.
            source = source.parent
        result = _MarkdownImporter(source, workspace, templates).run()
    elif fmt == "spec-kit":
        result = _import_speckit(source / "tasks.md" if source.is_dir() else source, workspace)
    else:
        found = _taskmaster_file(source) if source.is_dir() else source
        if found is None:
            raise ImportFailed(f"{_rel(source, workspace)}: no tasks.json found")
        result = _import_taskmaster(found, workspace, tag)
    if plan_id is not None:
        result.document["plan"] = plan_id
        result = ImportResult(result.format, plan_id, result.source, result.document, result.warnings,
                              result.progress)
    return result


# --------------------------------------------------------------------------------------------------------------
# Reading files


def _rel(path: Path, workspace: Path) -> str:
    """Workspace-relative POSIX path ('.' for the workspace itself).

    Raises:
        ImportFailed: the path resolves outside the workspace (a symlink leaving it).
    """
    resolved = path.resolve()
    if not resolved.is_relative_to(workspace):
        raise ImportFailed(f"{path}: resolves outside the workspace {workspace}")
    return resolved.relative_to(workspace).as_posix() or "."


def _read_text(path: Path, workspace: Path) -> str:
    shown = _rel(path, workspace)
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_SOURCE_BYTES + 1)
    except OSError as exc:
        raise ImportFailed(f"{shown}: cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_SOURCE_BYTES:
        raise ImportFailed(f"{shown}: larger than {MAX_SOURCE_BYTES // (1024 * 1024)} MiB")
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise ImportFailed(f"{shown}: not UTF-8 (byte offset {exc.start})") from None


_FENCE_RE = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)")
_HEADING_RE = re.compile(r"^ {0,3}(?P<hashes>#{1,6})\s+(?P<text>.*?)\s*#*\s*$")


@dataclass(frozen=True)
class _Heading:
    line: int
    """0-based line number."""
    level: int
    text: str
    """The heading text with Markdown emphasis and backticks removed."""


@dataclass(frozen=True)
class _Fence:
    line: int
    """0-based line of the opening fence; the body starts on the next line."""
    info: str
    body: tuple[str, ...]


@dataclass(frozen=True)
class _Doc:
    """One Markdown file, split into headings and fenced blocks (headings inside fences are not headings)."""

    path: Path
    rel: str
    lines: tuple[str, ...]
    headings: tuple[_Heading, ...]
    fences: tuple[_Fence, ...]

    def section_end(self, heading: _Heading) -> int:
        """Line after the section that ``heading`` starts (the next heading of its level or above)."""
        for other in self.headings:
            if other.line > heading.line and other.level <= heading.level:
                return other.line
        return len(self.lines)

    def chain(self, line: int) -> list[_Heading]:
        """The headings enclosing ``line``, outermost first."""
        chain: list[_Heading] = []
        for heading in self.headings:
            if heading.line >= line:
                break
            chain = [item for item in chain if item.level < heading.level] + [heading]
        return chain

    def text(self, start: int, end: int) -> str:
        """Lines ``start``..``end`` (0-based, end excluded), trailing spaces removed, as one string."""
        return "\n".join(line.rstrip() for line in self.lines[start:end]).strip("\n")

    def first_heading(self, level: int = 1) -> _Heading | None:
        return next((heading for heading in self.headings if heading.level == level), None)

    def find(self, pattern: re.Pattern[str], level: int | None = None) -> list[_Heading]:
        return [h for h in self.headings if pattern.search(h.text) and (level is None or h.level == level)]


def _plain(text: str) -> str:
    return text.replace("**", "").replace("__", "").replace("`", "").strip()


def _parse_doc(path: Path, workspace: Path) -> _Doc:
    lines = tuple(_read_text(path, workspace).splitlines())
    headings: list[_Heading] = []
    fences: list[_Fence] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        fence = _FENCE_RE.match(line)
        if fence:
            marker = fence.group("fence")
            end = index + 1
            while end < len(lines):
                closing = lines[end].strip()
                if closing.startswith(marker[0] * len(marker)) and not closing.strip(marker[0]):
                    break
                end += 1
            fences.append(_Fence(index, fence.group("info").lower(), lines[index + 1:end]))
            index = end + 1
            continue
        heading = _HEADING_RE.match(line)
        if heading:
            headings.append(_Heading(index, len(heading.group("hashes")), _plain(heading.group("text"))))
        index += 1
    return _Doc(path, _rel(path, workspace), lines, tuple(headings), tuple(fences))


# --------------------------------------------------------------------------------------------------------------
# Shell commands from bash blocks


@dataclass(frozen=True)
class _Command:
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
_EXPECT_FAIL_COMMENT_RE = re.compile(
    r"expect(?:ed|s)?\s+(?:to\s+)?fail|must\s+fail|should\s+fail|fails?\s+as\s+expected", re.IGNORECASE
)
_EXPECTED_NOTE_RE = re.compile(r"\bexpected\s*:", re.IGNORECASE)
_FAIL_SUFFIX_RE = re.compile(r"\s*&&\s*exit\s+1\s*$")
_SHELL_CHARS = set("|&;<>()$`*?[]{}~!\n")
_BASH_ONLY_RE = re.compile(
    r"(?<![$\w])\{[^{}\s]*\.\.[^{}\s]*\}|(?<![$\w])\{[^{}\s,]+,[^{}\s]*\}|\[\[|[<>]\(|\$'|&>|\bshopt\b|\bsource\b"
)
_STATEFUL_RE = re.compile(r"^(?:cd|pushd|popd|export|source|set)\b|^\w+=[^\s]*$")


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


def make_command(text: str, comments: tuple[str, ...], red_heading: bool, line: int) -> _Command:
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
    if red_heading or any(_EXPECT_FAIL_COMMENT_RE.search(comment) for comment in comments):
        expect = "fail"
    states, _, _ = _shell_states(text)
    code = _code_only(text, states)
    # `$` and backticks still expand inside double quotes: `rg "REQ-$req"` needs a shell.
    quoted_expansion = any(char in "$`" and state == "d" for char, state in zip(text, states, strict=True))
    first_word = code.split(maxsplit=1)[0] if code.split() else ""
    # The plan author's own command (plan code, DESIGN trust model) needs `shell: true` in the plan when it
    # uses pipes, redirections or expansions; coord then runs it with /bin/sh -c, never any substituted value.
    needs_shell = any(char in _SHELL_CHARS for char in code) or quoted_expansion or "=" in first_word
    if _BASH_ONLY_RE.search(code):
        return _Command(f"bash -c {shlex.quote(text)}", expect, False, line)
    if not needs_shell:
        try:
            shlex.split(text)
        except ValueError:
            needs_shell = True
    return _Command(text, expect, needs_shell, line)


# --------------------------------------------------------------------------------------------------------------
# Kinds


_KIND_WORDS: tuple[tuple[str, frozenset[str]], ...] = (
    ("preflight", frozenset({"preflight"})),
    ("verify", frozenset({"verification", "verify", "verifier", "validation"})),
    ("stub", frozenset({"stub", "stubs", "skeleton", "scaffolding"})),
    ("test", frozenset({"tdd", "test", "tests", "red"})),
    ("impl", frozenset({"impl", "implementation", "implementations", "implement", "green"})),
    ("analysis", frozenset({"analysis"})),
    ("pseudocode", frozenset({"pseudocode"})),
    ("overview", frozenset({"overview"})),
    ("integration", frozenset({"integration"})),
    ("migration", frozenset({"migration"})),
    ("cleanup", frozenset({"cleanup"})),
    ("deprecation", frozenset({"deprecation"})),
    ("documentation", frozenset({"documentation", "docs"})),
    ("scaffold", frozenset({"scaffold"})),
)
"""Kind words in priority order (``…-stub-verification`` is a verification, ``integration-stub`` a stub)."""

FALLBACK_KINDS = {"preflight": "verify"}
"""Built-in kind used for a detected kind that has no template; anything not listed here becomes ``impl``."""

# In titles, "Tests" alone is too loose ("Move MCP Auth Code and Tests" moves passing tests): RED/TDD say it.
_TITLE_SKIP = {"test", "tests", "red", "green", "tdd"}
_TITLE_CASED = {"RED": "test", "TDD": "test", "GREEN": "impl"}


def detect_kind(slug: str, title: str) -> str | None:
    """The kind named by a file slug (``07a-openai-stub-verification``) or, failing that, a title."""
    tokens = set(slug.lower().split("-")) if slug else set()
    for kind, words in _KIND_WORDS:
        if tokens & words:
            return kind
    title_words = re.findall(r"[A-Za-z]+", title)
    for kind, words in _KIND_WORDS:
        for word in title_words:
            if word in _TITLE_CASED and _TITLE_CASED[word] == kind:
                return kind
            if word.lower() in words and word.lower() not in _TITLE_SKIP:
                return kind
    return None


# --------------------------------------------------------------------------------------------------------------
# Markdown phase plans (llxprt-code)


_PHASE_FILE_RE = re.compile(r"^P?(?P<num>\d+(?:\.\d+)?)(?P<sub>[a-eA]?)-(?P<slug>.+)\.md$")
_PHASE_REF_RE = re.compile(
    r"(?P<plan>PLAN-\d{8}-[A-Z0-9][A-Z0-9_-]*?)\.(?P<phase>P\d+(?:\.\d+)?[a-eA]?(?:-V)?)(?![\w.])"
)
_PHASE_ID_HEADING_RE = re.compile(r"^Phase ID$", re.IGNORECASE)
_PHASE_TOKEN_RE = re.compile(r"^P(?P<num>\d+(?:\.\d+)?)(?P<sub>[a-eA]?)(?P<verifier>-V)?$")
_PLAN_ID_LINE_RE = re.compile(r"^[\s*_>-]*Plan ID[\s*_]*:[\s*_`]*(?P<id>[A-Za-z0-9][A-Za-z0-9._-]*)", re.MULTILINE)
_TOTAL_RE = re.compile(r"^[\s*_]*(?:Total Phases|Executable Phase Count)[\s*_]*:[\s*_]*(?P<count>\d+)",
                       re.MULTILINE | re.IGNORECASE)
_SUBPHASE_RE = re.compile(r"^Subphase\s+(?P<id>P\d+(?:\.\d+)?[a-eA]?)\b\s*[:—–-]?\s*(?P<title>.*)$")
_VERIFIER_RE = re.compile(r"^(?P<id>P\d+(?:\.\d+)?[a-eA]?-V)\s+Verifier\b")
_TITLE_PREFIX_RE = re.compile(r"^(?:Phase|Subphase)\s+P?[\w.]+\s*[:—–-]\s*", re.IGNORECASE)
_PLAN_TITLE_RE = re.compile(r"^Plan\s*:\s*", re.IGNORECASE)
_VERIFY_HEADING_RE = re.compile(r"verif|automated checks|\bchecks?\b|\bgate\b", re.IGNORECASE)
_NOT_VERIFY_HEADING_RE = re.compile(r"\bdeferred\b|\bdo not run\b|prerequisite|failure recovery", re.IGNORECASE)
_DEFERRED_RE = re.compile(r"\bdeferred\b|\bdo not run\b", re.IGNORECASE)
_RED_HEADING_RE = re.compile(r"\bRED\b")
_SHELL_FENCES = {"bash", "sh", "shell"}
_VERIFIER_RULES_RE = re.compile(r"verifier phase instructions|verifier instructions", re.IGNORECASE)


def phase_sort_key(phase_id: str) -> tuple[tuple[int, ...], str, int]:
    """Execution order of llxprt phase ids: number, then letter, then ``-V`` (``P07``, ``P07-V``, ``P07a``)."""
    match = _PHASE_TOKEN_RE.match(phase_id)
    if match is None:
        return ((1 << 30,), phase_id, 0)
    number = tuple(int(part) for part in match.group("num").split("."))
    return (number, match.group("sub").lower(), 1 if match.group("verifier") else 0)


def _phase_files(folder: Path) -> list[Path]:
    """The candidate phase files of a plan folder: ``plan/*.md`` (or the folder's own ``NN-*.md``)."""
    for directory in (folder / "plan", folder):
        if directory.is_dir():
            found = sorted(path for path in directory.glob("*.md")
                           if _PHASE_FILE_RE.match(path.name) and path.is_file())
            if found:
                return found
    return []


@dataclass
class _Phase:
    """A phase found in the Markdown files, before it becomes a plan entry."""

    id: str
    title: str
    kind: str | None
    source: str
    """Where it came from, for messages: ``plan/07a-….md`` or ``plan/02-….md §Subphase P02a``."""
    instructions_file: str | None = None
    instructions: str | None = None
    verify: list[_Command] = field(default_factory=list)
    verifier_of: str | None = None


class _MarkdownImporter:
    """One import of an llxprt-style plan folder (see the module docstring for the rules)."""

    def __init__(self, folder: Path, workspace: Path, has_template: Callable[[str], bool]) -> None:
        self.folder = folder
        self.workspace = workspace
        self.has_template = has_template
        self.base = _rel(folder, workspace)
        self.warnings: list[str] = []
        self.phases: dict[str, _Phase] = {}
        self.no_kind: list[str] = []
        self.overview: _Doc | None = None

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def run(self) -> ImportResult:
        files = _phase_files(self.folder)
        if not files:
            raise ImportFailed(f"{self.base}: no phase files (plan/NN-slug.md)")
        self._warn_ignored(files[0].parent, files)
        overview: _Doc | None = None
        phase_docs: list[tuple[Path, _Doc, str | None]] = []
        for path in files:
            doc = _parse_doc(path, self.workspace)
            declared = self._declared_phase(doc)
            name = _PHASE_FILE_RE.match(path.name)
            assert name is not None
            if declared is None and name.group("slug").startswith("overview") and not name.group("sub"):
                overview = doc
                continue
            phase_docs.append((path, doc, declared))
        plan_id = self._plan_id(overview, [doc for _, doc, _ in phase_docs])
        self.overview = overview
        for path, doc, declared in phase_docs:
            self._add_file(path, doc, declared)
        table = self._overview_table(overview)
        self._add_listed_verifiers(overview, table)
        for phase_id, title in table:
            # The overview names verifier phases better than "Verify P02a: …".
            if title and phase_id in self.phases and self.phases[phase_id].verifier_of is not None:
                self.phases[phase_id].title = title
        ordered = sorted(self.phases.values(), key=lambda phase: phase_sort_key(phase.id))
        if not ordered:
            raise ImportFailed(f"{self.base}: no phases found in its phase files")
        self._check_overview(overview, table, ordered)
        document = self._document(plan_id, overview, ordered)
        return ImportResult("markdown", plan_id, self.base, document, tuple(self.warnings))

    # --- files, ids and overview ------------------------------------------------------------------------

    def _warn_ignored(self, directory: Path, files: list[Path]) -> None:
        if directory.name != "plan":
            return  # phase files beside overview.md, specification.md …: those are the plan's other documents
        chosen = set(files)
        for path in sorted(directory.glob("*.md")):
            if path not in chosen and path.is_file():
                self.warn(f"ignored {_rel(path, self.workspace)}: not a phase file (NN-slug.md)")

    @staticmethod
    def _phase_ref(doc: _Doc) -> re.Match[str] | None:
        """The ``PLAN-….PNN`` in the file's ``## Phase ID`` section (groups ``plan`` and ``phase``), or None."""
        for heading in doc.find(_PHASE_ID_HEADING_RE):
            found = _PHASE_REF_RE.search(doc.text(heading.line + 1, doc.section_end(heading)))
            if found:
                return found
        return None

    def _declared_phase(self, doc: _Doc) -> str | None:
        """The ``PNN`` of the file's ``## Phase ID`` section, or None."""
        found = self._phase_ref(doc)
        return found.group("phase") if found else None

    def _plan_id(self, overview: _Doc | None, docs: list[_Doc]) -> str:
        """The overview's ``Plan ID:``, else the phase files' ``## Phase ID`` plan, else ``specification.md``'s."""
        from_overview = None
        for candidate in (overview, *self._optional_docs("overview.md")):
            if candidate is not None:
                found = _PLAN_ID_LINE_RE.search("\n".join(candidate.lines))
                if found:
                    from_overview = found.group("id")
                    break
        declared = Counter(found.group("plan") for found in map(self._phase_ref, docs) if found)
        if from_overview:
            others = sorted(set(declared) - {from_overview})
            if others:
                self.warn(f"phase files name plan {', '.join(others)} but the overview says {from_overview}; "
                          f"using {from_overview}")
            return from_overview
        if declared:
            (best, _), *rest = declared.most_common()
            if rest:
                self.warn(f"phase files name several plans ({', '.join(sorted(declared))}); using {best}")
            return best
        for doc in self._optional_docs("specification.md"):
            found = _PLAN_ID_LINE_RE.search("\n".join(doc.lines))
            if found:
                return found.group("id")
        fallback = _safe_id(self.folder.name)
        self.warn(f"no Plan ID found (overview `Plan ID:` or a phase file's `## Phase ID`); "
                  f"using the folder name {fallback!r}")
        return fallback

    def _optional_docs(self, name: str) -> list[_Doc]:
        path = self.folder / name
        return [_parse_doc(path, self.workspace)] if path.is_file() else []

    def _overview_table(self, overview: _Doc | None) -> list[tuple[str, str | None]]:
        """``(phase id, title)`` rows of the overview's phase table, in table order."""
        if overview is None:
            return []
        rows: list[tuple[str, str | None]] = []
        columns: tuple[int, int | None] | None = None
        for line in overview.lines:
            stripped = line.strip()
            if not (stripped.startswith("|") and stripped.endswith("|")):
                columns = None
                continue
            cells = [_plain(cell) for cell in stripped.strip("|").split("|")]
            if columns is None:
                names = [cell.lower() for cell in cells]
                phase_col = next((i for i, name in enumerate(names) if name in ("phase", "phase id")), None)
                title_col = next((i for i, name in enumerate(names) if name == "title"), None)
                columns = (phase_col, title_col) if phase_col is not None else (-1, None)
                continue
            phase_col, title_col = columns
            if phase_col < 0 or phase_col >= len(cells) or set(cells[phase_col]) <= set("-: "):
                continue
            if _PHASE_TOKEN_RE.match(cells[phase_col]):
                title = cells[title_col] if title_col is not None and title_col < len(cells) else None
                rows.append((cells[phase_col], title or None))
        return rows

    def _check_overview(self, overview: _Doc | None, table: list[tuple[str, str | None]],
                        ordered: list[_Phase]) -> None:
        if overview is None:
            return
        total = _TOTAL_RE.search("\n".join(overview.lines))
        if total and int(total.group("count")) != len(ordered):
            self.warn(f"{overview.rel} states {total.group('count')} phases; {len(ordered)} were found")
        listed = [phase_id for phase_id, _ in table if phase_id in self.phases]
        found = [phase.id for phase in ordered if phase.id in set(listed)]
        if listed and listed != found:
            self.warn(f"{overview.rel} lists the phases in another order than their ids; imported in id order")

    # --- phases of one file ---------------------------------------------------------------------------------

    def _add(self, phase: _Phase) -> None:
        if phase.id in self.phases:
            self.warn(f"{phase.source}: phase {phase.id} is already defined by {self.phases[phase.id].source}; "
                      "skipped")
            return
        self.phases[phase.id] = phase

    def _add_file(self, path: Path, doc: _Doc, declared: str | None) -> None:
        name = _PHASE_FILE_RE.match(path.name)
        assert name is not None
        from_name = f"P{name.group('num')}{name.group('sub')}"
        phase_id = declared or from_name
        if declared is None:
            self.warn(f"{doc.rel}: no `## Phase ID` section; phase id {from_name} taken from the file name")
        elif declared != from_name:
            self.warn(f"{doc.rel}: its `## Phase ID` says {declared} but the file name says {from_name}; "
                      f"using {declared}")
        h1 = doc.first_heading(1)
        title = _TITLE_PREFIX_RE.sub("", h1.text) if h1 else phase_id
        subphases = [heading for heading in doc.headings if heading.level == 2 and _SUBPHASE_RE.match(heading.text)]
        if subphases:
            self._add_subphases(doc, subphases)
            return
        kind = detect_kind(name.group("slug"), title)
        if kind is None and name.group("sub"):
            kind = "verify"
        phase = _Phase(phase_id, title or phase_id, kind, doc.rel, instructions_file=doc.rel)
        phase.verify = self._verify(doc, 0, len(doc.lines), phase_id)
        self._add(phase)
        for heading in doc.headings:
            verifier = _VERIFIER_RE.match(heading.text)
            if verifier and verifier.group("id") == f"{phase_id}-V":
                self._add(self._section_verifier(doc, heading, phase, None))

    def _add_subphases(self, doc: _Doc, subphases: list[_Heading]) -> None:
        head_end = subphases[0].line
        added: list[_Phase] = []
        for heading in subphases:
            match = _SUBPHASE_RE.match(heading.text)
            assert match is not None
            end = doc.section_end(heading)
            phase_id = match.group("id")
            title = match.group("title").strip() or phase_id
            source = f"{doc.rel} §Subphase {phase_id}"
            verifier_heading = next(
                (h for h in doc.headings if heading.line < h.line < end and _VERIFIER_RE.match(h.text)), None
            )
            worker_end = verifier_heading.line if verifier_heading is not None else end
            instructions = (
                f"Subphase {phase_id} of `{doc.rel}` (lines {heading.line + 1}-{end}). Do this subphase only: "
                "the subphases after it are other workers' phases. The file's shared part (lines "
                f"1-{head_end}) and the subphase section follow verbatim.\n\n"
                f"{doc.text(0, head_end)}\n\n{doc.text(heading.line, end)}\n"
            )
            phase = _Phase(phase_id, title, detect_kind("", title), source, instructions=instructions)
            phase.verify = self._verify(doc, heading.line + 1, worker_end, phase_id)
            self._add(phase)
            added.append(phase)
            if verifier_heading is not None:
                verifier = self._section_verifier(doc, verifier_heading, phase, (heading, end))
                self._add(verifier)
                added.append(verifier)
        # Commands after the last subphase ("Overall Phase Verification Commands") check the whole phase:
        # they belong to its last step.
        outside = self._verify(doc, doc.section_end(subphases[-1]), len(doc.lines), added[-1].id)
        added[-1].verify.extend(outside)

    def _section_verifier(self, doc: _Doc, heading: _Heading, worker: _Phase,
                          subphase: tuple[_Heading, int] | None) -> _Phase:
        verifier_id = f"{worker.id}-V"
        end = doc.section_end(heading)
        where = (f"section \"{subphase[0].text}\" of `{doc.rel}` (lines {subphase[0].line + 1}-{subphase[1]})"
                 if subphase else f"`{doc.rel}`")
        instructions = (
            f"Verifier {verifier_id}: check the work of {worker.id}, described in {where}; read it. "
            f"The verifier instructions of `{doc.rel}` (lines {heading.line + 1}-{end}) follow verbatim"
            f"{self._verifier_rules()}.\n\n{doc.text(heading.line, end)}\n{self._verifier_rules(text=True)}"
        )
        phase = _Phase(verifier_id, f"Verify {worker.id}: {worker.title}", "verify",
                       f"{doc.rel} §{heading.text}", instructions=instructions, verifier_of=worker.id)
        phase.verify = list(worker.verify)
        return phase

    def _verifier_rules(self, text: bool = False) -> str:
        """The overview's rules for every verifier phase: a phrase pointing at them, or (``text``) the rules."""
        overview = self.overview
        rules = next(iter(overview.find(_VERIFIER_RULES_RE)), None) if overview is not None else None
        if overview is None or rules is None:
            return ""
        end = overview.section_end(rules)
        if text:
            return f"\n{overview.text(rules.line, end)}\n"
        return f", then the overview's rules for every verifier phase (`{overview.rel}`, lines {rules.line + 1}-{end})"

    def _add_listed_verifiers(self, overview: _Doc | None, table: list[tuple[str, str | None]]) -> None:
        """Add ``-V`` phases that only the overview's table lists; warn about other listed ids without files."""
        if overview is None:
            return
        for phase_id, title in table:
            if phase_id in self.phases:
                continue
            worker = self.phases.get(phase_id.removesuffix("-V")) if phase_id.endswith("-V") else None
            if worker is None:
                self.warn(f"{overview.rel} lists {phase_id}, but no phase file defines it; not imported")
                continue
            instructions = (
                f"Verifier {phase_id}: check the work of {worker.id}, whose instructions are in "
                f"{_source_phrase(worker)}; read them. {phase_id} is listed in the plan's overview "
                f"(`{overview.rel}`) and has no section of its own."
            )
            rules = self._verifier_rules(text=True)
            if rules:
                instructions += f" The overview's rules for every verifier phase follow verbatim.\n{rules}"
            phase = _Phase(phase_id, title or f"Verify {worker.id}", "verify", f"{overview.rel} (phase table)",
                           instructions=instructions.rstrip("\n") + "\n", verifier_of=worker.id)
            phase.verify = list(worker.verify)
            self.phases[phase_id] = phase

    # --- verification commands -----------------------------------------------------------------------------

    def _verify(self, doc: _Doc, start: int, end: int, phase_id: str) -> list[_Command]:
        """Verify commands from the shell blocks under verification headings between ``start`` and ``end``.

        Only headings from ``start`` on count (for a subphase: the headings inside its section).
        """
        commands: list[_Command] = []
        for fence in doc.fences:
            if not (start <= fence.line < end) or fence.info not in _SHELL_FENCES:
                continue
            # The file's title and the subphase heading itself do not count: "# Phase 07: … TDD (RED)" must
            # not make its lint commands expect failure.
            chain = [heading for heading in doc.chain(fence.line) if heading.level > 1 and heading.line >= start]
            names = [heading.text for heading in chain]
            if not any(_VERIFY_HEADING_RE.search(name) for name in names):
                continue
            if any(_NOT_VERIFY_HEADING_RE.search(name) for name in names):
                if any(_DEFERRED_RE.search(name) for name in names):
                    self.warn(f"{phase_id}: skipped the bash block at {doc.rel}:{fence.line + 1} under "
                              f"\"{names[-1]}\" (deferred, not run in this phase)")
                continue
            red = any(_RED_HEADING_RE.search(name) for name in names)
            found, problems = split_commands(fence.body, fence.line + 1)
            for line, problem in problems:
                self.warn(f"{phase_id}: {doc.rel}:{line + 1}: {problem}")
            for text, comments, line in found:
                for comment in comments:
                    if _EXPECTED_NOTE_RE.search(comment) and not _EXPECT_FAIL_COMMENT_RE.search(comment):
                        self.warn(f"{phase_id}: {doc.rel}:{line + 1}: expected result given only as a comment "
                                  f"({comment!r}); coord checks the exit status only")
                command = make_command(text, comments, red, line)
                if _STATEFUL_RE.match(text):
                    self.warn(f"{phase_id}: {doc.rel}:{line + 1}: `{text}` only affects its own command "
                              "(coord runs each verify command on its own)")
                commands.append(command)
        return commands

    # --- the document --------------------------------------------------------------------------------------

    def _kind(self, phase: _Phase, fallbacks: dict[str, list[str]]) -> str:
        kind = phase.kind
        if kind is None:
            self.no_kind.append(phase.id)
            return "impl"
        if self.has_template(kind):
            return kind
        fallback = FALLBACK_KINDS.get(kind, "impl")
        fallbacks.setdefault(kind, []).append(phase.id)
        return fallback

    def _document(self, plan_id: str, overview: _Doc | None, ordered: list[_Phase]) -> dict[str, Any]:
        title = self._title(overview, plan_id)
        fallbacks: dict[str, list[str]] = {}
        entries: list[dict[str, Any]] = []
        previous: str | None = None
        for phase in ordered:
            entry: dict[str, Any] = {
                "id": phase.id,
                "kind": self._kind(phase, fallbacks),
                "title": phase.title,
                "depends_on": [previous] if previous else [],
            }
            if phase.instructions_file is not None:
                entry["instructions_file"] = phase.instructions_file
            else:
                entry["instructions"] = phase.instructions or ""
            if phase.verify:
                entry["verify"] = [_verify_entry(command) for command in phase.verify]
            entries.append(entry)
            previous = phase.id
        for kind, ids in fallbacks.items():
            self.warn(f"kind {kind!r} has no template (templates/{kind}.md.j2); imported as "
                      f"{FALLBACK_KINDS.get(kind, 'impl')!r}: {_id_list(ids)}")
        if self.no_kind:
            self.warn(f"kind not recognized from file name or title; imported as 'impl': {_id_list(self.no_kind)}")
        no_verify = [phase.id for phase in ordered if not phase.verify]
        if no_verify:
            self.warn("no verification commands (no bash block under a verification heading); coord checks only "
                      f"their evidence files: {_id_list(no_verify)}")
        red_unmarked = [entry["id"] for entry in entries if entry["kind"] == "test" and entry.get("verify")
                        and all(item.get("expect", "pass") == "pass" for item in entry["verify"])]
        if red_unmarked:
            self.warn("red test phases with no command marked to fail (`# EXPECTED TO FAIL`, `cmd && exit 1`, "
                      f"RED heading); every command expects pass, check them: {_id_list(red_unmarked)}")
        document, warning = _plan_document(plan_id, title, self.folder, self.base, entries)
        if warning:
            self.warn(warning)
        return document

    def _title(self, overview: _Doc | None, plan_id: str) -> str:
        candidates = [overview, *self._optional_docs("overview.md")]
        for doc in candidates:
            heading = doc.first_heading(1) if doc is not None else None
            if heading is not None and heading.text:
                return _PLAN_TITLE_RE.sub("", heading.text) or plan_id
        return plan_id


def _source_phrase(phase: _Phase) -> str:
    if phase.instructions_file is not None:
        return f"`{phase.instructions_file}`"
    return phase.source.replace(" §", " section ")


def _verify_entry(command: _Command) -> dict[str, Any]:
    entry: dict[str, Any] = {"run": command.run}
    if command.expect != "pass":
        entry["expect"] = command.expect
    if command.shell:
        entry["shell"] = True
    return entry


def _plan_document(plan_id: str, title: str, folder: Path, base: str,
                   phases: list[dict[str, Any]]) -> tuple[dict[str, Any], str | None]:
    """The plan YAML document every importer writes, and the warning to give when the report check is off.

    Most real plans keep no ``reports/`` folder: the report check is then switched off (never silently).
    """
    document: dict[str, Any] = {
        "plan": plan_id,
        "title": title,
        "workdir": ".",
        "agent": "codex",
        "artifacts": _artifacts(base),
    }
    warning = None
    if not (folder / "reports").is_dir():
        document["checks"] = {"report": False}
        warning = (f"{base} has no reports/ folder: the report check is off for this plan (workers are still "
                   "asked for a report; only the completion marker and verify commands judge)")
    document["phases"] = phases
    return document, warning


def _artifacts(base: str) -> dict[str, str]:
    if "{" in base or "}" in base:
        raise ImportFailed(f"{base}: a folder name with braces cannot be used in artifact paths")
    prefix = "" if base == "." else f"{base}/"
    return {
        "report": prefix + "reports/{{ phase.id }}-worker.md",
        "completed": prefix + ".completed/{{ phase.id }}.md",
    }


def _id_list(ids: list[str]) -> str:
    return ", ".join(ids)


def _safe_id(name: str) -> str:
    """A plan id made from a name: characters outside ``[A-Za-z0-9._-]`` become ``-``."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-._")
    cleaned = re.sub(r"\.{2,}", ".", cleaned)
    return cleaned[:128] or "imported-plan"


# --------------------------------------------------------------------------------------------------------------
# spec-kit tasks.md


_SPECKIT_PHASE_RE = re.compile(r"^Phase\s+(?P<num>\d+)\s*[:—–-]\s*(?P<title>.+)$")
_SPECKIT_TASK_RE = re.compile(r"^\s*[-*]\s+\[(?P<mark>[ xX])\]\s+(?P<id>T\d+)\b")
_SPECKIT_TITLE_RE = re.compile(r"^Tasks\s*:\s*", re.IGNORECASE)


def _import_speckit(path: Path, workspace: Path) -> ImportResult:
    """Import a spec-kit ``tasks.md``: one phase per ``## Phase N: Title`` section (NOTES §11.1)."""
    doc = _parse_doc(path, workspace)
    folder = path.parent
    warnings: list[str] = []
    sections = [heading for heading in doc.headings if heading.level == 2 and _SPECKIT_PHASE_RE.match(heading.text)]
    if not sections:
        raise ImportFailed(f"{doc.rel}: no `## Phase N: Title` sections (spec-kit tasks.md)")
    covered: set[int] = set()
    entries: list[dict[str, Any]] = []
    progress: dict[str, SourceProgress] = {}
    previous: str | None = None
    for heading in sections:
        match = _SPECKIT_PHASE_RE.match(heading.text)
        assert match is not None
        end = doc.section_end(heading)
        covered.update(range(heading.line, end))
        phase_id = f"P{int(match.group('num')):02d}"
        if any(entry["id"] == phase_id for entry in entries):
            warnings.append(f"{doc.rel}:{heading.line + 1}: a second Phase {match.group('num')}; skipped")
            continue
        tasks = [_SPECKIT_TASK_RE.match(line) for line in doc.lines[heading.line:end]]
        marks = [task.group("mark") for task in tasks if task]
        checked = sum(1 for mark in marks if mark in "xX")
        if not marks:
            warnings.append(f"{phase_id} ({doc.rel}:{heading.line + 1}) has no `- [ ] T001 …` tasks")
        instructions = (
            f"Phase {match.group('num')} of the spec-kit task list `{doc.rel}` (lines {heading.line + 1}-{end}). "
            "Do its unchecked tasks in order and mark each one `[X]` in that file when it is done. "
            "The section follows verbatim.\n\n"
            f"{doc.text(heading.line, end)}\n"
        )
        entries.append({
            "id": phase_id,
            "kind": "impl",
            "title": match.group("title").strip(),
            "depends_on": [previous] if previous else [],
            "instructions": instructions,
        })
        progress[phase_id] = SourceProgress(
            done=bool(marks) and checked == len(marks),
            detail=f"{checked}/{len(marks)} tasks checked in {doc.rel}",
        )
        previous = phase_id
    for number, line in enumerate(doc.lines):
        task = _SPECKIT_TASK_RE.match(line)
        if task and number not in covered:
            warnings.append(f"{doc.rel}:{number + 1}: task {task.group('id')} is outside any `## Phase N` "
                            "section; not imported")
    warnings.append("spec-kit tasks carry no verification commands: coord judges each phase by its completion "
                    "marker (and the workers' own checks)")
    base = _rel(folder, workspace)
    heading = doc.first_heading(1)
    plan_id = _safe_id(folder.name)
    title = _SPECKIT_TITLE_RE.sub("", heading.text) if heading else plan_id
    document, warning = _plan_document(plan_id, title, folder, base, entries)
    warnings.extend([warning] if warning else [])
    return ImportResult("spec-kit", plan_id, doc.rel, document, tuple(warnings), progress)


# --------------------------------------------------------------------------------------------------------------
# Taskmaster tasks.json


def _taskmaster_file(folder: Path) -> Path | None:
    for candidate in (folder / ".taskmaster" / "tasks" / "tasks.json", folder / "tasks" / "tasks.json",
                      folder / "tasks.json"):
        if candidate.is_file():
            return candidate
    return None


def _taskmaster_tasks(data: Any, tag: str | None, shown: str) -> tuple[str, list[Any], dict[str, Any]]:
    """Pick the tag: ``{"<tag>": {"tasks": […], "metadata": {…}}}``, or the untagged ``{"tasks": […]}``."""
    if not isinstance(data, dict):
        raise ImportFailed(f"{shown}: expected a JSON object of tags ({{\"master\": {{\"tasks\": [...]}}}})")
    if isinstance(data.get("tasks"), list):
        if tag not in (None, "master"):
            raise ImportFailed(f"{shown}: untagged tasks.json has no tag {tag!r}")
        return "master", data["tasks"], data.get("metadata") or {}
    tags = {name: value for name, value in data.items() if isinstance(value, dict) and
            isinstance(value.get("tasks"), list)}
    if not tags:
        raise ImportFailed(f"{shown}: no tag holds a \"tasks\" list")
    if tag is None:
        tag = "master" if "master" in tags else next(iter(tags)) if len(tags) == 1 else None
        if tag is None:
            raise ImportFailed(f"{shown}: several tags ({', '.join(tags)}) and none is 'master'; choose with --tag")
    if tag not in tags:
        raise ImportFailed(f"{shown}: no tag {tag!r} (tags: {', '.join(tags)})")
    return tag, tags[tag]["tasks"], tags[tag].get("metadata") or {}


def _import_taskmaster(path: Path, workspace: Path, tag: str | None) -> ImportResult:
    """Import a claude-task-master ``tasks.json``: one phase ``T<id>`` per task of one tag (NOTES §11.2)."""
    shown = _rel(path, workspace)
    try:
        data = json.loads(_read_text(path, workspace))
    except json.JSONDecodeError as exc:
        raise ImportFailed(f"{shown}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    tag, tasks, metadata = _taskmaster_tasks(data, tag, shown)
    warnings: list[str] = []
    ids: dict[str, str] = {}
    for position, task in enumerate(tasks):
        task_id = task.get("id") if isinstance(task, dict) else None
        if isinstance(task_id, bool) or not isinstance(task_id, (int, str)) or not str(task_id).strip():
            raise ImportFailed(f"{shown}: task #{position + 1} of tag {tag!r} has no usable \"id\"")
        key = str(task_id).strip()
        if key in ids:
            raise ImportFailed(f"{shown}: task id {key} appears twice in tag {tag!r}")
        ids[key] = _safe_id(f"T{key}")
    if not ids:
        raise ImportFailed(f"{shown}: tag {tag!r} has no tasks")
    entries: list[dict[str, Any]] = []
    progress: dict[str, SourceProgress] = {}
    for task in tasks:
        key = str(task["id"]).strip()
        phase_id = ids[key]
        depends = _taskmaster_dependencies(task, key, ids, warnings)
        status = str(task.get("status") or "pending")
        if status in ("deferred", "cancelled"):
            warnings.append(f"{phase_id} is {status} in {shown}; imported as a normal phase")
        title = str(task.get("title") or phase_id)
        kind = "verify" if task.get("type") == "checkpoint" else detect_kind("", title)
        kind = kind if kind in BUILTIN_KINDS else "impl"
        entries.append({
            "id": phase_id,
            "kind": kind,
            "title": title,
            "depends_on": depends,
            "instructions": _taskmaster_instructions(task, key, shown, tag),
        })
        progress[phase_id] = SourceProgress(status == "done", f"{shown} status: {status}")
    warnings.append("Taskmaster test strategies are prose: no verification commands imported; coord judges each "
                    "phase by its completion marker")
    folder = path.parent
    parts = path.resolve().relative_to(workspace).parts
    if ".taskmaster" in parts:
        folder = workspace.joinpath(*parts[:parts.index(".taskmaster") + 1])
    project = folder.parent.name if folder.name == ".taskmaster" else folder.name
    plan_id = _safe_id(f"{project}-{tag}")
    base = _rel(folder, workspace)
    title = str(metadata.get("description") or f"Taskmaster tasks of {project} (tag {tag})")
    document, warning = _plan_document(plan_id, title, folder, base, entries)
    warnings.extend([warning] if warning else [])
    return ImportResult("taskmaster", plan_id, shown, document, tuple(warnings), progress)


def _taskmaster_dependencies(task: dict[str, Any], key: str, ids: dict[str, str], warnings: list[str]) -> list[str]:
    depends: list[str] = []
    for dep in task.get("dependencies") or []:
        text = str(dep).strip()
        parent = text.split(".")[0]
        if text in ids:
            target = ids[text]
        elif "." in text and parent in ids:
            target = ids[parent]
            warnings.append(f"{ids[key]} depends on subtask {text}; imported as a dependency on {target}")
        else:
            warnings.append(f"{ids[key]} depends on unknown task {text!r}; dependency dropped")
            continue
        if target == ids[key]:
            continue
        if target not in depends:
            depends.append(target)
    return depends


def _taskmaster_instructions(task: dict[str, Any], key: str, shown: str, tag: str) -> str:
    """A task's own fields as Markdown: description, details, test strategy, acceptance criteria, subtasks."""
    parts = [f"Task {key} of the Taskmaster task list `{shown}` (tag `{tag}`), priority "
             f"{task.get('priority') or 'unset'}.", f"# {task.get('title') or 'Task ' + key}"]
    for label, name in (("", "description"), ("## Details", "details"), ("## Test strategy", "testStrategy"),
                        ("## Acceptance criteria", "acceptanceCriteria")):
        value = task.get(name)
        if isinstance(value, list):
            value = "\n".join(f"- {item}" for item in value)
        if value:
            parts.append(f"{label}\n\n{str(value).strip()}" if label else str(value).strip())
    subtasks = [item for item in task.get("subtasks") or [] if isinstance(item, dict)]
    if subtasks:
        lines = ["## Subtasks (mark them done in tasks.json as you finish them)", ""]
        for item in subtasks:
            done = "x" if item.get("status") == "done" else " "
            deps = ", ".join(str(dep) for dep in item.get("dependencies") or [])
            after = f" (after {deps})" if deps else ""
            lines.append(f"- [{done}] {key}.{item.get('id')} {item.get('title') or ''}{after}")
            for name in ("description", "details"):
                if item.get(name):
                    lines.extend(f"  {line}" for line in str(item[name]).strip().splitlines())
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"
