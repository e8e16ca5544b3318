"""The worker log's size cap: the middle of ``worker.log`` is dropped while the worker appends, keeping its head
and tail.

Used by the supervisor (``process/supervisor.py``), which loads this file by its path: like the supervisor it must
import nothing but the standard library.
"""

from __future__ import annotations

import errno
import os

TYPE_CHECKING = False  # not typing's: the supervisor loads this file and should not pay for typing
if TYPE_CHECKING:
    from typing import Any

FALLOC_FL_COLLAPSE_RANGE = 0x08  # linux/falloc.h
MIB = 1024 * 1024


class LogCap:
    """Keeps ``worker.log`` near ``cap_bytes`` on disk while the worker appends to it.

    The worker writes through an ``O_APPEND`` descriptor, so its writes always land at the current end. When the
    file grows past the cap, the middle is removed with ``fallocate(FALLOC_FL_COLLAPSE_RANGE)``, which the kernel
    performs under the inode lock: no appended byte is lost, unlike copy-and-truncate. The first half of the cap
    (the run's start: session id, first commands) and the last quarter (the latest events) are kept, and a marker
    line at the cut says how much was dropped. Collapse needs ext4 or XFS; elsewhere (tmpfs, btrfs, NFS) the cap
    is not enforced and ``exit.json`` says so.
    """

    def __init__(self, path: str, cap_bytes: int) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
        block = os.fstat(self.fd).st_blksize or 4096
        self.cap = max(int(cap_bytes), 4 * block)
        self.block = block
        self.head = max(block, (self.cap // 2) // block * block)
        self.tail = self.cap // 4
        self.dropped = 0
        self.unsupported: str | None = None
        self._collapse: Any = None  # libc's fallocate, found the first time the log passes the cap
        self._ctypes: Any = None

    def _find_fallocate(self) -> None:
        # ctypes is loaded only for a log that outgrows its cap: an idle supervisor stays small.
        import ctypes

        self._ctypes = ctypes
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            self._collapse = getattr(libc, "fallocate64", None) or libc.fallocate
            self._collapse.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
        except (OSError, AttributeError) as exc:
            self.unsupported = f"fallocate unavailable: {exc}"

    def enforce(self) -> int | None:
        """Drop the middle of the log if it is over the cap (cheap when it is not: one fstat). Never raises:
        a cap that cannot be kept must not cost the attempt its exit record.

        Returns:
            The log's size in bytes as found (before any trim), or None when the cap is no longer kept.
        """
        if self.unsupported is not None:
            return None
        try:
            size = os.fstat(self.fd).st_size
            if size <= self.cap:
                return size
            if self._collapse is None:
                self._find_fallocate()
                if self._collapse is None:
                    return size
            length = (size - self.tail - self.head) // self.block * self.block
            if length <= 0:
                return size
            if self._collapse(self.fd, FALLOC_FL_COLLAPSE_RANGE, self.head, length) != 0:
                error = self._ctypes.get_errno()
                if error != errno.EINTR:  # interrupted: simply try again on the next round
                    self.unsupported = f"cannot trim the log on this filesystem: {os.strerror(error)}"
                return size
            self.dropped += length
            # Fixed width, always at the same place: the next trim overwrites it with the new total.
            marker = (f"\n[coord: {self.dropped / MIB:12.1f} MiB of worker output dropped here; "
                      f"the log is capped at {self.cap / MIB:g} MiB]\n").encode()
            os.pwrite(self.fd, marker, self.head - len(marker))
            return size
        except OSError as exc:
            self.unsupported = f"log cap stopped: {exc}"
            return None

    def close(self) -> dict:
        """Close the log; returns what ``exit.json`` records about the cap."""
        os.close(self.fd)
        return {"cap_bytes": self.cap, "dropped_bytes": self.dropped, "not_enforced": self.unsupported}
