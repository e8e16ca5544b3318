"""Markdown files as the importers read them: headings, fenced blocks and paragraphs, with line numbers.

Who uses it: ``markdown_plans`` (phase files, overviews, single-file plans) and ``speckit`` (``tasks.md``) call
``parse_doc`` and walk the ``Doc``'s headings, sections, fences and paragraphs. The blocks come from
``markdown-it-py``'s CommonMark parser (token ``map`` gives their lines), so a ``#`` line inside a fence is no
heading, a fence indented in a list item is still a fence, and setext (``===``) headings count. Emphasis and
backticks are dropped from heading text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from markdown_it import MarkdownIt
from markdown_it.token import Token

from coordinator.plan.importers.common import read_source, rel_path


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
    """The first word of the info string, lower-cased (``bash``), or ``""``."""
    body: tuple[str, ...]
    end: int = 0
    """0-based line after the block (after its closing fence)."""


@dataclass(frozen=True)
class Paragraph:
    line: int
    """0-based first line."""
    end: int
    """0-based line after it."""
    text: str
    """Its text as written, lines joined by spaces."""


@dataclass(frozen=True)
class Doc:
    """One Markdown file, split into headings, fenced blocks and paragraphs."""

    path: Path
    rel: str
    lines: tuple[str, ...]
    headings: tuple[Heading, ...]
    fences: tuple[Fence, ...]
    paragraphs: tuple[Paragraph, ...] = ()

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

    def paragraph_after(self, fence: Fence) -> Paragraph | None:
        """The paragraph right after ``fence``, unless a heading or another fence comes first."""
        following = next((item for item in self.paragraphs if item.line >= fence.end), None)
        if following is None:
            return None
        blocks = [item.line for item in self.headings] + [item.line for item in self.fences]
        if any(fence.end <= line < following.line for line in blocks):
            return None
        return following


def plain(text: str) -> str:
    """Heading or table-cell text without ``**``/``__`` emphasis and backticks."""
    return text.replace("**", "").replace("__", "").replace("`", "").strip()


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    return MarkdownIt("commonmark")


def _inline_text(token: Token) -> str:
    """The text of an inline token, emphasis and code marks dropped (``code_inline`` keeps its content)."""
    parts = []
    for child in token.children or ():
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
    return "".join(parts).strip()


def parse_doc(path: Path, workspace: Path) -> Doc:
    """Read a Markdown file (``read_source``) and split it into headings, fenced blocks and paragraphs."""
    source = read_source(path, workspace)
    lines = tuple(source.splitlines())
    tokens = _markdown().parse(source)
    headings: list[Heading] = []
    fences: list[Fence] = []
    paragraphs: list[Paragraph] = []
    for index, token in enumerate(tokens):
        if token.map is None:
            continue
        start, end = token.map
        if token.type == "heading_open":
            text = plain(_inline_text(tokens[index + 1])) if index + 1 < len(tokens) else ""
            headings.append(Heading(start, int(token.tag[1:]), text))
        elif token.type == "fence":
            info = token.info.strip().split(maxsplit=1)[0].lower() if token.info.strip() else ""
            fences.append(Fence(start, info, tuple(token.content.splitlines()), end))
        elif token.type == "paragraph_open" and index + 1 < len(tokens):
            paragraphs.append(Paragraph(start, end, " ".join(tokens[index + 1].content.split())))
    return Doc(path, rel_path(path, workspace), lines, tuple(headings), tuple(fences), tuple(paragraphs))
