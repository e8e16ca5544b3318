"""``coord status --markdown``: a run's state as Markdown, to paste into an issue or a chat.

Counts by state, the phases not passed with their reason, each running worker with how long since it last wrote
to its log, and the last events. Plain text; no terminal features.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

from coordinator.process.records import LOG_FILE
from coordinator.state.records import EventRecord
from coordinator.states import DONE_PHASE_STATES
from coordinator.util.timefmt import format_elapsed

LAST_EVENTS = 10


def status_markdown(report: dict[str, Any], events: list[EventRecord], plan_dir: Path,
                    now: float | None = None) -> str:
    """The Markdown text.

    Args:
        report: the status document (``state.status.collect_status``).
        events: the plan's last events, oldest first (``Store.last_events``).
        plan_dir: the plan's ``tmp/PLAN`` folder, where each running attempt's ``worker.log`` is.
        now: the clock (seconds since the epoch); default ``time.time()``.
    """
    now = time.time() if now is None else now
    phases = report["phases"]
    counts = Counter(phase["state"] for phase in phases)
    totals = report["totals"]
    lines = [f"## coord: {report['plan']} — {report['title']}", ""]
    run_state = report["state"] + (" (tampered: " + report["tampered"] + ")" if report.get("tampered") else "")
    lines.append(f"**{counts.get('passed', 0)}/{len(phases)} passed** · run {run_state} · "
                 f"{totals['attempts']} attempts · " + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())))
    cost = sum(phase["cost_usd"] or 0 for phase in phases)
    if cost:
        lines[-1] += f" · ${cost:.2f}"
    unverified = [phase["id"] for phase in phases if phase.get("unverified")]
    if unverified:
        lines.append(f"\n**{len(unverified)} passed on existing evidence, verification not re-run:** "
                     f"{', '.join(unverified)}")
    running = [phase for phase in phases if phase["pid"] is not None]
    if running:
        lines += ["", "### Running", "", "| phase | attempt | running for | last output |", "|---|---|---|---|"]
        for phase in running:
            quiet = _since_last_output(plan_dir / phase["id"] / str(phase["attempts"]) / LOG_FILE, now)
            lines.append(f"| {phase['id']} | {phase['attempts']} | {format_elapsed(phase['elapsed_s'])} | "
                         f"{quiet} |")
    stuck = [phase for phase in phases if phase["state"] not in DONE_PHASE_STATES and phase["pid"] is None
             and phase["state"] != "pending"]
    if stuck:
        lines += ["", "### Not passed", "", "| phase | state | attempts | why |", "|---|---|---|---|"]
        for phase in stuck:
            lines.append(f"| {phase['id']} | {phase['state']} | {phase['attempts']} | "
                         f"{_cell(phase['reason'] or '')} |")
    if events:
        lines += ["", f"### Last {len(events)} events", ""]
        lines += [f"- `{event.at}` {_cell(event.message)}" for event in events]
    return "\n".join(lines) + "\n"


def _since_last_output(log: Path, now: float) -> str:
    try:
        return f"{format_elapsed(max(0.0, now - os.stat(log).st_mtime))} ago"
    except OSError:
        return "no output yet"


def _cell(text: str) -> str:
    """One table cell: one line, pipes escaped, at most 300 characters."""
    flat = " ".join(text.split()).replace("|", "\\|")
    return flat if len(flat) <= 300 else flat[:299] + "…"
