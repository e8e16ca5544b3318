"""What the dashboard draws from the status document and the evidence, as plain functions of their input (no
widget, no app): the phase table's cells, the summary lines, the verdict tab.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from coordinator.judge.verdict import Verdict
from coordinator.states import HUNG, STATE_STYLES, PhaseState
from coordinator.util.text import plural
from coordinator.util.timefmt import format_age, format_elapsed

ROW_STYLES = {**STATE_STYLES, PhaseState.BLOCKED: "bold white on red", HUNG: "bold white on red"}
"""The table's state styles: blocked and hung phases stand out more than in `coord status`."""
CHECK_STYLES = {"pass": "green", "fail": "bold red", "warn": "yellow", "off": "yellow", "skipped": "dim"}
COLUMNS = ("phase", "kind", "title", "state", "attempt", "pid", "elapsed", "cycle", "tokens", "cost")
COLUMN_WIDTHS = (7, 6, 32, 9, 7, 7, 7, 6, 7, 6)
"""Fixed widths: letting DataTable re-measure a column on each update costs seconds at 500 rows."""


def phase_row(phase: dict[str, Any], *, show_pids: bool) -> tuple[Any, ...]:
    """The table cells of one phase of the status document (``state.status.collect_status``).

    Args:
        phase: the phase's entry, with ``max_attempts`` and ``max_cycles`` from the plan (None when unknown).
        show_pids: the worker's pid, or a dot (snapshots must not depend on pids).
    """
    state = phase["state"]
    if state in (PhaseState.RUNNING, PhaseState.REMEDIATING) and phase.get("stop_reason") == "hung":
        state = HUNG
    label = state.upper() if state in (PhaseState.BLOCKED, HUNG) else state
    running = phase["pid"] is not None
    attempt = str(phase["attempts"])
    if phase.get("max_attempts"):
        uncounted = phase.get("uncounted_attempts", 0)
        counted = phase["attempts"] - uncounted
        if counted > phase["max_attempts"]:  # a person's remediations past the limit
            attempt = f"{attempt} ({phase['max_attempts']} + {counted - phase['max_attempts']} extra)"
        else:
            attempt = f"{attempt} ({counted}/{phase['max_attempts']})" if uncounted else (
                f"{counted}/{phase['max_attempts']}")
    cycle = ""
    if running:
        cycle = f"{phase['cycle']}/{phase['max_cycles']}" if phase.get("max_cycles") else str(phase["cycle"])
    pid = str(phase["pid"]) if running and show_pids else ("•" if running else "")
    cost = f"${phase['cost_usd']:.2f}" if phase.get("cost_usd") else ""
    return (
        phase["id"], phase["kind"], phase["title"], Text(label, style=ROW_STYLES.get(state, "")),
        attempt, pid, format_age(phase["elapsed_s"]),
        cycle, str(phase["tokens"] or ""), cost,
    )


def summary_markup(report: dict[str, Any], mode: str) -> str:
    """The two summary lines above the table (Textual markup), ``mode`` saying who runs the plan."""
    totals = report["totals"]
    paused = " · [b yellow]PAUSED[/]" if report["paused"] else ""
    paused += " · [b red]TAMPERED[/] (coord status says how)" if report.get("tampered") else ""
    cost = f" · ${totals['cost_usd']:.2f}" if totals["cost_usd"] else ""
    return (
        f"[b]{report['plan']}[/] — {report['title']} · {mode}{paused}\n"
        f"{totals['passed']}/{totals['phases']} passed · {totals['running']} running · "
        f"[{'b red' if totals['blocked'] else 'dim'}]{totals['blocked']} blocked[/] · "
        + (f"[blue]{totals['waiting']} waiting on a usage limit[/] · " if totals.get("waiting") else "")
        + (f"[yellow]{totals['unverified']} on unverified evidence[/] · " if totals.get("unverified") else "") +
        f"{totals['attempts']} attempts ({plural(totals['remediations'], 'remediation')}) · "
        f"elapsed {format_elapsed(report.get('elapsed_s'))} · {totals['tokens']} tokens{cost} · "
        f"run {report['state']}"
    )


def verdict_renderable(phase: dict[str, Any], verdict: Verdict | None) -> RenderableType:
    """The verdict tab: the verdict line and a table of every check with its evidence (``evidence.json``)."""
    if verdict is None:
        return Text(f"no verdict yet ({phase['state']})", style="dim")
    head = Text(f"{verdict.label} — {verdict.reason}", style="bold green" if verdict.passed else "bold red")
    if verdict.source != "checks":
        head.append(f"  (source: {verdict.source})", style="dim")
    table = Table(expand=True, show_lines=False, pad_edge=False)
    table.add_column("check", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("evidence")
    tails: list[Text] = []
    for check in verdict.checks:
        style = CHECK_STYLES.get(check.status, "")
        detail = check.detail + (f"\n{check.path}" if check.path else "")
        table.add_row(check.name, Text(check.status, style=style), detail)
        if check.status == "fail" and check.output_tail:
            tails.append(Text(f"\n{check.name} output (end):", style="bold"))
            tails.append(Text(check.output_tail[-3000:]))
    return Group(head, table, *tails)
