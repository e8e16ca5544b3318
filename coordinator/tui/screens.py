"""Modal dialogs and the full-log screen of the dashboard."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Footer, Input, Label, RadioButton, RadioSet, RichLog

from coordinator.agents.logview import describe_line
from coordinator.tui.model import MAX_FILE_BYTES
from coordinator.util.files import tail_bytes

LOG_STYLES = {
    "command": "cyan",
    "ok": "green",
    "error": "bold red",
    "message": "bold",
    "file": "magenta",
    "info": "dim",
    "text": "",
}


def log_text(raw: str) -> Text | None:
    """One raw worker-log line as styled text (codex JSON events made readable), or None to skip it."""
    line = describe_line(raw)
    if line is None:
        return None
    return Text(line.text, style=LOG_STYLES.get(line.kind, ""))


def log_write_lines(log: RichLog, raw_lines: list[str]) -> None:
    """Write raw worker-log lines to ``log`` in one call (a RichLog write costs about a millisecond each)."""
    texts = [text for text in (log_text(raw) for raw in raw_lines) if text is not None]
    if texts:
        log.write(Text("\n").join(texts))


class RemediateDialog(ModalScreen[tuple[bool, str] | None]):
    """Ask how to remediate a phase: a fresh worker or a resumed session, and an optional note.

    Dismisses with ``(resume, note)``, or None when cancelled.
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, phase_id: str, reason: str | None) -> None:
        super().__init__()
        self.phase_id = phase_id
        self.reason = reason

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(f"Remediate {self.phase_id}", id="dialog-title")
            if self.reason:
                yield Label(f"Last failure: {self.reason}", id="dialog-reason")
            with RadioSet(id="mode"):
                yield RadioButton("Fresh worker with the failure's evidence", value=True, id="fresh")
                yield RadioButton("Resume the failed attempt's agent session", id="resume")
            yield Input(placeholder="Optional note for the worker", id="note")
            with Horizontal(id="dialog-buttons"):
                yield Button("Remediate", variant="primary", id="ok")
                yield Button("Cancel", id="cancel")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self._submit()
        else:
            self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._submit()

    def _submit(self) -> None:
        resume = self.query_one("#resume", RadioButton).value
        note = self.query_one("#note", Input).value.strip()
        self.dismiss((resume, note))

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmDialog(ModalScreen[bool]):
    """A yes/no question; dismisses with True only on an explicit yes."""

    BINDINGS = [Binding("escape", "no", "No"), Binding("y", "yes", "Yes"), Binding("n", "no", "No")]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self.question, id="dialog-title")
            with Horizontal(id="dialog-buttons"):
                yield Button("Yes (y)", variant="error", id="yes")
                yield Button("No (n)", id="no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_yes(self) -> None:
        self.dismiss(True)

    def action_no(self) -> None:
        self.dismiss(False)


class FullLogScreen(Screen[None]):
    """The whole worker log of one attempt (up to the dashboard's read cap), readable lines."""

    BINDINGS = [Binding("escape,q,l", "app.pop_screen", "Back")]

    def __init__(self, title: str, log_path: Path) -> None:
        super().__init__()
        self.log_title = title
        self.log_path = log_path

    def compose(self) -> ComposeResult:
        yield Label(self.log_title, id="log-title")
        yield RichLog(id="full-log", wrap=True, highlight=False, markup=False, max_lines=20000)
        yield Footer()

    def on_mount(self) -> None:
        log = self.query_one(RichLog)
        found = tail_bytes(self.log_path, MAX_FILE_BYTES * 8)
        if found is None:
            log.write(Text(f"no log at {self.log_path}", style="dim"))
            return
        data, size = found
        if size > len(data):
            log.write(Text(f"… {size - len(data)} earlier bytes in {self.log_path}", style="dim"))
        log_write_lines(log, data.decode("utf-8", errors="replace").splitlines())
