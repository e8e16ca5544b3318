"""Workspace paths: where coord keeps its files, and the rule that plan paths stay inside the workspace."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


class OutsideWorkspace(ValueError):
    """A path resolves outside the workspace (absolute, ``..`` or a symlink that leaves it)."""


def inside_workspace(workspace: Path, relative: str) -> Path:
    """Resolve ``relative`` against ``workspace`` and check it stays inside.

    Args:
        workspace: absolute workspace root.
        relative: a path from a plan or a template (untrusted).

    Returns:
        The resolved absolute path (symlinks followed).

    Raises:
        OutsideWorkspace: the path is absolute or resolves outside the workspace.
    """
    if not relative or "\x00" in relative:
        raise OutsideWorkspace(f"{relative!r} is not a usable path")
    if os.path.isabs(relative):
        raise OutsideWorkspace(f"{relative!r} is absolute; paths must be relative to the workspace")
    root = workspace.resolve()
    resolved = (root / relative).resolve()
    if not resolved.is_relative_to(root):
        raise OutsideWorkspace(f"{relative!r} resolves outside the workspace")
    return resolved


class WorkspacePaths:
    """Where coord keeps its runtime files for one workspace (docs/design.md §5)."""

    def __init__(self, workspace: Path) -> None:
        self.workspace = workspace.resolve()
        self.tmp = self.workspace / "tmp"
        self.db = self.tmp / "coord.db"
        self.lock = self.tmp / "coord.lock"
        self.lock_info = self.tmp / "lock.info"
        self.crash_dir = self.tmp / "crashes"

    def plan_dir(self, plan_id: str) -> Path:
        return self.tmp / plan_id

    def events_file(self, plan_id: str) -> Path:
        return self.plan_dir(plan_id) / "events.jsonl"

    def pid_audit_file(self, plan_id: str) -> Path:
        return self.plan_dir(plan_id) / "worker-pids.txt"

    def attempt_dir(self, plan_id: str, phase_id: str, number: int) -> Path:
        return self.plan_dir(plan_id) / phase_id / str(number)

    def socket_path(self) -> Path:
        """The control socket; kept short because AF_UNIX paths are limited to 108 bytes."""
        base = Path(os.environ.get("COORD_RUNTIME_DIR") or tempfile.gettempdir()) / f"coord-{os.getuid()}"
        digest = hashlib.sha256(str(self.workspace).encode()).hexdigest()[:16]
        return base / f"{digest}.sock"
