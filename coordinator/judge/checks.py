"""Judge one attempt from evidence (docs/design.md §9): exit status, report, completion marker, protected files,
verify commands.

Who calls it: the engine, after the supervisor wrote ``exit.json`` and the adapter summarized the log; it stores
``judge(...).to_dict()`` as ``evidence.json`` and renders failed checks into the remediation prompt.

The worker's word is never trusted alone: a report that says PASS only helps if every ``verify`` command, re-run
here by coord, meets its ``expect``. Worker-written files are untrusted input: paths must stay inside the
workspace (a report symlinked to ``/etc/…`` is refused unread), and their text is parsed tolerantly
(``parse_status``) but decided strictly (an unknown status is not a PASS of the marker's own claim).
"""

from __future__ import annotations

import dataclasses
import errno
import os
import re
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coordinator.agents.base import AgentSummary
from coordinator.judge import baseline, protected
from coordinator.judge.report_text import Status, find_placeholders, find_status, names_phase
from coordinator.judge.verdict import CheckResult, Verdict
from coordinator.judge.verify_commands import run_verify, signal_name
from coordinator.paths import OutsideWorkspace, lexically_inside, open_inside
from coordinator.plan.model import Phase
from coordinator.util.files import workspace_relative

MAX_READ_BYTES = 4 * 1024 * 1024
"""Largest report or marker read; the rest is ignored (a worker cannot make coord read a huge file)."""


HANG_DETAILS = {
    "stopped": "stopped by a person",
    "lost": "lost: the worker ended while unobserved and left no exit record",
}


@dataclass(frozen=True)
class JudgeInput:
    """Everything :func:`judge` needs about one finished attempt.

    Attributes:
        workspace: absolute workspace root.
        phase: the phase (its ``verify`` and effective ``checks``).
        workdir: absolute directory verify commands run in (the worker's workdir).
        attempt_dir: absolute attempt folder; ``verify-N.log`` files are written there.
        report_path: workspace-relative report path, already rendered from ``artifacts.report``.
        completed_path: workspace-relative completion marker path, already rendered.
        exit_code: the worker's exit code from ``exit.json``, or None.
        exit_signal: the signal that killed the worker, from ``exit.json``, or None.
        stop_reason: None, or why coord ended the worker: ``hung``, ``stopped`` (by a person), ``lost``; may
            carry its own phrase after a colon (``"hung: still running after 6 poll cycles"``), used verbatim.
        summary: the adapter's summary of the worker log.
        requires_completed_turn: the adapter's ``requires_completed_turn``.
        expected_session: on a resume, the session id that must come back.
        env: extra environment for verify commands (the attempt cookie ``COORD_ATTEMPT_ID`` and friends).
        start_error: why the worker could not be started (``exit.json`` ``start_error``: exec failed), or None.
        leftovers: processes of the attempt still alive after the worker ended, which the supervisor killed
            (``exit.json`` ``stragglers``/``straggler_names``): pid -> program name.
        unkillable: pids that survived SIGKILL (``exit.json`` ``unkillable``), left behind.
        records_dir: the attempt's records folder, holding the baseline taken at launch (``judge.baseline``);
            None when there is none (``coord exec``).
        forged_marker: a completion marker for this phase that another phase's worker wrote
            (``judge.baseline.FORGED_MARKER``: ``path``, ``identity``, ``by``), or None.
        output_disk_full: the filesystem under the worker's output was full when it ended
            (``ExitRecord.output_disk_full``), so a failure is most likely its writes failing.
        git: in a git working tree, what the attempt changed (``git.checkpoints.AttemptChanges.to_dict``), or
            None; it becomes the verdict's ``git`` and the ``changes`` check.
        worker_root: where the worker worked when not in the workspace (its worktree): its report, marker and
            ``protected`` files are judged there, against the launch's baseline taken there (the workspace's
            copies may change with other phases' merges, or hold an earlier attempt's); None: the workspace.
            Verification runs in the workspace either way.
    """

    workspace: Path
    phase: Phase
    workdir: Path
    attempt_dir: Path
    report_path: str
    completed_path: str
    exit_code: int | None
    exit_signal: int | None
    stop_reason: str | None
    summary: AgentSummary
    requires_completed_turn: bool
    expected_session: str | None = None
    env: Mapping[str, str] | None = None
    start_error: str | None = None
    leftovers: Mapping[int, str] | None = None
    unkillable: tuple[int, ...] = ()
    output_disk_full: bool = False
    records_dir: Path | None = None
    forged_marker: Mapping[str, Any] | None = None
    git: Mapping[str, Any] | None = None
    worker_root: Path | None = None

    @property
    def evidence_root(self) -> Path:
        """Where the worker's evidence files are read: its worktree, or the workspace."""
        return self.worker_root or self.workspace


