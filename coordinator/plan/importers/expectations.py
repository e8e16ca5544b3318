"""What a plan's author says a check's result must be, read from a comment or a sentence beside a bash block.

Who uses it: ``shell_scripts`` reads the comments inside a block with :func:`expectation_of`;
``markdown_plans`` reads the sentence after a block (``This command should produce **no output**.``) with it
too. Only what the author wrote counts: a phrase that states a result this module cannot map (``# Expected: 8+
occurrences``) is returned as *unclear*, so the importer keeps ``expect: pass`` and warns with the sentence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Expect = Literal["pass", "fail", "no-output"]

_FAIL_RE = re.compile(
    r"expect(?:ed|s)?\s+(?:to\s+)?fail|expect(?:ed)?\s+failures?|must\s+fail|should\s+fail|fails?\s+as\s+expected"
    r"|should\s+(?:still\s+)?be\s+(?:red|failing)|(?:stay|remain)s?\s+red"
    r"|expected\s*:\s*(?:[\w-]+\s+){0,3}fail(?:s|ures?)?\b",
    re.IGNORECASE,
)
_NO_OUTPUT_RE = re.compile(
    r"\b(?:zero|no|0)\s+(?:hits|matches|results|occurrences|output|lines)\b"
    r"|\b(?:produce|print|return|output)s?\s+nothing\b|\boutput\s+(?:should|must)\s+be\s+empty\b",
    re.IGNORECASE,
)
_PASS_RE = re.compile(
    r"\b(?:must|should|all)\s+(?:\w+\s+)?pass\b|\bexpected\s*:\s*(?:all\s+)?(?:\w+\s+)?pass(?:es|ing)?\b"
    r"|\bexit(?:s)?\s+(?:code\s+)?0\b|\bsucceed",
    re.IGNORECASE,
)
_STATES_RESULT_RE = re.compile(r"\bexpect(?:ed|s)?\b\s*[:(]|\bshould\s+(?:produce|print|show|appear|return|output)"
                               r"|\bexpected\s+(?:result|output)", re.IGNORECASE)


@dataclass(frozen=True)
class Expectation:
    """A result the author stated.

    Attributes:
        expect: ``fail``, ``no-output`` or ``pass``; None when the text states a result this module cannot map.
        sentence: the author's words it comes from (one line).
    """

    expect: Expect | None
    sentence: str


def expectation_of(text: str) -> Expectation | None:
    """The result ``text`` (a comment or a sentence) states, or None when it states none.

    ``no-output`` wins over ``fail`` (``grep … # should fail to find: zero hits`` is a search that must find
    nothing); a stated pass is ``pass``; a phrase that states a result in other words (``Expected: 8+
    occurrences``, ``Only runtimeSettings.ts should appear``) is ``Expectation(None, text)``.
    """
    sentence = " ".join(text.lstrip("#").replace("**", "").split())
    if _NO_OUTPUT_RE.search(sentence):
        return Expectation("no-output", sentence)
    if _FAIL_RE.search(sentence):
        return Expectation("fail", sentence)
    if _PASS_RE.search(sentence):
        return Expectation("pass", sentence)
    if _STATES_RESULT_RE.search(sentence):
        return Expectation(None, sentence)
    return None


def sentences(paragraph: str) -> list[str]:
    """The sentences of a paragraph of prose, for :func:`expectation_of` one at a time."""
    flat = " ".join(paragraph.split())
    return [part for part in re.split(r"(?<=[.!?])\s+(?=[A-Z`*])", flat) if part]
