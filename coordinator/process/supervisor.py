"""The per-attempt supervisor process: starts one worker, outlives the coordinator, and records how it ended.

Run as ``python -I -S coordinator/process/supervisor.py SPEC.json`` by ``coordinator.process.local``, in a session
of its own. It must import nothing but the standard library (``-I`` isolates it from the environment and the package).

What it does, in order:
1. becomes a child subreaper, so descendants that escape the worker's process group are reparented to it;
2. starts the worker in a process group of its own, stdin from a file or /dev/null (never an open pipe),
   stdout and stderr appended to ``worker.log``, with the attempt cookie ``COORD_ATTEMPT_ID`` in its environment;
3. writes ``identity.json`` atomically (its own and the worker's pid, ``/proc/<pid>/stat`` start ticks, boot id);
4. waits for the worker, blocked on its pidfd and a signal wake-up pipe (no polling: an idle supervisor costs no
   CPU); SIGTERM to it means "stop the worker": TERM + CONT to its group, grace, KILL;
5. when the worker ended, kills and reaps what is left of the attempt (group, subreaped orphans, cookie holders),
   reading /proc only when a child of its own is left;
6. writes ``exit.json`` atomically (exit code or signal, times, stop request, stragglers), runs the after-exit
   command if any, writes the signal file if the spec names one (``coord exec``'s ``RUN_ID.done|.fail``), then
   pokes the coordinator's socket (best effort; the coordinator's file poll finds ``exit.json`` otherwise).

The spec (JSON) is written by the coordinator (``process.records.SupervisorSpec``); its keys are listed in
``SPEC_KEYS``, and ``tests/unit/process/test_records.py`` holds the two to each other.
"""

from __future__ import annotations

import ctypes
import marshal
import os
import select
import sys
import time

TYPE_CHECKING = False  # not typing's: the supervisor imports only what it runs with (mypy reads this as True)
if TYPE_CHECKING:
    import signal
    from typing import Any
else:
    # The C module under ``signal``: ``signal`` itself imports ``enum``, which with ``json``'s ``re`` was most of
    # the start-up time every launch waits for; nothing of it is needed but what ``_signal`` already has.
    import _signal as signal

SPEC_KEYS = (
    "attempt_id",  # uuid; the cookie every process of the attempt carries
    "phase_id",
    "attempt_number",
    "argv",  # list of str, never run through a shell
    "cwd",
    "env",  # variables added to the supervisor's inherited environment for the worker (dict)
    "stdin_path",  # str or None (/dev/null)
    "log_path",
    "attempt_dir",  # the folder people read: copies of identity.json and exit.json go here (best effort)
    "records_dir",  # identity.json, exit.json and stop-request.json, out of the worker's reach
    "signal_path",  # str or None; without the .done/.fail suffix
    "socket_path",  # str or None
    "kill_grace",  # seconds between TERM and KILL
    # optional: "log_cap_bytes", int or None; beyond it the middle of worker.log is dropped (log_cap.LogCap)
    # optional: "after_exit_argv", a command run (and waited for, up to 120 s) after exit.json is written and
    # before the signal file, so whatever it writes (coord exec's summary.json) exists when the signal appears
    # optional: "inline_runner", the module argv runs with its last argument (INLINE_RUNNERS)
)

PR_SET_CHILD_SUBREAPER = 36
PR_SET_PDEATHSIG = 1
INLINE_RUNNERS: dict[str, Any] = {}
"""Modules the fork server loaded for the supervisors it forks (``shell_runner``). A worker whose spec names one
as ``inline_runner`` runs it in the worker process forked for it, with argv's last argument, instead of exec'ing
argv: the same program without an interpreter start. Empty in a supervisor started as a process of its own, which
execs argv."""
COOKIE = "COORD_ATTEMPT_ID"
LOG_CAP_INTERVAL = 0.2
"""Seconds between checks of the log cap while the worker runs (one fstat each): the most a fast writer can
overshoot the cap by is what it writes in this time."""
LOG_CAP_QUIET_INTERVAL = 3.2
"""The longest wait between two checks of a log that stopped growing (the interval doubles up to it)."""
IDLE_INTERVAL = 5.0
"""Seconds an idle supervisor without a log cap sleeps at most; every event that matters wakes it earlier."""


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def prctl(option: int, value: int) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def become_subreaper() -> bool:
    return prctl(PR_SET_CHILD_SUBREAPER, 1)


