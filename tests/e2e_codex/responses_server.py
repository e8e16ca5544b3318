"""A scripted stand-in for the OpenAI Responses API, so the REAL ``codex`` binary can run offline in tests.

Protocol source: ``shared/codex-cli.md`` §7 (measured against codex-cli 0.169.0) and codex's own test helpers
(``codex-rs/core/tests/common/responses.rs``). codex POSTs ``{base_url}/responses`` with ``"stream": true`` and the
whole conversation in ``input``; the answer is HTTP 200 ``text/event-stream`` with frames
``event: <type>\\ndata: <json>\\n\\n``: output items (``response.output_item.done``), then ``response.completed``
carrying the usage. A ``function_call`` item named ``exec_command`` (arguments ``{"cmd": …}``) makes codex run the
command and POST again with a ``function_call_output``; a ``message`` item ends the turn.

A *script* is the list of model steps of one conversation (one codex thread). The server picks the script on a
thread's first request by the tag ``[[mock:NAME]]`` in the request body (put it in the phase's instructions, so it
is in the prompt), then answers each POST of that thread with its next step. A resumed thread (``codex exec
resume``) keeps its place in the script; a fresh thread with the same tag starts it again.

Bound to 127.0.0.1 on a random port; one thread per connection (``ThreadingHTTPServer``). Responses are HTTP/1.0
with the connection closed at the end, so an SSE body needs no length and "drop the stream" is just a close.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TAG_RE = re.compile(r"\[\[mock:([A-Za-z0-9_.-]+)\]\]")
"""The tag that names a conversation's script, found anywhere in the first request's body."""


@dataclass(frozen=True)
class Usage:
    """Token usage of one model response, as the Responses API reports it (``response.completed.response.usage``).

    codex adds these up over the responses of a thread and reports the running totals in ``turn.completed.usage``
    (``input_tokens``, ``cached_input_tokens``, ``output_tokens``), cumulative across resumes.
    """

    input_tokens: int = 1200
    cached_tokens: int = 200
    """Part of ``input_tokens`` served from the prompt cache (codex: ``cached_input_tokens``)."""
    output_tokens: int = 34

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "input_tokens_details": {"cached_tokens": self.cached_tokens},
            "output_tokens": self.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": self.input_tokens + self.output_tokens,
        }


@dataclass(frozen=True)
class Exec:
    """The model calls the ``exec_command`` tool: codex runs ``cmd`` through the shell and posts the output back."""

    cmd: str
    usage: Usage = field(default_factory=Usage)


@dataclass(frozen=True)
class Patch:
    """The model calls codex's freeform ``apply_patch`` tool (a ``custom_tool_call``; offered for catalog models
    such as ``gpt-5.5``, not for unknown ones); codex applies ``patch`` in its workdir and reports a ``file_change``.

    ``patch`` is codex's patch format: ``*** Begin Patch`` / ``*** Add File: PATH`` / ``+line`` … / ``*** End Patch``.
    """

    patch: str
    usage: Usage = field(default_factory=Usage)


@dataclass(frozen=True)
class Say:
    """The model answers with an assistant message; this ends codex's turn (``turn.completed``)."""

    text: str
    usage: Usage = field(default_factory=Usage)


@dataclass(frozen=True)
class HttpError:
    """An HTTP error instead of a stream (500 is retryable for codex, 401 is not; we set no retries anyway)."""

    status: int
    message: str = "scripted failure"


@dataclass(frozen=True)
class Stall:
    """Send the 200 headers and ``response.created``, then nothing until the server closes (or ``seconds``)."""

    seconds: float = 120.0


@dataclass(frozen=True)
class Drop:
    """Send the 200 headers and ``response.created``, then close the connection without ``response.completed``."""


Step = Exec | Patch | Say | HttpError | Stall | Drop


@dataclass(frozen=True)
class Request:
    """One POST the server answered, for assertions."""

    conversation: str
    """codex's ``thread-id`` header (same across ``exec resume``); ``session-id`` if absent."""
    script: str | None
    index: int
    """Position of the step in the script (0-based); -1 when no step was left or no script matched."""
    step: Step | None
    headers: dict[str, str]
    body: dict[str, Any]