# --------------------------------------------------------------------------------------------------------------
# Individual checks
# --------------------------------------------------------------------------------------------------------------


def _exit_phrase(exit_code: int | None, exit_signal: int | None) -> str:
    """``exit 0``, ``killed by SIGKILL`` or ``no exit status``: the worker's end in a few words."""
    if exit_signal is not None:
        return f"killed by {signal_name(exit_signal)}"
    if exit_code is not None and exit_code < 0:
        return f"killed by {signal_name(-exit_code)}"
    if exit_code is not None:
        return f"exit {exit_code}"
    return "no exit status"


def _stop_detail(stop_reason: str, phase: Phase) -> str:
    """Detail for a worker coord ended: the stop reason's own phrase if it has one, else a standard one."""
    kind = stop_reason.strip()
    if ":" in kind or " " in kind:
        return kind
    if kind == "hung":
        return f"hung: still running after {phase.policy.max_cycles} poll cycles"
    return HANG_DETAILS.get(kind, f"{kind}: the worker was ended by coord")


def check_exit(inp: JudgeInput) -> CheckResult:
    """The ``exit`` check: exit 0, a completed turn if the adapter needs one, not hung/stopped/lost/killed.

    Returns:
        A CheckResult named ``exit`` whose detail says how the worker ended (with the agent's own error message
        when it gave one) and which processes it left behind, if any. Leftovers alone do not fail the check:
        the supervisor killed them, and a worker that starts a helper it forgets is common.
    """
    result = _exit_status(inp)
    note = _leftover_note(inp)
    return dataclasses.replace(result, detail=f"{result.detail}; {note}") if note else result


def _leftover_note(inp: JudgeInput) -> str | None:
    parts = []
    if inp.leftovers:
        named = ", ".join(f"{name} (pid {pid})" for pid, name in sorted(inp.leftovers.items()))
        parts.append(f"killed {len(inp.leftovers)} process(es) it left running: {named}")
    if inp.unkillable:
        parts.append(f"{len(inp.unkillable)} process(es) survived SIGKILL and were left: pids "
                     + ", ".join(str(pid) for pid in inp.unkillable))
    return "; ".join(parts) or None


def _exit_status(inp: JudgeInput) -> CheckResult:
    summary = inp.summary
    error = f": {summary.error}" if summary.error else ""
    code, sig = inp.exit_code, inp.exit_signal
    if sig is None and code is not None and code < 0:
        sig, code = -code, None
    if inp.stop_reason:
        return CheckResult("exit", "fail", _stop_detail(inp.stop_reason, inp.phase), exit_code=code)
    if inp.start_error:
        return CheckResult("exit", "fail", f"the worker did not start: {inp.start_error}", exit_code=code)
    if sig is not None:
        detail = f"killed by {signal_name(sig)}"
        if sig == signal.SIGKILL:
            detail += " (possibly out of memory)"
        return CheckResult("exit", "fail", detail + error, exit_code=code)
    if code is None:
        return CheckResult("exit", "fail", "no exit status recorded for the worker" + error)
    if code != 0:
        if inp.expected_session is not None and summary.session_id is None:
            error += f"; it never resumed session {inp.expected_session} (the agent rejected the resume)"
        if inp.output_disk_full:
            error += (f"; the disk holding its output ({workspace_relative(inp.attempt_dir, inp.workspace)}) was "
                      "full when it ended, so its writes most likely failed (No space left on device)")
        return CheckResult("exit", "fail", f"worker exited {code}{error}", exit_code=code)
    if inp.requires_completed_turn and not summary.completed:
        return CheckResult(
            "exit", "fail", f"worker exited 0 without completing its turn{error}", exit_code=0
        )
    if inp.expected_session is not None and summary.session_id != inp.expected_session:
        return CheckResult(
            "exit", "fail",
            f"resumed session returned thread {summary.session_id or '(none)'}, expected {inp.expected_session}",
            exit_code=0,
        )
    detail = "worker exited 0 with a completed turn" if inp.requires_completed_turn else "worker exited 0"
    return CheckResult("exit", "pass", detail, exit_code=0)


LEFT_OVER = "is left from before this attempt started: this attempt's worker did not write it"


