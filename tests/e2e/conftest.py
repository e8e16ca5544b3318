"""The fixture every end-to-end test shares: an empty workspace folder (``<tmp>/ws``) for ``coord`` to run in."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    return root
