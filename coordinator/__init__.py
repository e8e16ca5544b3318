"""coord: a phase-based plan coordinator for AI coding-agent CLIs.

Importing the package loads nothing else; see ``coordinator.cli.main`` for the entry point.
"""

from __future__ import annotations

__version__ = "0.1.0"
