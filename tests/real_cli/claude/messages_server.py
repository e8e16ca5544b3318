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

Scripts, the loopback server and the ``HttpError``/``Stall`` steps are ``tests.real_cli.common.sse_server``'s: a script
is one claude session; a resumed session (``--resume ID``) keeps its place in the script, a fresh session with the
same tag starts it again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tests.real_cli.common.sse_server import HttpError, ScriptedSSEServer, Send, Stall

__all__ = ["Bash", "HttpError", "Say", "ScriptedMessagesServer", "Stall", "Step", "Usage"]

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
               429: "rate_limit_error", 529: "overloaded_error"}
"""The Anthropic error ``type`` of an HTTP status (``api_error`` for any other)."""


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


Step = Bash | Say | HttpError | Stall


class ScriptedMessagesServer(ScriptedSSEServer):
    """The scripted Messages API server; use as a context manager (``with ScriptedMessagesServer(scripts) as s``).

    Args:
        scripts: script name -> steps, see the module docstring.

    Attributes:
        requests: every request answered, in arrival order (GETs and unexpected paths too, with script None);
            ``Request.conversation`` is claude's ``X-Claude-Code-Session-Id`` header (the same across ``--resume``).
    """

    endpoint = "/v1/messages"
    thread_name = "messages-server"
    id_digits = 24
    record_gets = True

    def __init__(self, scripts: dict[str, list[Step]]) -> None:
        super().__init__(scripts)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``: the ``ANTHROPIC_BASE_URL`` (claude appends ``/v1/messages``)."""
        return self.origin

    def conversation_of(self, headers: dict[str, str]) -> str:
        return headers.get("x-claude-code-session-id") or "?"

    def unexpected(self, path: str, body: dict[str, Any]) -> str | None:
        if path.split("?")[0].rstrip("/") != self.endpoint or not body.get("stream"):
            return f"unexpected request {path}"
        return None

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return {"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message}}

    def open_stream(self, step: Step, body: dict[str, Any], send: Send) -> Usage:
        usage = step.usage if isinstance(step, (Bash, Say)) else Usage()
        message = {"id": self.new_id("msg"), "type": "message", "role": "assistant",
                   "model": str(body.get("model") or "?"), "content": [], "stop_reason": None,
                   "stop_sequence": None, "usage": usage.start()}
        send("message_start", {"message": message})
        return usage

    def finish_stream(self, step: Step, opened: Usage, send: Send) -> None:
        if isinstance(step, Bash):
            block = {"type": "tool_use", "id": self.new_id("toolu"), "name": "Bash", "input": {}}
            delta = {"type": "input_json_delta",
                     "partial_json": json.dumps({"command": step.command, "description": "Run a command"})}
            stop_reason = "tool_use"
        else:
            assert isinstance(step, Say)
            block = {"type": "text", "text": ""}
            delta = {"type": "text_delta", "text": step.text}
            stop_reason = "end_turn"
        send("content_block_start", {"index": 0, "content_block": block})
        send("content_block_delta", {"index": 0, "delta": delta})
        send("content_block_stop", {"index": 0})
        send("message_delta", {"delta": {"stop_reason": stop_reason, "stop_sequence": None}, "usage": opened.delta()})
        send("message_stop", {})
