"""What the dashboard shows, read from the store and the attempt folders — no textual here, so it is testable
and cheap to call from a timer.

Who calls it: ``tui.app.CoordApp`` on each refresh tick. Everything is read-only: the store through its own
read-only connection, the attempt files (log, report, marker, evidence, prompt) straight from disk.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coordinator.errors import StoreError
from coordinator.paths import WorkspacePaths
from coordinator.plan.model import Plan
from coordinator.state.lock import holder_info, is_locked
from coordinator.state.status import collect_status
from coordinator.state.store import Store
from coordinator.util.timefmt import epoch_seconds

MAX_FILE_BYTES = 256 * 1024
"""Cap on how much of a report, marker or prompt the detail pane reads."""


@dataclass(frozen=True)
class PhaseFiles:
    """Paths of the selected phase's latest attempt and of its evidence files (absolute, may not exist)."""

    attempt: int
    attempt_dir: Path
    log: Path
    prompt: Path
    evidence: Path
    report: Path | None
    marker: Path | None


class DashboardSource:
    """The run a dashboard looks at: a workspace, a plan id, and (when loadable) the plan itself.

    Args:
        paths: the workspace.
        plan_id: the plan whose run is shown.
        plan: the validated plan, for attempt and cycle limits and artifact paths; None when it cannot be loaded.
        clock: seconds since the epoch; tests inject a fixed one so snapshots do not change.
    """

    def __init__(self, paths: WorkspacePaths, plan_id: str, plan: Plan | None, clock: Any = time.time) -> None:
        self.paths = paths
        self.plan_id = plan_id
        self.plan = plan
        self.clock = clock
        self.store: Store | None = None
        self._artifacts: dict[str, tuple[str, str]] = {}

    def open(self) -> None:
        self.store = Store.open_readonly(self.paths)

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None

    def snapshot(self) -> dict[str, Any] | None:
        """The status document (``status.collect_status``) plus limits from the plan; None before any run."""
        if self.store is None:
            try:
                self.open()
            except StoreError:  # unreadable this instant (e.g. locked past the timeout): try again next tick
                return None
            if self.store is None:
                return None
        report = collect_status(self.paths, self.plan_id, now=self.clock(), store=self.store)
        for phase in report["phases"]:
            limits = self._limits(phase["id"])
            phase["max_attempts"], phase["max_cycles"] = limits
        started = epoch_seconds(report.get("started_at"))
        ended = epoch_seconds(report.get("ended_at"))
        report["elapsed_s"] = max(0.0, (ended or self.clock()) - started) if started else None
        return report

    def _limits(self, phase_id: str) -> tuple[int | None, int | None]:
        if self.plan is None:
            return None, None
        try:
            policy = self.plan.phase(phase_id).policy
        except KeyError:
            return None, None
        return policy.max_attempts, policy.max_cycles

    def events(self, after_seq: int) -> list[Any]:
        if self.store is None:
            return []
        return self.store.events(self.plan_id, after_seq=after_seq)

    def coordinator(self) -> dict[str, Any] | None:
        """The running coordinator's ``lock.info`` (pid, plan, socket) or None when none holds the workspace."""
        if not is_locked(self.paths):
            return None
        info = holder_info(self.paths)
        return info if info is not None else {}

    def files(self, phase_id: str, attempts: int) -> PhaseFiles | None:
        """Paths of the phase's latest attempt (``attempts`` = how many it has had); None before the first."""
        if attempts < 1:
            return None
        attempt_dir = self.paths.attempt_dir(self.plan_id, phase_id, attempts)
        report, marker = self._artifact_paths(phase_id)
        return PhaseFiles(
            attempt=attempts,
            attempt_dir=attempt_dir,
            log=attempt_dir / "worker.log",
            prompt=attempt_dir / "prompt.md",
            evidence=attempt_dir / "evidence.json",
            report=self.paths.workspace / report if report else None,
            marker=self.paths.workspace / marker if marker else None,
        )

    def _artifact_paths(self, phase_id: str) -> tuple[str | None, str | None]:
        if self.plan is None:
            return None, None
        if phase_id not in self._artifacts:
            from coordinator.prompts.renderer import PromptRenderer

            try:
                paths = PromptRenderer(Path(self.plan.workspace)).artifact_paths(self.plan, self.plan.phase(phase_id))
            except Exception:  # a plan edited since the run: show what we can
                return None, None
            self._artifacts[phase_id] = (paths.report, paths.completed)
        return self._artifacts[phase_id]


def read_text(path: Path | None, limit: int = MAX_FILE_BYTES) -> str | None:
    """A file's text (its first ``limit`` bytes, with a note when cut), or None when it does not exist."""
    if path is None:
        return None
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError:
        return None
    text = data[:limit].decode("utf-8", errors="replace")
    if len(data) > limit:
        text += f"\n\n… cut at {limit // 1024} KiB; the whole file is {path}"
    return text
