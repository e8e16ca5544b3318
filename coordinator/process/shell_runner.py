"""The worker of a ``shell`` phase: runs the phase's ``script`` commands one by one, with a timeout, and keeps each
command's output and exit code.

Started by the supervisor as ``python -I -S shell_runner.py SPEC`` (stdlib only, like the supervisor: it is run by
path and imports nothing of coord but its sibling ``json_text``). ``SPEC`` is one argument, never a file a worker
could change: the hex of the ``marshal`` dump (same interpreter) of :func:`spec_argument`'s dict, e.g.

    {"commands": [{"run": "mkdir -p out", "argv": ["mkdir", "-p", "out"]}, {"run": "make | tee x", "argv": null}],
     "shell": "/bin/sh", "timeout": 600.0, "kill_grace": 10.0, "record_dir": "/abs/tmp/PLAN/P07/1"}

A command with ``argv`` is executed directly (no shell: the allow-list of ``plan.allow_list`` approved that argv);
one with ``argv`` null runs as ``SHELL -c RUN``. Each command runs in a process group of its own, in order; the
first that fails ends the run with its exit status (128 + N for a signal N). Past ``timeout`` seconds for the
whole run, the running command's process group gets SIGTERM, SIGKILL after ``kill_grace`` seconds, and the run
exits 124 (the status of coreutils ``timeout``). A SIGTERM to the runner (a stop, the hang policy) is passed on to
the running command the same way and the runner exits 143.

What it leaves in ``record_dir``: ``commands/N.log`` (1-based: the command's stdout and stderr, also copied to the
runner's own stdout, which is ``worker.log``, after a ``$ RUN`` line) and ``commands.json`` (rewritten after each
command; the schema is :func:`record`). Everything the runner starts carries the attempt's cookie in its
environment, so whatever a command leaves running is swept by the supervisor when the runner ends.
"""

from __future__ import annotations

import marshal
import os
import select
import sys
import time

TYPE_CHECKING = False  # not typing's: only what the runner runs with is imported (mypy reads this as True)
if TYPE_CHECKING:
    import signal

    from coordinator.process.json_text import write_atomic
else:
    import _signal as signal  # ``signal`` imports ``enum``: 9 ms of every shell phase, for nothing it needs

    if __package__:
        from coordinator.process.json_text import write_atomic
    else:  # run by path: the sibling file, found without importlib (whose import costs more than this whole run)
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from json_text import write_atomic

TIMED_OUT_EXIT = 124
"""The runner's exit status when its timeout passed (as coreutils ``timeout`` exits)."""
RECORD_FILE = "commands.json"
"""The per-attempt record of every command run: ``tmp/PLAN/P07/N/commands.json``."""
COMMANDS_DIR = "commands"
"""Where each command's own output is kept: ``tmp/PLAN/P07/N/commands/N.log``."""
COMMAND_LOG_CAP = 16 * 1024 * 1024
"""Bytes of one command's output kept in its own log (``worker.log`` has all of it, under the log cap)."""

_stop_signal: int | None = None
_wakeup: int | None = None
"""Read end of the pipe ``signal.set_wakeup_fd`` writes to, so a SIGTERM ends the wait in :func:`pump` (Python
retries an interrupted ``poll`` by itself)."""


def _on_term(signum: int, frame: object) -> None:
    global _stop_signal
    _stop_signal = signum


def now_iso() -> str:
    """The time in ISO 8601 UTC with milliseconds (``time``, not ``datetime``: nothing more to import)."""
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


def record(commands: list[dict], timeout: float, outcome: str | None) -> dict:
    """The object of ``commands.json``.

    ``commands``: one object per command started, in order: ``index`` (1-based), ``run`` (as the plan wrote it),
    ``argv`` (list, or null when a shell ran it), ``started_at`` (ISO 8601 UTC), ``seconds`` (float, null while
    it runs), ``exit_code`` (int or null), ``signal`` (int or null), ``timed_out`` (bool), ``log`` (the file
    under ``commands/``). ``timeout``: the run's timeout in seconds. ``outcome``: null while running, then
    ``passed``, ``failed`` (a command failed), ``timed-out`` or ``stopped`` (a signal to the runner).
    """
    return {"timeout": timeout, "outcome": outcome, "commands": commands}


