"""The local executor: each attempt is a supervisor process on this machine (``supervisor.py``).

Who calls it: the engine (through the ``Executor`` protocol), ``coord exec`` and ``coord stop`` without a
coordinator. It writes the supervisor's spec, starts ``supervisor.py`` in a session of its own (fork + exec, so no
coordinator fd or lock leaks into it), and later finds the supervisor again by identity (pid + ``/proc`` start
ticks + boot id) — after a coordinator restart too. Signals go through a pidfd opened after
the identity check, so a recycled pid is never signalled.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from coordinator.paths import OutsideWorkspace, WorkspacePaths
from coordinator.process import proc_scan
from coordinator.process import supervisor as supervisor_module
from coordinator.process.executor import AttemptHandle, StartError, UnrecordedAttempt
from coordinator.process.fork_client import ForkServer, Unanswered, code_digest
from coordinator.process.records import (
    STOP_REQUEST_FILE,
    SUPERVISOR_LOG_FILE,
    ExitRecord,
    Identity,
    SupervisorSpec,
)
from coordinator.util import failpoints
from coordinator.util.files import write_json_atomic

COOKIE = supervisor_module.COOKIE


def write_spec(spec: SupervisorSpec, inside: Path | None = None) -> Path:
    """Write ``spec.json`` (into the records folder, with a copy in the attempt folder for people) and the
    supervisor's ``spec.marshal``; returns the path of the latter.

    Args:
        spec: what to run.
        inside: the workspace, which the attempt folder must be in, links followed (None: not checked).

    Raises:
        OutsideWorkspace: the attempt folder is, links followed, outside ``inside``.
        OSError: the spec could not be written.
    """
    records_dir = Path(spec.records_dir)
    records_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    # The marshal copy is what the supervisor reads (no json import at its start), and the durable one; the JSON
    # copies are for people and for `SupervisorSpec.read`, which falls back to it.
    spec_path = spec.write_marshal(records_dir)
    spec.write(records_dir, durable=False)
    if records_dir != Path(spec.attempt_dir):
        spec.write(Path(spec.attempt_dir), inside=inside, durable=False)
    return spec_path


def start_supervisor(spec: SupervisorSpec, inside: Path | None = None) -> subprocess.Popen[bytes]:
    """Write the spec (``write_spec``) and start the attempt's supervisor as a Python process of its own, in a new
    session; ``supervisor.log`` in its records folder receives the supervisor's own stderr.

    Returns:
        The supervisor's Popen (the caller polls it so it never stays a zombie).

    Raises:
        OutsideWorkspace: the attempt folder is, links followed, outside ``inside``.
        OSError: the spec could not be written or the interpreter could not be started.
    """
    return start_supervisor_process(spec, write_spec(spec, inside))


def start_supervisor_process(spec: SupervisorSpec, spec_path: Path) -> subprocess.Popen[bytes]:
    """Start ``supervisor.py`` on the spec already written at ``spec_path``, in a new session (see
    ``start_supervisor``).

    Raises:
        OSError: the interpreter could not be started.
    """
    with open(Path(spec.records_dir) / SUPERVISOR_LOG_FILE, "ab") as log:
        return subprocess.Popen(
            # -I: nothing from the environment; -S: no site module (stdlib only, and a smaller idle process)
            [sys.executable, "-I", "-S", str(Path(supervisor_module.__file__).resolve()), str(spec_path)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # Ctrl-C in the coordinator's terminal never reaches workers
            close_fds=True,
            env={**os.environ, COOKIE: spec.attempt_id},
        )


class ForkedSupervisor:
    """A supervisor the fork server started: not our child, so it is watched by pid (until its identity is read,
    a few milliseconds) instead of by ``Popen``. ``pid`` is None when the server took the request but did not
    answer: then only the identity (or the start deadline) tells."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid

    def poll(self) -> int | None:
        """None while it may still run; 0 once it is gone (its exit status is the server's to collect)."""
        if self.pid is None:
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return 0
        except PermissionError:
            return None
        return 0 if proc_scan.is_zombie(self.pid) else None


def kill_session(process: subprocess.Popen[bytes] | ForkedSupervisor) -> None:
    """SIGKILL a supervisor we started (it leads its own session and group) and reap it (the fork server reaps the
    ones it forked)."""
    if process.pid is None:
        return  # unknown: the caller kills the attempt's processes by cookie
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if isinstance(process, subprocess.Popen):
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


@functools.cache
def current_boot_id() -> str:
    """This boot's id (read once: a process never outlives the boot it started in)."""
    return proc_scan.boot_id()


def supervisor_alive(identity: Identity) -> bool:
    """True when the recorded supervisor still runs: same boot, same pid, same start ticks, not a zombie."""
    if identity.boot_id != current_boot_id():
        return False  # a pid from an earlier boot names some other process now
    ticks = proc_scan.start_ticks_if_running(identity.supervisor_pid)
    return ticks is not None and ticks == identity.supervisor_start_ticks


