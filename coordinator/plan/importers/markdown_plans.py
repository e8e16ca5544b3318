"""The markdown phase-plan importer: llxprt-code plan folders (``project-plans/<slug>/plan/NN-slug.md``).

Who uses it: ``plan.importers.import_plan`` runs ``MarkdownImporter`` for ``--format markdown`` (or a folder that
``detect_format`` finds phase files in, through ``phase_files``); the tests call ``phase_sort_key``. It reads the
files with ``markdown_doc``, turns bash blocks into verify commands with ``shell_blocks`` and names kinds with
``kinds``.

The rules (docs/design.md §15):
  * phases are the files ``plan/NN[a-e]-slug.md`` (``P`` prefix and ``NN.N`` accepted), ordered by number, then
    letter, then ``-V`` (``P07`` before ``P07a``; ``P02a`` before ``P02a-V``); ``00-overview.md`` is the plan
    overview unless it has a ``## Phase ID`` of its own; other Markdown files in ``plan/`` are ignored (warned);
  * ``## Subphase P02a: …`` sections inside one file are phases of their own, and a ``### P02a-V Verifier``
    section inside one is a verifier phase; ``-V`` ids listed only in the overview's phase table become verifier
    phases of the phase they name (issue1590's P01-V);
  * the plan id is the overview's ``Plan ID:`` line, else the ``PLAN-….PNN`` of the phase files' ``## Phase ID``
    sections, else ``specification.md``'s ``Plan ID:`` -- never the folder name unless nothing else exists
    (warned); a phase's id is its ``## Phase ID`` (warned when it differs from the file name);
  * the kind comes from the file slug, then the title (``-stub``, ``-tdd``/``-tests``, ``-impl``,
    ``-verification``, ``(RED)``, ``(GREEN)``, …), then an ``a`` suffix (verification); kinds without a template
    (``preflight``, ``analysis``, …) become built-in ones, listed in one warning per kind;
  * ``instructions_file`` is the phase file itself. The plan loader reads whole files, so a subphase (or a
    verifier section) gets inline ``instructions`` instead: its source file and line range, then the author's
    text verbatim (the file's shared head and the subphase section);
  * ``verify`` comes from ``bash``/``sh`` blocks under verification headings (``## Verification Commands``,
    ``### Automated Checks``, ``### Verification (P02a)``, ``### RED Gate``, ``… Checks``), not under
    ``Prerequisites`` or a heading saying ``Deferred``/``do not run`` (warned). Comments are dropped; a command
    is expected to fail after a ``# EXPECTED TO FAIL`` comment (up to the next blank line or comment), under a
    ``RED`` heading, or when written ``cmd && exit 1`` -- which exits non-zero whatever ``cmd`` does, so coord
    runs ``cmd`` itself with ``expect: fail``. Commands with shell syntax get ``shell: true``; bash-only syntax
    (``{001..005}``, ``[[``) runs as ``bash -c '…'``. A ``-V`` phase without commands of its own re-runs those of
    the phase it verifies (the plans' verifier rule "run the verification commands listed in the worker phase");
  * artifacts are ``<folder>/reports/{{ phase.id }}-worker.md`` and ``<folder>/.completed/{{ phase.id }}.md``; a
    folder without ``reports/`` (most real plans) gets ``checks: {report: false}`` (warned).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coordinator.plan.importers.common import ImportFailed, ImportResult, plan_document, rel_path, safe_id
from coordinator.plan.importers.kinds import FALLBACK_KINDS, choose_kind
from coordinator.plan.importers.markdown_doc import Doc, Heading, parse_doc, plain
from coordinator.plan.importers.shell_scripts import Check
from coordinator.plan.importers.verify_blocks import verify_entries

_PHASE_FILE_RE = re.compile(
    r"^(?:P|phase[-_]?|task[-_]?)?(?P<num>\d+(?:\.\d+)?)(?P<sub>[a-eA]?)(?:[-_](?P<slug>.+))?\.md$", re.IGNORECASE
)
PHASE_FOLDERS = ("plan", "tasks", "phases")
"""Folders of a plan folder that hold its numbered phase files; the plan folder itself is tried last."""
OVERVIEW_NAMES = ("overview.md", "plan.md", "PLAN.md", "README.md")
"""Files beside ``tasks/`` or root phase files that are the plan's overview, in order of preference."""
_PHASE_REF_RE = re.compile(
    r"(?P<plan>PLAN-\d{8}-[A-Z0-9][A-Z0-9_-]*?)\.(?P<phase>P\d+(?:\.\d+)?[a-eA]?(?:-V)?)(?![\w.])"
)
_PHASE_ID_HEADING_RE = re.compile(r"^Phase ID$", re.IGNORECASE)
_PHASE_TOKEN_RE = re.compile(r"^P(?P<num>\d+(?:\.\d+)?)(?P<sub>[a-eA]?)(?P<verifier>-V)?(?:-(?P<copy>\d+))?$")
_PLAN_ID_LINE_RE = re.compile(r"^[\s*_>-]*Plan ID[\s*_]*:[\s*_`]*(?P<id>[A-Za-z0-9][A-Za-z0-9._-]*)", re.MULTILINE)
_TOTAL_RE = re.compile(r"^[\s*_]*(?:Total Phases|Executable Phase Count)[\s*_]*:[\s*_]*(?P<count>\d+)",
                       re.MULTILINE | re.IGNORECASE)