_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC


class Records:
    """The runner's records in the attempt folder, written through directory descriptors opened before any
    command ran: a command that deletes the folder, or replaces it with a link, costs only the records, never a
    failed run nor a write anywhere else (the output still reaches ``worker.log`` through the supervisor)."""

    def __init__(self, record_dir: str) -> None:
        self.dir_fd: int | None = None
        self.commands_fd: int | None = None
        try:
            self.dir_fd = os.open(record_dir, _DIRECTORY_FLAGS)
            try:
                os.mkdir(COMMANDS_DIR, dir_fd=self.dir_fd)
            except FileExistsError:
                pass
            self.commands_fd = os.open(COMMANDS_DIR, _DIRECTORY_FLAGS, dir_fd=self.dir_fd)
        except OSError:
            pass  # no records, the run goes on

    def write(self, data: dict) -> None:
        """Replace ``commands.json`` atomically; not fsynced: it is a record for people and messages, and the exit
        status that decides the verdict is the supervisor's ``exit.json``."""
        if self.dir_fd is None:
            return
        try:
            write_atomic(RECORD_FILE, data, self.dir_fd, durable=False)
        except OSError:
            pass

    def command_log(self, index: int) -> int | None:
        """A new, empty ``commands/INDEX.log`` open for writing, or None when it cannot be made."""
        if self.commands_fd is None:
            return None
        try:
            return os.open(f"{index}.log", _FILE_FLAGS, 0o644, dir_fd=self.commands_fd)
        except OSError:
            return None


class Command:
    """One started command: its pid (also its process group id), the read end of its output pipe, and a pidfd
    that becomes readable when it exits (None where the kernel has no pidfd: then it is polled)."""

    def __init__(self, argv: list[str]) -> None:
        read_end, write_end = os.pipe()
        try:
            null = os.open(os.devnull, os.O_RDONLY)
            try:
                # posix_spawnp, not subprocess: importing subprocess costs 25 ms of every shell phase.
                self.pid = os.posix_spawnp(argv[0], argv, os.environ, setpgroup=0, file_actions=[
                    (os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, write_end, 1),
                    (os.POSIX_SPAWN_DUP2, write_end, 2), (os.POSIX_SPAWN_CLOSE, read_end)])
            finally:
                os.close(null)
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
        self.output = read_end
        os.set_blocking(read_end, False)
        self.status: int | None = None
        try:
            self.pidfd: int | None = os.pidfd_open(self.pid)
        except (AttributeError, OSError):
            self.pidfd = None

    def poll(self) -> int | None:
        """The command's wait status decoded (exit code, or -N for signal N) once it ended, else None."""
        if self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid == self.pid:
                self.status = os.waitstatus_to_exitcode(status)
        return self.status

    def wait(self, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while self.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.status

    def signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, grace: float) -> None:
        """SIGTERM (and SIGCONT, so a stopped one can act on it) to the command's process group, SIGKILL to the
        group after ``grace`` seconds (its children too, even when the command itself already left); reaps it."""
        self.signal_group(signal.SIGTERM)
        self.signal_group(signal.SIGCONT)
        self.wait(grace)
        self.signal_group(signal.SIGKILL)
        while self.poll() is None:
            time.sleep(0.01)

    def close(self) -> None:
        os.close(self.output)
        if self.pidfd is not None:
            os.close(self.pidfd)


def pump(command: Command, log: int | None, deadline: float) -> str | None:
    """Copy the command's output to stdout and its log until it exits; returns ``timed-out``, ``stopped`` or None
    (it exited by itself). Output still buffered when it exits is copied; a child that keeps the pipe open after
    the command exited does not hold the run up."""
    written = 0
    open_pipe = True

    def copy() -> bool:
        nonlocal written
        try:
            chunk = os.read(command.output, 65536)
        except BlockingIOError:
            return False
        if not chunk:
            return False
        os.write(1, chunk)
        if log is not None and written < COMMAND_LOG_CAP:
            try:
                os.write(log, chunk[:COMMAND_LOG_CAP - written])
            except OSError:
                pass  # a full disk or a vanished folder costs the command's own log, not the run
            written += len(chunk)
        return True

    poller = select.poll()
    poller.register(command.output, select.POLLIN)
    if _wakeup is not None:
        poller.register(_wakeup, select.POLLIN)
    if command.pidfd is not None:
        poller.register(command.pidfd, select.POLLIN)
    while True:
        if _stop_signal is not None:
            return "stopped"
        left = deadline - time.monotonic()
        if left <= 0:
            return "timed-out"
        # Without a pidfd the exit is noticed by polling, every 50 ms.
        wait = left if command.pidfd is not None else min(left, 0.05)
        events = poller.poll(max(1, int(wait * 1000)) if open_pipe or command.pidfd is not None else 50)
        for fd, event in events:
            if fd == command.output:
                if not copy() and event & (select.POLLHUP | select.POLLERR):
                    poller.unregister(command.output)
                    open_pipe = False
        if command.poll() is not None:
            while copy():
                pass
            return None


