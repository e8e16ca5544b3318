"""The headless event printer: one timestamped line per engine event on stdout (``coord run`` without a TUI)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from coordinator.state.events import EngineEvent, Notice, RunFinished, VerdictReached


class HeadlessPrinter:
    """An engine ``sink`` that prints ``HH:MM:SS message`` lines and flushes each one (logs are often piped)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def __call__(self, event: EngineEvent) -> None:
        stamp = time.strftime("%H:%M:%S", time.localtime(event.at))
        prefix = ""
        if isinstance(event, VerdictReached):
            prefix = "✔ " if event.passed else "✘ "
        elif isinstance(event, Notice) and event.level == "warning":
            prefix = "! "
        elif isinstance(event, RunFinished):
            prefix = "= "
        self.stream.write(f"{stamp} {prefix}{event.message}\n")
        self.stream.flush()

    def banner(self, text: str) -> None:
        line = "!" * min(100, len(text) + 4)
        self.stream.write(f"{line}\n! {text}\n{line}\n")
        self.stream.flush()
