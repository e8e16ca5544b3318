"""The files an attempt's supervisor and the coordinator pass to each other, one typed definition each.

``spec.json`` is written by the coordinator (:class:`SupervisorSpec`) and read by the supervisor; ``identity.json``
(:class:`Identity`) and ``exit.json`` (:class:`ExitRecord`) are written by the supervisor and read here. The
supervisor is stdlib-only and runs by path, so it cannot import this module: it writes plain JSON whose keys are
listed in ``supervisor.SPEC_KEYS`` and in its ``run()``; ``tests/unit/process/test_records.py`` round-trips a real
supervisor's files through these readers so the two cannot drift apart.

Every reader here treats the file as untrusted: a missing, torn or foreign file (another attempt's id) reads as
None, never as an exception.
"""

from __future__ import annotations

import dataclasses
import marshal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coordinator.util.files import read_json, write_atomic, write_json_atomic

SPEC_FILE = "spec.json"
MARSHAL_SPEC_FILE = "spec.marshal"
"""The spec again, in ``marshal`` format, for the supervisor alone: it reads it without importing ``json`` (whose
``re`` and ``enum`` imports were most of its start-up time). ``spec.json`` stays the copy people read."""
IDENTITY_FILE = "identity.json"
EXIT_FILE = "exit.json"
STOP_REQUEST_FILE = "stop-request.json"
LOG_FILE = "worker.log"
SUPERVISOR_LOG_FILE = "supervisor.log"


