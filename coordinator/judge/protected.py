"""Protected files: what a worker must not change, hashed before it starts and compared after it ends.

Who calls it: the engine takes a snapshot of a phase's ``protected`` patterns (``judge.baseline``) right before the
worker starts, into the attempt's records folder out of the worker's reach; ``checks.judge`` compares it with the
files as they are after the worker ended. This catches the classic way a worker "passes" — editing, skipping or
deleting the tests it was asked to satisfy — which re-running the verification commands alone cannot see.

The workspace is walked through directory descriptors and no link is followed: a protected path that is a link
is recorded as the link (its target text), so neither a link out of the workspace nor one swapped in meanwhile
makes coord read a file elsewhere.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

from coordinator.paths import open_dir_inside

MAX_FILES = 20_000
"""Files hashed per snapshot at most; beyond it the snapshot says it is incomplete rather than run for minutes."""

SKIPPED_DIRS = frozenset({".git"})
"""Folders never walked: git's own files change under every commit, and a worker's ``git`` use is not an edit."""


def snapshot(workspace: Path, patterns: Iterable[str]) -> dict[str, str]:
    """Hash every file matching ``patterns``.

    Args:
        workspace: absolute workspace root; patterns are relative to it, ``/``-separated: ``*``, ``?`` and
            ``[…]`` match within one path segment, ``**`` any number of segments (a trailing ``**`` everything
            below); hidden files match like any other.
        patterns: the phase's ``protected`` globs (the plan loader keeps them inside the workspace).

    Returns:
        Workspace-relative POSIX path -> ``sha256:<hex>`` of the content, or ``symlink:<target>`` for a link
        (never followed). Files under ``.git`` are skipped.

    Raises:
        OverflowError: more than ``MAX_FILES`` files match.
        OutsideWorkspace: the workspace itself, or a pattern's fixed leading folder, resolves outside it.
    """
    hashes: dict[str, str] = {}
    for pattern in patterns:
        parts = [part for part in pattern.split("/") if part not in ("", ".")]
        fixed = 0
        while fixed < len(parts) - 1 and not _has_magic(parts[fixed]):
            fixed += 1
        base = "/".join(parts[:fixed])
        for relative, entry in _walk(workspace, base):
            if relative in hashes or not _matches(relative.split("/"), parts):
                continue
            hashes[relative] = entry
            if len(hashes) > MAX_FILES:
                raise OverflowError(f"more than {MAX_FILES} protected files match {', '.join(patterns)}")
    return dict(sorted(hashes.items()))


def changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """What differs between two snapshots, one entry per file: ``tests/test_x.py (changed)``, ``(deleted)``,
    ``(added)``; sorted by path, empty when nothing changed."""
    found = []
    for path in sorted(set(before) | set(after)):
        if path not in after:
            found.append(f"{path} (deleted)")
        elif path not in before:
            found.append(f"{path} (added)")
        elif before[path] != after[path]:
            found.append(f"{path} (changed)")
    return found


def _has_magic(part: str) -> bool:
    return any(char in part for char in "*?[")


def _matches(path: list[str], pattern: list[str]) -> bool:
    """Whether path segments match pattern segments, ``**`` standing for zero or more segments."""
    if not pattern:
        return not path
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        if not rest:
            return bool(path)
        return any(_matches(path[skip:], rest) for skip in range(len(path) + 1))
    return bool(path) and fnmatch.fnmatchcase(path[0], head) and _matches(path[1:], rest)


def _walk(workspace: Path, base: str) -> Iterator[tuple[str, str]]:
    """(workspace-relative path, hash entry) of every regular file and link under ``base``, through directory
    descriptors; below ``base`` no link is followed. A missing ``base`` yields nothing.

    Raises:
        OutsideWorkspace: ``base`` leads out of the workspace (the files the person protected cannot be checked).
    """
    top = workspace / base if base else workspace
    try:
        top_fd = open_dir_inside(workspace, top)  # a pattern's fixed folder may be a link, if it stays inside
    except (FileNotFoundError, NotADirectoryError):
        if base and os.path.isfile(top) and not os.path.islink(top):
            parent_fd = open_dir_inside(workspace, top.parent)
            try:
                entry = _entry(parent_fd, top.name)
            finally:
                os.close(parent_fd)
            if entry is not None:
                yield base, entry
        return
    try:
        for folder, dirs, files, dir_fd in os.fwalk(".", dir_fd=top_fd, follow_symlinks=False):
            prefix = "/".join(part for part in (base, folder.removeprefix(".").strip("/")) if part)
            dirs[:] = [name for name in dirs if name not in SKIPPED_DIRS]
            for name in [*dirs, *files]:
                entry = _entry(dir_fd, name)
                if entry is not None:
                    yield f"{prefix}/{name}" if prefix else name, entry
    finally:
        os.close(top_fd)


def _entry(dir_fd: int, name: str) -> str | None:
    """The hash entry of ``name`` in the directory open as ``dir_fd``: a link's target, a regular file's sha256,
    None for anything else (a folder, FIFO, device, or a file gone meanwhile)."""
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISLNK(info.st_mode):
            return f"symlink:{os.readlink(name, dir_fd=dir_fd)}"
        if not stat.S_ISREG(info.st_mode):
            return None
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    digest = hashlib.sha256()
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):  # swapped for a FIFO since the stat
            return None
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"
