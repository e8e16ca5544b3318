"""Files: durable writes (temp file in the same directory, fsync, ``os.replace``, fsync of the directory) and
bounded, forgiving reads.

Who uses it: the store (markers, lock info), prompts, evidence and summaries. The supervisor has its own
stdlib-only copy because it must not import the coordinator package.
"""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
import stat
from pathlib import Path
from typing import Any

from coordinator.paths import OutsideWorkspace, open_dir_inside


def write_atomic(path: Path, data: bytes | str, *, inside: Path | None = None, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` so a reader sees the old or the new content, never a torn file.

    The temporary file is created, and renamed over ``path``, relative to a descriptor of the parent directory
    opened once, so both land in the same directory even if its path is relinked meanwhile; neither follows a link.

    Args:
        path: destination; its parent directory is created if missing.
        data: bytes, or text written as UTF-8.
        inside: a directory the destination must be in, links followed (the workspace, for every file coord
            writes into a worker's reach); None for coord's own state directory.
        durable: fsync the file and the directory (False for a copy for people of a record kept durably
            elsewhere: still atomic, but a power cut may lose it).

    Raises:
        OutsideWorkspace: the parent directory is (a link to) somewhere outside ``inside``.
        OSError: the write, fsync or rename failed (the destination is then unchanged).
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        dir_fd = _open_parent(path, inside)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)  # only when missing: a mkdir waits on ext4's journal
        dir_fd = _open_parent(path, inside)
    try:
        tmp_name = f".{path.name}.{secrets.token_hex(6)}.tmp"
        fd = os.open(tmp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                     dir_fd=dir_fd)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(payload)
                if durable:
                    handle.flush()
                    os.fsync(handle.fileno())
            os.replace(tmp_name, path.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            try:
                os.unlink(tmp_name, dir_fd=dir_fd)
            except FileNotFoundError:
                pass
            raise
        if durable:
            os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _open_parent(path: Path, inside: Path | None) -> int:
    if inside is not None:
        return open_dir_inside(inside, path.parent)
    return os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


INTERRUPTED_WRITE = re.compile(r"^\..+\.[0-9a-f]{12}\.tmp$")
"""Name of :func:`write_atomic`'s temporary file, left behind when the writer was killed before its rename."""

INTERRUPTED_RECORD = re.compile(r"^\.tmp-.+-(?P<pid>[0-9]+)-[0-9]+$")
"""Name of the supervisor's temporary record file (``process/supervisor.py``, ``write_atomic``): the writer's pid
comes second to last, so a file of a supervisor still alive is left to it."""


def remove_interrupted_writes(root: Path, *, inside: Path | None = None) -> list[Path]:
    """Delete the temporary files interrupted atomic writes left under ``root``; returns their paths.

    Only the coordinator that holds the workspace lock may call this: :func:`write_atomic` files are its own,
    and a supervisor's are removed only once its pid is gone. The walk goes through directory descriptors and
    never follows a link, so a worker relinking a folder meanwhile cannot make it delete anything elsewhere.

    Args:
        root: a directory (a plan's ``tmp/PLAN`` or the state directory); missing is fine.
        inside: a directory ``root`` must be in (the workspace), None for coord's own state directory.

    Raises:
        OutsideWorkspace: ``root`` is (a link to) somewhere outside ``inside``.
    """
    try:
        root_fd = open_dir_inside(inside, root) if inside is not None else os.open(
            root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return []
    removed: list[Path] = []
    try:
        for folder, _dirs, files, dir_fd in os.fwalk(".", dir_fd=root_fd, follow_symlinks=False):
            for name in files:
                supervisor_record = INTERRUPTED_RECORD.match(name)
                if supervisor_record and _alive(int(supervisor_record["pid"])):
                    continue
                if supervisor_record or INTERRUPTED_WRITE.match(name):
                    try:
                        os.unlink(name, dir_fd=dir_fd)
                    except FileNotFoundError:
                        continue
                    removed.append(root / folder / name)
    finally:
        os.close(root_fd)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_json_atomic(path: Path, value: Any, *, inside: Path | None = None, durable: bool = True,
                      compact: bool = False) -> None:
    """Write ``value`` as JSON with :func:`write_atomic`: indented, or on one line with ``compact`` (for large
    records only programs read: the indenting encoder is pure Python, the compact one C, 10 times faster)."""
    text = json.dumps(value, separators=(",", ":"), sort_keys=True) if compact else json.dumps(
        value, indent=2, sort_keys=True)
    write_atomic(path, text + "\n", inside=inside, durable=durable)


def append_inside(path: Path, data: bytes, inside: Path, *, on_new_line: bool = False) -> None:
    """Append ``data`` to ``path`` (created if missing), never through a link: the final name must not be a symlink
    and its directory must be inside ``inside``.

    Args:
        on_new_line: start ``data`` on a line of its own (after a torn last line left by a crash mid-append).

    Raises:
        OutsideWorkspace: ``path`` is a symlink or not a regular file, or its directory is outside ``inside``.
        OSError: the write failed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    dir_fd = open_dir_inside(inside, path.parent)
    try:
        try:
            fd = os.open(path.name, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                         dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise OutsideWorkspace(f"{path} is a symlink") from None
            raise
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise OutsideWorkspace(f"{path} is not a regular file")
            if on_new_line and info.st_size > 0 and os.pread(fd, 1, info.st_size - 1) != b"\n":
                data = b"\n" + data
            os.write(fd, data)
        finally:
            os.close(fd)
    finally:
        os.close(dir_fd)


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