_SUBPHASE_RE = re.compile(r"^Subphase\s+(?P<id>P\d+(?:\.\d+)?[a-eA]?)\b\s*[:—–-]?\s*(?P<title>.*)$")
_VERIFIER_RE = re.compile(r"^(?P<id>P\d+(?:\.\d+)?[a-eA]?-V)\s+Verifier\b")
_TITLE_PREFIX_RE = re.compile(r"^(?:Phase|Subphase)\s+P?[\w.]+\s*[:—–-]\s*", re.IGNORECASE)
_PLAN_TITLE_RE = re.compile(r"^Plan\s*:\s*", re.IGNORECASE)
_VERIFIER_RULES_RE = re.compile(r"verifier phase instructions|verifier instructions", re.IGNORECASE)


def phase_sort_key(phase_id: str) -> tuple[tuple[int, ...], str, int, int]:
    """Execution order of phase ids: number, letter, ``-V``, copy (``P07``, ``P07-2``, ``P07-V``, ``P07a``)."""
    match = _PHASE_TOKEN_RE.match(phase_id)
    if match is None:
        return ((1 << 30,), phase_id, 0, 0)
    number = tuple(int(part) for part in match.group("num").split("."))
    return (number, match.group("sub").lower(), 1 if match.group("verifier") else 0, int(match.group("copy") or 1))


def file_phase_id(name: re.Match[str]) -> str:
    """``07a-x.md`` -> ``P07a``; ``phase1.md`` -> ``P01``; ``P0.5-x.md`` -> ``P0.5`` (two digits at least)."""
    number = name.group("num")
    return f"P{int(number):02d}{name.group('sub')}" if "." not in number else f"P{number}{name.group('sub')}"


def phase_files(folder: Path) -> list[Path]:
    """The numbered phase files of a plan folder: in ``plan/``, ``tasks/`` or ``phases/``, else its own.

    ``NN-slug.md``, ``PNN-slug.md``, ``NNa-slug.md``, ``phaseN.md`` and ``task-NN-slug.md`` are phase files.
    """
    for directory in (*(folder / name for name in PHASE_FOLDERS), folder):
        if directory.is_dir():
            found = sorted(path for path in directory.glob("*.md")
                           if _PHASE_FILE_RE.match(path.name) and path.is_file())
            if found:
                return found
    return []


@dataclass
class _Phase:
    """A phase found in the Markdown files, before it becomes a plan entry."""

    id: str
    title: str
    kind: str | None
    source: str
    """Where it came from, for messages: ``plan/07a-….md`` or ``plan/02-….md §Subphase P02a``."""
    instructions_file: str | None = None
    instructions: str | None = None
    verify: list[Check] = field(default_factory=list)
    verifier_of: str | None = None


