"""The checks of ``mcp_servers:`` and of a phase's ``mcp:`` (an ``agent: mcp`` phase), for ``plan.loader``.

A server is a stdio command or a URL on this machine (loopback only: a plan's tool calls never leave the
machine unseen); a phase names one by its key in ``mcp_servers`` or gives one inline; a phase has ``mcp:`` exactly
when its agent's base is ``mcp``. Every problem is reported at its field; nothing is started here.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from coordinator.plan.model import AgentProfile, McpCall, McpServer
from coordinator.plan.schema import ENV_NAME_RE, McpCallModel, McpServerModel
from coordinator.plan.yaml_source import Collector, Path_

_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain"})


def _url_problem(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{url!r} is not an http:// or https:// URL"
    host = parts.hostname
    try:
        local = ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = host in _LOCAL_NAMES
    if not local:
        return f"{url!r}: an MCP server URL must be on this machine (127.0.0.1, ::1 or localhost)"
    return None


def build_server(name: str, model: McpServerModel, path: Path_, out: Collector) -> McpServer | None:
    """One server from its schema model, every problem reported under ``path``; None when it is unusable."""
    if (model.command is None) == (model.url is None):
        out.add(path, "give either 'command' (a stdio server) or 'url' (a running server), not both or neither")
        return None
    if model.url is not None and (problem := _url_problem(model.url)) is not None:
        out.add((*path, "url"), problem)
        return None
    usable = True
    for key in model.env or {}:
        if not ENV_NAME_RE.fullmatch(key):
            out.add((*path, "env", key), f"{key!r} is not a valid environment variable name", key=True)
            usable = False
    if model.url is not None and (model.env or model.cwd):
        out.add(path, "'env' and 'cwd' apply to a stdio server ('command'), not to a URL")
        usable = False
    if not usable:
        return None
    return McpServer(name=name, command=tuple(model.command or ()), url=model.url,
                     env=tuple((model.env or {}).items()), cwd=model.cwd)


def build_servers(models: dict[str, McpServerModel] | None, out: Collector) -> dict[str, McpServer]:
    """The plan's ``mcp_servers`` by name (the unusable ones reported and left out)."""
    servers: dict[str, McpServer] = {}
    for name, model in (models or {}).items():
        server = build_server(name, model, ("mcp_servers", name), out)
        if server is not None:
            servers[name] = server
    return servers


def build_call(model: McpCallModel | None, profile: AgentProfile, servers: dict[str, McpServer],
               known: set[str], path: Path_, out: Collector) -> McpCall | None:
    """A phase's call, checked against its agent: required for base ``mcp``, refused for any other.

    Args:
        model: the phase's ``mcp:``, or None.
        profile: the phase's agent profile.
        servers: the usable ``mcp_servers``; ``known`` names every key given (an unusable one is already
            reported, so naming it is not reported again).
        path: the phase's field path (``phases[3]``).
    """
    if model is None:
        if profile.base == "mcp":
            out.add(path, f"agent {profile.name!r} calls an MCP tool: the phase needs "
                          "'mcp: {server: NAME, tool: NAME, arguments: {...}}'")
        return None
    if profile.base != "mcp":
        out.add((*path, "mcp"), f"'mcp' is for phases whose agent has base 'mcp'; this one's agent is "
                                f"{profile.name!r} (base {profile.base!r})", key=True)
        return None
    if isinstance(model.server, str):
        server = servers.get(model.server)
        if server is None:
            if model.server not in known:
                names = ", ".join(sorted(known)) or "none are defined"
                out.add((*path, "mcp", "server"), f"unknown MCP server {model.server!r} (mcp_servers: {names})")
            return None
    else:
        inline = build_server(f"{path[-1]}", model.server, (*path, "mcp", "server"), out)
        if inline is None:
            return None
        server = inline
    return McpCall(server=server, tool=model.tool, arguments=dict(model.arguments))
