"""Plan loader: YAML file -> validated, frozen ``Plan`` (docs/design.md §4), or every problem with its position.

Who uses it: ``prompts.validate.load_checked_plan`` (what ``coord run``/``validate``/``render``/``remediate`` and
``coord import`` call before anything is launched) runs ``load_plan``/``validate_plan`` with the prompt layer's
``TemplateChecks`` plugged in; called without them, as by tests that need only a plan, they check the plan file
alone. The engine reads only the frozen model returned.

The checks, in order, each adding ``Problem``s (file, line, column, field path, message) instead of stopping:

1. bytes and YAML (``plan.yaml_source``): at most 1 MiB, UTF-8 (a UTF-8 BOM is accepted), not empty; syntax,
   anchors/aliases, duplicate keys, unsupported tags; dates stay strings;
2. schema (``plan.schema``, pydantic v2: unknown keys forbidden, with "did you mean" suggestions, types and
   ranges);
3. semantics (here): ids, duplicate and case-fold duplicate phase ids, ``depends_on`` (unknown, self, cycles),
   agents, paths inside the workspace;
4. with ``templates``: a template for every kind (asked while each phase is built), then, on the built plan,
   artifact paths that render, stay inside the workspace and differ between phases, and a dry render of every
   phase's prompt and its remediation prompt (``prompts.validate``).

Problems come out in file order: the plan file's by line and column, then those in templates; ties keep the
order of the checks above.

Defaults the design leaves open: ``title`` defaults to the plan id (plan) or phase id (phase); ``depends_on: null``
means the same as leaving it out (the previous phase); a phase ``kind`` must match the id pattern and may not be
``remediate``; a ``workdir`` may not exist yet (an earlier phase may create it) but may not be a file.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from pathlib import Path, PurePosixPath
from typing import Any, Literal, Protocol

from coordinator.errors import PlanError, Problem
from coordinator.paths import OutsideWorkspace, inside_workspace
from coordinator.plan.allow_list import check_script, plan_allow_list, user_allow_list
from coordinator.plan.mcp_phase import build_call, build_servers
from coordinator.plan.model import (
    BUILTIN_AGENTS,
    REMEDIATION_KIND,
    AgentProfile,
    Artifacts,
    Budget,
    Checks,
    McpServer,
    Notify,
    Phase,
    Plan,
    Policy,
    Price,
    VerifyCommand,
)
from coordinator.plan.schema import ENV_NAME_RE, AgentModel, PhaseModel, PlanModel, set_fields, validate_model
from coordinator.plan.yaml_source import Collector, Path_, parse_yaml, read_plan_text
from coordinator.util.files import workspace_relative

PLAN_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
PHASE_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
PHASE_ID_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_PLAN_ID_MAX = 128


class TemplateChecks(Protocol):
    """The prompt layer's checks of a plan, plugged into a load by ``prompts.validate`` (never imported here).

    Without them the loader checks the plan file alone: a kind without a template, an artifact path that does not
    render or a template error then shows only when a prompt is rendered.
    """

    def kind_problem(self, kind: str) -> str | None:
        """Why no prompt can be rendered for a phase of ``kind`` (reported at its ``kind``), or None."""

    def check(self, plan: Plan, out: Collector) -> None:
        """Check the built plan (its usable phases) after every plan-file check, adding the problems to ``out``."""


# --------------------------------------------------------------------------------------------------------------
# The checks


def _check_path(workspace: Path, value: str, path: Path_, out: Collector) -> Path | None:
    try:
        return inside_workspace(workspace, value)
    except OutsideWorkspace as exc:
        out.add(path, str(exc))
        return None


def _build_agents(top: PlanModel, out: Collector) -> dict[str, AgentProfile]:
    user_allowed = user_allow_list(out)
    agents = {name: AgentProfile(name=name, base=name) for name in BUILTIN_AGENTS}
    if user_allowed is not None:
        agents["shell"] = AgentProfile(name="shell", base="shell", allow_lists=(user_allowed,))
    for name, spec in (top.agents or {}).items():
        path: Path_ = ("agents", name)
        spec = spec or AgentModel()
        if not PHASE_ID_RE.fullmatch(name) or ".." in name:
            out.add(path, f"agent name {name!r} must match {PHASE_ID_PATTERN} without '..'", key=True)
            continue
        base: str | None = spec.base
        if name in BUILTIN_AGENTS:
            if base is not None and base != name:
                out.add((*path, "base"), f"built-in agent {name!r} cannot change its base to {base!r}")
                continue
            base = name
        elif base is None:
            out.add(path, f"agent {name!r} needs a 'base' (one of {', '.join(BUILTIN_AGENTS)})")
            continue
        if spec.dangerous and base == "codex" and spec.sandbox != "danger-full-access":
            out.add((*path, "dangerous"), "dangerous: true needs sandbox: danger-full-access")
        for index, item in enumerate(spec.config):
            key, sep, _ = item.partition("=")
            if not sep or not key.strip():
                out.add((*path, "config", index), f"expected 'key=value', got {item!r}")
        env = spec.env or {}
        for key in env:
            if not ENV_NAME_RE.fullmatch(key):
                out.add((*path, "env", key), f"{key!r} is not a valid environment variable name", key=True)
        allowed = plan_allow_list(spec.allow, base, (*path, "allow"), out)
        user_list = user_allowed if base == "shell" else None
        allow_lists = tuple(found for found in (allowed, user_list) if found is not None)
        agents[name] = AgentProfile(
            name=name,
            base=base,
            allow_lists=allow_lists,
            binary=spec.binary,
            model=spec.model,
            sandbox=spec.sandbox,
            dangerous=spec.dangerous,
            config=tuple(spec.config),
            args=tuple(spec.args),
            env=tuple(env.items()),
        )
    return agents


def _check_ids(raw_phases: list[Any], out: Collector) -> list[str | None]:
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
    phases: list[PhaseModel | None], ids: list[str | None], out: Collector
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
    for ring in _cycles(graph, index_of):
        first = index_of[ring[0]]
        where: Path_ = ("phases", first, "depends_on")
        model = phases[first]
        if model is not None and model.depends_on and ring[1 % len(ring)] in model.depends_on:
            where = (*where, model.depends_on.index(ring[1 % len(ring)]))
        chain = " → ".join([*ring, ring[0]])
        out.add(where, f"dependency cycle: {chain} (each depends on the next)")
    return effective


def _refuse_lone_surrogates(value: object, path: Path_, out: Collector) -> None:
    """Report text holding a lone surrogate (YAML's ``"\\ud800"``): no file, prompt or log can hold it as UTF-8."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            out.add(path, f"text holds an invalid character (lone surrogate U+{ord(value[exc.start]):04X} at "
                    f"position {exc.start})")
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_lone_surrogates(key, path, out)
            _refuse_lone_surrogates(item, (*path, str(key)), out)
    elif isinstance(value, list):
        for position, item in enumerate(value):
            _refuse_lone_surrogates(item, (*path, position), out)


