"""What the supervisor reads of ``/proc`` and of its children: process identity, the attempt's processes, reaping,
signal names, and the signal wake-up pipe.

Used by the supervisor (``process/supervisor.py``), which loads this file by its path when it runs as a script:
like the supervisor it must import nothing but the standard library.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # not typing's (see supervisor.py): mypy reads this as True
if TYPE_CHECKING:
    import signal
else:
    import _signal as signal  # signal itself imports enum


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (field 3, the state, first), or None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            data = handle.read()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    return data[data.rindex(")") + 2 :].split()


def start_ticks(pid: int) -> int | None:
    """Field 22 of ``/proc/<pid>/stat``: start time in clock ticks since boot (stable identity, unlike wall time)."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields is not None else None


def boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return "unknown"


def pids() -> list[int]:
    """Every pid ``/proc`` lists now."""
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def cookie_holders(cookie_name: str, attempt_id: str) -> list[int]:
    """Pids (other than ours) whose environment carries ``cookie_name=attempt_id`` (the attempt's cookie)."""
    needle = f"{cookie_name}={attempt_id}".encode()
    found = []
    me = os.getpid()
    for pid in pids():
        if pid == me:
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                if needle in handle.read().split(b"\0"):
                    found.append(pid)
        except OSError:
            continue
    return found


def group_members(pgid: int) -> list[int]:
    members = []
    for pid in pids():
        try:
            if os.getpgid(pid) == pgid:
                members.append(pid)
        except OSError:
            continue
    return members


def command_name(pid: int) -> str:
    """``/proc/<pid>/comm`` (the program name, at most 15 characters), or "?" once the process is gone."""
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as handle:
            return handle.read().strip() or "?"
    except OSError:
        return "?"


def start_ticks_if_running(pid: int) -> int | None:
    """``start_ticks`` of a process that is not a zombie (one read of ``/proc/<pid>/stat``), else None."""
    fields = _stat_fields(pid)
    return None if fields is None or fields[0] in ("Z", "X") else int(fields[19])


def is_zombie(pid: int) -> bool:
    """True for a zombie, or a process that is gone."""
    fields = _stat_fields(pid)
    return fields is None or fields[0] in ("Z", "X")


def children_of(parent: int) -> list[int]:
    """Pids whose parent is ``parent`` (for a subreaper: its orphaned descendants too)."""
    found = []
    for pid in pids():
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
                data = handle.read()
        except OSError:
            continue
        if int(data[data.rindex(")") + 2 :].split()[1]) == parent:
            found.append(pid)
    return found


def reap_children() -> None:
    """Collect the exit status of dead children (subreaped orphans included) so none stays a zombie."""
    for pid in children_of(os.getpid()):
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


def no_children_left() -> bool:
    """Reap dead children; True when none is left at all (only call after the worker's own status is taken)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return True
        if pid == 0:
            return False


def signal_name(number: int) -> str:
    """``9`` -> ``SIGKILL`` (what ``signal.Signals(9).name`` says, without importing ``enum``)."""
    names = {getattr(signal, name): name for name in dir(signal)
             if name.startswith("SIG") and not name.startswith(("SIG_", "SIGRT")) and name not in ("SIGIOT", "SIGPOLL",
                                                                                                  "SIGCLD")}
    return names.get(number, f"SIG{number}")


def drain(fd: int) -> None:
    """Empty a non-blocking pipe (the signal wake-up pipe: its bytes only say that a signal came)."""
    try:
        while os.read(fd, 4096):
            pass
    except (BlockingIOError, InterruptedError):
        pass
