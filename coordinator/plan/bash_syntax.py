"""Shell commands read as syntax, not as text: the tree-sitter bash grammar (``tree-sitter-bash``) behind
``coord import``'s reading of bash blocks (``plan.importers.shell_scripts``) and the shell allow-list's check of
``script`` entries (``plan.allow_list``). Nothing here runs anything.
"""

from __future__ import annotations

import shlex
from functools import lru_cache

import tree_sitter
import tree_sitter_bash

_SIMPLE_ARGUMENT_NODES = frozenset({"word", "raw_string", "number", "command_name"})
_GLOB_CHARS = set("*?[~")


@lru_cache(maxsize=1)
def _parser() -> tree_sitter.Parser:
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_bash.language()))


def parse(script: str) -> tree_sitter.Tree:
    """The parse tree of ``script`` (bash syntax, which covers POSIX ``sh``); never raises: what does not parse
    shows as ``ERROR``/missing nodes (``tree.root_node.has_error``)."""
    return _parser().parse(script.encode())


def text_of(node: tree_sitter.Node) -> str:
    """The source text of ``node``."""
    return (node.text or b"").decode("utf-8", "replace")


def walk(node: tree_sitter.Node) -> list[tree_sitter.Node]:
    """``node`` and every node below it, in document order."""
    found = [node]
    for child in node.children:
        found.extend(walk(child))
    return found


def argv_words(command: tree_sitter.Node) -> list[str]:
    """The program and arguments of a ``command`` node as written (quotes removed where shlex can)."""
    words = []
    for child in command.children:
        if child.type in ("variable_assignment", "file_redirect", "herestring_redirect"):
            continue
        text = text_of(child)
        try:
            words.extend(shlex.split(text) or [text])
        except ValueError:
            words.append(text)
    return words


def program_name(words: list[str]) -> str:
    """The base name of the program of ``words`` (``/usr/bin/grep`` → ``grep``); empty for no words."""
    return words[0].rsplit("/", 1)[-1] if words else ""


def literal_word(node: tree_sitter.Node) -> bool:
    """True when the shell reads ``node`` (a command's name or argument) as exactly its quoted text: no
    expansion, substitution, glob or escape that would change it."""
    if node.type == "string":
        return all(part.type in ('"', "string_content") for part in node.children)
    if node.type not in _SIMPLE_ARGUMENT_NODES:
        return False
    if node.type == "command_name":
        return all(literal_word(child) for child in node.children)
    text = text_of(node)
    return not (node.type == "word" and (set(text) & _GLOB_CHARS or "\\" in text))


def plain_command(node: tree_sitter.Node) -> bool:
    """A single command that shlex splits exactly as bash would (no expansion, glob, redirect or assignment)."""
    return node.type == "command" and all(literal_word(child) for child in node.children)