def _read_evidence(workspace: Path, relative: str, what: str, missing: str) -> tuple[str | None, CheckResult | None]:
    """Read a worker-written file inside the workspace, refusing (unread) one that is, links followed, outside it,
    a link loop, or not a regular file — checked on the open file, so a link swapped meanwhile changes nothing.

    Returns:
        (text, None) on success, or (None, failing CheckResult without a name) explaining why not.
    """
    try:
        fd = open_inside(workspace, workspace / lexically_inside(relative))
    except OutsideWorkspace as exc:
        return None, CheckResult("", "fail", f"{what} {relative} {exc}", path=relative)
    except FileNotFoundError:
        return None, CheckResult("", "fail", missing, path=relative)
    except OSError as exc:
        if exc.errno == errno.EISDIR:
            return None, CheckResult("", "fail", f"{what} {relative} is not a regular file", path=relative)
        return None, CheckResult("", "fail", f"{what} {relative} is unreadable: {exc.strerror}", path=relative)
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(MAX_READ_BYTES)
    return data.decode("utf-8", errors="replace"), None


def _named(result: CheckResult, name: str) -> CheckResult:
    return CheckResult(name, result.status, result.detail, path=result.path)


def check_report(workspace: Path, report_path: str, exit_phrase: str = "exit 0", *,
                 left_over: bool = False) -> tuple[CheckResult, Status]:
    """The ``report`` check: the report exists inside the workspace, was written by this attempt's worker and does
    not say FAIL.

    Args:
        workspace: absolute workspace root.
        report_path: workspace-relative report path.
        exit_phrase: how the worker ended, for the "no report at … (exit 0)" detail.
        left_over: the report is the very file that was there before the worker started (``judge.baseline``).

    Returns:
        (CheckResult named ``report``, the status the report states: pass, fail or unknown; unknown also when
        the report could not be read).
    """
    text, problem = _read_evidence(workspace, report_path, "report", f"no report at {report_path} ({exit_phrase})")
    if problem is not None:
        return _named(problem, "report"), "unknown"
    assert text is not None
    if left_over:
        return CheckResult("report", "fail", f"report {report_path} {LEFT_OVER}", path=report_path), "unknown"
    if not text.strip():
        return CheckResult("report", "fail", f"report {report_path} is empty", path=report_path), "unknown"
    status, line = find_status(text)
    if status == "fail":
        return CheckResult("report", "fail", f"report {report_path} says FAIL: {line}", path=report_path), status
    if status == "pass":
        return CheckResult("report", "pass", f"report {report_path} says PASS", path=report_path), status
    return CheckResult("report", "pass", f"report {report_path} exists; status unknown", path=report_path), status


def check_marker(workspace: Path, phase_id: str, completed_path: str, *, left_over: bool = False,
                 forged_by: str | None = None) -> CheckResult:
    """The ``completed`` check: the marker exists, was written by this attempt's worker, names the phase, has no
    placeholders and does not say FAIL.

    Args:
        workspace: absolute workspace root.
        phase_id: the id the marker must name.
        completed_path: workspace-relative marker path.
        left_over: the marker is the very file that was there before the worker started (``judge.baseline``).
        forged_by: the marker is the very file another phase's worker wrote (``"P01 attempt 1"``), or None.

    Returns:
        A CheckResult named ``completed``.
    """
    text, problem = _read_evidence(
        workspace, completed_path, "completion marker", f"no completion marker at {completed_path}"
    )
    if problem is not None:
        return _named(problem, "completed")
    assert text is not None
    where = f"completion marker {completed_path}"
    if forged_by is not None:
        return CheckResult("completed", "fail", f"{where} was written by the worker of {forged_by}, not by this "
                           "phase's", path=completed_path)
    if left_over:
        return CheckResult("completed", "fail", f"{where} {LEFT_OVER}", path=completed_path)
    if not names_phase(text, phase_id):
        return CheckResult("completed", "fail", f"{where} does not name phase {phase_id}", path=completed_path)
    placeholders = find_placeholders(text)
    if placeholders:
        shown = ", ".join(f"`{item}`" for item in placeholders[:3])
        more = f" and {len(placeholders) - 3} more" if len(placeholders) > 3 else ""
        return CheckResult(
            "completed", "fail", f"{where} has unfilled placeholders: {shown}{more}", path=completed_path
        )
    status, line = find_status(text)
    if status == "fail":
        return CheckResult("completed", "fail", f"{where} says FAIL: {line}", path=completed_path)
    said = {"pass": "says PASS", "unknown": "status unknown"}[status]
    return CheckResult("completed", "pass", f"{where} names {phase_id}; {said}", path=completed_path)


