"""Plan YAML source: the text of a plan file, its YAML document, and the position of every field in it.

Who uses it: ``plan.loader`` reads a plan with ``read_plan_text`` and ``parse_yaml`` into a ``Collector``, which
``plan.schema`` and the loader's semantic checks then fill with ``Problem``s positioned by field path;
``prompts.validate`` adds the template problems to the same collector.

What it checks: the bytes (at most 1 MiB, UTF-8, a UTF-8 BOM accepted, not empty) and the YAML, through
``PlanYamlLoader`` (a ``yaml.SafeLoader``): syntax, anchors/aliases, merge keys, duplicate keys and unsupported
tags; dates stay strings.
"""

from __future__ import annotations

import dataclasses
import os
import re
import stat
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from coordinator.errors import Problem

MAX_PLAN_BYTES = 1024 * 1024
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"

Path_ = tuple[str | int, ...]
"""A field path inside the document: mapping keys and sequence indexes, e.g. ``("phases", 2, "depends_on", 0)``."""


# --------------------------------------------------------------------------------------------------------------
# YAML


class PlanYamlLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that records problems instead of silently accepting risky or ambiguous YAML.

    It refuses anchors and aliases (an alias becomes null, so an alias bomb costs nothing), notes duplicate
    mapping keys (keeping the first value), turns unsupported tags into problems (constructing null), and keeps
    ISO dates as strings. Every composed node keeps its ``start_mark``, from which ``node_marks`` builds the
    field-path -> position map.

    Attributes:
        issues: ``(message, mark, mapping_node_or_None)`` found while composing and constructing.
        key_of: constructed key of each key node (by ``id``), so paths use the same keys as the data.
    """

    yaml_implicit_resolvers: dict[str, list[tuple[str, re.Pattern[str]]]] = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP_TAG]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.issues: list[tuple[str, yaml.Mark, MappingNode | None]] = []
        self.key_of: dict[int, Any] = {}
        self.unsupported: list[tuple[str, yaml.Mark]] = []
        self._anchors: list[yaml.Mark] = []
        self._aliases: list[yaml.Mark] = []

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.get_event()
            self._aliases.append(event.start_mark)
            return ScalarNode("tag:yaml.org,2002:null", "", event.start_mark, event.end_mark)
        event = self.peek_event()
        if getattr(event, "anchor", None) is not None:
            self._anchors.append(event.start_mark)
            event.anchor = None
        return super().compose_node(parent, index)

    def alias_issues(self) -> list[tuple[str, yaml.Mark, None]]:
        """One issue for anchors and one for aliases (with counts), at the first of each."""
        found: list[tuple[str, yaml.Mark, None]] = []
        for kind, marks in (("aliases", self._aliases), ("anchors", self._anchors)):
            if marks:
                more = f" ({len(marks)} found)" if len(marks) > 1 else ""
                found.append((f"YAML {kind} are not allowed{more}", marks[0], None))
        return found

    def construct_mapping(self, node: Node, deep: bool = False) -> dict[Any, Any]:
        if not isinstance(node, MappingNode):
            raise yaml.constructor.ConstructorError(
                None, None, f"expected a mapping node, but found {node.id}", node.start_mark  # type: ignore[attr-defined]
            )
        mapping: dict[Any, Any] = {}
        first: dict[Any, Node] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                self.issues.append(("YAML merge keys ('<<') are not allowed", key_node.start_mark, node))
                continue
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                self.issues.append(("mapping keys must be plain values", key_node.start_mark, node))
                continue
            self.key_of[id(key_node)] = key
            if key in first:
                line = first[key].start_mark.line + 1
                self.issues.append((f"duplicate key {key!r} (first at line {line})", key_node.start_mark, node))
                continue
            first[key] = key_node
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping

    def construct_unsupported(self, node: Node) -> None:
        tag = node.tag.replace("tag:yaml.org,2002:", "!!")
        self.issues.append((f"unsupported YAML tag {tag!r}", node.start_mark, None))
        self.unsupported.append((tag, node.start_mark))
        return None


PlanYamlLoader.add_constructor(None, PlanYamlLoader.construct_unsupported)


@dataclasses.dataclass
class Marks:
    """Positions of every field: ``values`` at the value node, ``keys`` at the mapping key."""

    values: dict[Path_, yaml.Mark] = dataclasses.field(default_factory=dict)
    keys: dict[Path_, yaml.Mark] = dataclasses.field(default_factory=dict)
    node_paths: dict[int, Path_] = dataclasses.field(default_factory=dict)


def _record_marks(node: Node, loader: PlanYamlLoader) -> Marks:
    marks = Marks()
    stack: list[tuple[Node, Path_]] = [(node, ())]
    while stack:
        current, path = stack.pop()
        marks.values.setdefault(path, current.start_mark)
        marks.node_paths[id(current)] = path
        if isinstance(current, MappingNode):
            seen: set[Any] = set()
            for key_node, value_node in current.value:
                if id(key_node) not in loader.key_of:
                    continue
                key = loader.key_of[id(key_node)]
                if key in seen:
                    continue
                seen.add(key)
                child = (*path, key if isinstance(key, (str, int)) else str(key))
                marks.keys[child] = key_node.start_mark
                stack.append((value_node, child))
        elif isinstance(current, SequenceNode):
            for index, item in enumerate(current.value):
                stack.append((item, (*path, index)))
    return marks


def format_path(path: Path_) -> str:
    """Format a field path: ``("phases", 2, "depends_on", 0)`` -> ``phases[2].depends_on[0]``."""
    text = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def describe(value: object) -> str:
    """How a value reads in a message: ``null``, ``a mapping``, ``a list``, or its repr cut to 60 characters."""
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --------------------------------------------------------------------------------------------------------------
# Problems positioned by field path, and reading the file


class Collector:
    """Problems of one plan file, positioned by field path.

    ``add`` places a problem at a field of the plan file (from ``marks``); ``append`` takes one already placed (e.g.
    in a template); both drop repeats. ``sorted`` gives the plan file's problems by position,
    then the others' (templates') by position; ties keep the order they were added in.
    """

    def __init__(self, display: str) -> None:
        self.display = display
        self.marks = Marks()
        self.problems: list[Problem] = []
        self.unsupported: set[tuple[int, int]] = set()
        self._seen: set[tuple[Any, ...]] = set()

    def add(
        self, path: Path_, message: str, *, key: bool = False, dedupe: str | None = None, at: Path_ | None = None
    ) -> None:
        """Add a problem for field ``path``, positioned at ``at`` (default: ``path``), at its key if ``key``."""
        mark = self.mark(path if at is None else at, key=key)
        if mark is not None and (mark.line, mark.column) in self.unsupported and not key:
            return  # the value is an unsupported tag, already reported; its null stand-in would only add noise
        problem = Problem(
            file=self.display,
            field=format_path(path),
            message=message,
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        )
        self.append(problem, dedupe)

    def append(self, problem: Problem, dedupe: str | None = None) -> None:
        token = (problem.file, problem.field, problem.line, dedupe if dedupe is not None else problem.message)
        if token not in self._seen:
            self._seen.add(token)
            self.problems.append(problem)

    def at_mark(self, mark: yaml.Mark | None, message: str, field: str = "") -> None:
        self.append(
            Problem(
                file=self.display,
                field=field,
                message=message,
                line=mark.line + 1 if mark else None,
                column=mark.column + 1 if mark else None,
            )
        )

    def mark(self, path: Path_, *, key: bool = False) -> yaml.Mark | None:
        if key and path in self.marks.keys:
            return self.marks.keys[path]
        for end in range(len(path), -1, -1):
            mark = self.marks.values.get(path[:end])
            if mark is not None:
                return mark
        return None

    def sorted(self) -> list[Problem]:
        def order(item: tuple[int, Problem]) -> tuple[int, int, int, int]:
            index, problem = item
            own = 0 if problem.file == self.display else 1
            return (own, problem.line or 0, problem.column or 0, index)

        return [problem for _, problem in sorted(enumerate(self.problems), key=order)]


def read_plan_text(path: Path, workspace: Path, out: Collector) -> str | None:
    """The plan's text without a BOM (the path as given, else relative to the workspace); None after a problem."""
    candidates = [path] if path.is_absolute() or path.exists() else [path, workspace / path]
    data = None
    for candidate in candidates:
        try:
            # Non-blocking, then checked: a FIFO or a device would otherwise hang `validate` and `run`.
            fd = os.open(candidate, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        except OSError as exc:
            out.at_mark(None, f"cannot read plan: {exc.strerror or exc}")
            return None
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                out.at_mark(None, "cannot read plan: not a regular file")
                return None
            os.set_blocking(fd, True)
            data = handle.read(MAX_PLAN_BYTES + 1)
        break
    if data is None:
        out.at_mark(None, "cannot read plan: no such file")
        return None
    if len(data) > MAX_PLAN_BYTES:
        out.at_mark(None, "plan exceeds 1 MiB")
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        out.at_mark(None, f"not UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})")
        return None
    text = text.removeprefix("\ufeff")
    if not text.strip():
        out.at_mark(None, "plan is empty")
        return None
    return text


def parse_yaml(text: str, out: Collector) -> Any:
    """Parse and construct the document; fill ``out.marks``. Returns the data, or None when nothing usable."""
    try:
        loader = PlanYamlLoader(text)
    except yaml.reader.ReaderError as exc:
        _reader_problem(exc, text, out)
        return None
    try:
        node = loader.get_single_node()
        if node is None:
            out.at_mark(None, "plan is empty")
            return None
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.problem and exc.context_mark and exc.context_mark is not mark:
            message += f" ({exc.context} at line {exc.context_mark.line + 1})"
        out.at_mark(mark, message)
        return None
    except yaml.reader.ReaderError as exc:
        _reader_problem(exc, text, out)
        return None
    except RecursionError:
        out.at_mark(None, "plan is nested too deeply")
        return None
    finally:
        loader.dispose()
    try:
        out.marks = _record_marks(node, loader)
    except RecursionError:
        out.at_mark(None, "plan is nested too deeply")
        return None
    out.unsupported = {(mark.line, mark.column) for _, mark in loader.unsupported}
    for message, mark, mapping in [*loader.alias_issues(), *loader.issues]:
        field = format_path(out.marks.node_paths.get(id(mapping), ())) if mapping is not None else ""
        out.at_mark(mark, message, field)
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else describe(data)
        out.at_mark(node.start_mark, f"plan must be a mapping (plan, title, phases, ...), got {kind}")
        return None
    return data


def _reader_problem(exc: yaml.reader.ReaderError, text: str, out: Collector) -> None:
    position = exc.position
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    char = exc.character if isinstance(exc.character, str) else chr(exc.character)
    out.append(
        Problem(
            file=out.display,
            field="",
            message=f"control character #x{ord(char):04x} is not allowed",
            line=line,
            column=column,
        )
    )
