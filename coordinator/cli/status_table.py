"""``coord status`` for people: the status document as a table styled by rich, and why each phase not passed stopped."""

from __future__ import annotations

import sys
from typing import Any

from coordinator.states import STATE_STYLES
from coordinator.util.text import plural

TITLE_WIDTH = 32
"""Characters of a phase title shown before it is cut with an ellipsis."""


def print_status(report: dict[str, Any]) -> None:
    """Print the status document as a table on stdout, with the reason of each phase not passed below it.

    The table is laid out here, one styled text printed once, rather than by ``rich.table.Table``, whose layout
    of each cell costs about a second at 500 phases (``bench/cli.py``); rich still styles it and crops each line
    to the terminal."""
    from rich.console import Console
    from rich.text import Text

    totals = report["totals"]
    console = Console(width=None if sys.stdout.isatty() else 120)
    phases = report["phases"]
    # Columns that would be empty for every phase are left out, so the verdict keeps its room on 80-120 columns.
    optional = {
        "pid": any(phase["pid"] for phase in phases),
        "elapsed": any(phase["elapsed_s"] is not None for phase in phases),
        "cycle": any(phase["cycle"] for phase in phases),
        "tokens": any(phase["tokens"] for phase in phases),
        "cost": any(phase["cost_usd"] for phase in phases),
    }
    headers = ["phase", "kind", "title", "state", "attempts", *(name for name, shown in optional.items() if shown),
               "verdict"]
    right = {"attempts", "pid", "elapsed", "cycle", "tokens", "cost"}
    rows: list[tuple[list[str], str]] = []
    for phase in phases:
        verdict = phase["verdict"] or ""
        if phase["verdict_source"] and phase["verdict_source"] != "checks":
            verdict += f" ({phase['verdict_source']})"
        attempts = str(phase["attempts"])
        if phase["remediations"]:
            attempts += f" ({plural(phase['remediations'], 'remediation')})"
        title = phase["title"]
        if len(title) > TITLE_WIDTH:
            title = title[:TITLE_WIDTH - 1] + "…"
        values = {
            "pid": str(phase["pid"] or ""),
            "elapsed": f"{phase['elapsed_s']:.0f}s" if phase["elapsed_s"] is not None else "",
            "cycle": str(phase["cycle"] or ""),
            "tokens": str(phase["tokens"] or ""),
            "cost": f"${phase['cost_usd']:.2f}" if phase["cost_usd"] else "",
        }
        cells = [phase["id"], phase["kind"], title, phase["state"], attempts,
                 *(values[column] for column, shown in optional.items() if shown), verdict]
        rows.append((cells, STATE_STYLES.get(phase["state"], "")))
    widths = [max([len(header), *(len(cells[index]) for cells, _ in rows)]) for index, header in enumerate(headers)]

    def line(cells: list[str], state_style: str = "", header: bool = False) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        for index, (name, cell) in enumerate(zip(headers, cells, strict=True)):
            last = index == len(headers) - 1
            padded = cell if last else (cell.rjust(widths[index]) if name in right else cell.ljust(widths[index]))
            style = "bold" if header else (state_style if name == "state" else "")
            text.append(padded, style=style)
            if not last:
                text.append("  ")
        return text

    table = Text(f"{report['plan']} — {report['title']}\n", style="italic", no_wrap=True, overflow="ellipsis")
    table.append_text(line(headers, header=True))
    table.append("\n" + "─" * (sum(widths) + 2 * (len(widths) - 1)) + "\n", style="dim")
    table.append_text(Text("\n").join(line(cells, style) for cells, style in rows))
    console.print(table, crop=True, highlight=False)
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
