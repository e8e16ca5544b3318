"""``coord status`` for people: the status document as a rich table, with why each phase not passed stopped."""

from __future__ import annotations

import sys
from typing import Any

from coordinator.states import STATE_STYLES
from coordinator.util.text import plural


def print_status(report: dict[str, Any]) -> None:
    """Print the status document as a table on stdout, with the reason of each phase not passed below it."""
    from rich.console import Console
    from rich.table import Table

    totals = report["totals"]
    console = Console(width=None if sys.stdout.isatty() else 120)
    table = Table(title=f"{report['plan']} — {report['title']}", title_justify="left")
    phases = report["phases"]
    widest_id = max((len(phase["id"]) for phase in phases), default=5)
    # Columns that would be empty for every phase are left out, so the verdict keeps its room on 80-120 columns.
    optional = {
        "pid": any(phase["pid"] for phase in phases),
        "elapsed": any(phase["elapsed_s"] is not None for phase in phases),
        "cycle": any(phase["cycle"] for phase in phases),
        "tokens": any(phase["tokens"] for phase in phases),
        "cost": any(phase["cost_usd"] for phase in phases),
    }
    table.add_column("phase", no_wrap=True, min_width=max(5, widest_id))
    table.add_column("kind", no_wrap=True, min_width=6)
    table.add_column("title", max_width=32, overflow="ellipsis", no_wrap=True)
    table.add_column("state", no_wrap=True, min_width=11)
    table.add_column("attempts", justify="right", no_wrap=True)
    for column, shown in optional.items():
        if shown:
            table.add_column(column, justify="right", no_wrap=True)
    table.add_column("verdict", overflow="fold", min_width=20)
    for phase in phases:
        style = STATE_STYLES.get(phase["state"], "")
        verdict = phase["verdict"] or ""
        if phase["verdict_source"] and phase["verdict_source"] != "checks":
            verdict += f" ({phase['verdict_source']})"
        attempts = str(phase["attempts"])
        if phase["remediations"]:
            attempts += f" ({plural(phase['remediations'], 'remediation')})"
        values = {
            "pid": str(phase["pid"] or ""),
            "elapsed": f"{phase['elapsed_s']:.0f}s" if phase["elapsed_s"] is not None else "",
            "cycle": str(phase["cycle"] or ""),
            "tokens": str(phase["tokens"] or ""),
            "cost": f"${phase['cost_usd']:.2f}" if phase["cost_usd"] else "",
        }
        table.add_row(
            phase["id"],
            phase["kind"],
            phase["title"],
            f"[{style}]{phase['state']}[/]" if style else phase["state"],
            attempts,
            *(values[column] for column, shown in optional.items() if shown),
            verdict,
        )
    console.print(table)
    console.print(
        f"{totals['passed']}/{totals['phases']} passed · {totals['running']} running · {totals['blocked']} blocked · "
        + (f"{totals['waiting']} waiting on a usage limit · " if totals.get("waiting") else "") +
        f"{totals['attempts']} attempts ({plural(totals['remediations'], 'remediation')}) · "
        f"{totals['tokens']} tokens · "
        + (f"${totals['cost_usd']:.2f} · " if optional["cost"] else "")  # only when some attempt had a price
        + f"run {report['state']}" + (" · paused" if report["paused"] else ""),
        highlight=False,
    )
    if totals.get("unverified"):
        unverified = [phase["id"] for phase in phases if phase.get("unverified")]
        console.print(f"{plural(totals['unverified'], 'phase')} passed on existing evidence, verification not re-run: "
                      f"{', '.join(unverified)} (`coord import SOURCE --with-progress --verify --force` re-runs it)",
                      style="yellow", highlight=False, markup=False)
    for worktree in report.get("worktrees") or []:
        attempt = f" attempt {worktree['attempt']} ({worktree['attempt_state']})" if worktree["attempt"] else ""
        console.print(f"  worktree of {worktree['phase']}{attempt}: {worktree['path']}"
                      + (f" on {worktree['branch']}" if worktree["branch"] else ""), highlight=False, markup=False)
    if report.get("tampered"):
        console.print(f"tampered: {report['tampered']}", style="bold red", highlight=False, markup=False)
    for phase in report["phases"]:
        if phase["state"] != "passed" and phase["reason"]:
            console.print(f"  {phase['id']}: {phase['reason']}", highlight=False, markup=False)
