"""Following a worker log as it grows — also across the supervisor's trims.

Who calls it: ``coord logs -f`` and the dashboard's log tab. The supervisor caps ``worker.log`` by removing its
middle (``process.log_cap.LogCap``), so the file can shrink under a reader: a plain "read from my offset" would then
print nothing until the log grew past the old offset, or resume mid-line. The follower notices the shrink, finds
the last bytes it delivered in the kept tail and resumes right after them; if those bytes were dropped too, it
resumes after the truncation marker and says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

TRIM_MARKER = b" MiB of worker output dropped here; "
"""A fragment of the marker line the supervisor writes where it cut the log."""

_ANCHOR_BYTES = 4096
_SEARCH_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class LogChunk:
    """What a read found: ``data`` (bytes, whole lines unless ``final``) and a note for the reader, or None."""

    data: bytes
    note: str | None = None


class LogFollower:
    """Reads what a worker log gained since the last call.

    Args:
        path: the ``worker.log`` to follow; a missing file reads as empty.
        tail_bytes: on the first read of a log larger than this, start this many bytes before its end (at a
            line start) and note that earlier output was skipped; None reads from the beginning.
    """

    def __init__(self, path: Path, tail_bytes: int | None = None) -> None:
        self.path = path
        self.tail_bytes = tail_bytes
        self.offset = 0
        self._delivered_tail = b""
        self._started = False

    def read(self, final: bool = False) -> LogChunk:
        """New bytes since the last read. A trailing partial line is held back (so a JSON event is never split)
        unless ``final`` is true — use that once the worker has ended."""
        try:
            handle = open(self.path, "rb")
        except OSError:
            return LogChunk(b"")
        with handle:
            size = handle.seek(0, 2)
            notes: list[str] = []
            if not self._started:
                self._started = True
                if self.tail_bytes is not None and size > self.tail_bytes:
                    self.offset = self._line_start(handle, size - self.tail_bytes)
                    notes.append(f"… earlier output in {self.path.name} not shown")
            elif size < self.offset or not self._still_there(handle):
                self.offset, note = self._resume_after_trim(handle, size)
                notes.append(note)
            if size <= self.offset:
                return LogChunk(b"", "; ".join(notes) or None)
            handle.seek(self.offset)
            data = handle.read(size - self.offset)
        if not final:
            cut = data.rfind(b"\n") + 1
            data = data[:cut]
        self.offset += len(data)
        if data:
            self._delivered_tail = (self._delivered_tail + data)[-_ANCHOR_BYTES:]
        return LogChunk(data, "; ".join(notes) or None)

    def _still_there(self, handle: BinaryIO) -> bool:
        """Whether the bytes before our offset are still the ones we delivered (a trim that the log has since
        outgrown leaves the size above our offset but moves everything)."""
        check = self._delivered_tail
        if not check or self.offset < len(check):
            return True
        handle.seek(self.offset - len(check))
        return handle.read(len(check)) == check

    @staticmethod
    def _line_start(handle: BinaryIO, position: int) -> int:
        handle.seek(max(0, position - 1))
        if position > 0 and handle.read(1) != b"\n":
            handle.readline()
            return handle.tell()
        return position

    def _resume_after_trim(self, handle: BinaryIO, size: int) -> tuple[int, str]:
        """Where to go on after the log changed under us, and what to tell the reader. The bytes before that
        place become the new anchor, so the next read checks against what the file now holds."""
        start = max(0, size - _SEARCH_BYTES)
        handle.seek(start)
        window = handle.read(size - start)
        note = "the log was trimmed to its size cap; nothing missed"
        found = window.rfind(self._delivered_tail) if self._delivered_tail else -1
        if found >= 0:
            resume = found + len(self._delivered_tail)
        else:
            marker = window.rfind(TRIM_MARKER)
            if marker >= 0:
                line_end = window.find(b"\n", marker)
                resume = line_end + 1 if line_end >= 0 else marker
                note = "the log was trimmed to its size cap; some output between reads was dropped"
            else:
                start, resume = 0, 0
                note = "the log shrank (rewritten?); reading it again from the start"
        self._delivered_tail = window[max(0, resume - _ANCHOR_BYTES):resume] if start or resume else b""
        return start + resume, note
