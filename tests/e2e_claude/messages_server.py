"""A scripted stand-in for the Anthropic Messages API, so the REAL ``claude`` CLI can run offline in tests.

Protocol, as observed from ``@anthropic-ai/claude-code`` 2.1.331 pointed at this server by ``ANTHROPIC_BASE_URL``:
claude POSTs ``{base}/v1/messages?beta=true`` with ``"stream": true``, the whole conversation in ``messages`` and
its tools (``Bash`` among them) in ``tools``; headers carry ``x-api-key`` and ``X-Claude-Code-Session-Id`` (the
session id of the ``system``/``init`` event, the same after ``--resume``). The answer is HTTP 200
``text/event-stream`` with frames ``event: <type>\\ndata: <json>\\n\\n``: ``message_start`` (the message with its
input usage), per content block ``content_block_start``/``content_block_delta``/``content_block_stop``, then
``message_delta`` (``stop_reason``, output usage) and ``message_stop``. A ``tool_use`` block (``stop_reason:
tool_use``) named ``Bash`` with input ``{"command": …}`` makes claude run the command and POST again with a
``tool_result``; a text-only message (``end_turn``) ends the turn.

A *script* is the list of model steps of one conversation (one claude session). The server picks the script on a
session's first request by the tag ``[[mock:NAME]]`` in the request body (put it in the phase's instructions, so it
is in the prompt), then answers each POST of that session with its next step. A resumed session (``--resume ID``)
keeps its place in the script; a fresh session with the same tag starts it again.

Bound to 127.0.0.1 on a random port; one thread per connection (``ThreadingHTTPServer``). Responses are HTTP/1.0
with the connection closed at the end, so an SSE body needs no length.
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
    """Token usage of one model response, as the Messages API reports it.

    ``input_tokens`` excludes the cache: cache reads and writes are counted apart. claude adds up the usage of the
    responses of one ``claude -p`` run into ``result.usage`` and prices it into ``result.total_cost_usd``.
    """

    input_tokens: int = 1000
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    output_tokens: int = 30

    def start(self) -> dict[str, Any]:
        """``message_start.message.usage``: the input side (output so far: 1, as the real API says)."""
        return {"input_tokens": self.input_tokens, "cache_read_input_tokens": self.cache_read_input_tokens,
                "cache_creation_input_tokens": self.cache_creation_input_tokens, "output_tokens": 1}

    def delta(self) -> dict[str, Any]:
        """``message_delta.usage``: the final output count."""
        return {"output_tokens": self.output_tokens}


@dataclass(frozen=True)
class Bash:
    """The model calls claude's ``Bash`` tool: claude runs ``command`` and posts the output back."""

    command: str
    usage: Usage = field(default_factory=Usage)


@dataclass(frozen=True)
class Say:
    """The model answers with text only (``stop_reason: end_turn``); this ends claude's turn."""

    text: str
    usage: Usage = field(default_factory=Usage)


@dataclass(frozen=True)
class HttpError:
    """An HTTP error with the Anthropic error body instead of a stream."""

    status: int
    message: str = "scripted failure"


@dataclass(frozen=True)
class Stall:
    """Send the 200 headers and ``message_start``, then nothing until the server closes (or ``seconds``)."""

    seconds: float = 120.0


Step = Bash | Say | HttpError | Stall


