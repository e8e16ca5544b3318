"""coord: a phase-based plan coordinator for AI coding-agent CLIs.

Importing the package loads nothing else; see ``coordinator.cli.main`` for the entry point.
"""

from __future__ import annotations

import sys

__version__ = "0.1.0"

# coord's modules are cached as bytecode even where PYTHONDONTWRITEBYTECODE is set (an editable install is never
# compiled by pip): every `coord` call would otherwise compile some sixty of them again, a third of what
# `coord status` costs on a large plan (bench/cli.py). The caches go to coord's own `__pycache__` folders.
sys.dont_write_bytecode = False
