"""Markdown files as the importers read them: headings and fenced blocks, with line numbers.

Who uses it: ``markdown_plans`` (phase files, overview, specification) and ``speckit`` (``tasks.md``) call
``parse_doc`` and walk the ``Doc``'s headings, sections and fences. Headings inside a fenced block are not
headings; emphasis and backticks are dropped from heading text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from coordinator.plan.importers.common import read_source, rel_path

_FENCE_RE = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)")
_HEADING_RE = re.compile(r"^ {0,3}(?P<hashes>#{1,6})\s+(?P<text>.*?)\s*#*\s*$")


@dataclass(frozen=True)
class Heading:
    line: int
    """0-based line number."""
    level: int
    text: str
    """The heading text with Markdown emphasis and backticks removed."""


@dataclass(frozen=True)
class Fence:
    line: int
    """0-based line of the opening fence; the body starts on the next line."""
    info: str
    body: tuple[str, ...]


@dataclass(frozen=True)
class Doc:
    """One Markdown file, split into headings and fenced blocks (headings inside fences are not headings)."""

    path: Path
    rel: str
    lines: tuple[str, ...]
    headings: tuple[Heading, ...]
    fences: tuple[Fence, ...]

    def section_end(self, heading: Heading) -> int:
        """Line after the section that ``heading`` starts (the next heading of its level or above)."""
        for other in self.headings:
            if other.line > heading.line and other.level <= heading.level:
                return other.line
        return len(self.lines)

    def chain(self, line: int) -> list[Heading]:
        """The headings enclosing ``line``, outermost first."""
        chain: list[Heading] = []
        for heading in self.headings:
            if heading.line >= line:
                break
            chain = [item for item in chain if item.level < heading.level] + [heading]
        return chain

    def text(self, start: int, end: int) -> str:
        """Lines ``start``..``end`` (0-based, end excluded), trailing spaces removed, as one string."""
        return "\n".join(line.rstrip() for line in self.lines[start:end]).strip("\n")

    def first_heading(self, level: int = 1) -> Heading | None:
        return next((heading for heading in self.headings if heading.level == level), None)

    def find(self, pattern: re.Pattern[str], level: int | None = None) -> list[Heading]:
        return [h for h in self.headings if pattern.search(h.text) and (level is None or h.level == level)]


def plain(text: str) -> str:
    """Heading or table-cell text without ``**``/``__`` emphasis and backticks."""
    return text.replace("**", "").replace("__", "").replace("`", "").strip()


def parse_doc(path: Path, workspace: Path) -> Doc:
    """Read a Markdown file (``read_source``) and split it into headings and fenced blocks."""
    lines = tuple(read_source(path, workspace).splitlines())
    headings: list[Heading] = []
    fences: list[Fence] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        fence = _FENCE_RE.match(line)
        if fence:
            marker = fence.group("fence")
            end = index + 1
            while end < len(lines):
                closing = lines[end].strip()
                if closing.startswith(marker[0] * len(marker)) and not closing.strip(marker[0]):
                    break
                end += 1
            fences.append(Fence(index, fence.group("info").lower(), lines[index + 1:end]))
            index = end + 1
            continue
        heading = _HEADING_RE.match(line)
        if heading:
            headings.append(Heading(index, len(heading.group("hashes")), plain(heading.group("text"))))
        index += 1
    return Doc(path, rel_path(path, workspace), lines, tuple(headings), tuple(fences))
