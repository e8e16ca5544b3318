"""The crash soak (``bench/soak.py``) at a size for the test suite: 30 misbehaving fake workers, 8 at once, the
coordinator SIGKILLed and restarted twice and one supervisor killed; every bookkeeping check must hold."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import REPO_ROOT

pytestmark = pytest.mark.slow


@pytest.mark.timeout(300)
def test_a_30_phase_crash_soak_accounts_for_every_attempt_event_and_process() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "soak.py"), "--phases", "30", "--parallel", "8", "--kills", "2",
         "--seed", "7", "--deadline", "240", "--json"],
        capture_output=True, text=True, timeout=280)

    assert result.returncode in (0, 1), result.stderr
    report = json.loads(result.stdout)
    assert report["restarts"] >= 2 and report["supervisors_killed"] == 1
    assert report["checks"] == {name: True for name in report["checks"]}, report["problems"]
    assert report["attempts"] > report["phases"], "remediations happened"