def signal_supervisor(identity: Identity, sig: int) -> bool:
    """Send ``sig`` to the supervisor through a pidfd opened after the identity check.

    Returns:
        True if the signal was delivered; False if the supervisor is gone (or is not who it was).
    """
    try:
        pidfd = os.pidfd_open(identity.supervisor_pid)
    except OSError:
        return False
    try:
        # The pidfd pins the process: if the identity still matches now, the signal cannot hit a recycled pid.
        if not supervisor_alive(identity):
            return False
        signal.pidfd_send_signal(pidfd, sig)
        return True
    except OSError:
        return False
    finally:
        os.close(pidfd)


def request_stop(records_dir: Path, identity: Identity, reason: str) -> bool:
    """Ask an attempt's supervisor to stop its worker (TERM, grace, KILL, sweep) and record why.

    Args:
        records_dir: the attempt's records folder (``stop-request.json`` is written there first).
        identity: the supervisor to signal.
        reason: ``hung``, ``stopped`` or ``deadline``; copied into ``exit.json`` by the supervisor.

    Returns:
        True if the supervisor received the request.
    """
    try:
        write_json_atomic(records_dir / STOP_REQUEST_FILE, {"reason": reason, "at": time.time()})
    except OSError:
        pass  # the signal still stops the worker, as "stop"
    return signal_supervisor(identity, signal.SIGTERM)


def processes_with_cookie(variable: str, value: str) -> list[psutil.Process]:
    """Live processes (of any session) whose environment sets ``variable=value``: an attempt's or a verify
    command's cookie, which every descendant inherits, including those that left its process group."""
    found = []
    for process in psutil.process_iter(["environ", "status"]):
        try:
            environ = process.info["environ"] or {}
            if environ.get(variable) == value and process.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def processes_of_attempt(attempt_id: str) -> list[psutil.Process]:
    """Live processes carrying this attempt's cookie in their environment (the escaped ones included)."""
    return processes_with_cookie(COOKIE, attempt_id)


def kill_attempt_processes(attempt_id: str, grace: float) -> list[int]:
    """Kill every process of an attempt whose supervisor is gone: TERM + CONT, ``grace`` seconds, KILL.

    Returns:
        The pids that were found alive.
    """
    pids: list[int] = []
    # Repeat: a supervisor caught mid-start may fork its worker while we wait out the grace period.
    for _round in range(3):
        processes = processes_of_attempt(attempt_id)
        if not processes:
            break
        pids.extend(process.pid for process in processes if process.pid not in pids)
        for sig in (signal.SIGTERM, signal.SIGCONT):
            for process in processes:
                try:
                    process.send_signal(sig)  # psutil re-checks pid + create time before signalling
                except psutil.NoSuchProcess:
                    pass
        _, alive = psutil.wait_procs(processes, timeout=grace)
        for process in alive:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=5)
    return pids



IDENTITY_POLL = 0.005
"""Seconds between two looks for a starting supervisor's ``identity.json``."""

IDENTITY_TIMEOUT = 10.0
"""Seconds a new supervisor has to write its identity before the attempt counts as not started."""


