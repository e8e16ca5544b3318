"""Shared fixtures: leak detection for every test, the fake codex CLI, and the real plan folders beside the checkout."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.helpers import FAKES, SHARED_REAL_PLANS, processes_with_cookie


@pytest.fixture(autouse=True)
def no_leaks(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Fail any test that leaves a process behind carrying this test's ``COORD_TEST_RUN`` cookie.

    Every process a test starts inherits the cookie; at teardown survivors are killed (so the next test is
    clean) and the test fails naming them.
    """
    cookie = uuid.uuid4().hex
    monkeypatch.setenv("COORD_TEST_RUN", cookie)
    # Each test's state directories (stores, locks) under its own folder, never the user's ~/.local/state.
    state_home = Path(tempfile.gettempdir()) / f"coord-test-state-{cookie}"
    monkeypatch.setenv("COORD_STATE_HOME", str(state_home))
    try:
        yield cookie
        _fail_on_survivors(cookie)
    finally:
        shutil.rmtree(state_home, ignore_errors=True)


def _fail_on_survivors(cookie: str) -> None:
    deadline = time.monotonic() + 5.0
    survivors = processes_with_cookie("COORD_TEST_RUN", cookie)
    while survivors and time.monotonic() < deadline:
        time.sleep(0.05)
        survivors = processes_with_cookie("COORD_TEST_RUN", cookie)
    if survivors:
        described = []
        for process in survivors:
            try:
                described.append(f"{process.pid} {' '.join(process.cmdline())[:120]}")
                process.kill()
            except psutil.NoSuchProcess:
                pass
        pytest.fail("test left processes running: " + "; ".join(described))


@pytest.fixture
def fake_codex() -> Path:
    """Path of the fake ``codex`` CLI (speaks the ``codex exec --json`` protocol)."""
    path = FAKES / "codex"
    assert os.access(path, os.X_OK), f"{path} must be executable"
    return path


@pytest.fixture
def real_plans() -> Path:
    """The real llxprt-code plan folders (``../shared/real-plans``); the test skips with one line without them."""
    if not SHARED_REAL_PLANS.is_dir():
        pytest.skip("../shared/real-plans not found: real-plan import tests need it")
    return SHARED_REAL_PLANS
