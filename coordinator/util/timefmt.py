"""Time as people read it and as coord's files store it: every duration formatter and timestamp helper.

- ``parse_duration`` / ``format_plan_duration``: durations as plans write them (``5m``, ``1h30m``, ``250ms``);
- ``format_seconds``: a span in a sentence (``30 min``, the hang policy's reasons);
- ``format_elapsed`` / ``format_age``: running times in the dashboard (``1m15s``; ``12m`` in the table);
- ``now_iso`` / ``epoch_seconds``: the timestamps of the store and of every file coord writes.
"""

from __future__ import annotations

import functools
import re
import time
from datetime import datetime


def format_seconds(seconds: float) -> str:
    """``1800`` -> ``30 min``; ``0.6`` -> ``0.6 s``; ``90`` -> ``1.5 min``."""
    if seconds >= 60:
        minutes = seconds / 60
        return f"{minutes:g} min" if minutes < 120 else f"{minutes / 60:g} h"
    return f"{seconds:g} s"


def now_iso() -> str:
    """Local time with offset, second precision: ``2026-11-24T08:00:00+0000`` (the format of every timestamp in
    coord's files and store; the supervisor, which is stdlib-only and runs by path, keeps its own copy)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_BARE_NUMBER_RE = re.compile(_NUMBER)
_DURATION_RE = re.compile(rf"(?:{_NUMBER}\s*(?:ms|s|m|h|d)\s*)+")
_DURATION_PART_RE = re.compile(rf"({_NUMBER})\s*(ms|s|m|h|d)")


def parse_duration(value: object) -> float:
    """Parse a plan duration into seconds.

    Args:
        value: a non-negative number of seconds (``300``, ``0.2``), or a string of number+unit parts with units
            ``ms``, ``s``, ``m``, ``h``, ``d`` (``"250ms"``, ``"10s"``, ``"1.5m"``, ``"2h"``, ``"1h30m"``), or a
            string holding a bare number of seconds (``"300"``).

    Returns:
        Seconds as a float.

    Raises:
        ValueError: anything else (booleans, negative or non-finite numbers, unknown units, empty strings).
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 300, '10s', '5m', '1h' or '250ms', got {value!r}")
    if isinstance(value, (int, float)):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"duration must be a finite number of seconds, got {value!r}")
        if value < 0:
            raise ValueError(f"duration must not be negative, got {value!r}")
        return float(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if _BARE_NUMBER_RE.fullmatch(text):
            return float(text)
        if _DURATION_RE.fullmatch(text):
            return sum(float(number) * _UNITS[unit] for number, unit in _DURATION_PART_RE.findall(text))
    raise ValueError(f"expected a duration such as 300, '10s', '5m', '1h' or '250ms', got {value!r}")


@functools.lru_cache(maxsize=65536)
def epoch_seconds(stamp: str | None) -> float | None:
    """``2026-11-24T08:00:00+0000`` (the store's format) -> seconds since the epoch; None if unparseable."""
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return None


def format_age(seconds: float | None) -> str:
    """A table cell's running time: ``45s`` in the first minute, then ``12m``, ``1h05m``; None -> ``""``.

    Coarser than :func:`format_elapsed` on purpose: a cell that changes every second makes the phase table
    repaint every tick (about 100 ms of CPU with a full screen of rows), for a digit nobody reads at a glance.
    """
    return format_elapsed(seconds, with_seconds=False)


def format_elapsed(seconds: float | None, with_seconds: bool = True) -> str:
    """``75`` -> ``1m15s`` (``1m`` without seconds); ``3700`` -> ``1h01m``; None -> ``""``."""
    if seconds is None:
        return ""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s" if with_seconds else f"{seconds // 60}m"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def format_plan_duration(seconds: float) -> str:
    """Format seconds the way plans write them (the prompts' ``duration`` filter).

    Args:
        seconds: a non-negative number of seconds.

    Returns:
        ``250ms``, ``45s``, ``10m``, ``1h30m`` ...; fractions of a second above one second are kept (``1.5s``).
    """
    seconds = float(seconds)
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    if seconds != int(seconds):
        return f"{seconds:g}s"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{value}{unit}" for value, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if value]
    return "".join(parts)
