"""A phase's ``verify`` entries from the shell blocks under its verification headings.

Who uses it: every Markdown layout of ``markdown_plans`` and ``single_file`` calls :func:`verify_entries` with
the lines of one phase; each block is read by ``shell_scripts.read_block``, with the sentence after the block
(``expectations``) as the author's stated result.

Which blocks count: ``bash``/``sh``/``shell``/``console`` fences under a heading that names verification
(``## Verification Commands``, ``### Automated Checks``, ``### Verification (P02a)``, ``### RED Gate``,
``### GREEN command``, ``… Checks``, ``QA``, ``Validation``), not under ``Prerequisites``, ``Failure Recovery`` or
a heading saying ``Deferred``/``do not run``/``already run``. A block under a heading that says ``RED`` is expected
to fail unless its own comments say otherwise. With ``code_items`` (single-file plans with no phases), a list item
that starts with a code span (``1. `npm run lint` ``) under such a heading is a command too.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

from coordinator.plan.importers.expectations import Expectation, expectation_of, sentences
from coordinator.plan.importers.markdown_doc import Doc
from coordinator.plan.importers.shell_scripts import Check, read_block

_VERIFY_HEADING_RE = re.compile(r"verif|automated checks|\bchecks?\b|\bgate\b|\b(?:RED|GREEN)\s+command|\bQA\b"
                                r"|validation|\bCI\b", re.IGNORECASE)
_NOT_VERIFY_HEADING_RE = re.compile(r"\bdeferred\b|\bdo not run\b|prerequisite|failure recovery|already run",
                                    re.IGNORECASE)
_DEFERRED_RE = re.compile(r"\bdeferred\b|\bdo not run\b|already run", re.IGNORECASE)
_RED_HEADING_RE = re.compile(r"\bRED\b")
SHELL_FENCES = {"bash": "bash", "sh": "sh", "shell": "bash", "console": "bash", "zsh": "bash"}
_CODE_ITEM_RE = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+`(?P<command>[^`]+)`")


def verify_entries(doc: Doc, start: int, end: int, phase_id: str, warn: Callable[[str], None], *,
                   code_items: bool = False) -> list[Check]:
    """The checks of the verification blocks between lines ``start`` and ``end`` of ``doc``.

    Only headings from ``start`` on count (for a section phase: the headings inside its section), so a plan
    file's title (``# Phase 07: … TDD (RED)``) does not make its lint commands expect failure.

    Args:
        doc: the parsed file.
        start: 0-based first line of the phase's text.
        end: 0-based line after it.
        phase_id: for warnings.
        warn: takes one warning line.
        code_items: also read list items that start with a code span under verification headings.

    Returns:
        The checks, in document order.
    """
    checks: list[Check] = []
    for fence in doc.fences:
        if not (start <= fence.line < end):
            continue
        shell = SHELL_FENCES.get(fence.info)
        if shell is None:
            continue
        names = _heading_names(doc, fence.line, start)
        if not _counts(names, doc, fence.line, phase_id, warn):
            continue
        red = any(_RED_HEADING_RE.search(name) for name in names)
        reading = read_block(fence.body, fence.line + 1, shell=shell, red=red, stated=_stated(doc, fence))
        for line, note in reading.notes:
            warn(f"{phase_id}: {doc.rel}:{line + 1}: {note}")
        if reading.instructions_only and not reading.notes:
            warn(f"{phase_id}: the bash block at {doc.rel}:{fence.line + 1} is no check ({reading.instructions_only}); "
                 "it stays in the instructions")
        # A script the author did not name is named by its heading ("Full Repository Verification").
        checks.extend(dataclasses.replace(check, name=names[-1]) if check.shell and not check.name and names
                      else check for check in reading.checks)
    if code_items:
        checks.extend(_code_items(doc, start, end, phase_id, warn))
    return sorted(checks, key=lambda check: check.line)


def _heading_names(doc: Doc, line: int, start: int) -> list[str]:
    return [heading.text for heading in doc.chain(line) if heading.level > 1 and heading.line >= start]


def _counts(names: list[str], doc: Doc, line: int, phase_id: str, warn: Callable[[str], None]) -> bool:
    if not any(_VERIFY_HEADING_RE.search(name) for name in names):
        return False
    if any(_NOT_VERIFY_HEADING_RE.search(name) for name in names):
        if any(_DEFERRED_RE.search(name) for name in names):
            warn(f"{phase_id}: skipped the bash block at {doc.rel}:{line + 1} under \"{names[-1]}\" (deferred or "
                 "already run, not run in this phase)")
        return False
    return True


def _stated(doc: Doc, fence: Any) -> Expectation | None:
    """The result the paragraph right after the block states (its first sentence that states one)."""
    paragraph = doc.paragraph_after(fence)
    if paragraph is None:
        return None
    for sentence in sentences(paragraph.text):
        found = expectation_of(sentence)
        if found is not None:
            return found
    return None


def _code_items(doc: Doc, start: int, end: int, phase_id: str, warn: Callable[[str], None]) -> list[Check]:
    """``1. `npm run lint` `` list items under verification headings, each a check of its own."""
    checks: list[Check] = []
    inside = {line for fence in doc.fences for line in range(fence.line, fence.end)}
    for line in range(start, end):
        match = _CODE_ITEM_RE.match(doc.lines[line])
        if match is None or line in inside:
            continue
        names = _heading_names(doc, line, start)
        if not _counts(names, doc, line, phase_id, warn):
            continue
        reading = read_block([match.group("command")], line, shell="bash",
                             red=any(_RED_HEADING_RE.search(name) for name in names))
        for note_line, note in reading.notes:
            warn(f"{phase_id}: {doc.rel}:{note_line + 1}: {note}")
        checks.extend(reading.checks)
    return checks
