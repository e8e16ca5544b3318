"""The fork server: a small process that starts attempts' supervisors by forking itself, not by starting Python.

Run as ``python -I -S coordinator/process/fork_server.py SOCKET LOCK IDLE_SECONDS`` by
``coordinator.process.fork_client``, which starts it (detached, in a session of its own) the first time an attempt
is launched. It imports ``supervisor.py`` and its siblings once; each launch is then one ``fork`` (under a
millisecond) instead of an interpreter start (about 50 ms here), and each supervisor shares the server's pages: a
waiting supervisor costs about 6 MiB RSS and 0.5 MiB PSS instead of 12 and 6.

The guarantees of a supervisor are unchanged: each forked child calls ``setsid`` first, so it is a process of its
own that outlives both the server and the coordinator, and it runs ``supervisor.Supervisor`` exactly as
``python supervisor.py SPEC`` would. The server holds no attempt state: it may exit at any time (it does after
``IDLE_SECONDS`` without a request) and the supervisors it forked go on.

Protocol, one request per connection, in bytes (no ``json``: its import alone would add 1 MiB to every
supervisor): the client sends ``spawn\0SPEC\0NAME=VALUE\0...`` (the marshal spec the coordinator wrote, then the
environment the supervisor would have inherited from it: secrets in the environment never go through a file) and
closes its sending side; the server forks, then answers ``pid N\n`` (the supervisor's pid) or ``error TEXT\n``.
``quit`` (a coordinator that ends) is answered ``ok\n``, and the server exits as when idle.

Standard library only, like the supervisor (``-I -S``: nothing from the environment or site-packages).
"""

from __future__ import annotations

import _socket
import fcntl
import gc
import os
import select
import sys

TYPE_CHECKING = False  # not typing's, for the supervisor's reasons
if TYPE_CHECKING:
    import signal
    from typing import Any
else:
    import _signal as signal

MAX_REQUEST_BYTES = 1 << 20
REQUEST_TIMEOUT = 2.0
"""Seconds a connected client has to send its request."""


