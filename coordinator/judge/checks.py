"""Judge one attempt from evidence (DESIGN section 7): exit status, report, completion marker, verify commands.

Who calls it: the engine, after the supervisor wrote ``exit.json`` and the adapter summarized the log; it stores
``judge(...).to_dict()`` as ``evidence.json`` and renders failed checks into the remediation prompt.

The worker's word is never trusted alone: a report that says PASS only helps if every ``verify`` command, re-run
here by coord, meets its ``expect``. Worker-written files are untrusted input: paths must stay inside the
workspace (a report symlinked to ``/etc/…`` is refused unread), and their text is parsed tolerantly
(``parse_status``) but decided strictly (an unknown status is not a PASS of the marker's own claim).
"""

from __future__ import annotations

import dataclasses
import os
import re
import select
import shlex
import signal
import subprocess
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import psutil

from coordinator.agents.base import AgentSummary
from coordinator.judge import protected
from coordinator.judge.verdict import CheckResult, Verdict
from coordinator.paths import OutsideWorkspace, inside_workspace
from coordinator.plan.model import Phase, VerifyCommand
from coordinator.util.files import read_json

Status = Literal["pass", "fail", "unknown"]

PROTECTED_SNAPSHOT = "protected.json"
"""Attempt-folder file holding the hashes of the phase's protected files, taken right before the worker started."""

TAIL_BYTES = 4096
"""Bytes of a verify command's output kept in the evidence (the whole output stays in its log file)."""

MAX_READ_BYTES = 4 * 1024 * 1024
"""Largest report or marker read; the rest is ignored (a worker cannot make coord read a huge file)."""

KILL_GRACE = 1.0
"""Seconds between SIGTERM and SIGKILL when a verify command times out."""

VERIFY_COOKIE = "COORD_VERIFY_ID"
"""Environment variable set to a fresh UUID for each verify command, to find escaped descendants afterwards."""

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


# --------------------------------------------------------------------------------------------------------------
# Status lines
# --------------------------------------------------------------------------------------------------------------

_PASS_WORDS = frozenset({
    "PASS", "PASSED", "PASSES", "PASSING", "SUCCESS", "SUCCEEDED", "SUCCESSFUL", "COMPLETE", "COMPLETED", "DONE",
    "OK", "VERIFIED", "GREEN", "APPROVED",
})
_FAIL_WORDS = frozenset({
    "FAIL", "FAILS", "FAILED", "FAILING", "FAILURE", "BLOCKED", "PARTIAL", "RESET_FOR_REDO", "INCOMPLETE",
    "ERROR", "ERRORS", "BROKEN", "REJECTED",
})
_OUTCOME_WORDS: dict[str, Status] = {
    "PASS": "pass", "PASSED": "pass", "FAIL": "fail", "FAILED": "fail", "BLOCKED": "fail", "PARTIAL": "fail",
}
"""Words that judge a checklist item when written after a dash (``- Guard tests pass – PASS.``)."""
_PASS_MARKS = ("✅", "✔", "☑", "🟢")
_FAIL_MARKS = ("❌", "✗", "✘", "🔴", "⛔")

