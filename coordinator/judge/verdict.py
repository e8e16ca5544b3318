"""Verdict and evidence values (docs/design.md §9): what ``checks`` produces and the engine, store, remediation
prompt and TUI all read. ``evidence.json`` is ``Verdict.to_dict()``, and every reader of it goes through
:meth:`Verdict.read`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from coordinator.util.files import read_json, write_json_atomic

EVIDENCE_FILE = "evidence.json"
"""The attempt folder's record of its verdict and every check behind it."""

CheckStatus = Literal["pass", "fail", "warn", "skipped", "off"]
"""``off``: switched off by the plan (recorded, never silent); ``skipped``: not run because of an earlier failure;
``warn``: a finding that does not decide the verdict (a command the worker ran failed)."""


@dataclass(frozen=True)
class CheckResult:
    """One check behind a verdict.

    Attributes:
        name: ``exit``, ``report``, ``completed``, ``protected``, ``verify[N]`` or ``command[N]`` (a command
            the worker ran that failed).
        status: pass, fail, warn, skipped or off.
        detail: one human sentence, e.g. "verification `pytest -q` exited 1 (expected pass)".
        path: workspace-relative file the check read (report, marker, verify output log), if any.
        argv: the command run (verify checks).
        exit_code: the command's or worker's exit code, if any.
        output_tail: last bytes of the relevant output, capped, with a "… N earlier bytes in PATH" note.
    """

    name: str
    status: CheckStatus
    detail: str
    path: str | None = None
    argv: tuple[str, ...] | None = None
    exit_code: int | None = None
    output_tail: str | None = None
    seconds: float | None = None
    """How long what the check looked at took (an MCP tool call), when known."""


@dataclass(frozen=True)
class Verdict:
    """PASS or FAIL of one attempt with every check behind it."""

    passed: bool
    reason: str
    """One line: "all checks passed" or the first failing check's detail."""
    checks: tuple[CheckResult, ...] = field(default_factory=tuple)
    source: str = "checks"
    """How the verdict was reached: ``checks`` (coord's own), ``existing-evidence`` (import), ``lost``."""
    git: dict[str, Any] | None = None
    """In a git working tree: the commits of the attempt's tree before and after, the files it changed and, for a
    PASS, its checkpoint (``git.checkpoints.AttemptChanges.to_dict`` plus ``checkpoint``); None without git."""

    @property
    def label(self) -> str:
        return "PASS" if self.passed else "FAIL"

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.label,
            "passed": self.passed,
            "reason": self.reason,
            "source": self.source,
            "checks": [asdict(check) for check in self.checks],
            **({"git": self.git} if self.git is not None else {}),
        }

    def write(self, path: Path, inside: Path | None = None) -> None:
        """Write ``evidence.json`` atomically (into a folder inside ``inside``, the workspace, when given).

        Raises:
            OutsideWorkspace: the folder is, links followed, outside ``inside``.
            OSError: it could not be written.
        """
        write_json_atomic(path, self.to_dict(), inside=inside)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verdict:
        """The verdict in an ``evidence.json`` object; unknown keys are ignored, missing ones take defaults.

        Raises:
            ValueError: ``passed`` or ``reason`` is missing.
        """
        if "passed" not in data or "reason" not in data:
            raise ValueError("evidence without passed/reason")
        checks = []
        for check in data.get("checks") or []:
            if not isinstance(check, dict):
                continue
            known = {key: value for key, value in check.items() if key in _CHECK_FIELDS}
            known.setdefault("name", "?")
            known.setdefault("status", "fail")
            known.setdefault("detail", "")
            if known.get("argv"):
                known["argv"] = tuple(known["argv"])
            checks.append(CheckResult(**known))
        return cls(
            passed=bool(data["passed"]),
            reason=str(data["reason"]),
            checks=tuple(checks),
            source=str(data.get("source", "checks")),
            git=data["git"] if isinstance(data.get("git"), dict) else None,
        )

    @classmethod
    def read(cls, path: Path) -> Verdict | None:
        """The verdict in ``evidence.json`` at ``path``, or None when it is missing, torn or not evidence."""
        data = read_json(path)
        if not isinstance(data, dict):
            return None
        try:
            return cls.from_dict(data)
        except (TypeError, ValueError):
            return None


_CHECK_FIELDS = frozenset(field.name for field in fields(CheckResult))
