"""Shared fixtures: leak detection for every test, and small helpers for waiting on real processes."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
FAKES = Path(__file__).resolve().parent / "fakes"


def processes_with_cookie(name: str, value: str) -> list[psutil.Process]:
    """Live (non-zombie) processes whose environment holds ``name=value``."""
    found = []
    for process in psutil.process_iter(["environ", "status"]):
        try:
            environ = process.info["environ"] or {}
            if environ.get(name) == value and process.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


@pytest.fixture(autouse=True)
def no_leaks(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Fail any test that leaves a process behind carrying this test's ``COORD_TEST_RUN`` cookie.

    Every process a test starts inherits the cookie; at teardown survivors are killed (so the next test is
    clean) and the test fails naming them.
    """
    cookie = uuid.uuid4().hex
    monkeypatch.setenv("COORD_TEST_RUN", cookie)
    yield cookie
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


def wait_until(predicate: Callable[[], object], timeout: float = 15.0, every: float = 0.02) -> object:
    """Poll ``predicate`` until it returns a truthy value; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s: {predicate}")
        time.sleep(every)


@pytest.fixture
def fake_codex() -> Path:
    """Path of the fake ``codex`` CLI (speaks the ``codex exec --json`` protocol)."""
    path = FAKES / "codex"
    assert os.access(path, os.X_OK), f"{path} must be executable"
    return path
