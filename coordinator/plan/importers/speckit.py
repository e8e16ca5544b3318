"""The spec-kit importer: GitHub spec-kit ``tasks.md`` (docs/design.md §15).

Who uses it: ``plan.importers.import_plan`` calls ``import_speckit`` for ``--format spec-kit`` (a ``tasks.md``, or
a folder holding one). Each ``## Phase N: Title`` is a phase ``PNN`` (kind ``impl``), in file order; its tasks are
``- [ ] T001 …`` lines, and a phase whose tasks are all ``[X]`` is done (the source's own progress record). The plan
id is the feature folder's name (``specs/001-albums``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from coordinator.plan.importers.common import (
    ImportFailed,
    ImportResult,
    SourceProgress,
    plan_document,
    rel_path,
    safe_id,
)
from coordinator.plan.importers.markdown_doc import parse_doc

_SPECKIT_PHASE_RE = re.compile(r"^Phase\s+(?P<num>\d+)\s*[:—–-]\s*(?P<title>.+)$")
_SPECKIT_TASK_RE = re.compile(r"^\s*[-*]\s+\[(?P<mark>[ xX])\]\s+(?P<id>T\d+)\b")
_SPECKIT_TITLE_RE = re.compile(r"^Tasks\s*:\s*", re.IGNORECASE)


def import_speckit(path: Path, workspace: Path) -> ImportResult:
    """Import a spec-kit ``tasks.md``: one phase per ``## Phase N: Title`` section (NOTES §11.1)."""
    doc = parse_doc(path, workspace)
    folder = path.parent
    warnings: list[str] = []
    sections = [heading for heading in doc.headings if heading.level == 2 and _SPECKIT_PHASE_RE.match(heading.text)]
    if not sections:
        raise ImportFailed(f"{doc.rel}: no `## Phase N: Title` sections (spec-kit tasks.md)")
    covered: set[int] = set()
    entries: list[dict[str, Any]] = []
    progress: dict[str, SourceProgress] = {}
    previous: str | None = None
    for heading in sections:
        match = _SPECKIT_PHASE_RE.match(heading.text)
        assert match is not None
        end = doc.section_end(heading)
        covered.update(range(heading.line, end))
        phase_id = f"P{int(match.group('num')):02d}"
        if any(entry["id"] == phase_id for entry in entries):
            warnings.append(f"{doc.rel}:{heading.line + 1}: a second Phase {match.group('num')}; skipped")
            continue
        tasks = [_SPECKIT_TASK_RE.match(line) for line in doc.lines[heading.line:end]]
        marks = [task.group("mark") for task in tasks if task]
        checked = sum(1 for mark in marks if mark in "xX")
        if not marks:
            warnings.append(f"{phase_id} ({doc.rel}:{heading.line + 1}) has no `- [ ] T001 …` tasks")
        instructions = (
            f"Phase {match.group('num')} of the spec-kit task list `{doc.rel}` (lines {heading.line + 1}-{end}). "
            "Do its unchecked tasks in order and mark each one `[X]` in that file when it is done. "
            "The section follows verbatim.\n\n"
            f"{doc.text(heading.line, end)}\n"
        )
        entries.append({
            "id": phase_id,
            "kind": "impl",
            "title": match.group("title").strip(),
            "depends_on": [previous] if previous else [],
            "instructions": instructions,
        })
        progress[phase_id] = SourceProgress(
            done=bool(marks) and checked == len(marks),
            detail=f"{checked}/{len(marks)} tasks checked in {doc.rel}",
        )
        previous = phase_id
    for number, line in enumerate(doc.lines):
        task = _SPECKIT_TASK_RE.match(line)
        if task and number not in covered:
            warnings.append(f"{doc.rel}:{number + 1}: task {task.group('id')} is outside any `## Phase N` "
                            "section; not imported")
    warnings.append("spec-kit tasks carry no verification commands: coord judges each phase by its completion "
                    "marker (and the workers' own checks)")
    base = rel_path(folder, workspace)
    h1 = doc.first_heading(1)
    plan_id = safe_id(folder.name)
    title = _SPECKIT_TITLE_RE.sub("", h1.text) if h1 else plan_id
    document, warning = plan_document(plan_id, title, folder, base, entries)
    warnings.extend([warning] if warning else [])
    return ImportResult("spec-kit", plan_id, doc.rel, document, tuple(warnings), progress)