def run_inline(runner: Any, argv: list[str], env: dict[str, str], supervisor_pid: int) -> None:
    """In the forked worker, in place of exec: run ``runner.main`` as ``python -I -S -c CODE ARG`` would, then
    exit with its status. Never returns.

    Exec would reset the signal handlers and close the exec-error pipe, and put ``env`` in the process's own
    environment; so this does. One difference is left: ``/proc/PID/environ`` keeps what the fork server started
    with, without the attempt's cookie, so a sweep by cookie would miss this process; it is therefore killed by
    the kernel the moment its supervisor dies (``PR_SET_PDEATHSIG``), and what it starts carries the cookie.
    """
    code = 127
    try:
        os.close(3)  # the exec-error pipe: its EOF tells the supervisor the worker is running
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        os.environ.clear()
        os.environ.update(env)
        if not prctl(PR_SET_PDEATHSIG, signal.SIGKILL) or os.getppid() != supervisor_pid:
            os._exit(code)  # the supervisor is gone already (or the guard is not there): nothing may run
        code = runner.main([argv[0], argv[-1]])
    except BaseException as exc:  # noqa: BLE001 - never return into the supervisor's code
        try:
            os.write(2, f"coord supervisor: the runner failed: {exc!r}\n".encode())
        finally:
            os._exit(1)
    os._exit(code)


def signal_quietly(pid: int, sig: int, group: bool = False) -> None:
    try:
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass  # already gone: a normal outcome of a kill race, not an error