def _cycles(graph: dict[str, set[str]], order: dict[str, int]) -> list[list[str]]:
    """One dependency cycle per strongly connected group of phases, in linear time (Tarjan's algorithm, without
    recursion, so 10,000 phases cost milliseconds). Each cycle starts at its group's earliest phase and lists the
    phases so that each depends on the next."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    groups: list[set[str]] = []
    for root in sorted(graph, key=order.__getitem__):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root], key=order.__getitem__)))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child], key=order.__getitem__))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(group)
    rings = []
    for group in sorted(groups, key=lambda members: min(order[m] for m in members)):
        start = min(group, key=order.__getitem__)
        came_from: dict[str, str] = {}
        queue, last = [start], None
        while queue and last is None:  # the shortest way back to `start`, inside the group
            node = queue.pop(0)
            for dep in sorted(graph[node] & group, key=order.__getitem__):
                if dep == start:
                    last = node
                    break
                if dep not in came_from:
                    came_from[dep] = node
                    queue.append(dep)
        ring = [last] if last is not None else [start]
        while ring[-1] != start:
            ring.append(came_from[ring[-1]])
        rings.append(list(reversed(ring)))
    return rings


def _read_instructions(workspace: Path, value: str, path: Path_, out: Collector) -> str | None:
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


def _check_workdir(workspace: Path, value: str, path: Path_, out: Collector) -> None:
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
    servers: tuple[dict[str, McpServer], set[str]],
    workspace: Path,
    templates: TemplateChecks | None,
    out: Collector,
) -> Phase | None:
    path: Path_ = ("phases", index)
    usable = True
    kind_ok = PHASE_ID_RE.fullmatch(model.kind) is not None and ".." not in model.kind
    if not kind_ok:
        out.add((*path, "kind"), f"kind {model.kind!r} must match {PHASE_ID_PATTERN} without '..'")
        usable = False
    elif model.kind == REMEDIATION_KIND:
        out.add((*path, "kind"), "kind 'remediate' is reserved for remediation prompts")
        usable = False
    elif templates is not None and (problem := templates.kind_problem(model.kind)) is not None:
        out.add((*path, "kind"), problem)
        usable = False
    agent = model.agent or top.agent
    if agent not in agents:
        if model.agent is not None:
            out.add((*path, "agent"), f"unknown agent {agent!r} (known: {', '.join(agents)})")
        usable = False
    elif agents[agent].base == "shell" and not model.script:
        where = (*path, "script") if model.script is not None else path
        out.add(where, f"agent {agent!r} runs the phase's 'script', but the phase has none")
    elif agents[agent].base == "shell":
        check_script(model.script, agents[agent], (*path, "script"), out)
    call = build_call(model.mcp, agents[agent], servers[0], servers[1], path, out) if agent in agents else None
    if agent in agents and agents[agent].base == "mcp" and call is None:
        usable = False
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
        elif any("**" in part and part != "**" for part in parts):
            out.add((*path, "protected", position), f"pattern {pattern!r}: '**' must be a whole path component "
                    "(as in 'tests/**/*.py')")
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
        shell: Literal["sh", "bash"] | None = "sh" if item.shell is True else (item.shell or None)
        verify.append(VerifyCommand(run=item.run, expect=item.expect, timeout=item.timeout, shell=shell,
                                    name=item.name))
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
        policy=dataclasses.replace(plan_policy, **set_fields(model.policy)),
        checks=dataclasses.replace(plan_checks, **set_fields(model.checks)),
        agent=agent,
        script=tuple(model.script or ()),
        workdir=workdir,
        mcp=call,
        protected=tuple(model.protected or ()),
    )


# --------------------------------------------------------------------------------------------------------------
# Loading


def _check(path: Path, workspace: Path, templates: TemplateChecks | None) -> tuple[Plan | None, list[Problem]]:
    path = Path(path)
    workspace = Path(workspace).resolve()
    out = Collector(workspace_relative(path, workspace))
    text = read_plan_text(path, workspace, out)
    data = parse_yaml(text, out) if text is not None else None
    if data is None:
        return None, out.sorted()
    _refuse_lone_surrogates(data, (), out)

    top = validate_model(PlanModel, data, (), out)
    raw_phases = data.get("phases") if isinstance(data.get("phases"), list) else []
    phase_models: list[PhaseModel | None] = [
        validate_model(PhaseModel, item, ("phases", index), out) for index, item in enumerate(raw_phases)
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
    servers = build_servers(top.mcp_servers, out), set(top.mcp_servers or {})
    plan_policy = dataclasses.replace(Policy(), **set_fields(top.policy))
    plan_checks = dataclasses.replace(Checks(), **set_fields(top.checks))
    artifacts = dataclasses.replace(Artifacts(), **set_fields(top.artifacts))
    phases: list[Phase] = []
    for index, model in enumerate(phase_models):
        if model is None:
            continue
        phase = _build_phase(
            index, model, depends[index], top, plan_policy, plan_checks, agents, servers, workspace, templates, out
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
        notify=Notify(urls=tuple(top.notify.urls), on=tuple(top.notify.on)) if top.notify else Notify(),
        mcp_servers=servers[0],
        git=top.git,
    )
    if templates is not None:
        templates.check(plan, out)
    problems = out.sorted()
    if problems or len(phases) != len(raw_phases):
        return None, problems
    return plan, problems


def validate_plan(path: Path, workspace: Path, templates: TemplateChecks | None = None) -> list[Problem]:
    """Run every check on a plan file without raising.

    Args:
        path: the plan file as the user named it (absolute, or relative to the current directory or the
            workspace); problems name it the same way (relative to the workspace when absolute inside it).
        workspace: the workspace root (templates, instruction files and artifact paths are resolved against it).
        templates: the prompt layer's checks (``prompts.validate``); None checks the plan file alone.

    Returns:
        Every problem found, in file order (plan-file problems first, then template problems); empty when the
        plan is valid.
    """
    return _check(path, workspace, templates)[1]


def load_plan(path: Path, workspace: Path, templates: TemplateChecks | None = None) -> Plan:
    """Load, schema-check and graph-check a plan (and, with ``templates``, check and dry-render its prompts).

    Args:
        path: the plan file (see ``validate_plan``).
        workspace: the workspace root.
        templates: the prompt layer's checks (see ``validate_plan``).

    Returns:
        The frozen plan: built-in agent profiles included, each phase with its effective ``depends_on``,
        ``policy``, ``checks``, ``agent``, ``workdir``, and ``instructions`` read from ``instructions_file``.

    Raises:
        PlanError: listing every problem found.
    """
    plan, problems = _check(path, workspace, templates)
    if problems or plan is None:
        raise PlanError(problems or [Problem(file=str(path), field="", message="plan is invalid")])
    return plan
