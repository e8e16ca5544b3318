"""A scripted stand-in for the OpenAI Responses API, so the REAL ``codex`` binary can run offline in tests.

Protocol source: docs/codex-exec.md §7 (measured against codex-cli 0.169.0) and codex's own test helpers
(``codex-rs/core/tests/common/responses.rs``). codex POSTs ``{base_url}/responses`` with ``"stream": true`` and the
whole conversation in ``input``; the answer is HTTP 200 ``text/event-stream`` with frames
``event: <type>\\ndata: <json>\\n\\n``: output items (``response.output_item.done``), then ``response.completed``
carrying the usage. A ``function_call`` item named ``exec_command`` (arguments ``{"cmd": …}``) makes codex run the
command and POST again with a ``function_call_output``; a ``message`` item ends the turn.

Scripts, the loopback server and the ``HttpError``/``Stall``/``Drop`` steps are ``tests.real_cli.common.sse_server``'s:
a script is one codex thread (named by the ``thread-id`` header); a resumed thread (``codex exec resume``) keeps its
place in the script, a fresh thread with the same tag starts it again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tests.real_cli.common.sse_server import Drop, HttpError, ScriptedSSEServer, Send, Stall

__all__ = ["Drop", "Exec", "HttpError", "Patch", "Say", "ScriptedResponsesServer", "Stall", "Step", "Usage"]


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


Step = Exec | Patch | Say | HttpError | Stall | Drop


class ScriptedResponsesServer(ScriptedSSEServer):
    """The scripted Responses API server; use as a context manager (``with ScriptedResponsesServer(scripts) as s``).

    Args:
        scripts: script name -> steps, see the module docstring.

    Attributes:
        requests: every POST answered, in arrival order; ``Request.conversation`` is codex's ``thread-id`` header
            (the same across ``exec resume``), ``session-id`` if absent.
    """

    endpoint = "/v1/responses"
    thread_name = "responses-server"

    def __init__(self, scripts: dict[str, list[Step]]) -> None:
        super().__init__(scripts)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``: the provider's ``base_url`` (codex appends ``/responses``)."""
        return f"{self.origin}/v1"

    def conversation_of(self, headers: dict[str, str]) -> str:
        return headers.get("thread-id") or headers.get("session-id") or "?"

    def unexpected(self, path: str, body: dict[str, Any]) -> str | None:
        return None if path.rstrip("/") == self.endpoint else f"unexpected path {path}"

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        # The OpenAI error body shape; codex shows ``error.message`` for 4xx and its own text for 5xx.
        return {"error": {"message": message, "type": "invalid_request_error", "code": None}}

    def open_stream(self, step: Step, body: dict[str, Any], send: Send) -> str:
        response_id = self.new_id("resp")
        send("response.created", {"response": {"id": response_id}})
        return response_id

    def finish_stream(self, step: Step, opened: str, send: Send) -> None:
        if isinstance(step, Exec):
            item = {"type": "function_call", "id": self.new_id("fc"), "call_id": self.new_id("call"),
                    "name": "exec_command", "arguments": json.dumps({"cmd": step.cmd})}
        elif isinstance(step, Patch):
            item = {"type": "custom_tool_call", "id": self.new_id("ctc"), "call_id": self.new_id("call"),
                    "name": "apply_patch", "input": step.patch}
        else:
            assert isinstance(step, Say)
            item = {"type": "message", "role": "assistant", "id": self.new_id("msg"),
                    "content": [{"type": "output_text", "text": step.text}]}
        send("response.output_item.done", {"item": item})
        send("response.completed", {"response": {"id": opened, "usage": step.usage.to_dict()}})
