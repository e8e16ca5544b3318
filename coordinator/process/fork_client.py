"""Asking the fork server (``fork_server.py``) for a supervisor, and starting the server when none listens.

``ForkServer.spawn`` is what ``LocalExecutor`` calls first for every launch; when no server can be reached it
answers ``None`` and the executor starts ``supervisor.py`` as a process of its own, as before. A request that was
sent but not answered raises ``Unanswered``: the supervisor may be running, so the caller must not start a
second one (it waits for the attempt's identity, like any other start).
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from coordinator.process import fork_server

IDLE_SECONDS = 3.0
"""Seconds the server waits for a request before it exits (the next launch starts another: about 60 ms)."""
START_TIMEOUT = 3.0
"""Seconds a new server has to listen before this launch (and the executor's next ones) start supervisors
themselves."""
ANSWER_TIMEOUT = 10.0
"""Seconds the server has to answer a request it accepted."""


class Unanswered(Exception):
    """The request reached the server, which did not answer: whether the supervisor runs is not known."""


def code_digest() -> str:
    """12 hex digits over the interpreter and the code a server runs: a server started by another version of coord
    (or another Python) has another socket, and is never asked for a supervisor it would run differently."""
    digest = hashlib.sha256(sys.executable.encode())
    folder = Path(fork_server.__file__).resolve().parent
    for name in ("fork_server.py", "supervisor.py", "log_cap.py", "proc_scan.py", "json_text.py", "shell_runner.py"):
        digest.update((folder / name).read_bytes())
    return digest.hexdigest()[:12]


class ForkServer:
    """The fork server of one workspace.

    Args:
        socket_path: where it listens (``Paths.fork_server_socket``; short, as AF_UNIX paths are limited to 108
            bytes); its lock is beside it, with the suffix ``.lock``.
        log_path: where the server's own stderr goes (a failure to start is said there).
    """

    def __init__(self, socket_path: Path, log_path: Path) -> None:
        self.socket_path = socket_path
        self.lock_path = socket_path.with_suffix(".lock")
        self.log_path = log_path
        self.used = False
        """A request was sent: ``quit`` has a server of ours to end."""
        self.broken: str | None = None
        """Why the server could not be started, once it could not: every later spawn answers None at once."""

    def spawn(self, spec_path: Path, environ: dict[str, str]) -> int | None:
        """Have the server fork a supervisor for the spec at ``spec_path`` (``spec.marshal``) with ``environ`` as
        its environment.

        Returns:
            The supervisor's pid, or None when no server could be reached (nothing was started).

        Raises:
            Unanswered: the server accepted the request and gave no answer.
        """
        if self.broken is not None:
            return None
        connection = self._connect()
        if connection is None:
            return None
        self.used = True
        request = "\0".join(["spawn", str(spec_path), *(f"{name}={value}" for name, value in environ.items()
                                                         if "\0" not in name + value and "=" not in name)])
        with connection:
            try:
                connection.sendall(request.encode("utf-8", "surrogateescape"))
                connection.shutdown(socket.SHUT_WR)
            except OSError:
                return None  # nothing was read: the server forks only after the whole request
            try:
                connection.settimeout(ANSWER_TIMEOUT)
                data = b""
                while b"\n" not in data:
                    chunk = connection.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except OSError as exc:
                raise Unanswered(f"the fork server gave no answer: {exc}") from exc
        answer = data.decode("utf-8", "replace").strip()
        if answer.startswith("error "):
            return None  # it refused before forking
        verb, _, pid = answer.partition(" ")
        if verb != "pid" or not pid.isdigit():
            raise Unanswered(f"the fork server answered {answer[:200]!r}")
        return int(pid)

    def quit(self) -> None:
        """Ask a server this client used to exit now (it would after ``IDLE_SECONDS``); the supervisors it forked
        go on. Nothing happens when none listens."""
        if not self.used:
            return
        connection = self._try_connect()
        if connection is None:
            return
        with connection:
            try:
                connection.sendall(b"quit")
                connection.shutdown(socket.SHUT_WR)
                connection.settimeout(2.0)
                connection.recv(64)
            except OSError:
                pass

    def _connect(self) -> socket.socket | None:
        connection = self._try_connect()
        if connection is not None:
            return connection
        try:
            self._start()
        except (OSError, subprocess.SubprocessError) as exc:
            self.broken = f"the fork server could not be started: {exc}"
            return None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            connection = self._try_connect()
            if connection is not None:
                return connection
            time.sleep(0.002)
        self.broken = f"the fork server did not listen within {START_TIMEOUT:g} s (see {self.log_path})"
        return None

    def _try_connect(self) -> socket.socket | None:
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            client.connect(str(self.socket_path))
        except OSError:
            client.close()
            return None
        return client

    def _start(self) -> None:
        self.socket_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.log_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.log_path, "ab") as log:
            starter = subprocess.Popen(
                # -I -S as for the supervisor; the server forks once more and this first process exits at once
                [sys.executable, "-I", "-S", str(Path(fork_server.__file__).resolve()), str(self.socket_path),
                 str(self.lock_path), str(IDLE_SECONDS)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, close_fds=True,
                env=dict(os.environ),
            )
        starter.wait(timeout=START_TIMEOUT)
