"""Markdown plans without numbered phase files: one file with phase sections, a phase table or no phases at all,
or an overview beside unnumbered topic files.

Who uses it: ``plan.importers.import_plan`` runs :class:`UnnumberedImporter` for a markdown plan folder (or a
single ``.md`` file) in which ``markdown_plans.phase_files`` finds nothing. It builds on ``MarkdownImporter``
(ids, kinds, verify entries and the plan document are made the same way).

The layouts, tried in this order (docs/design.md §15, "layouts"):
  1. **phase sections**: the plan file (``plan.md``, ``PLAN.md``, ``plan/<one file>.md``, ``README.md``,
     ``overview.md`` or the only Markdown file) has two or more headings ``Phase P03: Title`` / ``Phase 1: …`` at
     one level. Each section is a phase with inline instructions (the file's shared head and the section,
     verbatim); ``verify`` comes from the section's verification blocks;
  2. **phase table**: the plan file has a table with a ``Phase`` column of ids (``P01``). Each row is a phase
     whose instructions are the row and the whole file; such phases have no verify commands (warned);
  3. **topic files**: other Markdown files sit beside an overview (``overview.md``, ``README.md``). Each is a phase,
     in the order the overview names them, else in file-name order (warned);
  4. **no phases**: the plan file is one phase (warned); its verification sections give its ``verify``, list items
     that start with a command (``1. `npm run lint` ``) included.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from coordinator.plan.importers.common import ImportFailed, ImportResult
from coordinator.plan.importers.kinds import choose_kind
from coordinator.plan.importers.markdown_doc import Doc, Heading, parse_doc, plain
from coordinator.plan.importers.markdown_plans import MarkdownImporter, _Phase, phase_sort_key
from coordinator.plan.importers.verify_blocks import verify_entries

PLAN_FILE_NAMES = ("plan.md", "PLAN.md", "implementation-plan.md", "README.md", "overview.md")
"""Names of a folder's plan file, in order of preference (``plan/`` is looked in first)."""
OVERVIEW_FILE_NAMES = ("overview.md", "README.md", "plan.md", "PLAN.md")
_SECTION_RE = re.compile(r"^(?:Phase|Stage|Step)\s+(?P<id>P?\d+(?:\.\d+)?[a-eA]?)\b\s*[:—–.-]?\s*(?P<title>.*)$",
                         re.IGNORECASE)
_STATUS_SUFFIX_RE = re.compile(r"\s*[—–-]+\s*(?:completed?|done|in progress|pending)\s*$", re.IGNORECASE)
_ID_LINE_RE = re.compile(r"Phase ID\s*:\s*`?PLAN-[\w-]+?\.(?P<id>P\d+(?:\.\d+)?[a-eA]?)`?", re.IGNORECASE)
_SKIP_TOPIC_FILES = {"specification.md", "execution-tracker.md", "changelog.md", "checklist.md"}


def _phase_id(token: str) -> str:
    """``P03`` stays; ``1`` or ``p1`` -> ``P01``; ``0.5`` -> ``P0.5``."""
    digits = token.lstrip("Pp")
    number = re.match(r"\d+(?:\.\d+)?", digits)
    assert number is not None
    rest = digits[number.end():]
    value = number.group()
    return f"P{int(value):02d}{rest}" if "." not in value else f"P{value}{rest}"


