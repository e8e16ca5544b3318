"""The scripted SSE model server both end-to-end suites build on, so the REAL agent CLIs can run offline in tests.

``tests/real_cli/codex/responses_server.py`` (OpenAI Responses API) and ``tests/real_cli/claude/messages_server.py``
(Anthropic Messages API) subclass ``ScriptedSSEServer`` and add only their protocol: how a request names its
conversation, which requests are answered, the error body, and the events of a stream.

A *script* is the list of model steps of one conversation (a codex thread, a claude session). The server picks the
script on a conversation's first request by the tag ``[[mock:NAME]]`` in the request body (put it in the phase's
instructions, so it is in the prompt), then answers each POST of that conversation with its next step. A resumed
conversation keeps its place in the script; a fresh conversation with the same tag starts it again.

Bound to 127.0.0.1 on a random port; one thread per connection (``ThreadingHTTPServer``). Responses are HTTP/1.0
with the connection closed at the end, so an SSE body needs no length and "drop the stream" is just a close.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Self

TAG_RE = re.compile(r"\[\[mock:([A-Za-z0-9_.-]+)\]\]")
"""The tag that names a conversation's script, found anywhere in the first request's body."""

Send = Callable[[str, dict[str, Any]], None]
"""Writes one SSE event (its type and data) to the open stream and flushes it."""


@dataclass(frozen=True)
class HttpError:
    """An HTTP error with the protocol's error body instead of a stream (the clients' own retries are off in these
    tests; codex would retry a 500 but not a 401)."""

    status: int
    message: str = "scripted failure"


@dataclass(frozen=True)
class Stall:
    """Send the 200 headers and the stream's first event (``response.created``, ``message_start``), then nothing
    until the server closes (or ``seconds``)."""

    seconds: float = 120.0


@dataclass(frozen=True)
class Drop:
    """Send the 200 headers and the stream's first event, then close the connection without finishing the stream."""


@dataclass(frozen=True)
class Request:
    """One request the server answered, for assertions."""

    conversation: str
    """The conversation id the client sent in its headers (``ScriptedSSEServer.conversation_of``); "?" if none."""
    script: str | None
    index: int
    """Position of the step in the script (0-based); -1 when no step was left or no script matched."""
    step: Any
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class ScriptedSSEServer:
    """A scripted model server; use as a context manager (``with Server(scripts) as s``).

    A protocol subclass sets ``endpoint`` and implements ``base_url``, ``conversation_of``, ``unexpected``,
    ``error_body``, ``open_stream`` and ``finish_stream``.

    Args:
        scripts: script name -> steps, see the module docstring.

    Attributes:
        requests: every request answered, in arrival order (unexpected ones too, with script None).
    """

    endpoint: ClassVar[str]
    """The one path that is scripted (``/v1/responses``, ``/v1/messages``)."""
    thread_name: ClassVar[str] = "scripted-sse-server"
    id_digits: ClassVar[int] = 0
    """Generated ids are ``PREFIX_N`` with N zero-padded to this many digits."""
    record_gets: ClassVar[bool] = False
    """Whether a GET (always answered 404) goes into ``requests``."""

    def __init__(self, scripts: Mapping[str, Sequence[Any]]) -> None:
        self.scripts = {name: list(steps) for name, steps in scripts.items()}
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._cursors: dict[str, tuple[str | None, int]] = {}
        self._ids = itertools.count(1)
        self._closing = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name=self.thread_name, daemon=True)

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:PORT``."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> Self:
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

    # --- the protocol: what a subclass says -------------------------------------------------------------------

    def conversation_of(self, headers: dict[str, str]) -> str:
        """The conversation a POST belongs to, from its (lower-cased) headers."""
        raise NotImplementedError

    def unexpected(self, path: str, body: dict[str, Any]) -> str | None:
        """Why this POST is not one the server answers from a script (it gets a 404), or None."""
        raise NotImplementedError

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        """The JSON body of an error answer, in the protocol's shape."""
        raise NotImplementedError

    def open_stream(self, step: Any, body: dict[str, Any], send: Send) -> Any:
        """Send the stream's first event for ``step`` (also for a ``Stall`` or ``Drop``); returns what
        ``finish_stream`` needs."""
        raise NotImplementedError

    def finish_stream(self, step: Any, opened: Any, send: Send) -> None:
        """Send the rest of the stream of a step that is not a ``Stall`` or ``Drop``."""
        raise NotImplementedError

    # --- the bookkeeping ------------------------------------------------------------------------------------

    def new_id(self, prefix: str) -> str:
        """A fresh id ``PREFIX_N`` (see ``id_digits``)."""
        with self._lock:
            return f"{prefix}_{next(self._ids):0{self.id_digits}d}"

    def _next(self, conversation: str, raw_body: str) -> tuple[str | None, int, Any]:
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

    def _hold(self, step: Any) -> bool:
        """Whether ``step`` ends the stream after its first event: a ``Drop`` at once, a ``Stall`` once released."""
        if isinstance(step, Stall):
            self._closing.wait(step.seconds)
            return True
        return isinstance(step, Drop)


def _make_handler(server: ScriptedSSEServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.0: the body of a stream ends when we close the connection (no length, no chunking needed).
        protocol_version = "HTTP/1.0"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            pass  # keep pytest's output clean; ``server.requests`` has everything

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            # codex's built-in provider tries a WebSocket upgrade here; the scripted providers never should.
            if server.record_gets:
                server._record(Request("?", None, -1, None, self.path, self._headers(), {}))
            self._json_error(HTTPStatus.NOT_FOUND, f"only POST {server.endpoint} is scripted")

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode("utf-8", errors="replace")
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                body = {"unparsed": raw}
            headers = self._headers()
            conversation = server.conversation_of(headers)
            why_not = server.unexpected(self.path, body)
            if why_not is not None:
                server._record(Request(conversation, None, -1, None, self.path, headers, body))
                self._json_error(HTTPStatus.NOT_FOUND, why_not)
                return
            script, index, step = server._next(conversation, raw)
            server._record(Request(conversation, script, index, step, self.path, headers, body))
            if step is None:
                why = f"script {script!r} has no step left" if script else "no [[mock:NAME]] tag in the request"
                self._json_error(HTTPStatus.BAD_REQUEST, why)
            elif isinstance(step, HttpError):
                self._json_error(step.status, step.message)
            else:
                self._stream(step, body)

        def _headers(self) -> dict[str, str]:
            return {key.lower(): value for key, value in self.headers.items()}

        def _json_error(self, status: int, message: str) -> None:
            data = json.dumps(server.error_body(status, message)).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)

        def _stream(self, step: Any, body: dict[str, Any]) -> None:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            try:
                opened = server.open_stream(step, body, self._send)
                if not server._hold(step):
                    server.finish_stream(step, opened, self._send)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client went away (killed by coord's hang policy): nothing to answer

        def _send(self, kind: str, data: dict[str, Any]) -> None:
            """One SSE frame: ``event: <type>`` and ``data: <json>`` lines and a blank line (both APIs' format)."""
            payload = {"type": kind, **data}
            self.wfile.write(f"event: {kind}\ndata: {json.dumps(payload)}\n\n".encode())
            self.wfile.flush()

    return Handler