_KEY = r"(?:(?:final|overall|phase|verification|worker)\s+)?(?:status|verdict|result|outcome)"
# The key may be quoted: JSON status files (`"status": "pass"`, old `workers/phase-NN.json`) use the same words.
_KEY_LINE_RE = re.compile(rf"^[{{,\s]*[\"']?(?P<key>{_KEY})[\"']?\s*:\s*(?P<value>.*)$", re.IGNORECASE)
_KEY_HEADING_RE = re.compile(rf"^#{{1,6}}\s*(?P<key>{_KEY})\s*:?\s*$", re.IGNORECASE)
# A heading that carries its value without a colon: `## Verification Result **PASS**`.
_KEY_HEADING_VALUE_RE = re.compile(rf"^#{{1,6}}\s*(?P<key>{_KEY})\s*:?\s+(?P<value>\S.*)$", re.IGNORECASE)
# `- Guard tests pass – PASS.` / `- All added tests still red – Blocked by …` (`## Checklist Outcomes` in reports).
_OUTCOME_ITEM_RE = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+(?!\[)(?P<item>.*?)\s+[–—-]\s+(?P<value>\S.*)$")
_LEAD_RE = re.compile(r"^(?:[#>\s]+|[-*+]\s+|\d+[.)]\s+)+")
_FIRST_WORD_RE = re.compile(r"[A-Za-z_]+")
_AS_EXPECTED_RE = re.compile(r"\bas expected\b", re.IGNORECASE)
_NEGATION_RE = re.compile(r"(?:\b(?:not|never)|n't)\s+(?:\w+\s+){0,2}as expected|\bunexpected", re.IGNORECASE)
_WITH_FAILURES_RE = re.compile(r"\bwith\s+(?:[1-9]\d*\s+)?(?:failures?|errors?|failing)\b", re.IGNORECASE)
# A red (TDD) phase reports its failing tests as the goal: `COMPLETE - RED phase established with 55 failing tests`.
_RED_PHASE_RE = re.compile(r"\bRED\b")
_CHECKLIST_LINE_RE = re.compile(r"^\s*(?:[-*+]\s|\d+[.)]\s|\|)")


def _clean(line: str) -> str:
    """Strip Markdown decoration: emphasis, inline code, heading hashes, quote marks and list bullets."""
    text = line.replace("**", "").replace("__", "").replace("`", "")
    return _LEAD_RE.sub("", text.strip()).strip()


def _classify(value: str) -> Status:
    """Status named by the value of a ``Status:``-like line, from its leading mark or first word only.

    Only the start counts, so ``Result: All 55 tests FAIL (RED phase achieved)`` decides nothing, while
    ``Status: failing as expected (…)`` is a red phase that succeeded by failing.
    """
    text = value.strip().strip("*_ \"',{}")
    if text.startswith(_FAIL_MARKS):
        return "fail"
    if text.startswith(_PASS_MARKS):
        return "pass"
    match = _FIRST_WORD_RE.search(text)
    if match is None or match.start() > 3:
        return "unknown"
    word = match.group(0).upper()
    if word not in _PASS_WORDS | _FAIL_WORDS and "_" in word.strip("_"):
        # Compound JSON values such as `VERIFIED_FIXED`: the first part names the status.
        word = word.strip("_").split("_")[0]
    if word == "NOT":
        rest = _FIRST_WORD_RE.search(text, match.end())
        return "fail" if rest and rest.group(0).upper() in _PASS_WORDS else "unknown"
    if word in _FAIL_WORDS:
        if word.startswith("FAIL") and _AS_EXPECTED_RE.search(text) and not _NEGATION_RE.search(text):
            return "pass"
        return "fail"
    if word in _PASS_WORDS:
        # "Complete with 3 failures" is not a pass ("with 0 failures" is), unless the failures are a red
        # phase's goal ("RED phase established with 55 failing tests", "… failing as expected").
        if not _WITH_FAILURES_RE.search(text):
            return "pass"
        expected = _AS_EXPECTED_RE.search(text) and not _NEGATION_RE.search(text)
        return "pass" if expected or _RED_PHASE_RE.search(text) else "fail"
    return "unknown"


def find_status(text: str) -> tuple[Status, str | None]:
    """Find the verdict a report or marker states, and the line that states it.

    Search order (``real-plans/NOTES.md`` §7 and §10):
    1. ``RESET_FOR_REDO`` anywhere: fail.
    2. Explicit lines ``Status|Verdict|Result|Outcome: VALUE`` (Markdown bold, bullets and headings stripped;
       ``## Verdict`` headings take the next non-empty line as the value). A ``Verdict``, ``Final …`` or
       ``Overall …`` line is the final word: the last such line decides. Otherwise any FAIL line fails, else any
       PASS line passes.
    3. Checklists (list items and table rows): any ❌ fails; ✅ with no ❌ passes. A list item without a mark
       may state its outcome after a dash (``- Guard tests pass – PASS.``, ``- Tests still red – Blocked …``,
       the ``## Checklist Outcomes`` of real worker reports, ``real-plans/NOTES.md`` §8); it counts the same way.
    4. Otherwise unknown (never guessed): unchecked ``- [ ]`` boxes and ``failed`` on a command line decide
       nothing, since a red phase's commands fail on purpose and reports copy template checklists.

    Spellings understood on key lines: ``Status: PASS``, ``**Status**: FAIL - …``, ``**Status:** PASS``,
    ``Result: **PASS**``, ``Verdict: PASS``, ``## Verdict`` + next line, ``## Verification Result **PASS**``,
    ``**Status**: ✅ COMPLETE``, ``Status: COMPLETED``, ``Result: PARTIAL``, ``Status: failing as expected (…)``
    and ``COMPLETE - RED phase established with 55 failing tests`` (red phases), JSON ``"status": "pass"`` and
    ``"status": "VERIFIED_FIXED"``, and ``RESET_FOR_REDO`` anywhere.

    Args:
        text: the file's text.

    Returns:
        (status, deciding line stripped of surrounding whitespace, or None).
    """
    lines = text.splitlines()
    for line in lines:
        if re.search(r"\bRESET_FOR_REDO\b", line):
            return "fail", line.strip()
    final: list[tuple[Status, str]] = []
    other: list[tuple[Status, str]] = []
    index = 0
    while index < len(lines):
        raw = lines[index]
        stripped = raw.replace("**", "").replace("__", "").strip()
        heading = _KEY_HEADING_RE.match(stripped)
        key: str | None = None
        value = ""
        shown = raw.strip()
        inline = _KEY_HEADING_VALUE_RE.match(stripped) if heading is None else None
        if heading:
            key = heading.group("key")
            for follow in lines[index + 1:index + 4]:
                if follow.strip():
                    value = _clean(follow)
                    shown = f"{raw.strip()} {follow.strip()}"
                    break
        elif inline:
            key, value = inline.group("key"), inline.group("value")
        else:
            match = _KEY_LINE_RE.match(_clean(raw))
            if match:
                key, value = match.group("key"), match.group("value")
        index += 1
        if key is None:
            continue
        status = _classify(value)
        if status == "unknown":
            continue
        lowered = key.lower()
        if "verdict" in lowered or lowered.startswith(("final", "overall")):
            final.append((status, shown))
        else:
            other.append((status, shown))
    if final:
        return final[-1]
    for status, shown in other:
        if status == "fail":
            return status, shown
    if other:
        return other[0]
    # Only list items and table rows count as a checklist: a bare "❌ Using X" line is prose (a do/don't list).
    items = [line for line in lines if _CHECKLIST_LINE_RE.match(line)]
    item_status = [(_item_status(line), line.strip()) for line in items]
    fail_line = next((line for status, line in item_status if status == "fail"), None)
    if fail_line is not None:
        return "fail", fail_line
    pass_line = next((line for status, line in item_status if status == "pass"), None)
    if pass_line is not None:
        return "pass", pass_line
    return "unknown", None


def _item_status(line: str) -> Status:
    """Status of one checklist line: a ✅/❌ mark anywhere, else an outcome after a dash (``… – PASS.``)."""
    if any(mark in line for mark in _FAIL_MARKS):
        return "fail"
    if any(mark in line for mark in _PASS_MARKS):
        return "pass"
    outcome = _OUTCOME_ITEM_RE.match(line.replace("**", "").replace("`", ""))
    if outcome is None:
        return "unknown"
    # Only the verdict words themselves: "— error subclass exists" or "— verified absent" describe, not judge.
    word = _FIRST_WORD_RE.match(outcome.group("value").strip("*_ "))
    return _OUTCOME_WORDS.get(word.group(0).upper(), "unknown") if word else "unknown"


def parse_status(text: str) -> Status:
    """Return ``pass``, ``fail`` or ``unknown`` for a report's or marker's text; see :func:`find_status`."""
    return find_status(text)[0]


# --------------------------------------------------------------------------------------------------------------
# Placeholders
# --------------------------------------------------------------------------------------------------------------

_SUBSTITUTION_RE = re.compile(r"^[\s>*+-]*`*\s*(\$\((?!\()[^\n]*)")
_ANGLE_RE = re.compile(
    r"<\s*(?:paste|insert|fill|add|describe|replace|put|your|to[ _-]?be[ _-]?filled|tbd|todo|command output)"
    r"[^<>\n]{0,80}>",
    re.IGNORECASE,
)
_DATE_RE = re.compile(r"YYYY-MM-DD|\bHH:MM\b")


def find_placeholders(text: str) -> list[str]:
    """Unfilled template placeholders in a completion marker, in file order (each at most once).

    Found: a line that *is* a command substitution (``$(npm test … 2>&1)`` where output belonged — a command
    quoted with ``$(date …)`` inside, like ``echo "Start: $(date)"``, is not flagged), ``<paste command
    outputs>``-style angle-bracket prompts and ``<TO_BE_FILLED>``, and the literal ``YYYY-MM-DD`` / ``HH:MM``.

    Returns:
        The placeholder texts, shortened to 60 characters.
    """
    found: list[str] = []

    def add(item: str) -> None:
        item = item.strip()
        item = item if len(item) <= 60 else item[:59] + "…"
        if item not in found:
            found.append(item)

    for line in text.splitlines():
        match = _SUBSTITUTION_RE.match(line)
        if match:
            add(match.group(1).rstrip("`"))
        for angle in _ANGLE_RE.finditer(line):
            add(angle.group(0))
        for date in _DATE_RE.finditer(line):
            add(date.group(0))
    return found


def names_phase(text: str, phase_id: str) -> bool:
    """True when ``text`` mentions ``phase_id`` as a whole id (``P07`` is not named by ``P07a`` or ``P07-V``).

    A ``P``-numbered id is also named by the prose form of real markers: ``P01`` by ``Phase 01`` or ``Phase 1``.
    """
    end = r"(?![A-Za-z0-9_]|-[A-Za-z0-9])"
    if re.search(rf"(?<![A-Za-z0-9]){re.escape(phase_id)}{end}", text):
        return True
    numbered = re.fullmatch(r"[Pp]0*(\d[\w.-]*)", phase_id)
    if numbered:
        prose = rf"\bPhase\s+P?0*{re.escape(numbered.group(1))}{end}"
        return re.search(prose, text, re.IGNORECASE) is not None
    return False


# --------------------------------------------------------------------------------------------------------------
# Individual checks
# --------------------------------------------------------------------------------------------------------------


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _exit_phrase(exit_code: int | None, exit_signal: int | None) -> str:
    """``exit 0``, ``killed by SIGKILL`` or ``no exit status``: the worker's end in a few words."""
    if exit_signal is not None:
        return f"killed by {_signal_name(exit_signal)}"
    if exit_code is not None and exit_code < 0:
        return f"killed by {_signal_name(-exit_code)}"
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
        code, sig = None, -code
    if inp.stop_reason:
        return CheckResult("exit", "fail", _stop_detail(inp.stop_reason, inp.phase), exit_code=code)
    if inp.start_error:
        return CheckResult("exit", "fail", f"the worker did not start: {inp.start_error}", exit_code=code)
    if sig is not None:
        detail = f"killed by {_signal_name(sig)}"
        if sig == signal.SIGKILL:
            detail += " (possibly out of memory)"
        return CheckResult("exit", "fail", detail + error, exit_code=code)
    if code is None:
        return CheckResult("exit", "fail", "no exit status recorded for the worker" + error)
    if code != 0:
        return CheckResult("exit", "fail", f"worker exited {code}{error}", exit_code=code)
    if inp.requires_completed_turn and not summary.completed:
        return CheckResult(
            "exit", "fail", f"worker exited 0 without completing its turn (no turn.completed){error}", exit_code=0
        )
    if inp.expected_session is not None and summary.session_id != inp.expected_session:
        return CheckResult(
            "exit", "fail",
            f"resumed session returned thread {summary.session_id or '(none)'}, expected {inp.expected_session}",
            exit_code=0,
        )
    detail = "worker exited 0 with a completed turn" if inp.requires_completed_turn else "worker exited 0"
    return CheckResult("exit", "pass", detail, exit_code=0)


def _read_evidence(workspace: Path, relative: str, what: str, missing: str) -> tuple[str | None, CheckResult | None]:
    """Read a worker-written file inside the workspace, refusing paths that leave it (unread).

    Returns:
        (text, None) on success, or (None, failing CheckResult without a name) explaining why not.
    """
    try:
        resolved = inside_workspace(workspace, relative)
    except OutsideWorkspace:
        return None, CheckResult("", "fail", f"{what} {relative} resolves outside the workspace", path=relative)
    if not resolved.exists():
        return None, CheckResult("", "fail", missing, path=relative)
    if not resolved.is_file():
        return None, CheckResult("", "fail", f"{what} {relative} is not a regular file", path=relative)
    try:
        with open(resolved, "rb") as handle:
            data = handle.read(MAX_READ_BYTES)
    except OSError as exc:
        return None, CheckResult("", "fail", f"{what} {relative} is unreadable: {exc.strerror}", path=relative)
    return data.decode("utf-8", errors="replace"), None


def _named(result: CheckResult, name: str) -> CheckResult:
    return CheckResult(name, result.status, result.detail, path=result.path)


def check_report(workspace: Path, report_path: str, exit_phrase: str = "exit 0") -> tuple[CheckResult, Status]:
    """The ``report`` check: the report exists inside the workspace and does not say FAIL.

    Args:
        workspace: absolute workspace root.
        report_path: workspace-relative report path.
        exit_phrase: how the worker ended, for the "no report at … (exit 0)" detail.

    Returns:
        (CheckResult named ``report``, the status the report states: pass, fail or unknown; unknown also when
        the report could not be read).
    """
    text, problem = _read_evidence(workspace, report_path, "report", f"no report at {report_path} ({exit_phrase})")
    if problem is not None:
        return _named(problem, "report"), "unknown"
    assert text is not None
    if not text.strip():
        return CheckResult("report", "fail", f"report {report_path} is empty", path=report_path), "unknown"
    status, line = find_status(text)
    if status == "fail":
        return CheckResult("report", "fail", f"report {report_path} says FAIL: {line}", path=report_path), status
    if status == "pass":
        return CheckResult("report", "pass", f"report {report_path} says PASS", path=report_path), status
    return CheckResult("report", "pass", f"report {report_path} exists; status unknown", path=report_path), status


def check_marker(workspace: Path, phase_id: str, completed_path: str) -> CheckResult:
    """The ``completed`` check: the marker exists, names the phase, has no placeholders and does not say FAIL.

    Args:
        workspace: absolute workspace root.
        phase_id: the id the marker must name.
        completed_path: workspace-relative marker path.

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
# Verify commands
# --------------------------------------------------------------------------------------------------------------


def _relative(workspace: Path, path: Path) -> str:
    try:
        return str(path.resolve().relative_to(workspace.resolve()))
    except ValueError:
        return str(path)


def output_tail(path: Path, shown_as: str, limit: int = TAIL_BYTES) -> str:
    """The last ``limit`` bytes of a log, prefixed by ``… N more bytes in PATH`` when cut.

    Args:
        path: the log file (missing counts as empty).
        shown_as: how the note names the file (workspace-relative).
        limit: bytes kept.
    """
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            handle.seek(max(0, size - limit))
            data = handle.read(limit)
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    if size > limit:
        return f"… {size - limit} more bytes in {shown_as}\n{text}"
    return text


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
    for process in psutil.process_iter(["environ"]):
        try:
            environ = process.info["environ"] or {}
            if environ.get(VERIFY_COOKIE) == cookie:
                process.kill()
                killed.append(process.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return killed


def verify_argv(command: VerifyCommand) -> tuple[str, ...]:
    """argv for a verify command: ``shlex.split(run)``, or ``/bin/sh -c run`` when ``shell`` is set.

    Raises:
        ValueError: the command line does not split (unbalanced quotes) or is empty.
    """
    if command.shell:
        return ("/bin/sh", "-c", command.run)
    argv = tuple(shlex.split(command.run))
    if not argv:
        raise ValueError("empty command")
    return argv


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
    shown = f"`{command.run}`"
    log_path = Path(attempt_dir) / f"verify-{index}.log"
    log_shown = _relative(workspace, log_path)
    try:
        argv = verify_argv(command)
    except ValueError as exc:
        return CheckResult(name, "fail", f"verification {shown} cannot be parsed: {exc}")
    cookie = uuid.uuid4().hex
    full_env = {**os.environ, **(env or {}), VERIFY_COOKIE: cookie}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    timed_out = False
    with open(log_path, "wb") as log:
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
    tail = output_tail(log_path, log_shown)
    if timed_out:
        detail = f"verification {shown} timed out after {command.timeout:g} s"
        return CheckResult(name, "fail", detail, path=log_shown, argv=argv, output_tail=tail)
    if rc < 0:
        outcome = f"was killed by {_signal_name(-rc)}"
    else:
        outcome = f"exited {rc}"
    ok = rc == 0 if command.expect == "pass" else rc > 0
    detail = f"verification {shown} {outcome} (expected {command.expect})"
    return CheckResult(name, "pass" if ok else "fail", detail, path=log_shown, argv=argv,
                       exit_code=rc, output_tail=tail)


# --------------------------------------------------------------------------------------------------------------
# The verdict
# --------------------------------------------------------------------------------------------------------------


def check_protected(inp: JudgeInput) -> CheckResult:
    """The ``protected`` check: the files matching ``phase.protected`` are as they were before the worker started.

    Compares ``protected.json`` (written by the engine at launch, ``coordinator.judge.protected.snapshot``) with a new
    snapshot. Returns a failing CheckResult naming every changed, added or deleted file (up to ten).
    """
    record = read_json(inp.attempt_dir / PROTECTED_SNAPSHOT)
    if not isinstance(record, dict):
        return CheckResult("protected", "skipped", "no snapshot of the protected files was taken at launch")
    if record.get("error"):
        return CheckResult("protected", "fail", f"cannot check the protected files: {record['error']}")
    try:
        after = protected.snapshot(inp.workspace, inp.phase.protected)
    except (OverflowError, OSError) as exc:
        return CheckResult("protected", "fail", f"cannot check the protected files: {exc}")
    changed = protected.changes(record.get("files") or {}, after)
    if changed:
        more = f" and {len(changed) - 10} more" if len(changed) > 10 else ""
        return CheckResult("protected", "fail",
                           f"the worker changed protected files: {', '.join(changed[:10])}{more}")
    return CheckResult("protected", "pass", f"{len(after)} protected file(s) unchanged")


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
            inp.workspace, inp.report_path, _exit_phrase(inp.exit_code, inp.exit_signal)
        )
        checks.append(result)

    if not switches.completed:
        checks.append(CheckResult("completed", "off", off_detail, path=inp.completed_path))
    elif skip:
        checks.append(CheckResult("completed", "skipped", skipped_detail, path=inp.completed_path))
    else:
        checks.append(check_marker(inp.workspace, inp.phase.id, inp.completed_path))

    if inp.phase.protected:
        if skip:
            checks.append(CheckResult("protected", "skipped", skipped_detail))
        else:
            checks.append(check_protected(inp))

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

    failed = [check for check in checks if check.status == "fail"]
    reason = failed[0].detail if failed else "all checks passed"
    return Verdict(passed=not failed, reason=reason, checks=tuple(checks))
