"""Phase kinds read from words: a title, the phase's own text, a file slug such as ``07a-openai-stub-verification``.

Who uses it: ``markdown_plans`` and ``single_file`` call ``choose_kind`` (title first, then the text, then the
file name, and a note when they disagree); ``taskmaster`` calls ``detect_kind`` on titles; ``markdown_plans``
maps a detected kind without a template through ``FALLBACK_KINDS``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_KIND_WORDS: tuple[tuple[str, frozenset[str]], ...] = (
    ("preflight", frozenset({"preflight"})),
    ("verify", frozenset({"verification", "verify", "verifier", "validation"})),
    ("stub", frozenset({"stub", "stubs", "skeleton", "scaffolding"})),
    ("test", frozenset({"tdd", "test", "tests", "red"})),
    ("impl", frozenset({"impl", "implementation", "implementations", "implement", "green"})),
    ("analysis", frozenset({"analysis"})),
    ("pseudocode", frozenset({"pseudocode"})),
    ("overview", frozenset({"overview"})),
    ("integration", frozenset({"integration"})),
    ("migration", frozenset({"migration"})),
    ("cleanup", frozenset({"cleanup"})),
    ("deprecation", frozenset({"deprecation"})),
    ("documentation", frozenset({"documentation", "docs"})),
    ("scaffold", frozenset({"scaffold"})),
)
"""Kind words in priority order (``…-stub-verification`` is a verification, ``integration-stub`` a stub)."""

FALLBACK_KINDS = {"preflight": "verify"}
"""Built-in kind used for a detected kind that has no template; anything not listed here becomes ``impl``."""

# In titles, "Tests" alone is too loose ("Move MCP Auth Code and Tests" moves passing tests): RED/TDD say it.
_TITLE_SKIP = {"test", "tests", "red", "green", "tdd"}
_TITLE_CASED = {"RED": "test", "TDD": "test", "GREEN": "impl"}


def detect_kind(slug: str, title: str) -> str | None:
    """The kind named by a file slug (``07a-openai-stub-verification``) or, failing that, a title."""
    tokens = set(slug.lower().split("-")) if slug else set()
    for kind, words in _KIND_WORDS:
        if tokens & words:
            return kind
    title_words = re.findall(r"[A-Za-z]+", title)
    for kind, words in _KIND_WORDS:
        for word in title_words:
            if word in _TITLE_CASED and _TITLE_CASED[word] == kind:
                return kind
            if word.lower() in words and word.lower() not in _TITLE_SKIP:
                return kind
    return None


_CONTENT_SIGNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("test", re.compile(r"\bwrite\s+(?:the\s+)?failing\s+tests?\b|\bcapture\s+(?:the\s+)?RED\b|\btests?\s+"
                        r"(?:must|should)\s+(?:still\s+)?fail\b|\(RED\)|\bRED\s+(?:state|phase|gate)\b|\bprove\s+"
                        r"(?:that\s+)?(?:they|the\s+tests)\s+fail\b", re.IGNORECASE)),
    ("stub", re.compile(r"\bcreate\s+(?:implementation\s+)?stubs?\b|\bNotYetImplemented\b|\bstub\s+"
                        r"(?:out|implementations?|methods?)\b", re.IGNORECASE)),
    ("impl", re.compile(r"\bmake\s+(?:the\s+)?(?:failing\s+|new\s+)?tests?\s+pass\b|\(GREEN\)|\bGREEN\s+"
                        r"(?:phase|state)\b", re.IGNORECASE)),
)
"""Phrases in a phase's text that say what kind of work it asks for, strong enough to disagree with a name."""


@dataclass(frozen=True)
class KindChoice:
    """The kind of a phase and, when the signs disagree, one sentence saying how.

    Attributes:
        kind: the chosen kind (title first, then the text, then the file name), or None.
        disagreement: e.g. ``the title says 'stub' but the text says 'test' ("write failing tests")``, or None.
    """

    kind: str | None
    disagreement: str | None = None


def content_kind(text: str) -> tuple[str, str] | None:
    """The kind the phase's text asks for, and the phrase that says so; None unless one kind clearly leads."""
    counts = []
    for kind, pattern in _CONTENT_SIGNS:
        found = pattern.findall(text)
        counts.append((len(found), kind, found[0] if found else ""))
    counts.sort(reverse=True)
    (best, kind, phrase), (second, _, _) = counts[0], counts[1]
    return (kind, " ".join(phrase.split())) if best >= 1 and best > second else None


def choose_kind(title: str, text: str, slug: str = "") -> KindChoice:
    """Decide a phase's kind from its title, then its text, then its file slug; say when they disagree.

    Args:
        title: the phase's title (``Bootstrap Helper Stub``).
        text: the phase's instructions (the file or section text).
        slug: the file name's slug (``03-bootstrap-helper-tests``), or ``""``.
    """
    by_title = detect_kind("", title)
    by_text = content_kind(text)
    by_name = detect_kind(slug, "") if slug else None
    kind = by_title or (by_text[0] if by_text else None) or by_name
    notes = []
    if by_title and by_name and by_title != by_name:
        notes.append(f"the title says {by_title!r} but the file name says {by_name!r}")
    if not by_title and by_text and by_name and by_text[0] != by_name:
        notes.append(f"the text says {by_text[0]!r} (\"{by_text[1]}\") but the file name says {by_name!r}")
    # A red-test or implementation phase speaks of the stubs it works against: that is no disagreement.
    if kind not in (None, "verify") and by_text and by_text[0] != kind and by_text[0] != "stub":
        source = "title" if by_title else "file name"
        notes.append(f"the {source} says {kind!r} but the text says {by_text[0]!r} (\"{by_text[1]}\")")
    return KindChoice(kind, "; ".join(notes) or None)