@dataclass(frozen=True)
class SupervisorSpec:
    """What the supervisor of one attempt is to run (``spec.json``; the supervisor's ``SPEC_KEYS``).

    Attributes:
        attempt_id: uuid of the attempt; also the cookie (``COORD_ATTEMPT_ID``) every process of it carries.
        phase_id: the phase (or ``coord exec``'s run id).
        attempt_number: 1-based attempt number.
        argv: the worker's command, never run through a shell.
        cwd: absolute directory the worker starts in.
        env: variables added to the inherited environment (coord's own and the agent profile's; never secrets).
        stdin_path: file the worker reads as stdin, or None for /dev/null.
        log_path: absolute path of ``worker.log`` (stdout and stderr).
        attempt_dir: absolute attempt folder people read; copies of identity.json and exit.json go there.
        records_dir: absolute folder of the attempt's own records, out of the worker's reach: spec.json,
            identity.json, exit.json, stop-request.json, supervisor.log.
        signal_path: path, without the ``.done``/``.fail`` suffix, of a completion signal file, or None
            (``coord wait`` reads them for ``coord exec``; plan runs are told by the socket and ``exit.json``).
        socket_path: the coordinator's control socket to push the end to, or None.
        kill_grace: seconds between SIGTERM and SIGKILL when the worker is stopped.
        log_cap_bytes: beyond this size the middle of worker.log is dropped, or None for no cap.
        after_exit_argv: a command run after exit.json is written (``coord exec``'s summary), or None.
        inline_runner: the coord module ``argv`` runs (``WorkerCommand.inline_runner``), or None.
    """

    attempt_id: str
    phase_id: str
    attempt_number: int
    argv: tuple[str, ...]
    cwd: str
    env: dict[str, str]
    stdin_path: str | None
    log_path: str
    attempt_dir: str
    records_dir: str
    signal_path: str | None
    socket_path: str | None
    kill_grace: float
    log_cap_bytes: int | None = None
    after_exit_argv: tuple[str, ...] | None = None
    inline_runner: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON object of ``spec.json`` (tuples as lists; optional keys left out when None)."""
        data = dataclasses.asdict(self)
        data["argv"] = list(self.argv)
        for optional in ("log_cap_bytes", "after_exit_argv", "inline_runner"):
            if data[optional] is None:
                del data[optional]
            elif optional == "after_exit_argv":
                data[optional] = list(data[optional])
        return data

    def write(self, attempt_dir: Path, inside: Path | None = None, durable: bool = True) -> Path:
        """Write ``spec.json`` atomically into ``attempt_dir`` (which must be inside ``inside`` when given);
        returns its path. ``durable=False`` skips the fsyncs (the copy for people, and the records folder's copy
        beside the durable ``spec.marshal``, which ``read`` falls back to).

        Raises:
            OutsideWorkspace: ``attempt_dir`` is, links followed, outside ``inside``.
            OSError: the file could not be written.
        """
        path = attempt_dir / SPEC_FILE
        write_json_atomic(path, self.to_json(), inside=inside, durable=durable)
        return path

    def write_marshal(self, records_dir: Path) -> Path:
        """Write ``spec.marshal`` (the supervisor's copy) atomically into ``records_dir``; returns its path.

        Raises:
            OSError: the file could not be written.
        """
        path = records_dir / MARSHAL_SPEC_FILE
        write_atomic(path, marshal.dumps(self.to_json()))
        return path

    @classmethod
    def read(cls, records_dir: Path) -> SupervisorSpec | None:
        """The ``spec.json`` in ``records_dir`` (else its ``spec.marshal``), or None when both are missing, torn or
        not a spec."""
        data = read_json(records_dir / SPEC_FILE)
        if not isinstance(data, dict):
            try:
                data = marshal.loads((records_dir / MARSHAL_SPEC_FILE).read_bytes())
            except (OSError, ValueError, EOFError, TypeError):
                return None
        if not isinstance(data, dict):
            return None
        try:
            return cls(**{**data, "argv": tuple(data["argv"]), "after_exit_argv": tuple(data["after_exit_argv"])
                          if data.get("after_exit_argv") else None})
        except (KeyError, TypeError):
            return None


@dataclass(frozen=True)
class Identity:
    """Who runs an attempt (``identity.json``): enough to find the supervisor again after a restart and to
    never signal a recycled pid.

    Attributes:
        supervisor_pid: the supervisor's pid.
        supervisor_start_ticks: its start time in clock ticks since boot (``/proc/PID/stat`` field 22).
        worker_pid: the worker's pid (it leads its own process group), or None when it could not start.
        boot_id: ``/proc/sys/kernel/random/boot_id`` when it started; a pid from another boot names nobody.
        started_at: when the worker started, ``2026-11-24T08:00:00+0000``.
    """

    supervisor_pid: int
    supervisor_start_ticks: int | None
    worker_pid: int | None
    boot_id: str
    started_at: str

    @classmethod
    def read(cls, attempt_dir: Path, attempt_id: str) -> Identity | None:
        """The identity in ``attempt_dir/identity.json`` if it was written for ``attempt_id``, else None."""
        data = read_json(attempt_dir / IDENTITY_FILE)
        if not isinstance(data, dict) or data.get("attempt_id") != attempt_id:
            return None
        try:
            return cls(
                supervisor_pid=int(data["supervisor_pid"]),
                supervisor_start_ticks=_optional_int(data.get("supervisor_start_ticks")),
                worker_pid=_optional_int(data.get("worker_pid")),
                boot_id=str(data.get("boot_id", "")),
                started_at=str(data.get("started_at", "")),
            )
        except (KeyError, TypeError, ValueError):
            return None


FULL_DISK_BYTES = 1024 * 1024
"""Free bytes below which the filesystem under a worker's output counts as full: codex and claude write their
events a line at a time, and lines of tool output run to hundreds of KiB."""


@dataclass(frozen=True)
class ExitRecord:
    """How an attempt's worker ended (``exit.json``), as its supervisor recorded it.

    Attributes:
        attempt_id: the attempt it was written for.
        exit_code: the worker's exit code, or None when a signal killed it or the status was lost.
        signal: the number of the signal that killed it, or None.
        signal_name: that signal's name (``SIGKILL``), or None.
        started_at: when the worker started (the store's timestamp format), or None.
        ended_at: when the supervisor saw it end, or None.
        duration_s: seconds from start to end, or None.
        stop_request: why coord asked the supervisor to stop it (``hung``, ``stopped``), or None.
        stragglers: pids of processes the worker left running, which the supervisor killed.
        straggler_names: their program names, by pid.
        unkillable: pids that survived SIGKILL.
        log_cap: what the log cap did (``cap_bytes``, ``dropped_bytes``, ``not_enforced``), or None.
        start_error: why the worker could not be started (exec failed), or None.
        log_free_bytes: bytes free for the worker's output on the filesystem of ``worker.log`` when the worker
            ended (``statvfs`` ``f_bavail * f_frsize``), or None when unknown.
        exit_unknown: True when the wait status was lost (judged a failure, never invented).
    """

    attempt_id: str
    exit_code: int | None = None
    signal: int | None = None
    signal_name: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    duration_s: float | None = None
    stop_request: str | None = None
    stragglers: tuple[int, ...] = ()
    straggler_names: dict[str, str] = field(default_factory=dict)
    unkillable: tuple[int, ...] = ()
    log_cap: dict[str, Any] | None = None
    start_error: str | None = None
    log_free_bytes: int | None = None
    exit_unknown: bool = False

    @classmethod
    def read(cls, attempt_dir: Path, attempt_id: str) -> ExitRecord | None:
        """The ``exit.json`` in ``attempt_dir`` if its supervisor wrote it for ``attempt_id``, else None."""
        data = read_json(attempt_dir / EXIT_FILE)
        if not isinstance(data, dict) or data.get("attempt_id") != attempt_id:
            return None
        return cls.from_json(data)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExitRecord:
        """Build a record from the JSON object; unknown keys are ignored, odd values fall back to defaults."""
        names = data.get("straggler_names")
        return cls(
            attempt_id=str(data.get("attempt_id", "")),
            exit_code=_optional_int(data.get("exit_code")),
            signal=_optional_int(data.get("signal")),
            signal_name=_optional_str(data.get("signal_name")),
            started_at=_optional_str(data.get("started_at")),
            ended_at=_optional_str(data.get("ended_at")),
            duration_s=float(data["duration_s"]) if isinstance(data.get("duration_s"), (int, float)) else None,
            stop_request=_optional_str(data.get("stop_request")),
            stragglers=_int_tuple(data.get("stragglers")),
            straggler_names={str(k): str(v) for k, v in names.items()} if isinstance(names, dict) else {},
            unkillable=_int_tuple(data.get("unkillable")),
            log_cap=data.get("log_cap") if isinstance(data.get("log_cap"), dict) else None,
            start_error=_optional_str(data.get("start_error")),
            log_free_bytes=_optional_int(data.get("log_free_bytes")),
            exit_unknown=bool(data.get("exit_unknown")),
        )

    @property
    def output_disk_full(self) -> bool:
        """True when the filesystem the worker wrote its output to had less than :data:`FULL_DISK_BYTES` free at
        its exit: its writes most likely failed with ENOSPC, which is then why it failed."""
        return self.log_free_bytes is not None and self.log_free_bytes < FULL_DISK_BYTES

    @property
    def how(self) -> str:
        """How the worker ended, for a sentence: ``exit code 1`` or ``killed by SIGKILL``."""
        if self.signal is not None or self.signal_name:
            return f"killed by {self.signal_name or self.signal}"
        return f"exit code {self.exit_code}"

    @property
    def leftovers(self) -> dict[int, str]:
        """pid -> program name of the processes the supervisor killed after the worker ended."""
        return {pid: self.straggler_names.get(str(pid), "?") for pid in self.stragglers}


def _optional_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int_tuple(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(item for item in value if isinstance(item, int) and not isinstance(item, bool))
