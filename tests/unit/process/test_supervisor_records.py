"""The supervisor writes its records without ``json`` and names signals without ``signal`` (a faster start):
what it writes must read back with ``json`` exactly, and the names must be ``signal``'s."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from coordinator.process import proc_scan, supervisor


def test_records_read_back_with_json() -> None:
    record = {
        "attempt_id": "3f1c", "exit_code": 0, "signal": None, "duration_s": 0.125, "exit_unknown": False,
        "stragglers": [12, 13], "straggler_names": {"12": 'sh "quoted" \\ back', "13": "naïve ✓ \u0000 tab\t"},
        "log_cap": {"cap_bytes": 67108864, "dropped_bytes": 0, "not_enforced": None}, "empty": {}, "big": 1e20,
    }
    text = supervisor.json_text(record)
    assert json.loads(text) == record
    assert text.startswith('{\n  "attempt_id": "3f1c",\n')  # indented, keys sorted, for people


def test_signal_names_are_signals_own() -> None:
    for number in range(1, 32):
        assert proc_scan.signal_name(number) == signal.Signals(number).name


def test_the_supervisor_starts_without_json_re_or_enum(tmp_path: Path) -> None:
    # What the supervisor loads as it starts (run by path, as coord runs it): the slow modules stay out.
    path = str(Path(supervisor.__file__))
    script = (f"import sys; path = {path!r}; "
              "exec(compile(open(path).read(), path, 'exec'), {'__name__': 'not_main', '__file__': path}); "
              "print(sorted(name for name in ('json', 're', 'enum', 'signal', 'importlib.util', 'socket') "
              "if name in sys.modules))")
    loaded = subprocess.run([sys.executable, "-I", "-S", "-c", script], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"
