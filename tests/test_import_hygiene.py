"""Import hygiene: the engine and everything below the dashboard import without textual (the import contract in
pyproject.toml checks the direct imports; this checks what actually loads)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # selected with the end-to-end tests, as before it had a file of its own


def test_no_module_outside_tui_imports_textual() -> None:
    """The engine must stay usable without the dashboard: importing every non-TUI module loads no textual."""
    root = Path(__file__).resolve().parent.parent / "coordinator"
    modules = sorted(
        "coordinator." + ".".join(path.relative_to(root).with_suffix("").parts)
        for path in root.rglob("*.py")
        if "tui" not in path.relative_to(root).parts and path.name != "__main__.py"
    )
    code = "import sys\n" + "".join(f"import {m.removesuffix('.__init__')}\n" for m in modules) + (
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'textual'))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(result.stdout.strip().replace("'", '"')) == []
