"""The shell agent's allow-list: which ``script`` entries may run, and how (as argv, or through ``/bin/sh -c``).

Who uses it: ``plan.loader`` refuses an entry no allow-list admits (``coord validate``, and ``coord run`` before
anything launches); the ``shell`` adapter asks :func:`decide` again at launch for the argv to run.

The rules (docs/design.md §4, "allow-listed shell"):
  * an entry that is one plain command (no pipe, redirection, variable, glob, quote trickery: the shell would read
    it exactly as ``shlex`` splits it) runs **without a shell**, as its argv, when an allow-list entry matches
    that argv;
  * an entry that needs a shell runs through ``/bin/sh -c`` only when **every** command in it (pipelines, lists,
    substitutions, loops included) matches an allow-list entry marked ``shell: true``; a command whose program is
    not a literal name (``$TOOL x``) or an entry that does not parse is refused;
  * matching: the program is compared exactly (``python3`` does not admit ``/usr/bin/python3``); each argument
    against one glob of the entry, where ``*`` and ``?`` stay within a path component and ``**`` spans any number
    of them; an argument with a ``..`` component matches only a pattern that has ``..`` there; a last ``...``
    admits any further arguments. Inside a shell entry an argument that is not literal (``"$OUT"``, ``*.py``)
    matches only ``**`` or ``...``.
"""

from __future__ import annotations

import fnmatch
import shlex
from dataclasses import dataclass

import tree_sitter

from coordinator.errors import Problem
from coordinator.plan.bash_syntax import literal_word, parse, plain_command, text_of, walk
from coordinator.plan.model import AgentProfile, AllowedCommand
from coordinator.plan.schema import AllowEntryModel
from coordinator.plan.user_config import read_section
from coordinator.plan.yaml_source import Collector, Path_

ANY_FURTHER = "..."
"""As an allow-list entry's last word: any further arguments."""


@dataclass(frozen=True)
class Decision:
    """What may be done with one ``script`` entry.

    Attributes:
        argv: run this argv without a shell; None with ``refusal`` None means run the entry by ``/bin/sh -c``.
        refusal: why the entry may not run at all (one sentence naming the command), or None.
    """

    argv: tuple[str, ...] | None
    refusal: str | None = None


def _component_match(argument: str, pattern: str) -> bool:
    parts, globs = argument.split("/"), pattern.split("/")

    def match(i: int, j: int) -> bool:
        if j == len(globs):
            return i == len(parts)
        if globs[j] == "**":
            return any(match(k, j + 1) for k in range(i, len(parts) + 1)) and ".." not in parts[i:]
        if i == len(parts):
            return False
        if parts[i] == ".." and globs[j] != "..":
            return False
        return fnmatch.fnmatchcase(parts[i], globs[j]) and match(i + 1, j + 1)

    return match(0, 0)


def matches(words: list[str | None], entry: AllowedCommand) -> bool:
    """True when ``words`` (program, then arguments; None for an argument that is not literal) is admitted by
    ``entry``."""
    pattern = list(entry.pattern)
    if not words or words[0] != pattern[0]:
        return False
    rest = pattern[1:]
    any_further = bool(rest) and rest[-1] == ANY_FURTHER
    if any_further:
        rest = rest[:-1]
    arguments = words[1:]
    if len(arguments) < len(rest) or (len(arguments) > len(rest) and not any_further):
        return False
    for argument, glob in zip(arguments, rest, strict=False):  # extra arguments: the `...` admits them
        if argument is None:
            if glob != "**":
                return False
        elif not _component_match(argument, glob):
            return False
    return True


def _shown(words: list[str] | str) -> str:
    text = words if isinstance(words, str) else shlex.join(words)
    return f"`{text if len(text) <= 80 else text[:77] + '...'}`"


def _command_words(node: tree_sitter.Node) -> list[str | None] | None:
    """The program and arguments of a ``command`` node, None for each argument that is not literal; None when
    the program itself is not a literal name."""
    words: list[str | None] = []
    for child in node.children:
        if child.type in ("variable_assignment", "file_redirect", "herestring_redirect", "heredoc_redirect"):
            continue
        if not literal_word(child):
            if not words:
                return None
            words.append(None)
            continue
        try:
            words.extend(shlex.split(text_of(child)))
        except ValueError:
            return None if not words else words + [None]
    return words


