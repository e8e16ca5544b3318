"""The baseline of an attempt: what its evidence files were like right before its worker started.

Who calls it: the engine takes it at launch and writes it to the attempt's records folder (``baseline.json`` in the
state directory, out of the worker's reach; a copy without the other phases' markers goes to the attempt folder
for people and is never read);
``checks.judge`` reads it back. It holds

- the hashes of the phase's ``protected`` files (``judge.protected``), and
- the identity of the report and completion marker files, if they existed: a file left by an earlier attempt, or
  written by another phase's worker before this attempt started, is then not taken as this worker's evidence;
- the identity of the completion marker of every other phase not running at launch, with its attempt count: one
  that changed while that phase launched nothing meanwhile was written by this worker — a forgery, flagged, and
  kept (``FORGED_MARKER`` in that phase's records folder) so that it never counts for the phase it names.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from coordinator.judge import protected
from coordinator.paths import OutsideWorkspace, lexically_inside, open_inside
from coordinator.util.files import read_json, write_json_atomic

BASELINE_FILE = "baseline.json"
FORGED_MARKER = "forged-marker.json"
"""In a phase's records folder: ``{"path", "identity", "by"}`` of a marker for it that another phase's worker
wrote."""


def take(workspace: Path, protected_patterns: tuple[str, ...], evidence_paths: tuple[str, ...],
         other_markers: Mapping[str, tuple[str, int]] | None = None,
         worker_root: Path | None = None) -> dict[str, Any]:
    """The baseline as a JSON object.

    Args:
        workspace: absolute workspace root.
        protected_patterns: the phase's ``protected`` globs.
        evidence_paths: workspace-relative report and marker paths.
        other_markers: phase id -> (workspace-relative marker path, its attempts so far), for the plan's other
            phases that have no attempt under way.
        worker_root: where the worker works, when not in the workspace (its worktree): the protected files and
            the evidence files are taken there; the other phases' markers always in the workspace.

    Returns:
        ``{"protected": {"patterns", "files"} | {"patterns", "error"}, "evidence": {path: identity | None},
        "other_markers": {phase id: [path, identity | None, attempts]}}``; ``protected`` is None for a phase
        without protected files.
    """
    guarded = None
    if protected_patterns:
        try:
            guarded = {"patterns": list(protected_patterns),
                       "files": protected.snapshot(worker_root or workspace, protected_patterns)}
        except (OverflowError, OutsideWorkspace, OSError) as exc:
            guarded = {"patterns": list(protected_patterns), "error": str(exc)}
    others = other_markers or {}
    identities = marker_identities(workspace, {phase_id: path for phase_id, (path, _) in others.items()})
    return {"protected": guarded,
            "evidence": {path: file_identity(worker_root or workspace, path) for path in evidence_paths},
            "other_markers": {phase_id: [path, identities[phase_id], attempts]
                              for phase_id, (path, attempts) in others.items()}}


@functools.cache
def _split(path: str) -> tuple[str, str]:
    """(folder, name) of a marker path; kept, as the same paths are asked about at every launch and end."""
    return os.path.dirname(path), os.path.basename(path)


def marker_identities(workspace: Path, markers: Mapping[str, str]) -> dict[str, list[int] | None]:
    """``file_identity`` of each marker (phase id -> workspace-relative path), at the cost of one directory
    listing per folder they are in and one look at each marker that exists: most do not exist yet, and every launch
    and every end asks about every phase's."""
    by_folder: dict[str, list[tuple[str, str, str]]] = {}
    for phase_id, path in markers.items():
        folder, name = _split(path)
        by_folder.setdefault(folder, []).append((phase_id, path, name))
    identities: dict[str, list[int] | None] = {}
    for folder, entries in by_folder.items():
        try:
            with os.scandir(os.path.join(workspace, folder) if folder else workspace) as listing:
                present = {entry.name for entry in listing}
        except (FileNotFoundError, NotADirectoryError):
            present = set()  # no such folder: none of its markers exists
        except (OSError, ValueError):
            present = None  # unreadable: look at each one (which says None where it cannot)
        for phase_id, path, name in entries:
            if present is not None and name not in present:
                identities[phase_id] = None
            else:
                identities[phase_id] = file_identity(workspace, path)
    return identities


def write(baseline: dict[str, Any], records_dir: Path, attempt_dir: Path, workspace: Path) -> None:
    """Write the authoritative copy to ``records_dir`` and, best effort, one for people to ``attempt_dir``.

    Raises:
        OSError: the authoritative copy could not be written.
    """
    # Compact: it holds a line for every other phase of the plan, and is written at every launch.
    write_json_atomic(records_dir / BASELINE_FILE, baseline, compact=True)
    try:
        # People read the protected files and the evidence; the other phases' markers (a line for each phase of
        # the plan) stay in the authoritative copy alone.
        for_people = {key: value for key, value in baseline.items() if key != "other_markers"}
        write_json_atomic(attempt_dir / BASELINE_FILE, for_people, inside=workspace, durable=False)
    except (OutsideWorkspace, OSError):
        pass  # only the copy for people is lost


def read(records_dir: Path) -> dict[str, Any] | None:
    """The baseline written at launch, or None (an attempt launched by an older coord, or by ``coord exec``)."""
    value = read_json(records_dir / BASELINE_FILE)
    return value if isinstance(value, dict) else None


def file_identity(workspace: Path, relative: str) -> list[int] | None:
    """``[device, inode, ctime_ns, size]`` of a file inside the workspace (links inside it followed), or None when
    it is missing or unreadable. A write, a rename onto it and even ``touch`` change the ctime, and a process
    cannot set it back, so an equal identity means the file was not touched in between."""
    try:
        # Most markers do not exist yet, and every launch looks at every phase's: a missing file is told by one
        # stat, before the checked open that a file found needs.
        os.stat(os.path.join(workspace, relative))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        pass  # the open below says what it is
    try:
        fd = open_inside(workspace, workspace / lexically_inside(relative))
    except (OutsideWorkspace, OSError, ValueError):
        return None
    try:
        info = os.fstat(fd)
    finally:
        os.close(fd)
    return [info.st_dev, info.st_ino, info.st_ctime_ns, info.st_size]


def markers_written_for_others(baseline: dict[str, Any] | None, workspace: Path,
                               attempts_now: Mapping[str, int]) -> list[tuple[str, str, list[int]]]:
    """(phase id, marker path, identity now) of each other phase's completion marker this attempt's worker wrote:
    changed since launch while that phase launched no attempt of its own (``attempts_now``: phase id -> attempts,
    for phases with none under way; a phase missing from it is running, and its marker may be its own)."""
    idle = {phase_id: entry for phase_id, entry in ((baseline or {}).get("other_markers") or {}).items()
            if attempts_now.get(phase_id) == entry[2]}
    identities = marker_identities(workspace, {phase_id: entry[0] for phase_id, entry in idle.items()})
    written = []
    for phase_id, (path, before, _attempts) in idle.items():
        now = identities[phase_id]
        if now is not None and now != before:
            written.append((phase_id, path, now))
    return written


def untouched_since(baseline: dict[str, Any] | None, workspace: Path, relative: str) -> bool:
    """True when ``relative`` existed at launch and is the very same, unwritten file now."""
    if baseline is None:
        return False
    before = (baseline.get("evidence") or {}).get(relative)
    return before is not None and file_identity(workspace, relative) == before
