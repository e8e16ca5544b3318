"""Workspace paths: where coord keeps its files, and the rule that plan paths stay inside the workspace."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
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
    lexically_inside(relative)
    root = workspace.resolve()
    try:
        resolved = (root / relative).resolve()
    except (RuntimeError, OSError) as exc:  # RuntimeError: a symlink loop (Python 3.11's resolve)
        raise OutsideWorkspace(f"{relative!r} cannot be resolved: {_loop_or(exc)}") from None
    if not resolved.is_relative_to(root):
        raise OutsideWorkspace(f"{relative!r} resolves outside the workspace")
    return resolved


def lexically_inside(relative: str) -> str:
    """Check ``relative`` names a place inside the workspace by its text alone (no filesystem access): not empty,
    not absolute, no NUL, no ``..`` that climbs out. Returns it normalized (``a/./b`` -> ``a/b``).

    Links are checked where the file is opened (:func:`open_inside`), never ahead of time: a worker can change
    them in between.

    Raises:
        OutsideWorkspace: the path leaves the workspace or is not usable.
    """
    if not relative or "\x00" in relative:
        raise OutsideWorkspace(f"{relative!r} is not a usable path")
    if os.path.isabs(relative):
        raise OutsideWorkspace(f"{relative!r} is absolute; paths must be relative to the workspace")
    normalized = os.path.normpath(relative)
    if normalized == ".." or normalized.startswith("../"):
        raise OutsideWorkspace(f"{relative!r} resolves outside the workspace")
    return normalized


def _loop_or(exc: BaseException) -> str:
    if isinstance(exc, RuntimeError) or getattr(exc, "errno", None) == errno.ELOOP:
        return "a symlink loop"
    return getattr(exc, "strerror", None) or str(exc)


def _opened_path(fd: int) -> Path:
    """Where an open file really is (``/proc/self/fd``): checked after opening, so no link can change meanwhile."""
    return Path(os.readlink(f"/proc/self/fd/{fd}"))


def open_inside(root: Path, path: Path, flags: int = os.O_RDONLY, mode: int = 0o644) -> int:
    """Open ``path`` (absolute, or relative to ``root``) and return the descriptor, refusing a file that, links
    followed, is not inside ``root``: the check is made on the open descriptor, so it holds for what is read or
    written even if a worker swaps a link a moment later. A FIFO or device is refused too (it could block).

    Args:
        root: the directory the file must stay in (the workspace).
        path: the file.
        flags: ``os.open`` flags; ``O_CLOEXEC`` and ``O_NONBLOCK`` are added (a FIFO never blocks the open).
        mode: permissions of a file created.

    Raises:
        OutsideWorkspace: the file is outside ``root``, a link loop, or not a regular file; its message is the
            reason alone (``resolves outside the workspace``), for the caller to put after the file's name.
        OSError: it cannot be opened (missing, permissions).
    """
    target = path if path.is_absolute() else root / path
    try:
        fd = os.open(target, flags | os.O_CLOEXEC | os.O_NONBLOCK, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OutsideWorkspace("is a symlink loop") from None
        raise
    try:
        if not _opened_path(fd).is_relative_to(root.resolve()):
            raise OutsideWorkspace("resolves outside the workspace")
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OutsideWorkspace("is not a regular file")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_dir_inside(root: Path, path: Path) -> int:
    """Open directory ``path`` (links followed) and return its descriptor, refusing one outside ``root``.

    Files are then created with ``dir_fd=`` so they land in this very directory, wherever its path points later.

    Raises:
        OutsideWorkspace: the directory is outside ``root`` or a link loop.
        OSError: it cannot be opened.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OutsideWorkspace(f"{path} is a symlink loop") from None
        raise
    if not _opened_path(fd).is_relative_to(root.resolve()):
        os.close(fd)
        raise OutsideWorkspace(f"{path} resolves outside the workspace")
    return fd


