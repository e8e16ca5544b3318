"""The harness that keeps the fault-matrix tests honest: the autouse ``no_leaks`` fixture (tests/conftest.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import psutil

from tests.helpers import REPO_ROOT

LEAKING_TEST = '''\
import subprocess


def test_leaves_a_sleeper_behind():
    subprocess.Popen(["sleep", "300"], start_new_session=True)  # in a session of its own, as workers are
'''


def test_I10_no_leaks_fails_a_test_that_leaves_a_process_behind_and_kills_it(tmp_path: Path) -> None:
    """Test hygiene (I10): a test whose process outlives it, even in a session of its own, fails naming it, and
    the process is killed so that the next test starts clean."""
    (tmp_path / "conftest.py").write_text("from tests.conftest import no_leaks  # noqa: F401\n")
    (tmp_path / "test_leak.py").write_text(LEAKING_TEST)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")

    inner = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
         "-c", str(tmp_path / "pytest.ini"), str(tmp_path / "test_leak.py")],
        cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, capture_output=True, text=True, timeout=60)

    assert inner.returncode == 1, inner.stdout + inner.stderr
    found = re.search(r"test left processes running: (\d+) sleep 300", inner.stdout)
    assert found, inner.stdout
    pid = int(found.group(1))
    try:
        leaked = psutil.Process(pid)
        assert leaked.status() == psutil.STATUS_ZOMBIE or "sleep" not in leaked.name(), "the sleeper was not killed"
    except psutil.NoSuchProcess:
        pass