def _refusal_in_list(entry: str, allowed: tuple[AllowedCommand, ...]) -> tuple[tuple[str, ...] | None, str | None]:
    """(argv to run without a shell or None for a shell, None) or (None, why refused), for one allow-list."""
    source = allowed[0].source if allowed else "its allow-list (which admits nothing)"
    tree = parse(entry)
    statements = [node for node in tree.root_node.children if node.type != "comment"]
    if tree.root_node.has_error:
        return None, f"{_shown(entry)} does not parse as a shell command, so it cannot be checked against {source}"
    if len(statements) == 1 and plain_command(statements[0]) and "\n" not in entry.strip():
        argv = shlex.split(entry)
        if any(matches(list(argv), rule) for rule in allowed):
            return tuple(argv), None
        return None, f"{_shown(argv)} is not allowed: no entry of {source} admits it"
    commands = [node for node in walk(tree.root_node) if node.type == "command"]
    if not commands:
        return None, f"{_shown(entry)} runs no command an allow-list can admit"
    for node in commands:
        words = _command_words(node)
        if words is None:
            return None, (f"{_shown(text_of(node))} in {_shown(entry)}: its program is not a literal name, so "
                          f"{source} cannot admit it")
        if not any(rule.shell and matches(words, rule) for rule in allowed):
            plain = any(matches(words, rule) for rule in allowed)
            why = ("is allowed only without a shell, and this entry uses shell syntax (give its allow-list entry "
                   "`shell: true`, or write it as one plain command)") if plain else f"is not admitted by {source}"
            return None, f"{_shown(text_of(node))} in {_shown(entry)} {why}"
    return None, None


def decide(entry: str, allow_lists: tuple[tuple[AllowedCommand, ...], ...]) -> Decision:
    """How the ``script`` entry may run under every one of ``allow_lists`` (the module docstring's rules).

    Args:
        entry: one ``script`` entry as the plan wrote it.
        allow_lists: the profile's ``AgentProfile.allow_lists``; empty means unrestricted (run by ``/bin/sh -c``).

    Returns:
        A Decision: the argv to run without a shell, or a shell run, or a refusal naming the command and the list
        that refuses it.
    """
    if not allow_lists:
        return Decision(argv=None)
    argv: tuple[str, ...] | None = None
    for allowed in allow_lists:
        found, refusal = _refusal_in_list(entry, allowed)
        if refusal is not None:
            return Decision(argv=None, refusal=refusal)
        argv = argv if found is None else found
    return Decision(argv=argv)


def parse_entry(value: str, shell: bool, source: str) -> AllowedCommand:
    """One allow-list entry from its text (``python3 -m unittest ...``).

    Raises:
        ValueError: the text does not split into words (an open quote), or is empty, or its program is a glob.
    """
    words = tuple(shlex.split(value))
    if not words:
        raise ValueError("an allow-list entry needs a program")
    if set(words[0]) & set("*?["):
        raise ValueError(f"the program {words[0]!r} must be a name or path, not a pattern")
    if ANY_FURTHER in words[1:-1]:
        raise ValueError(f"{ANY_FURTHER!r} may only be the last word (any further arguments)")
    return AllowedCommand(pattern=words, shell=shell, source=source)


def plan_allow_list(entries: list[AllowEntryModel] | None, base: str, path: Path_,
                    out: Collector) -> tuple[AllowedCommand, ...] | None:
    """A profile's ``allow:`` as entries, each bad one reported at ``path[i]``; None when the profile has none.
    An ``allow`` on a profile whose base is not ``shell`` is reported (it would restrict nothing)."""
    if entries is None:
        return None
    if base != "shell":
        out.add((*path,), f"'allow' restricts the shell agent's commands; this profile's base is {base!r}", key=True)
        return None
    allowed = []
    source = ".".join(str(part) for part in path[:2]) + ".allow"
    for index, item in enumerate(entries):
        try:
            allowed.append(parse_entry(item.command, item.shell, source))
        except ValueError as exc:
            out.add((*path, index), str(exc))
    return tuple(allowed)


def user_allow_list(out: Collector) -> tuple[AllowedCommand, ...] | None:
    """The user's config file's ``shell: {allow: [...]}`` (``plan.user_config``), every problem in it reported
    against that file; None when it has none."""
    try:
        where, section = read_section("shell")
    except ValueError as exc:
        out.append(Problem(str(exc).split(":", 1)[0], "shell", str(exc).split(": ", 1)[-1]))
        return None
    if section is None:
        return None
    entries = section.get("allow") if isinstance(section, dict) else None
    if not isinstance(entries, list):
        out.append(Problem(str(where), "shell.allow", "expected `shell: {allow: [commands]}`"))
        return None
    allowed = []
    for index, item in enumerate(entries):
        command, shell = (item, False) if isinstance(item, str) else (
            (item.get("command"), item.get("shell", False)) if isinstance(item, dict) else (None, False))
        try:
            if not isinstance(command, str) or not isinstance(shell, bool):
                raise ValueError("expected a command string or {command: ..., shell: true|false}")
            allowed.append(parse_entry(command, shell, str(where)))
        except ValueError as exc:
            out.append(Problem(str(where), f"shell.allow[{index}]", str(exc)))
    return tuple(allowed)


def check_script(script: list[str] | None, profile: AgentProfile, path: Path_, out: Collector) -> None:
    """Report every entry of a phase's ``script`` that ``profile``'s allow-lists refuse, at ``path[i]``."""
    for index, entry in enumerate(script or ()):
        decision = decide(entry, profile.allow_lists)
        if decision.refusal is not None:
            out.add((*path, index), decision.refusal)