def state_home() -> Path:
    """Where coord keeps the state of every workspace: ``$COORD_STATE_HOME``, else ``$XDG_STATE_HOME/coord``,
    else ``~/.local/state/coord`` (the XDG base directory for state that survives reboots)."""
    if os.environ.get("COORD_STATE_HOME"):
        return Path(os.environ["COORD_STATE_HOME"])
    xdg = os.environ.get("XDG_STATE_HOME")
    return (Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".local" / "state") / "coord"


class WorkspacePaths:
    """Where coord keeps its files for one workspace (docs/design.md §5).

    Two places, on purpose. The authoritative state — the SQLite store, the workspace lock and its holder, the
    plan snapshots — lives in a state directory OUTSIDE the workspace (``state_dir``), where a worker, whose
    writable tree is the workspace, cannot delete, replace or link it (``rm -rf tmp``, ``git clean -fdx``). The
    workspace's ``tmp/`` keeps what people read: the attempt folders with their logs and evidence,
    ``events.jsonl`` and ``worker-pids.txt`` (mirrors the store can rebuild), crash logs.
    """

    def __init__(self, workspace: Path) -> None:
        self.workspace = workspace.resolve()
        self.tmp = self.workspace / "tmp"
        digest = hashlib.sha256(str(self.workspace).encode()).hexdigest()[:16]
        self.state_dir = state_home() / f"{self.workspace.name or 'root'}-{digest}"
        """``~/.local/state/coord/<workspace name>-<16 hex of sha256(workspace path)>``."""
        self.db = self.state_dir / "coord.db"
        self.lock = self.state_dir / "coord.lock"
        self.lock_info = self.state_dir / "lock.info"
        self.crash_dir = self.tmp / "crashes"

    def ensure_state_dir(self) -> Path:
        """Create the state directory (owner-only) and record which workspace it belongs to; returns it.

        Raises:
            OSError: it cannot be created.
        """
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        marker = self.state_dir / "workspace"
        if not marker.exists():
            marker.write_text(str(self.workspace) + "\n", encoding="utf-8")
        return self.state_dir

    def plan_dir(self, plan_id: str) -> Path:
        return self.tmp / plan_id

    def events_file(self, plan_id: str) -> Path:
        return self.plan_dir(plan_id) / "events.jsonl"

    def pid_audit_file(self, plan_id: str) -> Path:
        return self.plan_dir(plan_id) / "worker-pids.txt"

    def attempt_dir(self, plan_id: str, phase_id: str, number: int) -> Path:
        """The attempt folder people read (``tmp/PLAN/P07/N``): its log, prompt, evidence, summary."""
        return self.plan_dir(plan_id) / phase_id / str(number)

    def records_dir(self, plan_id: str, phase_id: str, number: int) -> Path:
        """Where an attempt's own records live, out of its worker's reach: ``spec.json``, and the supervisor's
        ``identity.json``, ``exit.json`` and ``supervisor.log`` (copies of the first two also go to the attempt
        folder, for people)."""
        return self.records_phase_dir(plan_id, phase_id) / str(number)

    def records_phase_dir(self, plan_id: str, phase_id: str) -> Path:
        return self.state_dir / "attempts" / plan_id / phase_id

    def socket_path(self) -> Path:
        """The control socket; kept short because AF_UNIX paths are limited to 108 bytes."""
        base = Path(os.environ.get("COORD_RUNTIME_DIR") or tempfile.gettempdir()) / f"coord-{os.getuid()}"
        digest = hashlib.sha256(str(self.workspace).encode()).hexdigest()[:16]
        return base / f"{digest}.sock"

    def fork_server_socket(self, code_digest: str) -> Path:
        """The fork server's socket (``process.fork_server``), beside the control socket: one per workspace and
        per version of the supervisor's code (``code_digest``)."""
        return self.socket_path().with_name(f"{self.socket_path().stem}-fork-{code_digest}.sock")