# --------------------------------------------------------------------------------------------------------------
# The verdict
# --------------------------------------------------------------------------------------------------------------


def check_protected(inp: JudgeInput, launch_baseline: dict[str, Any] | None) -> CheckResult:
    """The ``protected`` check: the files matching ``phase.protected`` are as they were before the worker started.

    Compares the baseline's snapshot (taken by the engine at launch, ``judge.baseline``) with a new one. Returns
    a failing CheckResult naming every changed, added or deleted file (up to ten).
    """
    record = launch_baseline.get("protected") if launch_baseline is not None else None
    if not isinstance(record, dict):
        return CheckResult("protected", "skipped", "no snapshot of the protected files was taken at launch")
    if record.get("error"):
        return CheckResult("protected", "fail", f"cannot check the protected files: {record['error']}")
    try:
        after = protected.snapshot(inp.evidence_root, inp.phase.protected)
    except (OverflowError, OutsideWorkspace, OSError) as exc:
        return CheckResult("protected", "fail", f"cannot check the protected files: {exc}")
    changed = protected.changes(record.get("files") or {}, after)
    if changed:
        more = f" and {len(changed) - 10} more" if len(changed) > 10 else ""
        return CheckResult("protected", "fail",
                           f"the worker changed protected files: {', '.join(changed[:10])}{more}")
    return CheckResult("protected", "pass", f"{len(after)} protected file(s) unchanged")


_CLAIMED_PATH_RE = re.compile(r"`([\w./-]+\.[A-Za-z0-9]+)`")


def report_text(workspace: Path, relative: str) -> str:
    """The report's text for the ``changes`` check (empty when it cannot be read inside the workspace)."""
    text, _ = _read_evidence(workspace, relative, "report", "")
    return text or ""


def check_changes(inp: JudgeInput, report: str) -> CheckResult:
    """The ``changes`` check, from git: what the attempt changed (``3 file(s) changed, +10 -2: a.py, …``). A
    warning, never a failure, when an impl phase changed nothing or the report names files (as ```path```) the
    attempt did not change though they exist: a worker whose word and work disagree."""
    git = inp.git or {}
    files = [str(item.get("path")) for item in git.get("files") or [] if isinstance(item, dict)]
    shown = ", ".join(files[:8]) + (f" and {len(files) - 8} more" if len(files) > 8 else "")
    span = f"{str(git.get('before', ''))[:10]}..{str(git.get('after', ''))[:10]} "  # `git diff` takes it as is
    detail = span + f"{git.get('stat', f'{len(files)} file(s) changed')}" + (f": {shown}" if files else "")
    work = [path for path in files if path not in (inp.report_path, inp.completed_path)]  # its evidence is not work
    if not work and inp.phase.kind == "impl":
        return CheckResult("changes", "warn", f"{span}an impl attempt that changed no file")
    claimed = {path for path in _CLAIMED_PATH_RE.findall(report)
               if not path.startswith("/") and ".." not in path.split("/") and (inp.evidence_root / path).is_file()}
    unchanged = sorted(path for path in claimed if path not in files and not path.startswith("tmp/")
                       and path != inp.report_path and path != inp.completed_path)
    if unchanged:
        return CheckResult("changes", "warn", f"the report names files this attempt did not change: "
                           f"{', '.join(unchanged[:8])}; it changed {detail}")
    return CheckResult("changes", "pass", detail)


def check_call(call: Mapping[str, Any], attempt_dir: Path, workspace: Path) -> CheckResult:
    """The ``call`` check of an MCP phase, from its worker's call record (``agents.mcp_worker``): pass when the
    tool answered without error; the detail names the tool, the server, the outcome and the time taken."""
    seconds = call.get("call_seconds") if isinstance(call.get("call_seconds"), (int, float)) else call.get("seconds")
    took = f" in {seconds:g} s" if isinstance(seconds, (int, float)) else ""
    shown = f"tool `{call.get('tool')}` of MCP server `{call.get('server')}`"
    passed = call.get("outcome") == "ok"
    detail = f"{shown} answered{took}" if passed else f"{shown}: {call.get('message') or call.get('outcome')}"
    response = call.get("response")
    path = workspace_relative(attempt_dir / str(response), workspace) if isinstance(response, str) else None
    return CheckResult("call", "pass" if passed else "fail", detail, path=path,
                       seconds=float(seconds) if isinstance(seconds, (int, float)) else None)


