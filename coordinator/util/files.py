"""Files: durable writes (temp file in the same directory, fsync, ``os.replace``, fsync of the directory) and
bounded, forgiving reads.

Who uses it: the store (markers, lock info), prompts, evidence and summaries. The supervisor has its own
stdlib-only copy because it must not import the coordinator package.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_atomic(path: Path, data: bytes | str) -> None:
    """Replace ``path`` with ``data`` so a reader sees the old or the new content, never a torn file.

    Args:
        path: destination; its parent directory is created if missing.
        data: bytes, or text written as UTF-8.

    Raises:
        OSError: the write, fsync or rename failed (the destination is then unchanged).
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_json_atomic(path: Path, value: Any) -> None:
    """Write ``value`` as indented JSON with :func:`write_atomic`."""
    write_atomic(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def read_json(path: Path) -> Any | None:
    """Return the JSON value in ``path``, or None when the file is missing or not (yet) valid JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def tail_bytes(path: Path, limit: int) -> tuple[bytes, int] | None:
    """The last ``limit`` bytes of a file and the file's size in bytes; None when it is missing or unreadable.

    The one tail reader of coord: logs are read from their end, never whole (a worker log may be 64 MiB).
    """
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            handle.seek(max(0, size - limit))
            return handle.read(limit), size
    except OSError:
        return None


def read_tail(path: Path, limit: int, shown_as: str | None = None) -> str:
    """The last ``limit`` bytes of a file as text, with a first line saying how much came before when it was cut
    (``… 1234 earlier bytes in worker.log``, naming the file as ``shown_as``, default its name); "" when the file
    is missing or unreadable."""
    found = tail_bytes(path, limit)
    if found is None:
        return ""
    data, size = found
    text = data.decode("utf-8", errors="replace")
    if size > limit:
        text = f"… {size - limit} earlier bytes in {shown_as or path.name}\n" + text
    return text


def file_size(path: Path) -> int:
    """Size of ``path`` in bytes; 0 when it is missing or unreadable."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def workspace_relative(path: Path, workspace: Path) -> str:
    """``path`` as messages name it: relative (POSIX) to the workspace when it lies inside it, symlinks followed;
    a relative or outside path as given. The one helper for every path coord shows a person."""
    if not path.is_absolute():
        return path.as_posix()
    for candidate, root in ((path, workspace), (path.resolve(), workspace.resolve())):
        if candidate.is_relative_to(root):
            return candidate.relative_to(root).as_posix()
    return str(path)
