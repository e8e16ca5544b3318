"""One coordinator per workspace: an ``flock`` on ``coord.lock`` in the workspace's state directory (outside the
workspace, so no worker can delete it and let a second coordinator in), plus ``lock.info`` naming the holder.

The lock is a separate file, never the database (closing any fd of a SQLite file drops its POSIX locks). The fd
is close-on-exec, so workers started by fork + exec never inherit it; the kernel releases it when the holder dies,
even by SIGKILL.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path

from coordinator.errors import LockedError
from coordinator.paths import WorkspacePaths
from coordinator.util.files import read_json, write_json_atomic
from coordinator.util.timefmt import now_iso


class WorkspaceLock:
    """The exclusive workspace lock held by a running coordinator (or a stand-alone ``coord remediate``)."""

    def __init__(self, paths: WorkspacePaths) -> None:
        self.paths = paths
        self.fd: int | None = None
        self._guard = threading.Lock()

    def acquire(self, plan_id: str, command: str) -> None:
        """Take the lock without waiting and record the holder in ``lock.info``.

        Raises:
            LockedError: another process holds it; the message names its pid and plan.
        """
        self.paths.ensure_state_dir()
        fd = os.open(self.paths.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        for delay in (0.05, 0.1, 0.2, 0.4, 0):  # a `coord status`/`remediate` probe holds it for microseconds
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if delay:
                    time.sleep(delay)
        else:
            os.close(fd)
            holder = self._holder_when_known()
            raise LockedError(
                f"another coordinator holds {self.paths.workspace}: pid {holder.get('pid', '?')} "
                f"({holder.get('command', '?')} {holder.get('plan', '?')}, since {holder.get('started_at', '?')}) "
                f"won; `{command}` launched nothing — watch that one with `coord status` or `coord tui`, and try "
                "again when it ends"
            ) from None
        self.fd = fd
        write_json_atomic(
            self.paths.lock_info,
            {
                "pid": os.getpid(),
                "plan": plan_id,
                "command": command,
                "started_at": now_iso(),
                "socket": str(self.paths.socket_path()),
            },
        )

    def _holder_when_known(self) -> dict[str, object]:
        """The holder's ``lock.info``, waiting a moment for a holder that took the lock an instant ago."""
        for _ in range(20):
            holder = holder_info(self.paths)
            if holder:
                return holder
            time.sleep(0.05)
        return {}

    def release(self) -> None:
        """Give the lock up (idempotent; safe to call from the engine thread and the main thread)."""
        with self._guard:
            if self.fd is None:
                return
            try:
                self.paths.lock_info.unlink()
            except FileNotFoundError:
                pass
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def holder_info(paths: WorkspacePaths) -> dict | None:
    """The holder recorded in ``lock.info``, or None."""
    info = read_json(paths.lock_info)
    return info if isinstance(info, dict) else None


def is_locked(paths: WorkspacePaths) -> bool:
    """True when some process holds the workspace lock right now."""
    if not Path(paths.lock).exists():
        return False
    fd = os.open(paths.lock, os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops our probe lock if we got it
    return False
