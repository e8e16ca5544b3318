"""Reading what a worker wrote: the status its report or marker claims (tolerant reading, strict deciding),
the placeholders a template left unfilled, and whether a marker names its phase.

Who calls it: ``judge.checks`` and ``coord import --with-progress``. The words and patterns come from real plans'
reports (``docs/design.md`` §9, "Reading status text").
"""

from __future__ import annotations

import re
from typing import Literal

Status = Literal["pass", "fail", "unknown"]
"""What a report or marker claims: ``unknown`` when it says nothing coord can read as a status."""

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

    Search order (docs/design.md §9, "Reading status text"):
    1. ``RESET_FOR_REDO`` anywhere: fail.
    2. Explicit lines ``Status|Verdict|Result|Outcome: VALUE`` (Markdown bold, bullets and headings stripped;
       ``## Verdict`` headings take the next non-empty line as the value). A ``Verdict``, ``Final …`` or
       ``Overall …`` line is the final word: the last such line decides. Otherwise any FAIL line fails, else any
       PASS line passes.
    3. Checklists (list items and table rows): any ❌ fails; ✅ with no ❌ passes. A list item without a mark
       may state its outcome after a dash (``- Guard tests pass – PASS.``, ``- Tests still red – Blocked …``,
       the ``## Checklist Outcomes`` of real worker reports, docs/design.md §9); it counts the same way.
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


