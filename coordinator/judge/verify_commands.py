"""coord's own re-run of a phase's verification commands: each in its own session and process group, with a
timeout, its output in ``verify-N.log``, and every process it leaves behind killed.

Who calls it: ``judge.checks.judge``.
"""

from __future__ import annotations

import os
import select
import shlex
import signal
import subprocess
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

import psutil

from coordinator.judge.verdict import CheckResult
from coordinator.paths import OutsideWorkspace, open_inside
from coordinator.plan.model import VerifyCommand
from coordinator.process.local import processes_with_cookie
from coordinator.util.files import read_tail, workspace_relative

TAIL_BYTES = 4096
"""Bytes of a verify command's output kept in the evidence (the whole output stays in its log file)."""

KILL_GRACE = 1.0
"""Seconds between SIGTERM and SIGKILL when a verify command times out."""

VERIFY_COOKIE = "COORD_VERIFY_ID"
"""Environment variable set to a fresh UUID for each verify command, to find escaped descendants afterwards."""


def signal_name(number: int) -> str:
    """``9`` -> ``SIGKILL``; an unknown number -> ``signal 99``."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _wait_exit(process: subprocess.Popen[bytes], timeout: float) -> bool:
    """Wait until ``process`` exits WITHOUT reaping it, so its pid (= process group id) cannot be reused
    before the group is swept. Returns False on timeout."""
    deadline = time.monotonic() + timeout
    fd: int | None = None
    try:
        fd = os.pidfd_open(process.pid)
    except (AttributeError, OSError):
        fd = None
    try:
        while True:
            try:
                info = os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return True
            if info is not None:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if fd is not None:
                select.select([fd], [], [], remaining)
            else:
                time.sleep(min(0.01, remaining))
    finally:
        if fd is not None:
            os.close(fd)


def _kill_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _sweep_cookie(cookie: str) -> list[int]:
    """SIGKILL every process (of any session) still carrying ``COORD_VERIFY_ID=cookie``; return their pids.

    Catches descendants that left the command's process group with ``setsid()``.
    """
    killed = []
    for process in processes_with_cookie(VERIFY_COOKIE, cookie):
        try:
            process.kill()
            killed.append(process.pid)
        except psutil.NoSuchProcess:
            continue
    return killed


def verify_argv(command: VerifyCommand) -> tuple[str, ...]:
    """argv for a verify command: ``shlex.split(run)``, or ``/bin/sh -c run`` / ``bash -c run`` by its ``shell``.

    Raises:
        ValueError: the command line does not split (unbalanced quotes) or is empty.
    """
    if command.shell == "bash":
        return ("bash", "-c", command.run)
    if command.shell is not None:
        return ("/bin/sh", "-c", command.run)
    argv = tuple(shlex.split(command.run))
    if not argv:
        raise ValueError("empty command")
    return argv


NO_OUTPUT_EXITS = (0, 1)
"""Exit codes ``expect: no-output`` accepts: 0, and 1, which ``grep``/``rg`` give when nothing matches."""


def _meets_expectation(expect: str, rc: int, log_path: Path) -> tuple[bool, str]:
    """Whether exit code ``rc`` (and, for ``no-output``, the log's content) meets ``expect``; and how to say it."""
    if expect == "pass":
        return rc == 0, "pass"
    if expect == "fail":
        return rc > 0, "fail"
    try:
        with open(log_path, "rb") as log:
            # The log holds stdout and stderr together; whitespace-only output is no output.
            printed = bool(log.read(TAIL_BYTES * 16).strip())
    except OSError:
        printed = True  # not readable: nothing proves it was silent
    if rc in NO_OUTPUT_EXITS and printed:
        return False, "no output, and it printed some"
    return rc in NO_OUTPUT_EXITS and not printed, "no output, exit 0 or 1"


def run_verify(
    command: VerifyCommand,
    index: int,
    *,
    workspace: Path,
    workdir: Path,
    attempt_dir: Path,
    env: Mapping[str, str] | None = None,
) -> CheckResult:
    """Re-run one verify command and judge it against its ``expect``.

    The command runs in ``workdir`` with stdin from /dev/null, in its own session and process group, output
    (stdout and stderr) to ``attempt_dir/verify-INDEX.log``. At ``command.timeout`` seconds the whole group gets
    SIGTERM, then SIGKILL after :data:`KILL_GRACE`; a timeout fails. Leftover group members and descendants that
    escaped with ``setsid()`` are killed when the command ends, however it ends.

    Args:
        command: the plan's verify command.
        index: its 0-based position in ``phase.verify`` (check name ``verify[INDEX]``).
        workspace: absolute workspace root (paths in the result are relative to it).
        workdir: absolute directory to run in.
        attempt_dir: absolute attempt folder for the log.
        env: variables added to coord's environment.

    Returns:
        A CheckResult with argv, exit code and the output tail.
    """
    name = f"verify[{index}]"
    shown = command.shown
    log_path = Path(attempt_dir) / f"verify-{index}.log"
    log_shown = workspace_relative(log_path, workspace)
    try:
        argv = verify_argv(command)
    except ValueError as exc:
        return CheckResult(name, "fail", f"verification {shown} cannot be parsed: {exc}")
    cookie = uuid.uuid4().hex
    full_env = {**os.environ, **(env or {}), VERIFY_COOKIE: cookie}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    timed_out = False
    try:
        log_fd = open_inside(workspace, log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW)
    except (OSError, OutsideWorkspace) as exc:  # the attempt folder was deleted or linked away by the worker
        return CheckResult(name, "fail", f"verification {shown} was not run: its log {log_shown} cannot be "
                           f"opened ({exc})", path=log_shown, argv=argv)
    with os.fdopen(log_fd, "wb") as log:
        try:
            process = subprocess.Popen(
                argv, cwd=workdir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=full_env, start_new_session=True,
            )
        except OSError as exc:
            log.write(f"coord: cannot start {argv[0]}: {exc}\n".encode())
            return CheckResult(name, "fail", f"verification {shown} could not start: {exc}", path=log_shown,
                               argv=argv)
        try:
            if not _wait_exit(process, command.timeout):
                timed_out = True
                _kill_group(process.pid, signal.SIGTERM)
                _kill_group(process.pid, signal.SIGCONT)
                if not _wait_exit(process, KILL_GRACE):
                    _kill_group(process.pid, signal.SIGKILL)
        finally:
            # The leader is exited but unreaped here, so its pid still names only this group.
            _kill_group(process.pid, signal.SIGKILL)
            rc = process.wait()
            _sweep_cookie(cookie)
    tail = read_tail(log_path, TAIL_BYTES, shown_as=log_shown)
    if timed_out:
        detail = f"verification {shown} timed out after {command.timeout:g} s"
        return CheckResult(name, "fail", detail, path=log_shown, argv=argv, output_tail=tail)
    if rc < 0:
        outcome = f"was killed by {signal_name(-rc)}"
    else:
        outcome = f"exited {rc}"
    ok, expected = _meets_expectation(command.expect, rc, log_path)
    detail = f"verification {shown} {outcome} (expected {expected})"
    return CheckResult(name, "pass" if ok else "fail", detail, path=log_shown, argv=argv,
                       exit_code=rc, output_tail=tail)


