"""Phase kinds read from words: a file slug such as ``07a-openai-stub-verification``, or a title.

Who uses it: ``markdown_plans`` (slug, then title) and ``taskmaster`` (title) call ``detect_kind``;
``markdown_plans`` maps a detected kind without a template through ``FALLBACK_KINDS``.
"""

from __future__ import annotations

import re

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
