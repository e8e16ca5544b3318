"""Small text helpers for lines people read."""

from __future__ import annotations


def plural(count: int, noun: str) -> str:
    """``plural(1, "remediation")`` -> ``1 remediation``; ``plural(2, ...)`` -> ``2 remediations``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
