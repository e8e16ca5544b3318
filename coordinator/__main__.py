"""``python -m coordinator`` runs the ``coord`` command line."""

from __future__ import annotations

import sys

from coordinator.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
