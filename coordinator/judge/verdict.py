"""Verdict and evidence values (DESIGN section 7): what ``checks`` produces and the engine, store, remediation
prompt and TUI all read. ``evidence.json`` is ``Verdict.to_dict()``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

CheckStatus = Literal["pass", "fail", "skipped", "off"]
"""``off``: switched off by the plan (recorded, never silent); ``skipped``: not run because of an earlier failure."""


@dataclass(frozen=True)
class CheckResult:
    """One check behind a verdict.

    Attributes:
        name: ``exit``, ``report``, ``completed`` or ``verify[N]``.
        status: pass, fail, skipped or off.
        detail: one human sentence, e.g. "verification `pytest -q` exited 1 (expected pass)".
        path: workspace-relative file the check read (report, marker, verify output log), if any.
        argv: the command run (verify checks).
        exit_code: the command's or worker's exit code, if any.
        output_tail: last bytes of the relevant output, capped, with a "… N more bytes in PATH" note.
    """

    name: str
    status: CheckStatus
    detail: str
    path: str | None = None
    argv: tuple[str, ...] | None = None
    exit_code: int | None = None
    output_tail: str | None = None


@dataclass(frozen=True)
class Verdict:
    """PASS or FAIL of one attempt with every check behind it."""

    passed: bool
    reason: str
    """One line: "all checks passed" or the first failing check's detail."""
    checks: tuple[CheckResult, ...] = field(default_factory=tuple)
    source: str = "checks"
    """How the verdict was reached: ``checks`` (coord's own), ``existing-evidence`` (import), ``lost``."""

    @property
    def label(self) -> str:
        return "PASS" if self.passed else "FAIL"

    def failed_checks(self) -> tuple[CheckResult, ...]:
        return tuple(check for check in self.checks if check.status == "fail")

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.label,
            "passed": self.passed,
            "reason": self.reason,
            "source": self.source,
            "checks": [asdict(check) for check in self.checks],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verdict:
        checks = tuple(
            CheckResult(**{**check, "argv": tuple(check["argv"]) if check.get("argv") else None})
            for check in data.get("checks", [])
        )
        return cls(
            passed=bool(data["passed"]),
            reason=str(data["reason"]),
            checks=checks,
            source=str(data.get("source", "checks")),
        )
