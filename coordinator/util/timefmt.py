"""Time as people read it and as coord's files store it: every duration formatter and timestamp helper."""

from __future__ import annotations


def format_seconds(seconds: float) -> str:
    """``1800`` -> ``30 min``; ``0.6`` -> ``0.6 s``; ``90`` -> ``1.5 min``."""
    if seconds >= 60:
        minutes = seconds / 60
        return f"{minutes:g} min" if minutes < 120 else f"{minutes / 60:g} h"
    return f"{seconds:g} s"