class MarkdownImporter:
    """One import of an llxprt-style plan folder (see the module docstring for the rules)."""

    def __init__(self, folder: Path, workspace: Path, has_template: Callable[[str], bool]) -> None:
        self.folder = folder
        self.workspace = workspace
        self.has_template = has_template
        self.base = rel_path(folder, workspace)
        self.warnings: list[str] = []
        self.phases: dict[str, _Phase] = {}
        self.no_kind: list[str] = []
        self.overview: Doc | None = None
        self.phase_dir = folder

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def run(self) -> ImportResult:
        files = phase_files(self.folder)
        if not files:
            raise ImportFailed(f"{self.base}: no phase files (plan/NN-slug.md)")
        self._warn_ignored(files[0].parent, files)
        overview: Doc | None = None
        phase_docs: list[tuple[Path, Doc, str | None]] = []
        for path in files:
            doc = parse_doc(path, self.workspace)
            declared = self._declared_phase(doc)
            name = _PHASE_FILE_RE.match(path.name)
            assert name is not None
            if declared is None and (name.group("slug") or "").startswith("overview") and not name.group("sub"):
                overview = doc
                continue
            phase_docs.append((path, doc, declared))
        self.phase_dir = files[0].parent
        if overview is None and self.phase_dir.name != "plan":
            overview = next((parse_doc(self.folder / name, self.workspace) for name in OVERVIEW_NAMES
                             if (self.folder / name).is_file()), None)
        plan_id = self._plan_id(overview, [doc for _, doc, _ in phase_docs])
        self.overview = overview
        for path, doc, declared in phase_docs:
            self._add_file(path, doc, declared)
        table = self._overview_table(overview)
        self._add_listed_verifiers(overview, table)
        for phase_id, title in table:
            # The overview names verifier phases better than "Verify P02a: …".
            if title and phase_id in self.phases and self.phases[phase_id].verifier_of is not None:
                self.phases[phase_id].title = title
        ordered = sorted(self.phases.values(), key=lambda phase: phase_sort_key(phase.id))
        if not ordered:
            raise ImportFailed(f"{self.base}: no phases found in its phase files")
        self._check_overview(overview, table, ordered)
        document = self._document(plan_id, overview, ordered)
        return ImportResult("markdown", plan_id, self.base, document, tuple(self.warnings))

    # --- files, ids and overview ------------------------------------------------------------------------

    def _warn_ignored(self, directory: Path, files: list[Path]) -> None:
        chosen = set(files)
        for path in sorted(directory.glob("*.md")):
            if path in chosen or not path.is_file() or directory == self.folder and path.name in OVERVIEW_NAMES:
                continue
            if directory == self.folder and path.name == "specification.md":
                continue  # the plan's specification, read for its Plan ID
            self.warn(f"ignored {rel_path(path, self.workspace)}: not a phase file (NN-slug.md, phaseN.md)")

    @staticmethod
    def _phase_ref(doc: Doc) -> re.Match[str] | None:
        """The ``PLAN-….PNN`` in the file's ``## Phase ID`` section (groups ``plan`` and ``phase``), or None."""
        for heading in doc.find(_PHASE_ID_HEADING_RE):
            found = _PHASE_REF_RE.search(doc.text(heading.line + 1, doc.section_end(heading)))
            if found:
                return found
        return None

    def _declared_phase(self, doc: Doc) -> str | None:
        """The ``PNN`` of the file's ``## Phase ID`` section, or None."""
        found = self._phase_ref(doc)
        return found.group("phase") if found else None

    def _plan_id(self, overview: Doc | None, docs: list[Doc]) -> str:
        """The overview's ``Plan ID:``, else the phase files' ``## Phase ID`` plan, else ``specification.md``'s."""
        from_overview = None
        for candidate in (overview, *self._optional_docs("overview.md")):
            if candidate is not None:
                found = _PLAN_ID_LINE_RE.search("\n".join(candidate.lines))
                if found:
                    from_overview = found.group("id")
                    break
        declared = Counter(found.group("plan") for found in map(self._phase_ref, docs) if found)
        if from_overview:
            others = sorted(set(declared) - {from_overview})
            if others:
                self.warn(f"phase files name plan {', '.join(others)} but the overview says {from_overview}; "
                          f"using {from_overview}")
            return from_overview
        if declared:
            (best, _), *rest = declared.most_common()
            if rest:
                self.warn(f"phase files name several plans ({', '.join(sorted(declared))}); using {best}")
            return best
        for doc in self._optional_docs("specification.md"):
            found = _PLAN_ID_LINE_RE.search("\n".join(doc.lines))
            if found:
                return found.group("id")
        fallback = safe_id(self.folder.name)
        self.warn(f"no Plan ID found (overview `Plan ID:` or a phase file's `## Phase ID`); "
                  f"using the folder name {fallback!r}")
        return fallback

    def _optional_docs(self, name: str) -> list[Doc]:
        path = self.folder / name
        return [parse_doc(path, self.workspace)] if path.is_file() else []

    def _overview_table(self, overview: Doc | None) -> list[tuple[str, str | None]]:
        """``(phase id, title)`` rows of the overview's phase table, in table order."""
        if overview is None:
            return []
        rows: list[tuple[str, str | None]] = []
        columns: tuple[int, int | None] | None = None
        for line in overview.lines:
            stripped = line.strip()
            if not (stripped.startswith("|") and stripped.endswith("|")):
                columns = None
                continue
            cells = [plain(cell) for cell in stripped.strip("|").split("|")]
            if columns is None:
                names = [cell.lower() for cell in cells]
                phase_col = next((i for i, name in enumerate(names) if name in ("phase", "phase id")), None)
                title_col = next((i for i, name in enumerate(names) if name == "title"), None)
                columns = (phase_col, title_col) if phase_col is not None else (-1, None)
                continue
            phase_col, title_col = columns
            if phase_col < 0 or phase_col >= len(cells) or set(cells[phase_col]) <= set("-: "):
                continue
            if _PHASE_TOKEN_RE.match(cells[phase_col]):
                title = cells[title_col] if title_col is not None and title_col < len(cells) else None
                rows.append((cells[phase_col], title or None))
        return rows

    def _check_overview(self, overview: Doc | None, table: list[tuple[str, str | None]],
                        ordered: list[_Phase]) -> None:
        if overview is None:
            return
        total = _TOTAL_RE.search("\n".join(overview.lines))
        if total and int(total.group("count")) != len(ordered):
            self.warn(f"{overview.rel} states {total.group('count')} phases; {len(ordered)} were found")
        listed = [phase_id for phase_id, _ in table if phase_id in self.phases]
        found = [phase.id for phase in ordered if phase.id in set(listed)]
        if listed and listed != found:
            self.warn(f"{overview.rel} lists the phases in another order than their ids; imported in id order")

    # --- phases of one file ---------------------------------------------------------------------------------

    def _add(self, phase: _Phase) -> None:
        """Add a phase; a second one with the same id is kept as ``ID-2`` (``-3`` …), never dropped."""
        if phase.id in self.phases:
            copy = 2
            while f"{phase.id}-{copy}" in self.phases:
                copy += 1
            unique = f"{phase.id}-{copy}"
            self.warn(f"{phase.source}: phase {phase.id} is already defined by {self.phases[phase.id].source}; "
                      f"imported as {unique}, after it")
            phase.id = unique
        self.phases[phase.id] = phase

    def _add_file(self, path: Path, doc: Doc, declared: str | None) -> None:
        name = _PHASE_FILE_RE.match(path.name)
        assert name is not None
        from_name = file_phase_id(name)
        phase_id = declared or from_name
        if declared is None and self.phase_dir.name == "plan":
            self.warn(f"{doc.rel}: no `## Phase ID` section; phase id {from_name} taken from the file name")
        elif declared is not None and declared != from_name:
            self.warn(f"{doc.rel}: its `## Phase ID` says {declared} but the file name says {from_name}; "
                      f"using {declared}")
        h1 = doc.first_heading(1)
        title = _TITLE_PREFIX_RE.sub("", h1.text) if h1 else phase_id
        subphases = [heading for heading in doc.headings if heading.level == 2 and _SUBPHASE_RE.match(heading.text)]
        if subphases:
            self._add_subphases(doc, subphases)
            return
        choice = choose_kind(title, "\n".join(doc.lines), name.group("slug") or "")
        kind = choice.kind
        if choice.disagreement:
            self.warn(f"{phase_id} ({doc.rel}): {choice.disagreement}; imported as {kind!r}")
        if kind is None and name.group("sub"):
            kind = "verify"
        phase = _Phase(phase_id, title or phase_id, kind, doc.rel, instructions_file=doc.rel)
        phase.verify = self._verify(doc, 0, len(doc.lines), phase_id)
        self._add(phase)
        for heading in doc.headings:
            verifier = _VERIFIER_RE.match(heading.text)
            if verifier and verifier.group("id") == f"{phase_id}-V":
                self._add(self._section_verifier(doc, heading, phase, None))

    def _add_subphases(self, doc: Doc, subphases: list[Heading]) -> None:
        head_end = subphases[0].line
        added: list[_Phase] = []
        for heading in subphases:
            match = _SUBPHASE_RE.match(heading.text)
            assert match is not None
            end = doc.section_end(heading)
            phase_id = match.group("id")
            title = match.group("title").strip() or phase_id
            source = f"{doc.rel} §Subphase {phase_id}"
            verifier_heading = next(
                (h for h in doc.headings if heading.line < h.line < end and _VERIFIER_RE.match(h.text)), None
            )
            worker_end = verifier_heading.line if verifier_heading is not None else end
            phase = self._section_phase(doc, "subphase", phase_id, title, source, heading, end, worker_end, head_end)
            self._add(phase)
            added.append(phase)
            if verifier_heading is not None:
                verifier = self._section_verifier(doc, verifier_heading, phase, (heading, end))
                self._add(verifier)
                added.append(verifier)
        # Commands after the last subphase ("Overall Phase Verification Commands") check the whole phase:
        # they belong to its last step.
        outside = self._verify(doc, doc.section_end(subphases[-1]), len(doc.lines), added[-1].id)
        added[-1].verify.extend(outside)

    def _section_phase(self, doc: Doc, word: str, phase_id: str, title: str, source: str, heading: Heading,
                       end: int, work_end: int, head_end: int) -> _Phase:
        """A phase made of one section of a file (a subphase, or a ``## Phase P03`` section of a one-file plan).

        Its inline instructions are the file's shared head (lines before ``head_end``) and the section,
        verbatim; its kind and verify entries come from the section's lines up to ``work_end`` (a verifier
        section after that is another phase's).
        """
        instructions = (
            f"{word.capitalize()} {phase_id} of `{doc.rel}` (lines {heading.line + 1}-{end}). Do this {word} only: "
            f"the other {word}s are other workers' phases. The file's shared part (lines 1-{head_end}) and the "
            f"{word} section follow verbatim.\n\n{doc.text(0, head_end)}\n\n{doc.text(heading.line, end)}\n"
        )
        choice = choose_kind(title, doc.text(heading.line, work_end))
        if choice.disagreement:
            self.warn(f"{phase_id} ({source}): {choice.disagreement}; imported as {choice.kind!r}")
        phase = _Phase(phase_id, title, choice.kind, source, instructions=instructions)
        phase.verify = self._verify(doc, heading.line + 1, work_end, phase_id)
        return phase

    def _section_verifier(self, doc: Doc, heading: Heading, worker: _Phase,
                          subphase: tuple[Heading, int] | None) -> _Phase:
        verifier_id = f"{worker.id}-V"
        end = doc.section_end(heading)
        where = (f"section \"{subphase[0].text}\" of `{doc.rel}` (lines {subphase[0].line + 1}-{subphase[1]})"
                 if subphase else f"`{doc.rel}`")
        instructions = (
            f"Verifier {verifier_id}: check the work of {worker.id}, described in {where}; read it. "
            f"The verifier instructions of `{doc.rel}` (lines {heading.line + 1}-{end}) follow verbatim"
            f"{self._verifier_rules()}.\n\n{doc.text(heading.line, end)}\n{self._verifier_rules(text=True)}"
        )
        phase = _Phase(verifier_id, f"Verify {worker.id}: {worker.title}", "verify",
                       f"{doc.rel} §{heading.text}", instructions=instructions, verifier_of=worker.id)
        phase.verify = list(worker.verify)
        return phase

    def _verifier_rules(self, text: bool = False) -> str:
        """The overview's rules for every verifier phase: a phrase pointing at them, or (``text``) the rules."""
        overview = self.overview
        rules = next(iter(overview.find(_VERIFIER_RULES_RE)), None) if overview is not None else None
        if overview is None or rules is None:
            return ""
        end = overview.section_end(rules)
        if text:
            return f"\n{overview.text(rules.line, end)}\n"
        return f", then the overview's rules for every verifier phase (`{overview.rel}`, lines {rules.line + 1}-{end})"

    def _add_listed_verifiers(self, overview: Doc | None, table: list[tuple[str, str | None]]) -> None:
        """Add ``-V`` phases that only the overview's table lists; warn about other listed ids without files."""
        if overview is None:
            return
        for phase_id, title in table:
            if phase_id in self.phases:
                continue
            worker = self.phases.get(phase_id.removesuffix("-V")) if phase_id.endswith("-V") else None
            if worker is None:
                self.warn(f"{overview.rel} lists {phase_id}, but no phase file defines it; not imported")
                continue
            instructions = (
                f"Verifier {phase_id}: check the work of {worker.id}, whose instructions are in "
                f"{_source_phrase(worker)}; read them. {phase_id} is listed in the plan's overview "
                f"(`{overview.rel}`) and has no section of its own."
            )
            rules = self._verifier_rules(text=True)
            if rules:
                instructions += f" The overview's rules for every verifier phase follow verbatim.\n{rules}"
            phase = _Phase(phase_id, title or f"Verify {worker.id}", "verify", f"{overview.rel} (phase table)",
                           instructions=instructions.rstrip("\n") + "\n", verifier_of=worker.id)
            phase.verify = list(worker.verify)
            self.phases[phase_id] = phase

    # --- verification commands -----------------------------------------------------------------------------

    def _verify(self, doc: Doc, start: int, end: int, phase_id: str) -> list[Check]:
        """Verify entries from the shell blocks under verification headings between ``start`` and ``end``."""
        return verify_entries(doc, start, end, phase_id, self.warn)

    # --- the document --------------------------------------------------------------------------------------

    def _kind(self, phase: _Phase, fallbacks: dict[str, list[str]]) -> str:
        kind = phase.kind
        if kind is None:
            self.no_kind.append(phase.id)
            return "impl"
        if self.has_template(kind):
            return kind
        fallback = FALLBACK_KINDS.get(kind, "impl")
        fallbacks.setdefault(kind, []).append(phase.id)
        return fallback

    def _document(self, plan_id: str, overview: Doc | None, ordered: list[_Phase]) -> dict[str, Any]:
        title = self._title(overview, plan_id)
        fallbacks: dict[str, list[str]] = {}
        entries: list[dict[str, Any]] = []
        previous: str | None = None
        for phase in ordered:
            entry: dict[str, Any] = {
                "id": phase.id,
                "kind": self._kind(phase, fallbacks),
                "title": phase.title,
                "depends_on": [previous] if previous else [],
            }
            if phase.instructions_file is not None:
                entry["instructions_file"] = phase.instructions_file
            else:
                entry["instructions"] = phase.instructions or ""
            if phase.verify:
                entry["verify"] = [verify_entry(check) for check in phase.verify]
            entries.append(entry)
            previous = phase.id
        for kind, ids in fallbacks.items():
            self.warn(f"kind {kind!r} has no template (templates/{kind}.md.j2); imported as "
                      f"{FALLBACK_KINDS.get(kind, 'impl')!r}: {_id_list(ids)}")
        if self.no_kind:
            self.warn("kind not recognized from the title, the text or the file name; imported as 'impl': "
                      f"{_id_list(self.no_kind)}")
        no_verify = [phase.id for phase in ordered if not phase.verify]
        if no_verify:
            self.warn("no verification commands (no bash block under a verification heading); coord checks only "
                      f"their evidence files: {_id_list(no_verify)}")
        red_unmarked = [entry["id"] for entry in entries if entry["kind"] == "test" and entry.get("verify")
                        and all(item.get("expect", "pass") == "pass" for item in entry["verify"])]
        if red_unmarked:
            self.warn("red test phases with no command marked to fail (`# EXPECTED TO FAIL`, `cmd && exit 1`, "
                      f"RED heading); every command expects pass, check them: {_id_list(red_unmarked)}")
        document, warning = plan_document(plan_id, title, self.folder, self.base, entries)
        if warning:
            self.warn(warning)
        return document

    def _title(self, overview: Doc | None, plan_id: str) -> str:
        candidates = [overview, *self._optional_docs("overview.md")]
        for doc in candidates:
            heading = doc.first_heading(1) if doc is not None else None
            if heading is not None and heading.text:
                return _PLAN_TITLE_RE.sub("", heading.text) or plan_id
        return plan_id


def _source_phrase(phase: _Phase) -> str:
    if phase.instructions_file is not None:
        return f"`{phase.instructions_file}`"
    return phase.source.replace(" §", " section ")


def verify_entry(check: Check) -> dict[str, Any]:
    """The plan YAML entry of one check (``name`` first, so a reader sees what it is before the script)."""
    entry: dict[str, Any] = {"name": check.name} if check.name else {}
    entry["run"] = check.run
    if check.expect != "pass":
        entry["expect"] = check.expect
    if check.shell == "sh":
        entry["shell"] = True
    elif check.shell:
        entry["shell"] = check.shell
    return entry


def _id_list(ids: list[str]) -> str:
    return ", ".join(ids)
