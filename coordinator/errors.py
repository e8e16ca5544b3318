"""Error family and exit statuses shared by every coord command.

Who uses it: ``cli`` maps each ``CoordError`` subclass to an ``ExitStatus`` and prints one line on stderr;
the plan loader, prompt renderer, store and engine raise these instead of bare exceptions.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ExitStatus(enum.IntEnum):
    """Process exit status of every ``coord`` command (docs/design.md §3)."""

    OK = 0
    """All phases passed (or the command did what it was asked)."""
    FAILED = 1
    """The run finished with failed or blocked phases, or a remediation failed."""
    USAGE = 2
    """Bad usage, plan or template; nothing was launched."""
    LOCKED = 3
    """Another coordinator holds the workspace."""
    STORE = 4
    """The state store is unusable."""
    INTERNAL = 70
    """An internal error; a crash log holds the traceback."""
    DETACHED_SIGINT = 130
    """Detached on SIGINT (Ctrl-C); workers keep running."""
    DETACHED_SIGHUP = 129
    """Detached on SIGHUP (the terminal closed); workers keep running."""
    DETACHED_SIGTERM = 143
    """Detached on SIGTERM; workers keep running."""


@dataclass(frozen=True)
class Problem:
    """One problem found in an input file.

    Attributes:
        file: path of the file as the user named it (relative to the workspace where possible).
        field: dotted field path inside the document, e.g. ``phases[2].depends_on`` ("" for the whole file).
        message: what is wrong, in one sentence.
        line: 1-based line number from the parser's marks, or None when the parser gave none.
        column: 1-based column number, or None.
    """

    file: str
    field: str
    message: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class CoordError(Exception):
    """Base of every error coord reports to the user in one line."""

    exit_status: ExitStatus = ExitStatus.INTERNAL


class UsageError(CoordError):
    """Bad command-line usage (unknown phase, missing plan file, ...)."""

    exit_status = ExitStatus.USAGE


class PlanError(CoordError):
    """A plan (or a template it uses) is invalid.

    Attributes:
        problems: every problem found, in file order.
    """

    exit_status = ExitStatus.USAGE

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class TemplateError(PlanError):
    """A prompt template failed to load or render."""


class LockedError(CoordError):
    """Another coordinator holds the workspace lock."""

    exit_status = ExitStatus.LOCKED


class StoreError(CoordError):
    """The SQLite state store cannot be opened or written."""

    exit_status = ExitStatus.STORE
