"""The dashboard: a Textual app showing a run and steering it.

Who calls it: ``cli`` (``coord run`` in a terminal, ``coord tui``, bare ``coord``) through :func:`make_app`.
It reads the run from the store on a timer (``refresh_interval``, 2 Hz by default) and applies everything that
changed in one batch — engine events never cause a repaint each. Commands (remediate, stop, pause) go to the
coordinator over its control socket, the same path ``coord remediate`` takes, whether the engine runs in this
process (``engine`` given) or in another one. Quitting detaches: workers keep running.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import (
    DataTable,
    Footer,
    Input,
    Markdown,
    ProgressBar,
    RichLog,
    Static,
    TabbedContent,
    TabPane,
)

from coordinator.judge.verdict import Verdict
from coordinator.process.control_socket import send_command
from coordinator.tui.model import (
    DashboardSource,
    PhaseFiles,
    read_text,
)
from coordinator.tui.render import COLUMN_WIDTHS, COLUMNS, phase_row, summary_markup, verdict_renderable
from coordinator.tui.screens import ConfirmDialog, FullLogScreen, RemediateDialog, log_write_lines
from coordinator.util.files import workspace_relative
from coordinator.util.logfollow import LogFollower

if TYPE_CHECKING:  # the engine is loaded only by `coord run`, never by a read-only dashboard
    from coordinator.engine.thread import EngineThread

DETAIL_DEBOUNCE = 0.08
"""Seconds the cursor must rest on a phase before its detail pane is loaded."""
LOG_TAIL_BYTES = 64 * 1024
"""How much of the end of a worker log the log tab shows on selection."""


class CoordApp(App[int]):
    """The coord dashboard.

    Args:
        source: the run to show.
        engine: the in-process engine thread of ``coord run`` (None when attached to another coordinator or to a
            finished run).
        refresh_interval: seconds between store reads (2 Hz by default: a refresh that changes any cell
            repaints the whole visible table, about 100 ms of CPU at 500 phases).
        show_pids: False in snapshot tests, where pids would change every run.
    """

    CSS_PATH = "coord.tcss"
    TITLE = "coord"
    BINDINGS = [
        Binding("r", "remediate", "Remediate"),
        Binding("s", "stop", "Stop worker"),
        Binding("p", "pause", "Pause/resume"),
        Binding("l", "full_log", "Full log"),
        Binding("slash", "filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("q", "quit_dashboard", "Quit (detach)"),
    ]

    def __init__(self, source: DashboardSource, *, engine: EngineThread | None = None,
                 refresh_interval: float = 0.5, show_pids: bool = True) -> None:
        super().__init__()
        self.source = source
        self.engine = engine
        self.refresh_interval = refresh_interval
        self.show_pids = show_pids
        self.report: dict[str, Any] | None = None
        self.rows: dict[str, tuple[Any, ...]] = {}
        self.visible_ids: list[str] = []
        self.filter_text = ""
        self.selected: str | None = None
        self.last_event_seq = 0
        self.detail_key: tuple[Any, ...] | None = None
        self.log_follower: LogFollower | None = None
        self.detail_stamps: dict[str, tuple[float, int] | None] = {}
        self.final_status: int | None = None
        self.detail_timer: Timer | None = None
        self.refreshes = 0
        """Number of batched refreshes applied (a benchmark and test probe)."""

    # --- layout ------------------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Vertical(id="top"):
            yield Static(id="summary")
            yield ProgressBar(id="progress", show_eta=False)
        yield Input(placeholder="filter phases (id, title, kind, state) — Enter keeps it, Escape clears",
                    id="filter")
        with Vertical(id="main"):
            yield DataTable(id="phases", cursor_type="row", zebra_stripes=True)
            with TabbedContent(id="detail"):
                with TabPane("Log", id="tab-log"):
                    yield RichLog(id="log", wrap=True, markup=False, highlight=False, max_lines=5000)
                with TabPane("Verdict", id="tab-verdict"):
                    yield Static(id="verdict")
                with TabPane("Report", id="tab-report"):
                    yield Markdown(id="report")
                with TabPane("Marker", id="tab-marker"):
                    yield Markdown(id="marker")
                with TabPane("Prompt", id="tab-prompt"):
                    yield Static(id="prompt")
        yield RichLog(id="events", wrap=False, markup=False, highlight=False, max_lines=2000)
        yield Footer()

    def on_mount(self) -> None:
        # Widgets are looked up on the main screen once: `App.query_one` searches the *active* screen, which is a
        # dialog or the full log while those are open, and the refresh timer keeps running under them.
        self.main = self.screen
        table = self.main.query_one("#phases", DataTable)
        for column, width in zip(COLUMNS, COLUMN_WIDTHS, strict=True):
            table.add_column(column, key=column, width=width)
        table.focus()
        self.sub_title = self.source.plan_id
        self.refresh_from_store(force=True)
        self.set_interval(self.refresh_interval, self.refresh_from_store)
        if self.report is not None and self.report["phases"]:
            self.select_phase(self.report["phases"][0]["id"])

    def on_unmount(self) -> None:
        self.source.close()

    # --- refresh -----------------------------------------------------------------------------------------

    def refresh_from_store(self, force: bool = False) -> None:
        """Read the run once and apply every change in one batch (the only place that repaints data)."""
        if not self.is_running or self.main.is_attached is False:
            return  # shutting down: the timer may fire once more
        report = self.source.snapshot()
        if report is None:
            self.main.query_one("#summary", Static).update(
                f"No run of {self.source.plan_id} recorded yet in {self.source.paths.workspace}")
            return
        self.report = report
        with self.batch_update():
            self._update_summary(report)
            self._update_table(report)
            self._update_events()
            if self.selected is not None:
                self._update_detail(force=force)
        self.refreshes += 1
        if self.engine is not None and not self.engine.is_alive() and self.final_status is None:
            self._engine_finished()

    def _update_summary(self, report: dict[str, Any]) -> None:
        totals = report["totals"]
        coordinator = self.source.coordinator()
        if self.engine is not None:
            mode = "[b green]live[/] (this process)" if self.engine.is_alive() else "[dim]engine finished[/]"
        elif coordinator is not None:
            mode = f"[b green]live[/] (coordinator pid {coordinator.get('pid', '?')})"
        else:
            mode = "[dim]no coordinator running — read-only[/]"
        text = summary_markup(report, mode)
        # Fixed height (coord.tcss): no layout pass, which would repaint the whole screen every tick.
        self.main.query_one("#summary", Static).update(text, layout=False)
        self.main.query_one("#progress", ProgressBar).update(total=max(1, totals["phases"]), progress=totals["passed"])

    def _row(self, phase: dict[str, Any]) -> tuple[Any, ...]:
        return phase_row(phase, show_pids=self.show_pids)

    def _matches(self, phase: dict[str, Any]) -> bool:
        if not self.filter_text:
            return True
        needle = self.filter_text.lower()
        return any(needle in str(phase[key]).lower() for key in ("id", "title", "kind", "state"))

    def _update_table(self, report: dict[str, Any]) -> None:
        table = self.main.query_one("#phases", DataTable)
        phases = [phase for phase in report["phases"] if self._matches(phase)]
        ids = [phase["id"] for phase in phases]
        if ids != self.visible_ids:
            table.clear()
            self.rows = {}
            for phase in phases:
                row = self._row(phase)
                table.add_row(*row, key=phase["id"])
                self.rows[phase["id"]] = row
            self.visible_ids = ids
            if self.selected in ids:
                table.move_cursor(row=ids.index(self.selected), animate=False)
            return
        # Only rows on screen are brought up to date: any update_cell repaints the whole visible table, and at
        # scale most changes happen off screen. Rows scrolled into view catch up on the next refresh.
        first = max(0, int(table.scroll_y) - 2)
        last = first + table.size.height + 4
        for phase in phases[first:last]:
            row = self._row(phase)
            old = self.rows.get(phase["id"])
            if old == row:
                continue
            for column, value, before in zip(COLUMNS, row, old or (None,) * len(COLUMNS), strict=True):
                if value != before:
                    table.update_cell(phase["id"], column, value)
            self.rows[phase["id"]] = row

    def _update_events(self) -> None:
        log = self.main.query_one("#events", RichLog)
        for row in self.source.events(self.last_event_seq):
            self.last_event_seq = row.seq
            stamp = row.at[11:19]
            style = "red" if row.type == "verdict_reached" and "FAIL" in row.message else (
                "green" if row.type == "verdict_reached" else "")
            if row.type == "phase_state_changed" and "blocked" in row.message:
                style = "bold red"
            log.write(Text(f"{stamp} {row.message}", style=style))

    # --- detail pane -------------------------------------------------------------------------------------

    @on(DataTable.RowHighlighted, "#phases")
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key is not None and event.row_key.value != self.selected:
            self.select_phase(str(event.row_key.value), delay=DETAIL_DEBOUNCE)
            if self.report is not None:
                self.call_after_refresh(self._update_table, self.report)  # rows the cursor scrolled into view

    def select_phase(self, phase_id: str, delay: float = 0.0) -> None:
        """Select a phase; its detail pane fills after ``delay`` seconds (so holding ↓ does not load every log)."""
        self.selected = phase_id
        self.detail_key = None
        if self.detail_timer is not None:
            self.detail_timer.stop()
            self.detail_timer = None
        if delay <= 0:
            self._update_detail(force=True)
        else:
            self.detail_timer = self.set_timer(delay, self._update_detail)

    def _selected_phase(self) -> dict[str, Any] | None:
        if self.report is None or self.selected is None:
            return None
        return next((phase for phase in self.report["phases"] if phase["id"] == self.selected), None)

    def _selected_files(self) -> PhaseFiles | None:
        phase = self._selected_phase()
        return self.source.files(phase["id"], phase["attempts"]) if phase else None

    def _update_detail(self, force: bool = False) -> None:
        """Refresh the detail pane for the selected phase — only the tab on screen (hidden Markdown re-layouts
        cost tens of milliseconds each; a tab is filled when it is shown)."""
        phase = self._selected_phase()
        if phase is None:
            return
        files = self.source.files(phase["id"], phase["attempts"])
        key = (phase["id"], phase["attempts"])
        log = self.main.query_one("#log", RichLog)
        if key != self.detail_key:
            self.detail_key = key
            self.detail_stamps = {}
            self.log_follower = None
            log.clear()
            if files is None:
                log.write(Text(f"{phase['id']} has not started yet", style="dim"))
        tab = self.main.query_one("#detail", TabbedContent).active
        if files is None:
            if self._changed(f"{tab}:none", None):
                self._show_markdown("report", None, "no attempt yet")
                self._show_markdown("marker", None, "no attempt yet")
                self.main.query_one("#verdict", Static).update(Text("no attempt yet", style="dim"))
                self.main.query_one("#prompt", Static).update(Text("no attempt yet", style="dim"))
            return
        if tab == "tab-log":
            self._append_log(files)
        elif tab == "tab-report" and self._changed("report", files.report):
            self._show_markdown("report", files.report, "no report yet")
        elif tab == "tab-marker" and self._changed("marker", files.marker):
            self._show_markdown("marker", files.marker, "no completion marker yet")
        elif tab == "tab-verdict" and self._changed("evidence", files.evidence):
            self.main.query_one("#verdict", Static).update(verdict_renderable(phase, Verdict.read(files.evidence)))
        elif tab == "tab-prompt" and self._changed("prompt", files.prompt):
            text = read_text(files.prompt)
            self.main.query_one("#prompt", Static).update(Text(text) if text is not None else Text("no prompt", "dim"))

    @on(TabbedContent.TabActivated, "#detail")
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self._update_detail()

    def _changed(self, name: str, path: Any) -> bool:
        try:
            stat = path.stat()
            stamp: tuple[float, int] | None = (stat.st_mtime, stat.st_size)
        except (OSError, AttributeError):
            stamp = None
        if name in self.detail_stamps and self.detail_stamps[name] == stamp:
            return False
        self.detail_stamps[name] = stamp
        return True

    def _show_markdown(self, widget_id: str, path: Any, missing: str) -> None:
        text = read_text(path)
        if text is None:
            where = f" at {workspace_relative(path, self.source.paths.workspace)}" if path is not None else ""
            text = f"*{missing}{where}*"
        self.main.query_one(f"#{widget_id}", Markdown).update(text)

    def _append_log(self, files: PhaseFiles) -> None:
        if self.log_follower is None or self.log_follower.path != files.log:
            self.log_follower = LogFollower(files.log, tail_bytes=LOG_TAIL_BYTES)
        chunk = self.log_follower.read()
        log = self.main.query_one("#log", RichLog)
        if chunk.note:
            log.write(Text(f"{chunk.note} (l: full log)", style="dim"))
        if chunk.data:
            log_write_lines(log, chunk.data.decode("utf-8", errors="replace").splitlines())

    # --- commands ----------------------------------------------------------------------------------------

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Remediate phase", "Launch a remediation worker for the selected phase",
                            self.action_remediate)
        yield SystemCommand("Stop worker", "Stop the selected phase's worker (whole process group)",
                            self.action_stop)
        yield SystemCommand("Pause / resume scheduling", "Start no new phases until resumed", self.action_pause)
        yield SystemCommand("Full log", "The selected phase's whole worker log", self.action_full_log)
        yield SystemCommand("Filter phases", "Show only phases matching a text", self.action_filter)
        yield SystemCommand("Quit (detach)", "Close the dashboard; workers keep running",
                            self.action_quit_dashboard)

    def _control_socket(self) -> str | None:
        coordinator = self.source.coordinator()
        if coordinator is None:
            return None
        return coordinator.get("socket") or str(self.source.paths.socket_path())

    def _require_coordinator(self, what: str) -> str | None:
        socket_path = self._control_socket()
        if socket_path is None:
            self.notify(f"No coordinator is running, so nothing can {what}. From a shell: "
                        f"`coord run {self.report['path'] if self.report else 'PLAN'}` or `coord remediate PHASE`.",
                        severity="warning", title="Read-only")
        return socket_path

    def action_remediate(self) -> None:
        phase = self._selected_phase()
        if phase is None or self._require_coordinator("be remediated") is None:
            return

        def chosen(answer: tuple[bool, str] | None) -> None:
            if answer is not None:
                resume, note = answer
                self.send({"command": "remediate", "plan": self.source.plan_id, "phase": phase["id"],
                           "resume": resume, "note": note or None}, f"remediation of {phase['id']}")

        self.push_screen(RemediateDialog(phase["id"], phase.get("reason")), chosen)

    def action_stop(self) -> None:
        phase = self._selected_phase()
        if phase is None or self._require_coordinator("be stopped") is None:
            return
        if phase["pid"] is None:
            self.notify(f"{phase['id']} has no worker running", severity="warning")
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.send({"command": "stop", "plan": self.source.plan_id, "phase": phase["id"]},
                          f"stop of {phase['id']}")

        self.push_screen(ConfirmDialog(f"Stop {phase['id']}'s worker (pid {phase['pid']}) and its whole "
                                       "process group? The phase is then blocked until remediated."), confirmed)

    def action_pause(self) -> None:
        if self._require_coordinator("be paused") is None:
            return
        paused = bool(self.report and self.report["paused"])
        self.send({"command": "resume" if paused else "pause", "plan": self.source.plan_id},
                  "resume" if paused else "pause")

    @work(thread=True, group="commands")
    def send(self, message: dict[str, Any], what: str) -> None:
        """Send one command over the control socket (on a thread: the engine may be busy judging)."""
        socket_path = self._control_socket()
        if socket_path is None:
            self.call_from_thread(self.notify, "the coordinator has gone", severity="error")
            return
        try:
            reply = send_command(Path(socket_path), message)
        except OSError as exc:
            self.call_from_thread(self.notify, f"{what} failed: {exc}", severity="error")
            return
        if reply.get("ok"):
            detail = f" (attempt {reply['attempt']})" if "attempt" in reply else ""
            self.call_from_thread(self.notify, f"{what}: sent{detail}")
        else:
            self.call_from_thread(self.notify, f"{what} refused: {reply.get('error')}", severity="error")
        self.call_from_thread(self.refresh_from_store)

    def action_full_log(self) -> None:
        files = self._selected_files()
        if files is None:
            self.notify("no attempt yet", severity="warning")
            return
        self.push_screen(FullLogScreen(f"{self.selected} attempt {files.attempt} — {files.log}", files.log))

    def action_filter(self) -> None:
        box = self.main.query_one("#filter", Input)
        box.display = True
        box.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()
        if self.report is not None:
            self._update_table(self.report)

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        self.main.query_one("#phases", DataTable).focus()

    def action_clear_filter(self) -> None:
        box = self.main.query_one("#filter", Input)
        box.value = ""
        box.display = False
        self.filter_text = ""
        self.main.query_one("#phases", DataTable).focus()
        if self.report is not None:
            self._update_table(self.report)

    # --- leaving -----------------------------------------------------------------------------------------

    def _engine_finished(self) -> None:
        assert self.engine is not None
        if self.engine.error is not None:
            self.final_status = 70
            self.notify(f"the engine stopped: {self.engine.error!r}", severity="error", timeout=30)
        else:
            self.final_status = int(self.engine.status or 0)
            self.notify(f"run finished (exit {self.final_status}); q quits", timeout=30)

    def detach_message(self) -> str:
        running = self.report["totals"]["running"] if self.report else 0
        plan_path = self.report["path"] if self.report else "plans/PLAN.yaml"
        if running:
            return (f"Detached from {self.source.plan_id}: {running} worker(s) still running. "
                    f"Come back with `coord tui` (or `coord run {plan_path}` if no coordinator runs); "
                    "`coord stop` ends them.")
        return f"{self.source.plan_id}: dashboard closed; `coord status` shows the run."

    def action_quit_dashboard(self) -> None:
        if self.engine is not None and self.engine.is_alive():
            self.notify("detaching: the engine stops launching; workers keep running …")
            self.engine.request_detach()
            self._wait_for_engine()
            return
        status = self.final_status if self.final_status is not None else 0
        self.exit(status, return_code=status, message=self.detach_message())

    @work(thread=True, group="detach")
    def _wait_for_engine(self) -> None:
        assert self.engine is not None
        self.engine.join()
        self.call_from_thread(self._exit_detached)

    def _exit_detached(self) -> None:
        self.refresh_from_store()
        status = 130 if self.engine is not None and self.engine.status in (129, 130, 143) else (
            self.final_status if self.final_status is not None else 130)
        self.exit(status, return_code=status, message=self.detach_message())


def make_app(source: DashboardSource, *, engine: EngineThread | None = None,
             refresh_interval: float = 0.5, show_pids: bool = True) -> CoordApp:
    """Build the dashboard (the single factory the CLI and the tests use)."""
    return CoordApp(source, engine=engine, refresh_interval=refresh_interval, show_pids=show_pids)


def run_with_engine(source: DashboardSource, start_engine: Callable[[], EngineThread]) -> int:
    """Open the dashboard with an engine started in this process; returns the exit status.

    The dashboard reads the run from the store, as it does for a run of another process, so the engine hands
    it no events: what it shows is what was committed.

    Args:
        source: the run to show.
        start_engine: starts the engine thread and returns it.
    """
    app = make_app(source)
    app.engine = start_engine()
    result = app.run()
    if app.engine.is_alive():  # the app ended some other way (e.g. ctrl+q): still detach cleanly
        app.engine.request_detach()
        app.engine.join()
    if result is None:
        return 130 if app.engine.status in (None, 129, 130, 143) else int(app.engine.status)
    return int(result)

