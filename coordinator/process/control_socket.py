"""The coordinator's control socket: the push channel in, and the client other commands use to reach it.

``SignalListener`` is a Unix socket where supervisors announce ended attempts and clients (``coord remediate``/
``stop``, the TUI) send commands, one JSON object per line. When a push is lost, the engine's file poll finds the
attempt's ``exit.json`` instead. ``send_command`` is the client side.
"""

from __future__ import annotations

import json
import os
import selectors
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

MAX_MESSAGE_BYTES = 1 << 20


class SignalListener:
    """The coordinator's Unix socket: one JSON object per line in, one JSON reply line out for commands.

    Args:
        path: socket path (short: AF_UNIX paths are limited to 108 bytes).
        handler: called with each message; its return value (a dict) is sent back as the reply.
    """

    def __init__(self, path: Path, handler: Callable[[dict[str, Any]], dict[str, Any] | None]) -> None:
        self.path = path
        self.handler = handler
        self.selector = selectors.DefaultSelector()
        self.server: socket.socket | None = None
        self.error: str | None = None

    def open(self) -> bool:
        """Bind the socket; returns False (and keeps ``error``) when pushes are unavailable."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                self.path.unlink()  # a stale socket of a killed coordinator; we hold the workspace lock
            except FileNotFoundError:
                pass
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            server.bind(str(self.path))
            server.listen(64)
            server.setblocking(False)
        except OSError as exc:
            self.error = f"control socket {self.path} unavailable: {exc}"
            return False
        self.server = server
        self.selector.register(server, selectors.EVENT_READ)
        self._wake_read, self._wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.selector.register(self._wake_read, selectors.EVENT_READ)
        return True

    def wake(self) -> None:
        """End a ``wait`` under way (or the next one) at once; safe from any thread (a judge's, when its verdict
        is ready)."""
        try:
            os.write(self._wake_write, b"!")
        except (OSError, AttributeError):
            pass  # full (a wake-up is pending anyway), closed, or never opened

    def close(self) -> None:
        if self.server is not None:
            self.selector.unregister(self.server)
            self.server.close()
            self.server = None
            for fd in (self._wake_read, self._wake_write):
                os.close(fd)
            del self._wake_read, self._wake_write
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
        self.selector.close()

    def wait(self, timeout: float) -> int:
        """Block up to ``timeout`` seconds for connections and serve them; returns the number of messages."""
        if self.server is None:
            return 0
        handled = 0
        for key, _events in self.selector.select(timeout=max(0.0, timeout)):
            if key.fileobj == self._wake_read:
                try:
                    os.read(self._wake_read, 4096)
                except BlockingIOError:
                    pass
                continue
            while True:
                try:
                    connection, _ = self.server.accept()
                except BlockingIOError:
                    break
                handled += self._serve(connection)
        return handled

    def _serve(self, connection: socket.socket) -> int:
        with connection:
            connection.settimeout(2.0)
            data = b""
            try:
                while b"\n" not in data and len(data) < MAX_MESSAGE_BYTES:
                    chunk = connection.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            except OSError:
                return 0
            try:
                message = json.loads(data.split(b"\n", 1)[0] or b"{}")
            except (json.JSONDecodeError, UnicodeDecodeError):
                message = None
            if not isinstance(message, dict):
                reply: dict[str, Any] | None = {"ok": False, "error": "not a JSON object"}
            else:
                reply = self.handler(message)
            if reply is not None:
                try:
                    connection.sendall(json.dumps(reply).encode() + b"\n")
                except OSError:
                    pass
        return 1


def send_command(path: Path, message: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
    """Send one command to a running coordinator and return its reply.

    Raises:
        OSError: no coordinator listens at ``path`` (or it did not answer within ``timeout`` seconds).
    """
    # The deadline lets a busy coordinator drop a request whose sender has given up instead of acting late.
    message = {**message, "deadline": time.time() + timeout}
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(timeout)
        client.connect(str(path))
        client.sendall(json.dumps(message).encode() + b"\n")
        data = b""
        while b"\n" not in data:
            chunk = client.recv(65536)
            if not chunk:
                break
            data += chunk
    if not data:
        raise OSError("the coordinator closed the connection without a reply")
    reply = json.loads(data.split(b"\n", 1)[0])
    if not isinstance(reply, dict):
        raise OSError("the coordinator sent a malformed reply")
    return reply