@dataclass(frozen=True)
class Request:
    """One POST the server answered, for assertions."""

    conversation: str
    """claude's ``X-Claude-Code-Session-Id`` header (the same across ``--resume``)."""
    script: str | None
    index: int
    """Position of the step in the script (0-based); -1 when no step was left or no script matched."""
    step: Step | None
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class ScriptedMessagesServer:
    """The scripted Messages API server; use as a context manager (``with ScriptedMessagesServer(scripts) as s``).

    Args:
        scripts: script name -> steps, see the module docstring.

    Attributes:
        requests: every request answered, in arrival order (GETs and unexpected paths too, with script None).
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
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="messages-server", daemon=True)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``: the ``ANTHROPIC_BASE_URL`` (claude appends ``/v1/messages``)."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> ScriptedMessagesServer:
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
            return f"{prefix}_{next(self._ids):024d}"


def _frame(kind: str, data: dict[str, Any]) -> bytes:
    """One SSE frame: ``event: <type>`` and ``data: <json>`` lines and a blank line (the Messages API format)."""
    payload = {"type": kind, **data}
    return f"event: {kind}\ndata: {json.dumps(payload)}\n\n".encode()


def _make_handler(server: ScriptedMessagesServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.0: the body of a stream ends when we close the connection (no length, no chunking needed).
        protocol_version = "HTTP/1.0"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            pass  # keep pytest's output clean; ``server.requests`` has everything

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            headers = {key.lower(): value for key, value in self.headers.items()}
            server._record(Request("?", None, -1, None, self.path, headers, {}))
            self._json_error(HTTPStatus.NOT_FOUND, "only POST /v1/messages is scripted")

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode("utf-8", errors="replace")
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                body = {"unparsed": raw}
            headers = {key.lower(): value for key, value in self.headers.items()}
            conversation = headers.get("x-claude-code-session-id") or "?"
            if self.path.split("?")[0].rstrip("/") != "/v1/messages" or not body.get("stream"):
                server._record(Request(conversation, None, -1, None, self.path, headers, body))
                self._json_error(HTTPStatus.NOT_FOUND, f"unexpected request {self.path}")
                return
            script, index, step = server._next(conversation, raw)
            server._record(Request(conversation, script, index, step, self.path, headers, body))
            if step is None:
                why = f"script {script!r} has no step left" if script else "no [[mock:NAME]] tag in the request"
                self._json_error(HTTPStatus.BAD_REQUEST, why)
            elif isinstance(step, HttpError):
                self._json_error(step.status, step.message)
            else:
                self._stream(step, str(body.get("model") or "?"))

        def _json_error(self, status: int, message: str) -> None:
            kind = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
                    429: "rate_limit_error", 529: "overloaded_error"}.get(status, "api_error")
            data = json.dumps({"type": "error", "error": {"type": kind, "message": message}}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)

        def _stream(self, step: Step, model: str) -> None:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            usage = step.usage if isinstance(step, (Bash, Say)) else Usage()
            message = {"id": server._new_id("msg"), "type": "message", "role": "assistant", "model": model,
                       "content": [], "stop_reason": None, "stop_sequence": None, "usage": usage.start()}
            try:
                self._send("message_start", {"message": message})
                if isinstance(step, Stall):
                    server._closing.wait(step.seconds)
                    return
                if isinstance(step, Bash):
                    block = {"type": "tool_use", "id": server._new_id("toolu"), "name": "Bash", "input": {}}
                    delta = {"type": "input_json_delta",
                             "partial_json": json.dumps({"command": step.command, "description": "Run a command"})}
                    stop_reason = "tool_use"
                else:
                    assert isinstance(step, Say)
                    block = {"type": "text", "text": ""}
                    delta = {"type": "text_delta", "text": step.text}
                    stop_reason = "end_turn"
                self._send("content_block_start", {"index": 0, "content_block": block})
                self._send("content_block_delta", {"index": 0, "delta": delta})
                self._send("content_block_stop", {"index": 0})
                self._send("message_delta", {"delta": {"stop_reason": stop_reason, "stop_sequence": None},
                                             "usage": usage.delta()})
                self._send("message_stop", {})
            except (BrokenPipeError, ConnectionResetError):
                pass  # claude went away (killed by coord's hang policy): nothing to answer

        def _send(self, kind: str, data: dict[str, Any]) -> None:
            self.wfile.write(_frame(kind, data))
            self.wfile.flush()

    return Handler
