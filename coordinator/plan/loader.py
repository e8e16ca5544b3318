"""Plan loader: YAML file -> validated, frozen ``Plan`` (DESIGN section 3), or every problem with its position.

Who uses it: ``coord run``/``validate``/``render``/``remediate`` call ``load_plan`` (or ``validate_plan``) before
anything is launched; the engine reads only the frozen model it returns.

The checks, in order, each adding ``Problem``s (file, line, column, field path, message) instead of stopping:

1. bytes: at most 1 MiB, UTF-8 (a UTF-8 BOM is accepted), not empty;
2. YAML, through ``PlanYamlLoader`` (a ``yaml.SafeLoader``): syntax, anchors/aliases, duplicate keys,
   unsupported tags; dates stay strings;
3. schema (pydantic v2, unknown keys forbidden, with "did you mean" suggestions, types and ranges);
4. semantics: ids, duplicate and case-fold duplicate phase ids, ``depends_on`` (unknown, self, cycles), agents,
   paths inside the workspace, a template for every kind, artifact paths that render, stay inside the workspace and
   differ between phases;
5. a dry render of every phase's prompt and its remediation prompt.

Defaults the design leaves open: ``title`` defaults to the plan id (plan) or phase id (phase); ``depends_on: null``
means the same as leaving it out (the previous phase); a phase ``kind`` must match the id pattern and may not be
``remediate``; a ``workdir`` may not exist yet (an earlier phase may create it) but may not be a file.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import graphlib
import os
import re
import shlex
import types
import typing
from collections.abc import Hashable
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from coordinator.errors import PlanError, Problem, TemplateError
from coordinator.paths import OutsideWorkspace, inside_workspace
from coordinator.plan.model import (
    BUILTIN_AGENTS,
    BUILTIN_KINDS,
    AgentProfile,
    Artifacts,
    Budget,
    Checks,
    Phase,
    Plan,
    Policy,
    Price,
    VerifyCommand,
)
from coordinator.prompts.renderer import REMEDIATION_TEMPLATE, SAMPLE_REMEDIATION, PromptRenderer

MAX_PLAN_BYTES = 1024 * 1024
PLAN_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
PHASE_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
PHASE_ID_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_PLAN_ID_MAX = 128
_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_SANDBOXES = ("read-only", "workspace-write", "danger-full-access")

Path_ = tuple[str | int, ...]
"""A field path inside the document: mapping keys and sequence indexes, e.g. ``("phases", 2, "depends_on", 0)``."""


# --------------------------------------------------------------------------------------------------------------
# Durations


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_BARE_NUMBER_RE = re.compile(_NUMBER)
_DURATION_RE = re.compile(rf"(?:{_NUMBER}\s*(?:ms|s|m|h|d)\s*)+")
_DURATION_PART_RE = re.compile(rf"({_NUMBER})\s*(ms|s|m|h|d)")


def parse_duration(value: object) -> float:
    """Parse a plan duration into seconds.

    Args:
        value: a non-negative number of seconds (``300``, ``0.2``), or a string of number+unit parts with units
            ``ms``, ``s``, ``m``, ``h``, ``d`` (``"250ms"``, ``"10s"``, ``"1.5m"``, ``"2h"``, ``"1h30m"``), or a
            string holding a bare number of seconds (``"300"``).

    Returns:
        Seconds as a float.

    Raises:
        ValueError: anything else (booleans, negative or non-finite numbers, unknown units, empty strings).
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 300, '10s', '5m', '1h' or '250ms', got {value!r}")
    if isinstance(value, (int, float)):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"duration must be a finite number of seconds, got {value!r}")
        if value < 0:
            raise ValueError(f"duration must not be negative, got {value!r}")
        return float(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if _BARE_NUMBER_RE.fullmatch(text):
            return float(text)
        if _DURATION_RE.fullmatch(text):
            return sum(float(number) * _UNITS[unit] for number, unit in _DURATION_PART_RE.findall(text))
    raise ValueError(f"expected a duration such as 300, '10s', '5m', '1h' or '250ms', got {value!r}")


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

    yaml_implicit_resolvers: typing.ClassVar[dict[str, list[tuple[str, re.Pattern[str]]]]] = {
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

    def compose_node(self, parent: Node | None, index: object) -> Node:
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
                None, None, f"expected a mapping node, but found {node.id}", node.start_mark
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
class _Marks:
    """Positions of every field: ``values`` at the value node, ``keys`` at the mapping key."""

    values: dict[Path_, yaml.Mark] = dataclasses.field(default_factory=dict)
    keys: dict[Path_, yaml.Mark] = dataclasses.field(default_factory=dict)
    node_paths: dict[int, Path_] = dataclasses.field(default_factory=dict)


def _record_marks(node: Node, loader: PlanYamlLoader) -> _Marks:
    marks = _Marks()
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


# --------------------------------------------------------------------------------------------------------------
# Schema (pydantic); converted to the frozen dataclasses of ``model.py`` after the semantic checks


def _duration(value: object) -> float:
    return parse_duration(value)


def _one_or_many(value: object) -> object:
    return [value] if isinstance(value, str) else value


def _none_is_empty(value: object) -> object:
    return [] if value is None else value


def _command_string(value: object) -> object:
    return {"run": value} if isinstance(value, str) else value


_POLICY = Policy()
_VERIFY = VerifyCommand(run="")
_ARTIFACTS = Artifacts()

PositiveDuration = Annotated[float, BeforeValidator(_duration), Field(gt=0)]
Duration = Annotated[float, BeforeValidator(_duration), Field(ge=0)]


class _Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class PolicyModel(_Schema):
    poll_interval: PositiveDuration = _POLICY.poll_interval
    max_cycles: Annotated[int, Field(ge=1)] = _POLICY.max_cycles
    max_silent_cycles: Annotated[int, Field(ge=1)] | None = _POLICY.max_silent_cycles
    max_attempts: Annotated[int, Field(ge=1)] = _POLICY.max_attempts
    remediation: Literal["fresh", "resume"] = _POLICY.remediation
    kill_grace: Duration = _POLICY.kill_grace
    log_cap_mib: Annotated[float, Field(gt=0)] = _POLICY.log_cap_mib


class ChecksModel(_Schema):
    report: bool = True
    completed: bool = True
    verify: bool = True


class ArtifactsModel(_Schema):
    report: Annotated[str, Field(min_length=1)] = _ARTIFACTS.report
    completed: Annotated[str, Field(min_length=1)] = _ARTIFACTS.completed


class AgentModel(_Schema):
    base: Literal["codex", "claude", "shell"] | None = None
    binary: Annotated[str, Field(min_length=1)] | None = None
    model: Annotated[str, Field(min_length=1)] | None = None
    sandbox: Literal["read-only", "workspace-write", "danger-full-access"] | None = None
    dangerous: bool = False
    config: Annotated[list[str], BeforeValidator(_none_is_empty)] = []
    args: Annotated[list[str], BeforeValidator(_none_is_empty)] = []
    env: dict[str, str] | None = None


class PriceModel(_Schema):
    """One model's price in USD per 1M tokens (``prices: {MODEL: {input, cached_input, output}}``)."""

    input: Annotated[float, Field(ge=0)]
    cached_input: Annotated[float, Field(ge=0)] | None = None
    output: Annotated[float, Field(ge=0)]


class BudgetModel(_Schema):
    """``budget: {max_cost: USD, max_tokens: N}``: after either, coord launches nothing more."""

    max_cost: Annotated[float, Field(gt=0)] | None = None
    max_tokens: Annotated[int, Field(ge=1)] | None = None


class VerifyModel(_Schema):
    run: Annotated[str, Field(min_length=1)]
    expect: Literal["pass", "fail"] = _VERIFY.expect
    timeout: PositiveDuration = _VERIFY.timeout
    shell: bool = _VERIFY.shell


class PlanModel(_Schema):
    plan: Annotated[str, Field(min_length=1)]
    title: str | None = None
    workdir: Annotated[str, Field(min_length=1)] = "."
    agent: Annotated[str, Field(min_length=1)] = "codex"
    agents: dict[str, AgentModel | None] | None = None
    policy: PolicyModel | None = None
    checks: ChecksModel | None = None
    artifacts: ArtifactsModel | None = None
    prices: dict[str, PriceModel] | None = None
    budget: BudgetModel | None = None
    phases: Annotated[list[Any], Field(min_length=1)]


class PhaseModel(_Schema):
    id: Annotated[str, Field(min_length=1)]
    kind: Annotated[str, Field(min_length=1)]
    title: str | None = None
    instructions: str | None = None
    instructions_file: Annotated[str, Field(min_length=1)] | None = None
    depends_on: Annotated[list[str] | None, BeforeValidator(_one_or_many)] = None
    verify: Annotated[
        list[Annotated[VerifyModel, BeforeValidator(_command_string)]], BeforeValidator(_none_is_empty)
    ] = []
    policy: PolicyModel | None = None
    checks: ChecksModel | None = None
    agent: Annotated[str, Field(min_length=1)] | None = None
    script: Annotated[list[Annotated[str, Field(min_length=1)]] | None, BeforeValidator(_one_or_many)] = None
    workdir: Annotated[str, Field(min_length=1)] | None = None
    protected: Annotated[list[Annotated[str, Field(min_length=1)]] | None, BeforeValidator(_one_or_many)] = None


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _quote_hint(value: object) -> str:
    return " (put it in quotes)" if isinstance(value, (int, float, bool)) and value is not None else ""


def _unwrap(annotation: Any) -> Any:
    """Strip Annotated/Optional layers from a type annotation."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            annotation = args[0] if len(args) == 1 else annotation
            if len(args) != 1:
                return annotation
        else:
            return annotation


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """Return the schema model that validates the mapping at ``loc`` below ``model`` (for key suggestions)."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = field.annotation
            continue
        origin = typing.get_origin(current)
        args = typing.get_args(current)
        if origin is list and isinstance(part, int):
            current = args[0]
        elif origin is dict:
            current = args[1]
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _schema_message(error: dict[str, Any], model: type[BaseModel]) -> tuple[tuple[Any, ...], str, bool]:
    """Turn one pydantic error into (loc of the field to blame, message, blame the key rather than the value)."""
    kind = error["type"]
    loc = tuple(part for part in error["loc"] if not (isinstance(part, str) and part.startswith("function-")))
    value = error.get("input")
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        key = loc[-1]
        known = sorted((_model_at(model, loc[:-1]) or model).model_fields)
        guess = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
        hint = f"did you mean {guess[0]!r}?" if guess else "expected one of: " + ", ".join(known)
        return loc, f"unknown key {key!r} ({hint})", True
    if kind == "missing":
        return loc[:-1], f"missing required key {loc[-1]!r}", False
    messages = {
        "string_type": f"expected a string, got {_describe(value)}{_quote_hint(value)}",
        "int_type": f"expected a whole number, got {_describe(value)}",
        "float_type": f"expected a number, got {_describe(value)}",
        "bool_type": f"expected true or false, got {_describe(value)}",
        "list_type": f"expected a list, got {_describe(value)}",
        "dict_type": f"expected a mapping, got {_describe(value)}",
        "model_type": f"expected a mapping, got {_describe(value)}",
        "model_attributes_type": f"expected a mapping, got {_describe(value)}",
        "string_too_short": "must not be empty",
        "too_short": f"must not be empty (at least {ctx.get('min_length', 1)} item)",
        "greater_than": f"must be greater than {ctx.get('gt')}, got {_describe(value)}",
        "greater_than_equal": f"must be at least {ctx.get('ge')}, got {_describe(value)}",
        "literal_error": f"must be one of {ctx.get('expected', '')}, got {_describe(value)}",
    }
    if kind in messages:
        message = messages[kind]
    elif kind == "value_error":
        message = str(ctx.get("error") or error["msg"]).removeprefix("Value error, ")
    else:
        message = error["msg"]
    return loc, message, False


# --------------------------------------------------------------------------------------------------------------
# The checks


class _Collector:
    """Problems of one plan file, positioned by field path."""

    def __init__(self, display: str) -> None:
        self.display = display
        self.marks = _Marks()
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

    def has_key(self, path: Path_) -> bool:
        return path in self.marks.keys

    def sorted(self) -> list[Problem]:
        def order(item: tuple[int, Problem]) -> tuple[int, int, int, int]:
            index, problem = item
            own = 0 if problem.file == self.display else 1
            return (own, problem.line or 0, problem.column or 0, index)

        return [problem for _, problem in sorted(enumerate(self.problems), key=order)]


def _display_name(path: Path, workspace: Path) -> str:
    if path.is_absolute():
        try:
            return path.resolve().relative_to(workspace.resolve()).as_posix()
        except ValueError:
            return str(path)
    return str(path)


def _read_text(path: Path, workspace: Path, out: _Collector) -> str | None:
    candidates = [path] if path.is_absolute() or path.exists() else [path, workspace / path]
    data = None
    for candidate in candidates:
        try:
            with open(candidate, "rb") as handle:
                data = handle.read(MAX_PLAN_BYTES + 1)
            break
        except FileNotFoundError:
            continue
        except OSError as exc:
            out.at_mark(None, f"cannot read plan: {exc.strerror or exc}")
            return None
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


def _parse_yaml(text: str, out: _Collector) -> Any:
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
        kind = "a list" if isinstance(data, list) else _describe(data)
        out.at_mark(node.start_mark, f"plan must be a mapping (plan, title, phases, ...), got {kind}")
        return None
    return data


def _reader_problem(exc: yaml.reader.ReaderError, text: str, out: _Collector) -> None:
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


def _validate(model: type[BaseModel], data: Any, prefix: Path_, out: _Collector) -> Any:
    """Validate and report every schema problem; then, to go on checking, validate a repaired copy.

    The copy drops each offending mapping key (so its default applies) and each broken agent entry. What the
    repaired model then shows is only used for further checks; the plan is invalid anyway.

    Returns:
        The model, or None when even the repaired copy fails (e.g. a phase without ``id``).
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
    for error in errors:
        loc, message, key = _schema_message(error, model)
        full = (*prefix, *loc)
        if key:
            out.add(full[:-1], message, key=True, at=full)
        else:
            out.add(full, message)
    if not isinstance(data, dict):
        return None
    repaired = copy.deepcopy(data)
    for _ in range(8):
        for error in errors:
            loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            if not _repair(repaired, loc, error["type"], model):
                return None
        try:
            return model.model_validate(repaired)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
    return None


def _repair(data: dict[str, Any], loc: tuple[Any, ...], kind: str, model: type[BaseModel]) -> bool:
    """Drop what ``loc`` blames from ``data`` so the rest can be validated; False when that is impossible."""
    if not loc:
        return False
    if model is PlanModel and loc[0] == "phases":
        data["phases"] = [{}]  # phases are validated one by one elsewhere
        return True
    if model is PlanModel and loc[0] == "plan" and kind == "missing":
        data["plan"] = "plan"
        return True
    if model is PlanModel and loc[0] == "prices" and len(loc) > 1 and isinstance(data.get("prices"), dict):
        data["prices"].pop(loc[1], None)  # a broken price entry goes whole, even when a key is missing
        return True
    if kind == "missing":
        return False
    if model is PlanModel and loc[0] == "agents" and len(loc) > 1 and isinstance(data.get("agents"), dict):
        data["agents"].pop(loc[1], None)
        return True
    parent: Any = data
    target: tuple[dict[str, Any], Any] | None = None
    for part in loc:
        if isinstance(parent, dict) and part in parent:
            target = (parent, part)
            parent = parent[part]
        elif isinstance(parent, list) and isinstance(part, int) and part < len(parent):
            parent = parent[part]
        else:
            break
    if target is None:
        return False
    target[0].pop(target[1], None)
    return True


def _set_fields(model: BaseModel | None) -> dict[str, Any]:
    if model is None:
        return {}
    return {name: getattr(model, name) for name in model.model_fields_set}


def _check_path(workspace: Path, value: str, path: Path_, out: _Collector) -> Path | None:
    try:
        return inside_workspace(workspace, value)
    except OutsideWorkspace as exc:
        out.add(path, str(exc))
        return None


def _build_agents(top: PlanModel, out: _Collector) -> dict[str, AgentProfile]:
    agents = {name: AgentProfile(name=name, base=name) for name in BUILTIN_AGENTS}
    for name, spec in (top.agents or {}).items():
        path: Path_ = ("agents", name)
        spec = spec or AgentModel()
        if not PHASE_ID_RE.fullmatch(name) or ".." in name:
            out.add(path, f"agent name {name!r} must match {PHASE_ID_PATTERN} without '..'", key=True)
            continue
        base = spec.base
        if name in BUILTIN_AGENTS:
            if base is not None and base != name:
                out.add((*path, "base"), f"built-in agent {name!r} cannot change its base to {base!r}")
                continue
            base = name
        elif base is None:
            out.add(path, f"agent {name!r} needs a 'base' (one of {', '.join(BUILTIN_AGENTS)})")
            continue
        if spec.dangerous and spec.sandbox != "danger-full-access":
            out.add((*path, "dangerous"), "dangerous: true needs sandbox: danger-full-access")
        for index, item in enumerate(spec.config):
            key, sep, _ = item.partition("=")
            if not sep or not key.strip():
                out.add((*path, "config", index), f"expected 'key=value', got {item!r}")
        env = spec.env or {}
        for key in env:
            if not _ENV_NAME_RE.fullmatch(key):
                out.add((*path, "env", key), f"{key!r} is not a valid environment variable name", key=True)
        agents[name] = AgentProfile(
            name=name,
            base=base,
            binary=spec.binary,
            model=spec.model,
            sandbox=spec.sandbox,
            dangerous=spec.dangerous,
            config=tuple(spec.config),
            args=tuple(spec.args),
            env=tuple(env.items()),
        )
    return agents


def _check_ids(raw_phases: list[Any], out: _Collector) -> list[str | None]:
    """Check every phase id; return the raw id of each phase (None when not a string)."""
    ids: list[str | None] = []
    exact: dict[str, int] = {}
    folded: dict[str, tuple[str, int]] = {}
    for index, item in enumerate(raw_phases):
        phase_id = item.get("id") if isinstance(item, dict) else None
        if not isinstance(phase_id, str) or not phase_id:
            ids.append(None)
            continue
        ids.append(phase_id)
        path: Path_ = ("phases", index, "id")
        line = out.mark(path) or out.mark(("phases", index))
        line_no = line.line + 1 if line else 0
        if not PHASE_ID_RE.fullmatch(phase_id) or ".." in phase_id:
            out.add(path, f"phase id {phase_id!r} must match {PHASE_ID_PATTERN} without '..'")
        if phase_id in exact:
            out.add(path, f"duplicate phase id {phase_id!r} (first at line {exact[phase_id]})")
            continue
        key = phase_id.casefold()
        if key in folded:
            other, other_line = folded[key]
            out.add(
                path,
                f"duplicate phase id {phase_id!r} (same as {other!r} at line {other_line} apart from case; "
                "file names would collide on case-insensitive filesystems)",
            )
            continue
        exact[phase_id] = line_no
        folded[key] = (phase_id, line_no)
    return ids


def _resolve_dependencies(
    phases: list[PhaseModel | None], ids: list[str | None], out: _Collector
) -> list[tuple[str, ...]]:
    """Effective ``depends_on`` of each phase, with unknown, self and cyclic dependencies reported."""
    known = {phase_id for phase_id in ids if phase_id}
    index_of: dict[str, int] = {}
    for index, phase_id in enumerate(ids):
        if phase_id:
            index_of.setdefault(phase_id, index)
    effective: list[tuple[str, ...]] = []
    for index, model in enumerate(phases):
        if model is None or model.depends_on is None:
            previous = ids[index - 1] if index > 0 else None
            effective.append((previous,) if previous else ())
            continue
        deps: list[str] = []
        for position, dep in enumerate(model.depends_on):
            path: Path_ = ("phases", index, "depends_on", position)
            if dep == ids[index]:
                out.add(path, f"phase {dep!r} depends on itself")
            elif dep not in known:
                out.add(path, f"depends on unknown phase {dep!r}")
            elif dep not in deps:
                deps.append(dep)
        effective.append(tuple(deps))
    graph: dict[str, set[str]] = {}
    for index, phase_id in enumerate(ids):
        if phase_id and index_of.get(phase_id) == index:
            graph[phase_id] = {dep for dep in effective[index] if dep in index_of and dep != phase_id}
    for _ in range(len(graph) + 1):
        try:
            graphlib.TopologicalSorter(graph).prepare()
            break
        except graphlib.CycleError as exc:
            cycle = list(exc.args[1])[:-1]
            graph[cycle[1 % len(cycle)]].discard(cycle[0])
            # graphlib lists each node before the node that depends on it; reverse to read "depends on".
            ring = list(reversed(cycle))
            start = min(range(len(ring)), key=lambda i: index_of[ring[i]])
            ring = ring[start:] + ring[:start]
            first = index_of[ring[0]]
            path = ("phases", first, "depends_on")
            model = phases[first]
            if model is not None and model.depends_on and ring[1 % len(ring)] in model.depends_on:
                path = (*path, model.depends_on.index(ring[1 % len(ring)]))
            chain = " → ".join([*ring, ring[0]])
            out.add(path, f"dependency cycle: {chain} (each depends on the next)")
    return effective


def _read_instructions(workspace: Path, value: str, path: Path_, out: _Collector) -> str | None:
    target = _check_path(workspace, value, path, out)
    if target is None:
        return None
    if not target.is_file():
        out.add(path, f"{value!r} not found" if not target.exists() else f"{value!r} is not a file")
        return None
    try:
        return target.read_bytes().decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        out.add(path, f"{value!r} is not UTF-8 (offset {exc.start})")
    except OSError as exc:
        out.add(path, f"cannot read {value!r}: {exc.strerror or exc}")
    return None


def _check_workdir(workspace: Path, value: str, path: Path_, out: _Collector) -> None:
    target = _check_path(workspace, value, path, out)
    if target is not None and target.exists() and not target.is_dir():
        out.add(path, f"workdir {value!r} is not a directory")


def _build_phase(
    index: int,
    model: PhaseModel,
    depends_on: tuple[str, ...],
    top: PlanModel,
    plan_policy: Policy,
    plan_checks: Checks,
    agents: dict[str, AgentProfile],
    workspace: Path,
    renderer: PromptRenderer,
    out: _Collector,
) -> Phase | None:
    path: Path_ = ("phases", index)
    usable = True
    kind_ok = PHASE_ID_RE.fullmatch(model.kind) is not None and ".." not in model.kind
    if not kind_ok:
        out.add((*path, "kind"), f"kind {model.kind!r} must match {PHASE_ID_PATTERN} without '..'")
        usable = False
    elif model.kind == REMEDIATION_TEMPLATE.split(".")[0]:
        out.add((*path, "kind"), "kind 'remediate' is reserved for remediation prompts")
        usable = False
    elif renderer.template_path(f"{model.kind}.md.j2") is None:
        out.add(
            (*path, "kind"),
            f"no template for kind {model.kind!r}: add templates/{model.kind}.md.j2 "
            f"(built-in kinds: {', '.join(BUILTIN_KINDS)})",
        )
        usable = False
    agent = model.agent or top.agent
    if agent not in agents:
        if model.agent is not None:
            out.add((*path, "agent"), f"unknown agent {agent!r} (known: {', '.join(agents)})")
        usable = False
    elif agents[agent].base == "shell" and not model.script:
        where = (*path, "script") if model.script is not None else path
        out.add(where, f"agent {agent!r} runs the phase's 'script', but the phase has none")
    instructions = model.instructions or ""
    if model.instructions is not None and model.instructions_file is not None:
        out.add((*path, "instructions_file"), "give either 'instructions' or 'instructions_file', not both")
    elif model.instructions_file is not None:
        text = _read_instructions(workspace, model.instructions_file, (*path, "instructions_file"), out)
        instructions = text if text is not None else ""
    workdir = model.workdir if model.workdir is not None else top.workdir
    if model.workdir is not None:
        _check_workdir(workspace, workdir, (*path, "workdir"), out)
    for position, pattern in enumerate(model.protected or ()):
        parts = PurePosixPath(pattern).parts
        if PurePosixPath(pattern).is_absolute() or ".." in parts:
            out.add((*path, "protected", position), f"pattern {pattern!r} must stay inside the workspace "
                    "(relative, no '..')")
    verify: list[VerifyCommand] = []
    for position, item in enumerate(model.verify):
        if not item.shell:
            try:
                argv = shlex.split(item.run)
            except ValueError as exc:
                out.add((*path, "verify", position, "run"), f"cannot split into arguments: {exc}")
            else:
                if not argv:
                    out.add((*path, "verify", position, "run"), "command is empty")
        verify.append(VerifyCommand(run=item.run, expect=item.expect, timeout=item.timeout, shell=item.shell))
    if not usable:
        return None
    return Phase(
        id=model.id,
        kind=model.kind,
        title=model.title if model.title is not None else model.id,
        index=index,
        instructions=instructions,
        instructions_file=model.instructions_file,
        depends_on=depends_on,
        verify=tuple(verify),
        policy=dataclasses.replace(plan_policy, **_set_fields(model.policy)),
        checks=dataclasses.replace(plan_checks, **_set_fields(model.checks)),
        agent=agent,
        script=tuple(model.script or ()),
        workdir=workdir,
        protected=tuple(model.protected or ()),
    )


def _check_artifacts(plan: Plan, renderer: PromptRenderer, out: _Collector) -> set[str]:
    """Render every phase's artifact paths; return the ids of phases whose paths failed."""
    failed: set[str] = set()
    owners: dict[str, dict[str, str]] = {"report": {}, "completed": {}}
    for phase in plan.phases:
        try:
            paths = renderer.artifact_paths(plan, phase)
        except TemplateError as exc:
            failed.add(phase.id)
            for problem in exc.problems:
                field_path: Path_ = tuple(problem.field.split("."))
                out.add(field_path, f"{problem.message} (phase {phase.id})", dedupe=problem.message)
            continue
        if os.path.normpath(paths.report) == os.path.normpath(paths.completed):
            out.add(("artifacts", "completed"), f"renders to the same path as artifacts.report ({paths.report!r})")
        for name in ("report", "completed"):
            value = os.path.normpath(getattr(paths, name))
            other = owners[name].get(value)
            if other is not None and other != phase.id:
                out.add(
                    ("artifacts", name),
                    f"renders to {value!r} for both {other} and {phase.id}; include {{{{ phase.id }}}} in it",
                )
            else:
                owners[name][value] = phase.id
    return failed


def _dry_render(plan: Plan, renderer: PromptRenderer, skip: set[str], out: _Collector) -> None:
    for phase in plan.phases:
        if phase.id in skip:
            continue
        for label, remediation in ((phase.id, None), (f"{phase.id} remediation", SAMPLE_REMEDIATION)):
            try:
                renderer.render(plan, phase, attempt_number=2 if remediation else 1, remediation=remediation)
            except TemplateError as exc:
                for problem in exc.problems:
                    out.append(problem, dedupe=problem.message.replace(f" (rendering {label})", ""))


def _check(path: Path, workspace: Path) -> tuple[Plan | None, list[Problem]]:
    path = Path(path)
    workspace = Path(workspace).resolve()
    out = _Collector(_display_name(path, workspace))
    text = _read_text(path, workspace, out)
    data = _parse_yaml(text, out) if text is not None else None
    if data is None:
        return None, out.sorted()

    top = _validate(PlanModel, data, (), out)
    raw_phases = data.get("phases") if isinstance(data.get("phases"), list) else []
    phase_models: list[PhaseModel | None] = [
        _validate(PhaseModel, item, ("phases", index), out) for index, item in enumerate(raw_phases)
    ]
    ids = _check_ids(raw_phases, out)
    depends = _resolve_dependencies(phase_models, ids, out)
    if top is None:
        return None, out.sorted()

    if not PLAN_ID_RE.fullmatch(top.plan) or ".." in top.plan or len(top.plan) > _PLAN_ID_MAX:
        out.add(
            ("plan",),
            f"plan id {top.plan!r} must match ^[A-Za-z0-9][A-Za-z0-9._-]*$ without '..' "
            f"(at most {_PLAN_ID_MAX} characters)",
        )
    agents = _build_agents(top, out)
    raw_agents = data.get("agents") if isinstance(data.get("agents"), dict) else {}
    for name in raw_agents:
        if isinstance(name, str) and name not in agents:
            # Already reported; a stand-in keeps every phase that names it from repeating "unknown agent".
            agents[name] = AgentProfile(name=name, base="codex")
    if top.agent not in agents:
        out.add(("agent",), f"unknown agent {top.agent!r} (known: {', '.join(agents)})")
    _check_workdir(workspace, top.workdir, ("workdir",), out)
    for name in top.prices or {}:
        if not name.strip():
            out.add(("prices", name), "model name must not be empty", key=True)
    plan_policy = dataclasses.replace(Policy(), **_set_fields(top.policy))
    plan_checks = dataclasses.replace(Checks(), **_set_fields(top.checks))
    artifacts = dataclasses.replace(Artifacts(), **_set_fields(top.artifacts))
    renderer = PromptRenderer(workspace)
    phases: list[Phase] = []
    for index, model in enumerate(phase_models):
        if model is None:
            continue
        phase = _build_phase(
            index, model, depends[index], top, plan_policy, plan_checks, agents, workspace, renderer, out
        )
        if phase is not None:
            phases.append(phase)
    plan = Plan(
        id=top.plan,
        title=top.title if top.title is not None else top.plan,
        path=str(path),
        workspace=str(workspace),
        phases=tuple(phases),
        agents=agents,
        artifacts=artifacts,
        workdir=top.workdir,
        policy=plan_policy,
        checks=plan_checks,
        agent=top.agent,
        prices={
            name: Price(input=spec.input, output=spec.output, cached_input=spec.cached_input)
            for name, spec in (top.prices or {}).items()
        },
        budget=Budget(max_cost=top.budget.max_cost, max_tokens=top.budget.max_tokens) if top.budget else Budget(),
    )
    failed = _check_artifacts(plan, renderer, out)
    _dry_render(plan, renderer, failed, out)
    problems = out.sorted()
    if problems or len(phases) != len(raw_phases):
        return None, problems
    return plan, problems


def validate_plan(path: Path, workspace: Path) -> list[Problem]:
    """Run every check on a plan file without raising.

    Args:
        path: the plan file as the user named it (absolute, or relative to the current directory or the
            workspace); problems name it the same way (relative to the workspace when absolute inside it).
        workspace: the workspace root (templates, instruction files and artifact paths are resolved against it).

    Returns:
        Every problem found, in file order (plan-file problems first, then template problems); empty when the
        plan is valid.
    """
    return _check(path, workspace)[1]


def load_plan(path: Path, workspace: Path) -> Plan:
    """Load, schema-check, graph-check and dry-render a plan.

    Args:
        path: the plan file (see ``validate_plan``).
        workspace: the workspace root.

    Returns:
        The frozen plan: built-in agent profiles included, each phase with its effective ``depends_on``,
        ``policy``, ``checks``, ``agent``, ``workdir``, and ``instructions`` read from ``instructions_file``.

    Raises:
        PlanError: listing every problem found.
    """
    plan, problems = _check(path, workspace)
    if problems or plan is None:
        raise PlanError(problems or [Problem(file=str(path), field="", message="plan is invalid")])
    return plan