def load_supervisor() -> Any:
    """``supervisor.py`` beside this file as a module of its own (it loads its own siblings the same way), with
    ``shell_runner.py`` as one of its ``INLINE_RUNNERS``."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sibling_loader.py")
    loader = type(sys)("coord_sibling_loader")
    with open(path, encoding="utf-8") as handle:
        exec(compile(handle.read(), path, "exec"), loader.__dict__)  # noqa: S102 - coord's own file, by path
    supervisor = loader.load_sibling(__file__, "supervisor")
    supervisor.INLINE_RUNNERS["shell_runner"] = loader.load_sibling(__file__, "shell_runner")
    return supervisor


def release_free_heap(supervisor: Any) -> None:
    """Give the C heap's free pages back to the system (glibc ``malloc_trim``), so no supervisor forked later
    carries them: what loading left free is about 0.7 MiB."""
    try:
        supervisor.ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: the pages stay, shared and never written


def reap(signum: int = 0, frame: object = None) -> None:
    """Collect every ended child (supervisors whose attempt is over), so none stays a zombie."""
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def read_request(connection: _socket.socket) -> tuple[str, str, dict[str, str]]:
    """(``spawn`` or ``quit``, the spec's path, the environment) of one request.

    Raises:
        ValueError: not a request of this protocol.
        OSError: the client went away, or took longer than ``REQUEST_TIMEOUT``.
    """
    connection.settimeout(REQUEST_TIMEOUT)
    data = b""
    while len(data) < MAX_REQUEST_BYTES:
        chunk = connection.recv(65536)
        if not chunk:
            break
        data += chunk
    fields = data.decode("utf-8", "surrogateescape").split("\0")
    if fields == ["quit"]:
        return "quit", "", {}
    if len(fields) < 2 or fields[0] != "spawn" or not fields[1]:
        raise ValueError("a request is spawn\\0SPEC\\0NAME=VALUE... or quit")
    environ = {}
    for entry in fields[2:]:
        name, equals, value = entry.partition("=")
        if not equals or not name:
            raise ValueError(f"not NAME=VALUE: {entry[:40]!r}")
        environ[name] = value
    return "spawn", fields[1], environ


def run_supervisor(supervisor: Any, spec_path: str, environ: dict[str, str], closing: list[int]) -> None:
    """In the forked child: become a session of its own, take the request's environment, run the supervisor, exit.
    Never returns."""
    code = 1
    try:
        os.setsid()  # first: from here on, a kill of its session or group cannot reach the server, nor back
        for fd in closing:
            os.close(fd)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        spec = supervisor.load_spec(spec_path)
        log = os.open(os.path.join(spec["records_dir"], "supervisor.log"),
                      os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(null)
        os.close(log)
        os.environ.clear()
        os.environ.update(environ)
        os.environ[supervisor.COOKIE] = spec["attempt_id"]
        code = supervisor.Supervisor(spec).run()
    except BaseException:  # noqa: BLE001 - the child must never return into the server's loop
        try:
            import traceback  # only here: it would add 1.5 MiB to every supervisor

            os.write(2, f"coord fork server: the supervisor failed:\n{traceback.format_exc()}".encode())
        finally:
            os._exit(1)
    os._exit(code)


def serve(socket_path: str, lock_path: str, idle_seconds: float) -> int:
    lock = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0  # another server holds the lock and serves the socket
    supervisor = load_supervisor()
    # Everything loaded so far is kept out of the collector's sight: a collection in a forked supervisor would
    # otherwise touch every object of the server, copying each page it shares with it (time at every start,
    # and memory for as long as it runs).
    gc.collect()
    gc.freeze()
    release_free_heap(supervisor)
    try:
        os.unlink(socket_path)  # a socket left by a server that was killed; we hold the lock
    except FileNotFoundError:
        pass
    listener = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    listener.bind(socket_path)
    listener.listen(128)
    signal.signal(signal.SIGCHLD, reap)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    closing = [listener.fileno(), lock]
    listening = True
    while listening:
        try:
            ready, _, _ = select.select([listener], [], [], idle_seconds)
        except InterruptedError:
            continue
        if not ready:
            # Idle: take the socket's name away first, so no client can connect any more, then serve the ones
            # already queued, then exit. A request once accepted is always answered.
            os.unlink(socket_path)
            listener.setblocking(False)
            listening = False
        while True:
            try:
                # _socket's accept: socket's own would import enum and selectors
                fd, _ = listener._accept()  # type: ignore[attr-defined]
            except (BlockingIOError, InterruptedError):
                break
            connection = _socket.socket(fileno=fd)
            try:
                quit_asked = serve_one(supervisor, connection, closing + [fd])
            finally:
                connection.close()
            if quit_asked and listening:
                os.unlink(socket_path)  # as when idle: no new client, the queued ones served, then exit
                listener.setblocking(False)
                listening = False
            elif listening:
                break
    listener.close()
    reap()
    return 0


def serve_one(supervisor: Any, connection: _socket.socket, closing: list[int]) -> bool:
    """Answer one request; True when it asked the server to quit."""
    connection.setblocking(True)
    try:
        verb, spec_path, environ = read_request(connection)
    except (OSError, ValueError, UnicodeError) as exc:
        verb, answer = "", f"error bad request: {exc}"
    else:
        answer = "ok" if verb == "quit" else fork_supervisor(supervisor, spec_path, environ, closing)
    try:
        connection.sendall(answer.encode("utf-8", "replace") + b"\n")
    except OSError:
        pass  # the client gave up; the supervisor it asked for still runs and records itself
    return verb == "quit"


def fork_supervisor(supervisor: Any, spec_path: str, environ: dict[str, str], closing: list[int]) -> str:
    try:
        pid = os.fork()
    except OSError as exc:
        return f"error fork failed: {exc}"
    if pid == 0:
        run_supervisor(supervisor, spec_path, environ, closing)
    return f"pid {pid}"


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        sys.stderr.write("usage: fork_server.py SOCKET LOCK IDLE_SECONDS\n")
        return 2
    if os.fork() != 0:
        return 0  # the starter reaps this parent at once; the server goes on with no parent to keep a zombie for
    os.setsid()
    return serve(argv[1], argv[2], float(argv[3]))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
