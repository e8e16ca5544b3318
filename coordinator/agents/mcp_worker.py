"""The worker of an ``agent: mcp`` phase: start (or connect to) one MCP server, list its tools, call the one the
phase names, and leave the response as the attempt's artifact.

Started by the supervisor as ``python -I mcp_worker.py REQUEST.json`` (by path: it imports the MCP SDK and the
standard library, nothing of coord). ``REQUEST.json`` is written by ``agents.mcp`` into the attempt's records
folder, out of any worker's reach; its keys: ``phase_id``; ``server`` (``name``, ``command`` list or ``url``,
``env`` dict, ``cwd``); ``tool``; ``arguments`` (already rendered); ``timeout`` (seconds, for the whole run:
start, handshake, listing and call); ``attempt_dir``.

What it leaves in the attempt folder:
  * ``mcp-response.json``: the tool's ``CallToolResult`` as the server sent it (``content``, ``structuredContent``,
    ``isError``), when there was one;
  * ``mcp-call.json``: ``server``, ``transport`` (``stdio``/``http``), ``tool``, ``outcome`` (``ok``,
    ``tool-error``, ``missing-tool``, ``server-failed``, ``timed-out``), ``message`` (one sentence: the server's
    own error text where it gave one), ``seconds`` (float, the whole run), ``call_seconds`` (the call alone, or
    null), ``tools`` (the names the server listed), ``started_at``;
  * ``mcp-server.log``: a stdio server's stderr;
  * the phase's report (``$COORD_REPORT_PATH``: ``Status: PASS`` or ``Status: FAIL`` with the message and the
    response text) and, only when the call succeeded, its completion marker (``$COORD_COMPLETED_PATH``).

Exit status: 0 ok, 1 tool error, 3 missing tool, 4 server failed (did not start, crashed, broke the protocol),
124 timed out. The transport is the SDK's (``mcp.Client`` over ``stdio_client`` or Streamable HTTP).
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

EXIT_CODES = {"ok": 0, "tool-error": 1, "missing-tool": 3, "server-failed": 4, "timed-out": 124}
CALL_FILE = "mcp-call.json"
RESPONSE_FILE = "mcp-response.json"
SERVER_LOG = "mcp-server.log"
_TEXT_CAP = 20_000


_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC


def _write_at(dir_fd: int | None, name: str, text: str) -> None:
    """Replace the file ``name`` of the directory open as ``dir_fd`` (opened before anything ran, so a folder a
    worker replaced with a link cannot send the write elsewhere); a failure costs only that file."""
    if dir_fd is None:
        return
    temporary = f".tmp-{name}-{os.getpid()}"
    try:
        fd = os.open(temporary, _FILE_FLAGS, 0o644, dir_fd=dir_fd)
        try:
            os.write(fd, text.encode("utf-8"))
        finally:
            os.close(fd)
        os.replace(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except OSError:
        pass


def _write_json(dir_fd: int | None, name: str, data: object) -> None:
    _write_at(dir_fd, name, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _write_in_workspace(path: str | None, text: str) -> None:
    """Write the report or marker at ``path`` only while its folder is, links followed, inside
    ``$COORD_WORKSPACE``, the file itself never through a link (the judge reads it the same way)."""
    workspace = os.environ.get("COORD_WORKSPACE")
    if not path or not workspace:
        return
    folder = os.path.dirname(path)
    root = os.path.realpath(workspace)
    try:
        os.makedirs(folder, exist_ok=True)
        real = os.path.realpath(folder)
        if os.path.commonpath([real, root]) != root:
            return
        dir_fd = os.open(real, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except (OSError, ValueError):
        return
    try:
        _write_at(dir_fd, os.path.basename(path), text)
    finally:
        os.close(dir_fd)


def _error_text(exc: BaseException) -> str:
    """The innermost meaningful message of an exception (task groups wrap the transport's in groups)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:500]


def _last_line(fd: int) -> str | None:
    """The last non-empty line of the server's log (open as ``fd``), capped; None when there is none."""
    try:
        size = os.fstat(fd).st_size
        data = os.pread(fd, 4096, max(0, size - 4096))
    except OSError:
        return None
    lines = [line.strip() for line in data.decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[-1][:300] if lines else None


def response_text(response: dict[str, Any]) -> str:
    """The text blocks of a ``CallToolResult`` joined (other blocks named by type), capped."""
    parts = []
    for block in response.get("content") or []:
        if isinstance(block, dict):
            parts.append(str(block.get("text")) if block.get("type") == "text" else f"[{block.get('type')} block]")
    text = "\n".join(parts)
    return text if len(text) <= _TEXT_CAP else text[:_TEXT_CAP] + "\n…"


async def _call(request: dict[str, Any], record: dict[str, Any], errlog: Any) -> dict[str, Any] | None:
    from mcp import Client, StdioServerParameters, stdio_client

    server = request["server"]
    if server.get("url"):
        target: Any = server["url"]
    else:
        command = server["command"]
        # The SDK gives a stdio server a minimal environment; the attempt's COORD_* variables go with it, so the
        # supervisor's sweep (by the COORD_ATTEMPT_ID cookie) finds a server that outlives this worker.
        env = {key: value for key, value in os.environ.items() if key.startswith("COORD_")}
        env.update(server.get("env") or {})
        target = stdio_client(StdioServerParameters(command=command[0], args=list(command[1:]), env=env,
                                                    cwd=server.get("cwd")), errlog=errlog)
    shown = server["url"] or " ".join(server["command"])
    print(f"MCP server {server['name']!r}: connecting ({shown})", flush=True)
    async with Client(target) as client:
        tools: list[str] = []
        cursor: str | None = None
        while True:
            listing = await client.list_tools(cursor=cursor)
            tools.extend(tool.name for tool in listing.tools)
            cursor = listing.next_cursor
            if not cursor:
                break
        record["tools"] = tools
        if request["tool"] not in tools:
            record["outcome"] = "missing-tool"
            record["message"] = (f"server {server['name']!r} has no tool {request['tool']!r}; it has: "
                                 + (", ".join(tools) or "none"))
            return None
        print(f"calling tool {request['tool']!r} (the server lists {len(tools)} tools)", flush=True)
        started = time.monotonic()
        result = await client.call_tool(request["tool"], request.get("arguments") or {})
        record["call_seconds"] = round(time.monotonic() - started, 3)
        return result.model_dump(mode="json", by_alias=True, exclude_none=True)


def run(request: dict[str, Any]) -> int:
    """Make the call ``request`` describes (the module docstring has its keys); returns the exit status."""
    import anyio

    attempt_dir = request["attempt_dir"]
    server = request["server"]
    record: dict[str, Any] = {
        "server": server["name"], "transport": "http" if server.get("url") else "stdio", "tool": request["tool"],
        "outcome": None, "message": None, "seconds": None, "call_seconds": None, "tools": [],
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    started = time.monotonic()
    response: dict[str, Any] | None = None
    try:
        dir_fd: int | None = os.open(attempt_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        log_fd = os.open(SERVER_LOG, (_FILE_FLAGS & ~os.O_WRONLY) | os.O_RDWR, 0o644, dir_fd=dir_fd)  # read back
    except OSError:
        dir_fd, log_fd = None, os.open(os.devnull, os.O_WRONLY)
    with open(log_fd, "w", encoding="utf-8") as errlog:

        async def bounded() -> dict[str, Any] | None:
            with anyio.fail_after(float(request["timeout"])):
                return await _call(request, record, errlog)

        try:
            response = anyio.run(bounded)
        except TimeoutError:
            record["outcome"] = "timed-out"
            record["message"] = (f"no answer from server {server['name']!r} within {float(request['timeout']):g} s "
                                 "(policy.timeout)")
        except BaseException as exc:  # the SDK's transport errors arrive wrapped in exception groups
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            record["outcome"] = "server-failed"
            record["message"] = f"server {server['name']!r} failed: {_error_text(exc)}"
            said = _last_line(log_fd)
            if said:
                record["message"] += f"; its stderr ends: {said}"
    record["seconds"] = round(time.monotonic() - started, 3)
    if response is not None:
        _write_json(dir_fd, RESPONSE_FILE, response)
        text = response_text(response)
        if response.get("isError"):
            record["outcome"] = "tool-error"
            record["message"] = f"tool {request['tool']!r} returned an error: {text.strip()[:500] or '(no text)'}"
        else:
            record["outcome"] = "ok"
            record["message"] = (text.strip().splitlines() or ["(no text)"])[0][:500]
        record["response"] = RESPONSE_FILE
    _write_json(dir_fd, CALL_FILE, record)
    _report(request, record, response)
    return EXIT_CODES[record["outcome"]]


def _report(request: dict[str, Any], record: dict[str, Any], response: dict[str, Any] | None) -> None:
    passed = record["outcome"] == "ok"
    shown = f"tool `{request['tool']}` of MCP server `{record['server']}`"
    body = response_text(response) if response is not None else ""
    lines = [f"Status: {'PASS' if passed else 'FAIL'}", "", f"Called {shown} in {record['seconds']:g} s: "
             f"{record['outcome']}.", ""]
    if not passed:
        lines += [str(record["message"]), ""]
    if body:
        lines += ["Response:", "", "```", body, "```", ""]
    _write_in_workspace(os.environ.get("COORD_REPORT_PATH"), "\n".join(lines))
    if passed:
        _write_in_workspace(os.environ.get("COORD_COMPLETED_PATH"),
                    f"# {request['phase_id']} completed\n\nStatus: PASS\n\n{shown} answered:\n\n```\n{body}\n```\n")
    print(f"{shown}: {record['outcome']} in {record['seconds']:g} s: {record['message']}", flush=True)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: mcp_worker.py REQUEST.json", file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as handle:
        return run(json.load(handle))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
