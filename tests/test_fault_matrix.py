"""The fault matrix of ``../shared/RELIABILITY.md`` as tests: every row (A1 … G3) of its section 4 is a test
named after it (``test_A3_…``), is named in a test's docstring as ``also <ID>`` when one test covers two rows, or
has a one-line reason in a test file saying why it cannot run here (``# <ID> …: reason`` or a ``pytest.skip``
naming it); and every invariant I1 … I10 of its section 3 is named in the docstring of a test that checks it.

The spec lives beside the checkout (``<repo>/../shared``); without it the test skips with one line.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

RELIABILITY = Path(__file__).resolve().parents[2] / "shared" / "RELIABILITY.md"
TESTS = Path(__file__).resolve().parent

ROW = re.compile(r"^\| ([A-G]\d+) \|", re.MULTILINE)
INVARIANT = re.compile(r"^- \*\*(I\d+) ", re.MULTILINE)
NAMED_TEST = re.compile(r"^test_([A-G]\d+)_")
ALSO = re.compile(r"\b[Aa]lso ([A-G]\d+)\b")
# A reason a row cannot run here: a comment "# C3 (clock step): ..." or a skip whose reason starts with the id.
REASON_COMMENT = re.compile(r"^\s*#\s*([A-G]\d+)\b[^:\n]*:\s*\S", re.MULTILINE)
REASON_SKIP = re.compile(r"pytest\.skip\(\s*[rf]?[\"']([A-G]\d+)\b[^\"']*:")


def spec_text() -> str:
    if not RELIABILITY.is_file():
        pytest.skip(f"{RELIABILITY} not found: the fault-matrix check needs ../shared/RELIABILITY.md")
    return RELIABILITY.read_text(encoding="utf-8")


def section(text: str, number: int) -> str:
    """Section ``## <number>.`` of the spec, up to the next numbered section."""
    start = re.search(rf"^## {number}\. ", text, re.MULTILINE)
    assert start, f"RELIABILITY.md has no section {number}"
    end = re.search(rf"^## {number + 1}\. ", text[start.end():], re.MULTILINE)
    return text[start.start(): start.end() + end.start()] if end else text[start.start():]


def _test_files() -> list[Path]:
    return sorted(path for path in TESTS.rglob("test_*.py") if ".venv" not in path.parts)


def _test_functions() -> list[tuple[Path, str, str]]:
    """Every test function under tests/: (file, name, docstring)."""
    found = []
    for path in _test_files():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_"):
                found.append((path, node.name, ast.get_docstring(node) or ""))
    return found


def test_every_row_of_the_fault_matrix_has_a_test_or_a_reason() -> None:
    rows = ROW.findall(section(spec_text(), 4))
    assert len(rows) == len(set(rows)) > 50, rows
    functions = _test_functions()
    named = {match.group(1) for _, name, _ in functions if (match := NAMED_TEST.match(name))}
    also = {row for _, _, doc in functions for row in ALSO.findall(doc)}
    reasons = set()
    for path in _test_files():
        text = path.read_text(encoding="utf-8")
        reasons |= set(REASON_COMMENT.findall(text)) | set(REASON_SKIP.findall(text))

    missing = [row for row in rows if row not in named | also | reasons]

    assert not missing, f"fault-matrix rows with no test_<ID>_ test, 'also <ID>' docstring or reason: {missing}"
    unknown = sorted(named - set(rows))
    assert not unknown, f"tests named after rows RELIABILITY.md does not have: {unknown}"


def test_every_invariant_is_named_by_a_test_that_checks_it() -> None:
    invariants = INVARIANT.findall(section(spec_text(), 3))
    assert invariants == [f"I{n}" for n in range(1, len(invariants) + 1)] and len(invariants) >= 10, invariants
    docstrings = [doc for _, _, doc in _test_functions()]

    missing = [inv for inv in invariants if not any(re.search(rf"\b{inv}\b", doc) for doc in docstrings)]

    assert not missing, f"invariants no test docstring names: {missing}"