class UnnumberedImporter(MarkdownImporter):
    """One import of a plan folder, or one Markdown file, with no numbered phase files."""

    def __init__(self, source: Path, workspace: Path, has_template: Callable[[str], bool]) -> None:
        folder = source if source.is_dir() else source.parent
        super().__init__(folder, workspace, has_template)
        self.source = source

    def run(self) -> ImportResult:
        plan_file = self.source if self.source.is_file() else self._plan_file()
        doc = parse_doc(plan_file, self.workspace) if plan_file is not None else None
        layout = "phase sections"
        if doc is not None and self._add_sections(doc):
            pass
        elif doc is not None and self._add_table_rows(doc):
            layout = "phase table"
        elif self.source.is_dir() and self._add_topic_files(doc):
            layout = "topic files"
        elif doc is not None:
            layout = "no phases"
            self._add_whole_file(doc)
        else:
            raise ImportFailed(f"{self.base}: no plan found: the folder holds no Markdown file")
        self.overview = doc
        plan_id = self._plan_id(doc, [])
        ordered = list(self.phases.values())
        if layout != "topic files":
            ordered.sort(key=lambda phase: phase_sort_key(phase.id))
        document = self._document(plan_id, doc, ordered)
        return ImportResult("markdown", plan_id, self.base, document, tuple(self.warnings))

    # --- which file is the plan ----------------------------------------------------------------------------

    def _markdown_files(self) -> list[Path]:
        return sorted(path for path in self.folder.glob("*.md") if path.is_file())

    def _plan_file(self) -> Path | None:
        in_plan = sorted(path for path in (self.folder / "plan").glob("*.md") if path.is_file())
        if len(in_plan) == 1:
            return in_plan[0]
        for name in PLAN_FILE_NAMES:
            if (self.folder / name).is_file():
                return self.folder / name
        files = self._markdown_files()
        return files[0] if len(files) == 1 else None

    # --- layouts -------------------------------------------------------------------------------------------

    def _add_sections(self, doc: Doc) -> bool:
        """Phase sections (``## Phase P03: …``); False when the file has fewer than two at one level."""
        by_level: dict[int, list[Heading]] = {}
        for heading in doc.headings:
            if _SECTION_RE.match(heading.text):
                by_level.setdefault(heading.level, []).append(heading)
        candidates = [items for items in by_level.values() if len(items) >= 2]
        if not candidates:
            return False
        sections = min(candidates, key=lambda items: items[0].level)
        head_end = sections[0].line
        for heading in sections:
            match = _SECTION_RE.match(heading.text)
            assert match is not None
            end = doc.section_end(heading)
            declared = _ID_LINE_RE.search(doc.text(heading.line, end))
            phase_id = declared.group("id") if declared else _phase_id(match.group("id"))
            title = _STATUS_SUFFIX_RE.sub("", plain(match.group("title"))) or phase_id
            source = f"{doc.rel} §{heading.text}"
            self._add(self._section_phase(doc, "phase", phase_id, title, source, heading, end, end, head_end))
        return True

    def _add_table_rows(self, doc: Doc) -> bool:
        rows = self._overview_table(doc)
        if len(rows) < 2:
            return False
        summaries = self._table_summaries(doc)
        for phase_id, title in rows:
            summary = summaries.get(phase_id, "")
            instructions = (
                f"Phase {phase_id} of `{doc.rel}`: {title or phase_id}. {summary}\nDo this phase only: the plan's "
                f"phase table lists the others, which other workers do. The whole plan follows verbatim.\n\n"
                f"{doc.text(0, len(doc.lines))}\n"
            )
            choice = choose_kind(title or "", summary)
            if choice.disagreement:
                self.warn(f"{phase_id} ({doc.rel}, phase table): {choice.disagreement}; imported as {choice.kind!r}")
            self._add(_Phase(phase_id, title or phase_id, choice.kind, f"{doc.rel} (phase table)",
                             instructions=instructions))
        self.warn(f"{doc.rel}: phases read from its phase table; they have no sections of their own, so no verify "
                  "commands")
        return True

    @staticmethod
    def _table_summaries(doc: Doc) -> dict[str, str]:
        """The rest of each phase-table row (``Summary`` and other columns), by phase id."""
        found: dict[str, str] = {}
        for line in doc.lines:
            cells = [plain(cell) for cell in line.strip().strip("|").split("|")] if line.strip().startswith("|") else []
            if len(cells) >= 2 and re.fullmatch(r"P\d+(?:\.\d+)?[a-eA]?(?:-V)?", cells[0]):
                found[cells[0]] = " ".join(cell for cell in cells[2:] if cell)
        return found

    def _add_topic_files(self, overview: Doc | None) -> bool:
        files = [path for path in self._markdown_files()
                 if overview is None or path != overview.path]
        files = [path for path in files if path.name.lower() not in _SKIP_TOPIC_FILES]
        if overview is None or len(files) < 1 or overview.path.name not in OVERVIEW_FILE_NAMES:
            return False
        text = "\n".join(overview.lines)
        named = [path for path in files if path.name in text or f"]({path.stem})" in text]
        if len(named) == len(files):
            files.sort(key=lambda path: text.index(path.name) if path.name in text else text.index(path.stem))
        else:
            self.warn(f"{overview.rel} does not name every topic file; phases are in file-name order: "
                      f"{', '.join(path.name for path in files)}")
        for number, path in enumerate(files, start=1):
            doc = parse_doc(path, self.workspace)
            heading = doc.first_heading(1)
            title = heading.text if heading is not None else path.stem
            phase_id = f"P{number:02d}"
            # A topic file is a whole plan of its own (red tests, then green): only its title and name may say a kind.
            choice = choose_kind(title, "", path.stem.replace("_", "-"))
            if choice.disagreement:
                self.warn(f"{phase_id} ({doc.rel}): {choice.disagreement}; imported as {choice.kind!r}")
            phase = _Phase(phase_id, title, choice.kind, doc.rel, instructions_file=doc.rel)
            phase.verify = verify_entries(doc, 0, len(doc.lines), phase_id, self.warn)
            self._add(phase)
        return True

    def _add_whole_file(self, doc: Doc) -> None:
        heading = doc.first_heading(1)
        title = heading.text if heading is not None else doc.path.stem
        # The whole plan in one phase holds every kind of work; only its title may name one.
        phase = _Phase("P01", title, choose_kind(title, "").kind, doc.rel, instructions_file=doc.rel)
        phase.verify = verify_entries(doc, 0, len(doc.lines), "P01", self.warn, code_items=True)
        self.warn(f"{doc.rel} has no phases (no numbered phase files, `Phase N` sections or phase table): imported "
                  "as one phase P01 whose instructions are the whole file"
                  + ("" if phase.verify else ", with no verify commands"))
        self._add(phase)
