"""Durable file writes: temp file in the same directory, fsync, ``os.replace``, fsync of the directory.

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
