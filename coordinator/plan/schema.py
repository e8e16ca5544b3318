"""Plan schema: the pydantic v2 models of a plan file, pydantic's errors in plain words, and repair to go on.

Who uses it: ``plan.loader`` validates the document and each phase with ``validate_model``, reads the result's
explicitly set fields with ``set_fields`` and converts it to the frozen dataclasses of ``plan.model`` after its
semantic checks. Nothing else should depend on these models.

Unknown keys are forbidden (with a "did you mean" suggestion), types are strict (``"1"`` is not a number, a
number is not a string), ranges are checked, and durations go through ``util.timefmt.parse_duration``. Each error
is reported at its field through the ``Collector`` of ``plan.yaml_source``; a repaired copy of the document is
then validated so that the checks after the schema still run.
"""

from __future__ import annotations

import copy
import difflib
import re
import types
import typing
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from coordinator.plan.model import BUILTIN_AGENTS, Artifacts, Policy, VerifyCommand
from coordinator.plan.yaml_source import Collector, Path_, describe
from coordinator.util.timefmt import parse_duration


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

ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
"""A valid environment variable name (agent profiles' and MCP servers' ``env`` keys)."""
MAX_DURATION = 30 * 86400.0
"""The longest duration a plan may give (30 days): beyond it the OS's timers and waits overflow."""
MAX_LOG_CAP_MIB = 1024 * 1024.0
"""The largest worker log cap (1 TiB, in MiB)."""

PositiveDuration = Annotated[float, BeforeValidator(_duration), Field(gt=0, le=MAX_DURATION)]
Duration = Annotated[float, BeforeValidator(_duration), Field(ge=0, le=MAX_DURATION)]


class _Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class PolicyModel(_Schema):
    poll_interval: PositiveDuration = _POLICY.poll_interval
    max_cycles: Annotated[int, Field(ge=1)] = _POLICY.max_cycles
    max_silent_cycles: Annotated[int, Field(ge=1)] | None = _POLICY.max_silent_cycles
    max_command_cycles: Annotated[int, Field(ge=1)] | None = _POLICY.max_command_cycles
    limit_wait: PositiveDuration = _POLICY.limit_wait
    deadline: PositiveDuration | None = _POLICY.deadline
    max_attempts: Annotated[int, Field(ge=1)] = _POLICY.max_attempts
    remediation: Literal["fresh", "resume"] = _POLICY.remediation
    remediation_base: Literal["attempt", "checkpoint"] = _POLICY.remediation_base
    kill_grace: Duration = _POLICY.kill_grace
    log_cap_mib: Annotated[float, Field(gt=0, le=MAX_LOG_CAP_MIB, allow_inf_nan=False)] = _POLICY.log_cap_mib
    timeout: PositiveDuration = _POLICY.timeout


class ChecksModel(_Schema):
    report: bool = True
    completed: bool = True
    verify: bool = True


class ArtifactsModel(_Schema):
    report: Annotated[str, Field(min_length=1)] = _ARTIFACTS.report
    completed: Annotated[str, Field(min_length=1)] = _ARTIFACTS.completed


def _known_base(value: str) -> str:
    if value not in BUILTIN_AGENTS:
        raise ValueError(f"Input should be {', '.join(repr(name) for name in BUILTIN_AGENTS[:-1])} or "
                         f"{BUILTIN_AGENTS[-1]!r}")
    return value


class AllowEntryModel(_Schema):
    """``{command: "printf ...", shell: true}``: an allow-list entry whose command may use shell syntax."""

    command: Annotated[str, Field(min_length=1)]
    shell: bool = False


def _allow_entry(value: object) -> object:
    return {"command": value} if isinstance(value, str) else value


class AgentModel(_Schema):
    base: Annotated[str, AfterValidator(_known_base)] | None = None
    binary: Annotated[str, Field(min_length=1)] | None = None
    model: Annotated[str, Field(min_length=1)] | None = None
    sandbox: Literal["read-only", "workspace-write", "danger-full-access"] | None = None
    dangerous: bool = False
    config: Annotated[list[str], BeforeValidator(_none_is_empty)] = []
    args: Annotated[list[str], BeforeValidator(_none_is_empty)] = []
    env: dict[str, str] | None = None
    allow: list[Annotated[AllowEntryModel, BeforeValidator(_allow_entry)]] | None = None