def run(spec: dict) -> int:
    """Run every command of ``spec`` (the module's docstring says its shape); returns the runner's exit status."""
    global _wakeup
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    signal.set_wakeup_fd(write_end)
    _wakeup = read_end
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _on_term)
    records = Records(spec["record_dir"])
    timeout = float(spec["timeout"])
    grace = float(spec["kill_grace"])
    deadline = time.monotonic() + timeout
    done: list[dict] = []
    for index, command in enumerate(spec["commands"], start=1):
        argv = command.get("argv")
        entry = {"index": index, "run": command["run"], "argv": argv, "started_at": now_iso(), "seconds": None,
                 "exit_code": None, "signal": None, "timed_out": False, "log": f"{COMMANDS_DIR}/{index}.log"}
        done.append(entry)
        records.write(record(done, timeout, None))
        os.write(1, f"$ {command['run']}\n".encode("utf-8", "replace"))
        started = time.monotonic()
        log = records.command_log(index)
        try:
            ended, status = run_one(argv or [spec["shell"], "-c", command["run"]], log, deadline, grace)
        finally:
            if log is not None:
                os.close(log)
        entry["seconds"] = round(time.monotonic() - started, 3)
        if status is not None and status < 0:
            entry["signal"] = -status
        else:
            entry["exit_code"] = status
        if ended == "timed-out":
            entry["timed_out"] = True
            os.write(1, f"coord: timed out after {timeout:g} s; its process group was killed\n".encode())
            records.write(record(done, timeout, "timed-out"))
            return TIMED_OUT_EXIT
        if ended == "stopped":
            records.write(record(done, timeout, "stopped"))
            return 128 + (_stop_signal or signal.SIGTERM)
        if status is None or status != 0:  # None: never, once reaped; kept a failure rather than a pass
            records.write(record(done, timeout, "failed"))
            return 1 if status is None else (128 - status if status < 0 else status)
    records.write(record(done, timeout, "passed"))
    return 0


def run_one(argv: list[str], log: int | None, deadline: float, grace: float) -> tuple[str | None, int | None]:
    """Run one command to its end (or the deadline, or a stop); returns how it ended (:func:`pump`) and its
    status (exit code, -N for signal N; 127 when it could not be started, said in the log)."""
    try:
        process = Command(argv)
    except OSError as exc:
        message = f"coord: cannot start {argv[0]!r}: {exc.strerror or exc}\n".encode()
        os.write(1, message)
        if log is not None:
            try:
                os.write(log, message)
            except OSError:
                pass
        return None, 127
    try:
        ended = pump(process, log, deadline)
        if ended is not None:
            process.stop(grace)
    finally:
        process.close()
    return ended, process.status


def spec_argument(commands: list[dict], shell: str, timeout: float, kill_grace: float, record_dir: str) -> str:
    """The runner's one argument for these commands (each ``{"run": str, "argv": list[str] | None}``), the shell
    that runs those without argv, the run's timeout and the grace before SIGKILL (seconds), and the attempt folder
    its records go to."""
    spec = {"commands": commands, "shell": shell, "timeout": float(timeout), "kill_grace": float(kill_grace),
            "record_dir": record_dir}
    return marshal.dumps(spec).hex()


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        os.write(2, b"usage: shell_runner.py SPEC (see spec_argument)\n")
        return 2
    return run(marshal.loads(bytes.fromhex(argv[1])))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