class LocalExecutor:
    """Runs each attempt as a supervisor process on this machine (the default executor).

    It remembers the supervisors it started itself (to reap them, and because a child not yet reaped is
    certainly alive); everything else it learns from the attempt folder, so it serves attempts of an earlier
    coordinator just as well.
    """

    def __init__(self, inside: Path | None = None, identity_timeout: float = IDENTITY_TIMEOUT,
                 fork_server: ForkServer | None = None) -> None:
        self.inside = inside
        """The workspace: attempt folders must be in it, links followed, when coord writes into them."""
        self.identity_timeout = identity_timeout
        self.fork_server = fork_server
        """Starts supervisors by forking (about 1 ms each instead of 50); None, or when it cannot be reached:
        each supervisor is a Python process of its own."""
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        self._identities: dict[str, Identity] = {}
        # Spawned, no identity yet: the spec, the deadline, and the process (kept here too: ``poll_ended`` drops a
        # supervisor from ``_children`` once it exits, which a quick worker's may do before its identity is read).
        self._starting: dict[str, tuple[SupervisorSpec, float, subprocess.Popen[bytes] | ForkedSupervisor]] = {}

    @classmethod
    def for_workspace(cls, paths: WorkspacePaths) -> LocalExecutor:
        """The executor of ``coord run``: attempt folders checked against the workspace, supervisors forked by the
        workspace's fork server (its log is ``fork-server.log`` in the state directory)."""
        return cls(inside=paths.workspace, fork_server=ForkServer(
            paths.fork_server_socket(code_digest()), paths.state_dir / "fork-server.log"))

    def start(self, spec: SupervisorSpec) -> Identity:
        self.spawn(spec)
        while True:
            found = self.started(spec.attempt_id)
            if isinstance(found, Identity):
                return found
            if isinstance(found, StartError):
                raise found
            time.sleep(IDENTITY_POLL)

    def spawn(self, spec: SupervisorSpec) -> None:
        try:
            spec_path = write_spec(spec, inside=self.inside)
            forked = self._fork(spec, spec_path)
            process: subprocess.Popen[bytes] | ForkedSupervisor
            if forked is None:
                process = self._children[spec.attempt_id] = start_supervisor_process(spec, spec_path)
            else:
                process = forked
        except (OSError, OutsideWorkspace) as exc:
            raise StartError(f"could not start the worker: {exc}") from exc
        self._starting[spec.attempt_id] = (spec, time.monotonic() + self.identity_timeout, process)
        failpoints.hit("launch.after_spawn")

    def _fork(self, spec: SupervisorSpec, spec_path: Path) -> ForkedSupervisor | None:
        if self.fork_server is None:
            return None
        try:
            pid = self.fork_server.spawn(spec_path, {**os.environ, COOKIE: spec.attempt_id})
        except Unanswered:
            return ForkedSupervisor(None)  # it may run: never start a second one
        return None if pid is None else ForkedSupervisor(pid)

    def started(self, attempt_id: str) -> Identity | StartError | None:
        spec, deadline, process = self._starting[attempt_id]
        records = Path(spec.records_dir)
        identity = Identity.read(records, attempt_id)
        if identity is None and process.poll() is not None:
            identity = Identity.read(records, attempt_id)  # written just before it ended
        if identity is not None:
            del self._starting[attempt_id]
            return identity
        if process.poll() is None and time.monotonic() < deadline:
            return None
        # It may still start its worker later: end the whole attempt before counting it as failed.
        del self._starting[attempt_id]
        kill_session(process)
        kill_attempt_processes(spec.attempt_id, spec.kill_grace)
        self._children.pop(attempt_id, None)
        return StartError(f"the supervisor did not start in time (see {records / SUPERVISOR_LOG_FILE})")

    def identity(self, attempt: AttemptHandle) -> Identity | None:
        # Kept once read: the supervisor writes it once, and the file poll asks for every running attempt's.
        known = self._identities.get(attempt.attempt_id)
        if known is None:
            known = Identity.read(attempt.records_dir, attempt.attempt_id)
            if known is not None:
                self._identities[attempt.attempt_id] = known
        return known

    def is_alive(self, attempt: AttemptHandle) -> bool:
        if attempt.attempt_id in self._children:
            return True  # our own child, not reaped yet
        identity = self.identity(attempt)
        return identity is not None and supervisor_alive(identity)

    def started_on_another_boot(self, attempt: AttemptHandle) -> bool:
        identity = self.identity(attempt)
        return identity is not None and identity.boot_id != current_boot_id()

    def result(self, attempt: AttemptHandle) -> ExitRecord | None:
        return ExitRecord.read(attempt.records_dir, attempt.attempt_id)

    def stop(self, attempt: AttemptHandle, reason: str) -> bool:
        identity = self.identity(attempt)
        return identity is not None and request_stop(attempt.records_dir, identity, reason)

    def kill_processes(self, attempt_id: str, grace: float) -> list[int]:
        return kill_attempt_processes(attempt_id, grace)

    def interrupt(self, attempt_id: str) -> list[int]:
        signalled = []
        for process in processes_of_attempt(attempt_id):
            try:
                process.send_signal(signal.SIGTERM)  # psutil re-checks pid + create time before signalling
                process.send_signal(signal.SIGCONT)
                signalled.append(process.pid)
            except psutil.NoSuchProcess:
                continue
        return signalled

    def poll_ended(self) -> bool:
        ended = [attempt_id for attempt_id, process in self._children.items() if process.poll() is not None]
        for attempt_id in ended:
            del self._children[attempt_id]
        return bool(ended)

    def close(self) -> None:
        if self.fork_server is not None:
            self.fork_server.quit()

    def unrecorded(self, phase_dir: Path, known: set[str]) -> list[UnrecordedAttempt]:
        if not phase_dir.is_dir():
            return []
        found = []
        for records_dir in sorted(phase_dir.iterdir(), key=lambda path: path.name):
            if not records_dir.name.isdigit():
                continue
            spec = SupervisorSpec.read(records_dir)
            if spec is None or spec.attempt_id in known:
                continue
            identity = Identity.read(records_dir, spec.attempt_id)
            if identity is None or not supervisor_alive(identity):
                continue
            found.append(UnrecordedAttempt(int(records_dir.name), spec.attempt_id, Path(spec.attempt_dir), identity))
        return found
