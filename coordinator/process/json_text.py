"""JSON records without the ``json`` module, for the processes coord starts per attempt (the supervisor, the shell
runner): ``json_text`` and ``write_atomic``. Importing ``json`` (``re``, ``enum``) was most of their start-up
time, which every launch waits for.

Standard library only; run-by-path scripts load it as a sibling file.
"""

from __future__ import annotations

import os
import time
from _json import encode_basestring_ascii  # the C function ``json`` itself quotes strings with


def json_text(value: object, indent: str = "") -> str:
    """``value`` (dicts, lists, str, int, finite float, bool, None) as JSON, dict keys sorted and indented.

    Written here, not with ``json``, because importing ``json`` (``re``, ``enum``) was most of the supervisor's
    start-up time; strings are quoted by ``_json.encode_basestring_ascii``, the C function ``json`` itself uses.
    """
    if isinstance(value, str):
        return encode_basestring_ascii(value)
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(json_text(item) for item in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        inner = indent + "  "
        items = (f"{inner}{encode_basestring_ascii(str(key))}: {json_text(item, inner)}"
                 for key, item in sorted(value.items()))
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    raise TypeError(f"not JSON: {type(value).__name__}")


def write_atomic(name: str, data: dict, dir_fd: int, durable: bool = True) -> None:
    """Write JSON as file ``name`` of the directory open as ``dir_fd`` (temp file, fsync, rename, directory fsync).

    The directory was opened before the worker started: a worker that replaces its path with a link cannot send
    the record elsewhere. ``durable=False`` (the copies for people) skips both fsyncs.
    """
    tmp = f".tmp-{name}-{os.getpid()}-{time.monotonic_ns()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dir_fd)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(json_text(data) + "\n")
        handle.flush()
        if durable:
            os.fsync(handle.fileno())
    os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    if durable:
        os.fsync(dir_fd)
