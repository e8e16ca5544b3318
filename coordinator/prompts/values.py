"""Plan values rendered as Jinja2 templates at launch: an ``agent: mcp`` phase's tool arguments and server command.

Who uses it: the engine, when it prepares an MCP phase's attempt (``render_call``), and ``prompts.validate``, which
dry-renders every call when a plan is loaded, so a bad template stops the run before anything starts.

Values only: each string inside ``mcp.arguments`` (at any depth), and each word of a stdio server's ``command``
and value of its ``env``, is rendered with the prompt context (``plan``, ``phase``, ``artifacts``, ``attempt``,
``remediation``, ``workdir``) plus ``coord.python`` (the interpreter coord runs on) and ``coord.workspace``;
keys, numbers and the structure are never templates. The environment is the prompt renderer's (sandboxed,
``StrictUndefined``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from coordinator.errors import Problem, TemplateError
from coordinator.plan.model import Phase, Plan
from coordinator.prompts.renderer import PromptRenderer, RemediationContext


def _render(renderer: PromptRenderer, value: Any, context: dict[str, Any], field: str,
            problems: list[Problem], plan: Plan) -> Any:
    if isinstance(value, str):
        try:
            return renderer.env.from_string(value).render(context)
        except Exception as exc:  # a template's failure is a plan problem, reported at its field
            problems.append(Problem(file=plan.path, field=field, message=f"{type(exc).__name__}: {exc}"))
            return value
    if isinstance(value, dict):
        return {key: _render(renderer, item, context, f"{field}.{key}", problems, plan) for key, item in value.items()}
    if isinstance(value, list):
        return [_render(renderer, item, context, f"{field}[{index}]", problems, plan)
                for index, item in enumerate(value)]
    return value


def render_call(renderer: PromptRenderer, plan: Plan, phase: Phase, *, attempt_number: int,
                remediation: RemediationContext | None = None) -> dict[str, Any]:
    """The phase's MCP call with its templates rendered, as ``agents.mcp`` hands it to its worker.

    Returns:
        ``{"server": {"name", "command": [...], "url", "env": {...}, "cwd": absolute path}, "tool", "arguments"}``.

    Raises:
        TemplateError: a value fails to render (each problem names its field, ``phases[N].mcp.arguments.KEY``).
        ValueError: the phase has no ``mcp`` call.
    """
    if phase.mcp is None:
        raise ValueError(f"phase {phase.id} has no mcp call")
    context = renderer.context(plan, phase, attempt_number, remediation)
    context["coord"] = {"python": sys.executable, "workspace": plan.workspace}
    problems: list[Problem] = []
    where = f"phases[{phase.index}].mcp"
    server = phase.mcp.server
    arguments = _render(renderer, phase.mcp.arguments, context, f"{where}.arguments", problems, plan)
    command = _render(renderer, list(server.command), context, f"{where}.server.command", problems, plan)
    env = _render(renderer, dict(server.env), context, f"{where}.server.env", problems, plan)
    if problems:
        raise TemplateError(problems)
    cwd = Path(plan.workspace) / (server.cwd if server.cwd is not None else phase.workdir)
    return {"server": {"name": server.name, "command": command, "url": server.url, "env": env, "cwd": str(cwd)},
            "tool": phase.mcp.tool, "arguments": arguments}


def call_prompt(phase: Phase, call: dict[str, Any]) -> str:
    """What an MCP attempt's ``prompt.md`` holds (its worker gets no prompt): the rendered call, as JSON."""
    shown = json.dumps(call, indent=2, ensure_ascii=False)
    return (f"# {phase.id}: {phase.title}\n\nAn `mcp` phase: no model is involved. The worker calls tool "
            f"`{call['tool']}` of MCP server `{call['server']['name']}` with:\n\n```json\n{shown}\n```\n")