def bootstrap_loader() -> Any:
    """``sibling_loader.py`` beside this file (compiled: it is the one that knows how to use cached bytecode).
    Run by path under ``python -I -S``, this script cannot import its package; its siblings (stdlib only, like
    this file) are loaded by path through it, not through ``importlib.util``, whose import alone cost 10 ms of
    every start."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sibling_loader.py")
    module = type(sys)("coord_sibling_loader")
    with open(path, encoding="utf-8") as handle:
        exec(compile(handle.read(), path, "exec"), module.__dict__)  # noqa: S102 - coord's own file, by path
    return module


if TYPE_CHECKING or __package__:  # imported as coordinator.process.supervisor (tests, type checks)
    from coordinator.process import json_text as json_module
    from coordinator.process import log_cap, proc_scan
else:  # run by path
    _loader = bootstrap_loader()
    log_cap, proc_scan, json_module = (_loader.load_sibling(__file__, stem) for stem in (
        "log_cap", "proc_scan", "json_text"))
json_text, write_atomic = json_module.json_text, json_module.write_atomic


class Supervisor:
    def __init__(self, spec: dict) -> None:
        self.spec = spec
        self.attempt_id: str = spec["attempt_id"]
        self.worker_pid: int | None = None
        self.stop_requested: str | None = None
        self.stop_deadline: float | None = None
        self.term_sent = False
        self.unkillable: list[int] = []
        self.log_cap: Any = None  # a log_cap.LogCap while the worker runs with a cap
        self.log_fd: int | None = None
        self.exec_error: str | None = None
        self.exec_error_fd: int | None = None
        self.straggler_names: dict[int, str] = {}
        self.wakeup_read: int | None = None  # read end of the signal wake-up pipe (set up in run)
        self.subreaper = False
        # Opened before the worker exists: every record goes into these directories, whatever their paths become
        # (the attempt folder is in the worker's reach; the records folder is not).
        self.dir_fd = os.open(spec["records_dir"], os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            self.mirror_fd: int | None = os.open(spec["attempt_dir"], os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            self.mirror_fd = None

    def write_record(self, name: str, data: dict, durable: bool = True) -> None:
        """Write a record into the records folder, then its copy into the attempt folder (best effort: a worker
        may have deleted that one). ``durable=False`` for a record that means nothing after a reboot (the
        identity: its pids and boot id name no process then), which a power cut may lose."""
        write_atomic(name, data, dir_fd=self.dir_fd, durable=durable)
        if self.mirror_fd is not None:
            try:
                write_atomic(name, data, dir_fd=self.mirror_fd, durable=False)
            except OSError:
                pass

    def on_sigterm(self, signum: int, frame: object) -> None:
        # The coordinator (or `coord stop`) asks us to stop the worker; the escalation runs in the wait loop.
        if self.stop_requested is None:
            self.stop_requested = "stop"
            try:
                fd = os.open("stop-request.json", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.dir_fd)
                import json  # a stop is rare: the idle supervisor does not carry json

                with os.fdopen(fd, encoding="utf-8") as handle:
                    self.stop_requested = json.load(handle).get("reason", "stop")
            except (OSError, ValueError):
                pass

    def start_worker(self) -> int:
        spec = self.spec
        os.makedirs(os.path.dirname(spec["log_path"]), exist_ok=True)
        log_fd = os.open(spec["log_path"], os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o644)
        stdin_fd = os.open(spec["stdin_path"] or os.devnull, os.O_RDONLY)
        env = dict(os.environ)  # inherited from the coordinator; secrets never pass through spec.json
        env.update(spec["env"])
        env[COOKIE] = self.attempt_id
        # A close-on-exec pipe tells us whether exec worked: EOF means it did, bytes are the child's error.
        error_read, error_write = os.pipe()
        inline = INLINE_RUNNERS.get(spec.get("inline_runner") or "")
        supervisor_pid = os.getpid()
        pid = os.fork()
        if pid == 0:  # the worker: own process group, then exec (no Python code runs after the fork but this)
            try:
                os.setpgid(0, 0)
                os.dup2(stdin_fd, 0)
                os.dup2(log_fd, 1)
                os.dup2(log_fd, 2)
                if error_write != 3:  # dup3() refuses equal descriptors; a pipe end is close-on-exec already
                    os.dup2(error_write, 3, inheritable=False)
                os.closerange(4, 65536)
                os.chdir(spec["cwd"])
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                signal.signal(signal.SIGHUP, signal.SIG_DFL)
                if inline is not None:
                    run_inline(inline, spec["argv"], env, supervisor_pid)
                os.execvpe(spec["argv"][0], spec["argv"], env)
            except BaseException as exc:  # exec failed: say why in the log and to the supervisor, exit like a shell
                try:
                    message = f"cannot start {spec['argv'][0]!r}: {exc}"
                    os.write(2, f"coord supervisor: {message}\n".encode())
                    os.write(3, message.encode())
                finally:
                    os._exit(127)
        os.close(error_write)
        try:
            os.setpgid(pid, pid)  # also from the parent, so the group exists before anyone signals it
        except OSError:
            pass
        self.log_fd = log_fd  # kept to measure, at the worker's exit, the space left where its output went
        os.close(stdin_fd)
        self.exec_error_fd = error_read
        return pid

    def collect_exec_error(self) -> None:
        """Learn whether the worker's exec failed: the pipe ends with EOF on a successful exec (close-on-exec),
        or carries the child's error message. Called after identity.json, so a slow exec never delays it."""
        if self.exec_error_fd is None:
            return
        try:
            with os.fdopen(self.exec_error_fd, "rb") as errors:
                failure = errors.read(4096)
        except OSError:
            failure = b""
        self.exec_error_fd = None
        if failure:
            self.exec_error = failure.decode("utf-8", errors="replace")

    def escalate(self) -> None:
        """TERM + CONT to the worker's group at once, KILL after the grace period."""
        assert self.worker_pid is not None
        if not self.term_sent:
            self.term_sent = True
            signal_quietly(self.worker_pid, signal.SIGTERM, group=True)
            signal_quietly(self.worker_pid, signal.SIGCONT, group=True)
            self.stop_deadline = time.monotonic() + float(self.spec["kill_grace"])
        elif self.stop_deadline is not None and time.monotonic() >= self.stop_deadline:
            signal_quietly(self.worker_pid, signal.SIGKILL, group=True)
            self.stop_deadline = None

    def wait_worker(self) -> int | None:
        """Wait for the worker; returns its raw wait status (None if it cannot be known). Escalates a stop
        request meanwhile.

        It blocks instead of polling: on a pidfd of the worker (readable when it exits) and on the wake-up pipe
        that SIGCHLD and SIGTERM write to, with a timeout only for the log cap's check (``LOG_CAP_INTERVAL``) and
        the kill deadline of a stop. An idle supervisor wakes a few times a second and scans nothing.
        """
        assert self.worker_pid is not None
        try:
            pidfd: int | None = os.pidfd_open(self.worker_pid)
        except (AttributeError, OSError):
            pidfd = None  # kernels before 5.3: the SIGCHLD wake-ups alone tell us
        interval, last_size = LOG_CAP_INTERVAL, -1
        try:
            while True:
                if self.stop_requested is not None:
                    self.escalate()
                if self.reap_orphans():
                    break
                timeout = IDLE_INTERVAL
                if self.log_cap is not None:
                    size = self.log_cap.enforce()
                    # A log that grows is checked every LOG_CAP_INTERVAL; a quiet one ever less often.
                    interval = LOG_CAP_INTERVAL if size != last_size else min(interval * 2, LOG_CAP_QUIET_INTERVAL)
                    last_size, timeout = size, interval
                if self.stop_deadline is not None:
                    timeout = max(0.0, min(timeout, self.stop_deadline - time.monotonic()))
                ready = [fd for fd in (pidfd, self.wakeup_read) if fd is not None]
                try:
                    readable, _, _ = select.select(ready, [], [], timeout)
                except InterruptedError:
                    readable = []
                if self.wakeup_read in readable:
                    proc_scan.drain(self.wakeup_read)
            try:
                pid, status = os.waitpid(self.worker_pid, 0)
            except ChildProcessError:
                return None  # never invent an exit code: an unknown end is judged as a failure
            return status if pid == self.worker_pid else None
        finally:
            if pidfd is not None:
                os.close(pidfd)

    def reap_orphans(self) -> bool:
        """Reap every dead child but the worker (subreaped orphans included), without scanning ``/proc``.

        Returns:
            True when the worker itself has exited (left unreaped: only ``wait_worker`` takes its status).
        """
        while True:
            try:
                # WNOWAIT peeks: the worker's status must stay for wait_worker.
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return True  # no child at all: the worker is gone too
            if info is None:
                return False
            if info.si_pid == self.worker_pid:
                return True
            try:
                os.waitpid(info.si_pid, os.WNOHANG)
            except ChildProcessError:
                pass

    def sweep(self) -> list[int]:
        """Kill every remaining process of the attempt; returns the pids found (stragglers)."""
        assert self.worker_pid is not None
        if self.subreaper and proc_scan.no_children_left():
            # Every descendant left would be a child of ours (orphans are reparented to the subreaper) or the
            # child of one: with no child at all, nothing is left, and /proc need not be scanned.
            return []
        stragglers: set[int] = set()
        me = os.getpid()
        deadline = time.monotonic() + 5.0
        alive: set[int] = set()
        while time.monotonic() < deadline:
            # Once the worker is reaped its group id could be recycled: a group member is only ours if it
            # carries the cookie or was reparented to us (the subreaper).
            ours = set(proc_scan.cookie_holders(COOKIE, self.attempt_id)) | set(proc_scan.children_of(me))
            alive = {
                pid
                for pid in ours | (set(proc_scan.group_members(self.worker_pid)) & ours)
                if pid != me and not proc_scan.is_zombie(pid)
            }
            proc_scan.reap_children()
            if not alive:
                break
            for pid in alive - stragglers:
                self.straggler_names[pid] = proc_scan.command_name(pid)
            stragglers |= alive
            for pid in alive:
                signal_quietly(pid, signal.SIGKILL)
            time.sleep(0.05)
        proc_scan.reap_children()
        self.unkillable = sorted(alive)
        return sorted(stragglers)

    def run_after_exit(self) -> None:
        argv = self.spec.get("after_exit_argv")
        if not argv:
            return
        try:
            pid = os.fork()
            if pid == 0:
                try:
                    os.chdir(self.spec["attempt_dir"])
                    os.execv(argv[0], argv)
                finally:
                    os._exit(127)
            deadline = time.monotonic() + 120.0
            while time.monotonic() < deadline:
                done, _ = os.waitpid(pid, os.WNOHANG)
                if done == pid:
                    return
                time.sleep(0.02)
            signal_quietly(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except OSError:
            pass  # the signal is still written: a missing summary is reported by whoever reads it

    def notify(self, status: str) -> str | None:
        """Tell the coordinator the attempt ended (``attempt-ended``); an error text, or None when it was sent."""
        return self.push({"type": "attempt-ended", "attempt_id": self.attempt_id, "status": status})

    def push(self, message: dict) -> str | None:
        """Send one JSON line to the coordinator's control socket (best effort: it also polls the files)."""
        path = self.spec.get("socket_path")
        if not path:
            return "no socket configured"
        # _socket, not socket: socket imports enum, which every start would pay for.
        import _socket

        text = json_text(message).replace("\n", "")  # one line: the socket's messages are JSON lines
        try:
            client = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
            try:
                client.settimeout(2.0)
                client.connect(path)
                client.sendall(text.encode() + b"\n")
            finally:
                client.close()
        except OSError as exc:
            return f"notify failed: {exc}"
        return None

    def run(self) -> int:
        spec = self.spec
        signal.signal(signal.SIGTERM, self.on_sigterm)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is for the coordinator, not workers
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        # An ignored SIGCHLD inherited from whoever started coord would make the kernel reap the worker itself; a
        # handler of our own (it does nothing) keeps every exit waitable, and the wake-up pipe ends a wait at once.
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        self.wakeup_read, wakeup_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wakeup_write, warn_on_full_buffer=False)
        subreaper = self.subreaper = become_subreaper()
        started = time.monotonic()
        started_at = now_iso()
        try:
            self.worker_pid = self.start_worker()
        except OSError as exc:
            self.worker_pid = None
            start_error: str | None = str(exc)
        else:
            start_error = None
        identity = {
            "attempt_id": self.attempt_id,
            "supervisor_pid": os.getpid(),
            "supervisor_start_ticks": proc_scan.start_ticks(os.getpid()),
            "worker_pid": self.worker_pid,
            "worker_start_ticks": proc_scan.start_ticks(self.worker_pid) if self.worker_pid else None,
            "worker_pgid": self.worker_pid,
            "boot_id": proc_scan.boot_id(),
            "subreaper": subreaper,
            "started_at": started_at,
        }
        self.write_record("identity.json", identity, durable=False)
        self.push({"type": "attempt-started", "attempt_id": self.attempt_id})  # the launch is recorded at once
        self.collect_exec_error()
        exit_code: int | None = None
        exit_signal: int | None = None
        stragglers: list[int] = []
        exit_unknown = False
        if self.worker_pid is not None and spec.get("log_cap_bytes"):
            try:
                self.log_cap = log_cap.LogCap(spec["log_path"], int(spec["log_cap_bytes"]))
            except OSError:
                self.log_cap = None  # the worker's output still goes to the log; only the cap is lost
        if self.worker_pid is not None:
            status = self.wait_worker()
            if status is None:
                exit_unknown = True
            elif os.WIFSIGNALED(status):
                exit_signal = os.WTERMSIG(status)
            else:
                exit_code = os.waitstatus_to_exitcode(status)
            stragglers = self.sweep()
        else:
            exit_code = 127
        log_cap_record = None
        if self.log_cap is not None:
            self.log_cap.enforce()  # the last burst before the exit counts too
            log_cap_record = self.log_cap.close()
        result = "done" if exit_code == 0 else "fail"
        log_free_bytes = None
        if self.log_fd is not None:
            try:
                fs = os.fstatvfs(self.log_fd)
                log_free_bytes = fs.f_bavail * fs.f_frsize
            except OSError:
                pass
            os.close(self.log_fd)
            self.log_fd = None
        record = {
            "attempt_id": self.attempt_id,
            "phase_id": spec["phase_id"],
            "attempt_number": spec["attempt_number"],
            "exit_code": exit_code,
            "signal": exit_signal,
            "signal_name": proc_scan.signal_name(exit_signal) if exit_signal else None,
            "started_at": started_at,
            "ended_at": now_iso(),
            "duration_s": round(time.monotonic() - started, 3),
            "stop_request": self.stop_requested,
            "stragglers": stragglers,
            "unkillable": self.unkillable,
            "straggler_names": {str(pid): name for pid, name in sorted(self.straggler_names.items())},
            "log_cap": log_cap_record,
            "log_free_bytes": log_free_bytes,  # free space on the log's filesystem at the exit: was it full?
            "start_error": start_error or self.exec_error,
            "exit_unknown": exit_unknown,  # the wait status was lost (never invented: judged as a failure)
        }
        self.write_record("exit.json", record)
        self.run_after_exit()
        if spec.get("signal_path"):  # coord exec's signal file, in a folder of coord's own (tmp/exec/.signals)
            signals = os.open(os.path.dirname(spec["signal_path"]), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                write_atomic(f"{os.path.basename(spec['signal_path'])}.{result}", {
                    "attempt_id": self.attempt_id, "status": result, "path": spec["attempt_dir"],
                    "error": start_error or self.exec_error}, signals)
            finally:
                os.close(signals)
        notify_error = self.notify(result)
        if notify_error:
            with open(spec["log_path"], "a", encoding="utf-8") as log:
                log.write(f"coord supervisor: {notify_error}; the coordinator will find exit.json by polling\n")
        return 0


def load_spec(path: str) -> dict:
    """The spec at ``path``: ``spec.marshal`` (written by the coordinator for this process,
    ``records.MARSHAL_SPEC_FILE``) or a ``spec.json``."""
    if path.endswith(".marshal"):
        with open(path, "rb") as handle:
            return marshal.load(handle)
    import json

    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: supervisor.py SPEC.marshal|SPEC.json\n")
        return 2
    return Supervisor(load_spec(argv[1])).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