class PriceModel(_Schema):
    """One model's price in USD per 1M tokens (``prices: {MODEL: {input, cached_input, output}}``)."""

    input: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    cached_input: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    output: Annotated[float, Field(ge=0, allow_inf_nan=False)]


class BudgetModel(_Schema):
    """``budget: {max_cost: USD, max_tokens: N}``: after either, coord launches nothing more."""

    max_cost: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    max_tokens: Annotated[int, Field(ge=1)] | None = None


class NotifyModel(_Schema):
    """``notify: {urls: [apprise URLs], on: [blocked, waiting, finished]}``."""

    urls: Annotated[list[Annotated[str, Field(min_length=3, pattern=r"^[A-Za-z0-9+.-]+://")]], Field(min_length=1)]
    on: list[Literal["blocked", "waiting", "finished"]] = ["blocked", "waiting", "finished"]  # NOTIFY_EVENTS


class VerifyModel(_Schema):
    """``verify: [{run, expect, timeout, shell, name}]`` (``VerifyCommand`` says what each means)."""

    run: Annotated[str, Field(min_length=1)]
    expect: Literal["pass", "fail", "no-output"] = _VERIFY.expect  # VERIFY_EXPECTATIONS
    timeout: PositiveDuration = _VERIFY.timeout
    shell: bool | Literal["sh", "bash"] = False  # true is "sh"; VERIFY_SHELLS
    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None


class McpServerModel(_Schema):
    """``{command: [program, args…]}`` (stdio) or ``{url: http://127.0.0.1:PORT/mcp}``, with ``env`` and ``cwd``."""

    command: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)] | None = None
    url: Annotated[str, Field(min_length=1)] | None = None
    env: dict[str, str] | None = None
    cwd: Annotated[str, Field(min_length=1)] | None = None


class McpCallModel(_Schema):
    """A phase's ``mcp: {server: NAME or {…}, tool: NAME, arguments: {…}}``."""

    server: Annotated[str, Field(min_length=1)] | McpServerModel
    tool: Annotated[str, Field(min_length=1)]
    arguments: dict[str, Any] = {}


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
    notify: NotifyModel | None = None
    mcp_servers: dict[str, McpServerModel] | None = None
    git: bool = True  # `git: off` reads as false in YAML
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
    mcp: McpCallModel | None = None


# --------------------------------------------------------------------------------------------------------------
# pydantic's errors in plain words


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


def _schema_message(error: ErrorDetails, model: type[BaseModel]) -> tuple[tuple[Any, ...], str, bool]:
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
        "string_type": f"expected a string, got {describe(value)}{_quote_hint(value)}",
        "int_type": f"expected a whole number, got {describe(value)}",
        "float_type": f"expected a number, got {describe(value)}",
        "bool_type": f"expected true or false, got {describe(value)}",
        "list_type": f"expected a list, got {describe(value)}",
        "dict_type": f"expected a mapping, got {describe(value)}",
        "model_type": f"expected a mapping, got {describe(value)}",
        "model_attributes_type": f"expected a mapping, got {describe(value)}",
        "string_too_short": "must not be empty",
        "too_short": f"must not be empty (at least {ctx.get('min_length', 1)} item)",
        "greater_than": f"must be greater than {ctx.get('gt')}, got {describe(value)}",
        "greater_than_equal": f"must be at least {ctx.get('ge')}, got {describe(value)}",
        "literal_error": f"must be one of {ctx.get('expected', '')}, got {describe(value)}",
    }
    if kind in messages:
        message = messages[kind]
    elif kind == "value_error":
        message = str(ctx.get("error") or error["msg"]).removeprefix("Value error, ")
    else:
        message = error["msg"]
    return loc, message, False


# --------------------------------------------------------------------------------------------------------------
# Validation with repair


def validate_model(model: type[BaseModel], data: Any, prefix: Path_, out: Collector) -> Any:
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


def set_fields(model: BaseModel | None) -> dict[str, Any]:
    if model is None:
        return {}
    return {name: getattr(model, name) for name in model.model_fields_set}
