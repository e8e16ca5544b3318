"""Protected files: what a worker must not change, hashed before it starts and compared after it ends.

Who calls it: the engine snapshots a phase's ``protected`` patterns into ``protected.json`` in the attempt folder
right before the worker starts; ``checks.judge`` compares that snapshot with the files as they are after the
worker ended. This catches the classic way a worker "passes" — editing, skipping or deleting the tests it was
asked to satisfy — which re-running the verification commands alone cannot see.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

MAX_FILES = 20_000
"""Files hashed per snapshot at most; beyond it the snapshot says it is incomplete rather than run for minutes."""


def snapshot(workspace: Path, patterns: Iterable[str]) -> dict[str, str]:
    """Hash every file matching ``patterns``.

    Args:
        workspace: absolute workspace root; patterns are relative to it (``Path.glob`` syntax, ``**`` allowed).
        patterns: the phase's ``protected`` globs (the plan loader keeps them inside the workspace).

    Returns:
        Workspace-relative POSIX path -> ``sha256:<hex>`` of the content, or ``symlink:<target>`` for a link
        (never followed, so a link out of the workspace is not read). Files under ``.git`` are skipped.

    Raises:
        OverflowError: more than ``MAX_FILES`` files match.
    """
    hashes: dict[str, str] = {}
    for pattern in patterns:
        for path in sorted(workspace.glob(pattern)):
            relative = path.relative_to(workspace).as_posix()
            if relative in hashes or ".git" in path.relative_to(workspace).parts:
                continue
            if path.is_symlink():
                hashes[relative] = f"symlink:{os.readlink(path)}"
            elif path.is_file():
                hashes[relative] = _sha256(path)
            else:
                continue
            if len(hashes) > MAX_FILES:
                raise OverflowError(f"more than {MAX_FILES} protected files match {', '.join(patterns)}")
    return hashes


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


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"