def judge(inp: JudgeInput) -> Verdict:
    """Run every check in order (exit, report, completed, protected, verify[N]) and return the verdict.

    A check switched off by ``phase.checks`` is recorded as ``off``. If the worker was hung, stopped or lost,
    the later checks are ``skipped`` (its files are incomplete by definition); otherwise all run, so a
    remediation prompt gets the full evidence. A worker whose report says PASS while a verify command fails is
    FAIL with a reason naming the command.

    Args:
        inp: the attempt's facts.

    Returns:
        The Verdict; ``reason`` is the first failing check's detail or "all checks passed".
    """
    checks: list[CheckResult] = []
    launch_baseline = baseline.read(inp.records_dir) if inp.records_dir is not None else None

    def left_over(relative: str) -> bool:
        return baseline.untouched_since(launch_baseline, inp.evidence_root, relative)

    exit_check = check_exit(inp)
    checks.append(exit_check)
    skip = inp.stop_reason is not None
    skipped_detail = f"not checked: {_stop_detail(inp.stop_reason, inp.phase)}" if inp.stop_reason else ""
    off_detail = "switched off by the plan"
    switches = inp.phase.checks

    report_status: Status = "unknown"
    if not switches.report:
        checks.append(CheckResult("report", "off", off_detail, path=inp.report_path))
    elif skip:
        checks.append(CheckResult("report", "skipped", skipped_detail, path=inp.report_path))
    else:
        result, report_status = check_report(
            inp.evidence_root, inp.report_path, _exit_phrase(inp.exit_code, inp.exit_signal),
            left_over=left_over(inp.report_path),
        )
        checks.append(result)

    if not switches.completed:
        checks.append(CheckResult("completed", "off", off_detail, path=inp.completed_path))
    elif skip:
        checks.append(CheckResult("completed", "skipped", skipped_detail, path=inp.completed_path))
    else:
        forged = inp.forged_marker
        forged_by = str(forged.get("by")) if forged is not None and forged.get("identity") == baseline.file_identity(
            inp.evidence_root, inp.completed_path) else None
        checks.append(check_marker(inp.evidence_root, inp.phase.id, inp.completed_path,
                                   left_over=left_over(inp.completed_path), forged_by=forged_by))

    if inp.git is not None and not skip:
        checks.append(check_changes(inp, report_text(inp.evidence_root, inp.report_path)))

    if inp.summary.call is not None and not skip:
        checks.append(check_call(inp.summary.call, inp.attempt_dir, inp.workspace))

    if inp.phase.protected:
        if skip:
            checks.append(CheckResult("protected", "skipped", skipped_detail))
        else:
            checks.append(check_protected(inp, launch_baseline))

    for index, command in enumerate(inp.phase.verify):
        name = f"verify[{index}]"
        if not switches.verify:
            checks.append(CheckResult(name, "off", off_detail))
        elif skip:
            checks.append(CheckResult(name, "skipped", skipped_detail))
        else:
            result = run_verify(command, index, workspace=inp.workspace, workdir=inp.workdir,
                                attempt_dir=inp.attempt_dir, env=inp.env)
            if result.status == "fail" and report_status == "pass":
                result = CheckResult(result.name, result.status, f"worker reported PASS; {result.detail}",
                                     path=result.path, argv=result.argv, exit_code=result.exit_code,
                                     output_tail=result.output_tail)
            checks.append(result)

    worker_failures = inp.summary.failed_commands
    contradicted = report_status == "pass" or inp.summary.completed
    for index, failure in enumerate(worker_failures):
        checks.append(CheckResult(
            f"command[{index}]", "warn",
            ("the worker claimed success, but this command it ran failed: " if contradicted
             else "a command the worker ran failed: ") + failure.describe(),
            argv=(failure.command,), exit_code=failure.exit_code, output_tail=failure.output_tail or None))

    failed = [check for check in checks if check.status == "fail"]
    reason = failed[0].detail if failed else "all checks passed"
    if worker_failures:
        more = f" and {len(worker_failures) - 1} more" if len(worker_failures) > 1 else ""
        reason += f"; the worker's commands failed: {worker_failures[-1].describe()}{more}"
    return Verdict(passed=not failed, reason=reason, checks=tuple(checks),
                   git=dict(inp.git) if inp.git is not None else None)