class ScriptedResponsesServer:
    """The scripted Responses API server; use as a context manager (``with ScriptedResponsesServer(scripts) as s``).

    Args:
        scripts: script name -> steps, see the module docstring.

    Attributes:
        requests: every request answered, in arrival order.
    """

    def __init__(self, scripts: dict[str, list[Step]]) -> None:
        self.scripts = {name: list(steps) for name, steps in scripts.items()}
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._cursors: dict[str, tuple[str | None, int]] = {}
        self._ids = itertools.count(1)
        self._closing = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="responses-server", daemon=True)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``: the provider's ``base_url`` (codex appends ``/responses``)."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> ScriptedResponsesServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release stalled streams, stop serving and close the socket."""
        self._closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def requests_of(self, script: str) -> list[Request]:
        """The requests answered from ``script``."""
        with self._lock:
            return [request for request in self.requests if request.script == script]

    def _next(self, conversation: str, raw_body: str) -> tuple[str | None, int, Step | None]:
        """Pick the step for this POST of ``conversation`` and advance its cursor."""
        with self._lock:
            if conversation in self._cursors:
                script, index = self._cursors[conversation]
            else:
                match = TAG_RE.search(raw_body)
                script, index = (match.group(1) if match else None), 0
            steps = self.scripts.get(script or "", [])
            self._cursors[conversation] = (script, index + 1)
            if index < len(steps):
                return script, index, steps[index]
            return script, -1, None

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def _new_id(self, prefix: str) -> str:
        with self._lock:
            return f"{prefix}_{next(self._ids)}"


def _frame(kind: str, data: dict[str, Any]) -> bytes:
    """One SSE frame: ``event: <type>`` and ``data: <json>`` lines and a blank line (the Responses API format)."""
    payload = {"type": kind, **data}
    return f"event: {kind}\ndata: {json.dumps(payload)}\n\n".encode()


def _make_handler(server: ScriptedResponsesServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.0: the body of a stream ends when we close the connection (no length, no chunking needed).
        protocol_version = "HTTP/1.0"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            pass  # keep pytest's output clean; ``server.requests`` has everything

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            # codex's built-in provider tries a WebSocket upgrade here; the custom provider never should.
            self._json_error(HTTPStatus.NOT_FOUND, "only POST /v1/responses is scripted")

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode("utf-8", errors="replace")
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                body = {"unparsed": raw}
            headers = {key.lower(): value for key, value in self.headers.items()}
            conversation = headers.get("thread-id") or headers.get("session-id") or "?"
            if self.path.rstrip("/") != "/v1/responses":
                server._record(Request(conversation, None, -1, None, headers, body))
                self._json_error(HTTPStatus.NOT_FOUND, f"unexpected path {self.path}")
                return
            script, index, step = server._next(conversation, raw)
            server._record(Request(conversation, script, index, step, headers, body))
            if step is None:
                why = f"script {script!r} has no step left" if script else "no [[mock:NAME]] tag in the request"
                self._json_error(HTTPStatus.BAD_REQUEST, why)
            elif isinstance(step, HttpError):
                self._json_error(step.status, step.message)
            else:
                self._stream(step)

        def _json_error(self, status: int, message: str) -> None:
            # The OpenAI error body shape; codex shows ``error.message`` for 4xx and its own text for 5xx.
            data = json.dumps({"error": {"message": message, "type": "invalid_request_error", "code": None}}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)

        def _stream(self, step: Step) -> None:
            response_id = server._new_id("resp")
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            try:
                self._send("response.created", {"response": {"id": response_id}})
                if isinstance(step, Stall):
                    server._closing.wait(step.seconds)
                    return
                if isinstance(step, Drop):
                    return
                if isinstance(step, Exec):
                    item = {"type": "function_call", "id": server._new_id("fc"), "call_id": server._new_id("call"),
                            "name": "exec_command", "arguments": json.dumps({"cmd": step.cmd})}
                elif isinstance(step, Patch):
                    item = {"type": "custom_tool_call", "id": server._new_id("ctc"),
                            "call_id": server._new_id("call"), "name": "apply_patch", "input": step.patch}
                else:
                    assert isinstance(step, Say)
                    item = {"type": "message", "role": "assistant", "id": server._new_id("msg"),
                            "content": [{"type": "output_text", "text": step.text}]}
                self._send("response.output_item.done", {"item": item})
                self._send("response.completed", {"response": {"id": response_id, "usage": step.usage.to_dict()}})
            except (BrokenPipeError, ConnectionResetError):
                pass  # codex went away (killed by coord's hang policy): nothing to answer

        def _send(self, kind: str, data: dict[str, Any]) -> None:
            self.wfile.write(_frame(kind, data))
            self.wfile.flush()

    return Handler
