"""Start, identify, stop and sweep attempts' processes on this machine.

Who calls it: the engine. The launcher writes the supervisor's spec, starts ``supervisor.py`` in a session of its
own (fork + exec, so no coordinator fd or lock leaks into it), and later finds the supervisor again by identity
(pid + ``/proc`` start ticks + boot id) — after a coordinator restart too. Signals go through a pidfd opened after
the identity check, so a recycled pid is never signalled.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from coordinator.process import supervisor as supervisor_module
from coordinator.util.files import read_json, write_json_atomic

COOKIE = supervisor_module.COOKIE


@dataclass(frozen=True)
class Identity:
    """Who runs an attempt, from the supervisor's ``identity.json``."""

    supervisor_pid: int
    supervisor_start_ticks: int | None
    worker_pid: int | None
    boot_id: str
    started_at: str

    @classmethod
    def read(cls, attempt_dir: Path, attempt_id: str) -> Identity | None:
        """Return the identity in ``attempt_dir/identity.json`` if written for ``attempt_id``, else None."""
        data = read_json(attempt_dir / "identity.json")
        if not isinstance(data, dict) or data.get("attempt_id") != attempt_id:
            return None
        return cls(
            supervisor_pid=int(data["supervisor_pid"]),
            supervisor_start_ticks=data.get("supervisor_start_ticks"),
            worker_pid=data.get("worker_pid"),
            boot_id=str(data.get("boot_id", "")),
            started_at=str(data.get("started_at", "")),
        )


def read_exit(attempt: Any) -> dict[str, Any] | None:
    """The ``exit.json`` of an attempt (a store row with ``attempt_dir`` and ``attempt_id``) if its supervisor
    wrote it for this very attempt (ids match), else None."""
    record = read_json(Path(attempt["attempt_dir"]) / "exit.json")
    if isinstance(record, dict) and record.get("attempt_id") == attempt["attempt_id"]:
        return record
    return None


def start_supervisor(spec: dict, attempt_dir: Path) -> subprocess.Popen[bytes]:
    """Write ``spec.json`` and start the attempt's supervisor in a new session.

    Args:
        spec: the keys of ``supervisor.SPEC_KEYS``.
        attempt_dir: the attempt folder; ``supervisor.log`` there receives the supervisor's own stderr.

    Returns:
        The supervisor's Popen (the caller polls it so it never stays a zombie).

    Raises:
        OSError: the interpreter could not be started.
    """
    spec_path = attempt_dir / "spec.json"
    write_json_atomic(spec_path, spec)
    with open(attempt_dir / "supervisor.log", "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-I", str(Path(supervisor_module.__file__).resolve()), str(spec_path)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # Ctrl-C in the coordinator's terminal never reaches workers
            close_fds=True,
            env={**os.environ, "COORD_ATTEMPT_ID": spec["attempt_id"]},
        )


def wait_for_identity(attempt_dir: Path, process: subprocess.Popen[bytes], attempt_id: str,
                      timeout: float = 10.0) -> Identity | None:
    """Wait until the supervisor wrote its identity; None if it died first or ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        identity = Identity.read(attempt_dir, attempt_id)
        if identity is not None:
            return identity
        if process.poll() is not None:
            return Identity.read(attempt_dir, attempt_id)
        time.sleep(0.005)
    return None


def kill_session(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL a supervisor we started (it leads its own session and group) and reap it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def current_boot_id() -> str:
    return supervisor_module.boot_id()


def supervisor_alive(identity: Identity) -> bool:
    """True when the recorded supervisor still runs: same boot, same pid, same start ticks, not a zombie."""
    if identity.boot_id != current_boot_id():
        return False  # a pid from an earlier boot names some other process now
    if supervisor_module.start_ticks(identity.supervisor_pid) != identity.supervisor_start_ticks:
        return False
    return not supervisor_module.is_zombie(identity.supervisor_pid)


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


def request_stop(attempt_dir: Path, identity: Identity, reason: str) -> bool:
    """Ask an attempt's supervisor to stop its worker (TERM, grace, KILL, sweep) and record why.

    Args:
        attempt_dir: the attempt folder (``stop-request.json`` is written there first).
        identity: the supervisor to signal.
        reason: ``hung``, ``stopped`` or ``deadline``; copied into ``exit.json`` by the supervisor.

    Returns:
        True if the supervisor received the request.
    """
    write_json_atomic(attempt_dir / "stop-request.json", {"reason": reason, "at": time.time()})
    return signal_supervisor(identity, signal.SIGTERM)


def processes_of_attempt(attempt_id: str) -> list[psutil.Process]:
    """Live processes carrying this attempt's cookie in their environment (the escaped ones included)."""
    found = []
    for process in psutil.process_iter(["environ", "status"]):
        try:
            if (process.info["environ"] or {}).get(COOKIE) == attempt_id and process.info[
                "status"
            ] != psutil.STATUS_ZOMBIE:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


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

