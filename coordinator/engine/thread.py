"""The dashboard's in-process run: an :class:`Engine` on a thread of its own, in front of which the TUI runs."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

from coordinator.engine.engine import Engine, RunOptions
from coordinator.errors import ExitStatus
from coordinator.paths import WorkspacePaths
from coordinator.plan.model import Plan
from coordinator.plan.snapshot import PlanSnapshot
from coordinator.state.events import EngineEvent
from coordinator.state.store import Store


class EngineThread(threading.Thread):
    """Runs an :class:`Engine` on a thread of its own (the dashboard's in-process run).

    The store is opened on the thread itself (SQLite connections stay on the thread that made them). After the
    thread ends, ``status`` holds the run's exit status, or ``error`` the exception that stopped it.
    """

    def __init__(self, plan: Plan, paths: WorkspacePaths, options: RunOptions,
                 sink: Callable[[EngineEvent], None] | None = None, on_exit: Callable[[], None] | None = None,
                 snapshot: PlanSnapshot | None = None) -> None:
        super().__init__(name="coord-engine", daemon=True)
        self.on_exit = on_exit
        """Called on the engine thread when the run ends (the CLI releases the workspace lock there, so a
        dashboard left open over a finished run does not keep other commands out)."""
        self.plan = plan
        self.paths = paths
        self.options = options
        self.sink = sink
        self.snapshot = snapshot
        self.engine: Engine | None = None
        self.status: ExitStatus | None = None
        self.error: BaseException | None = None
        self._detach_requested = threading.Event()

    def run(self) -> None:
        store = Store.open(self.paths)
        try:
            self.engine = Engine(self.plan, store, self.options, sink=self.sink, snapshot=self.snapshot)
            if self._detach_requested.is_set():
                self.engine.request_detach(signal.SIGINT)
            self.status = self.engine.run()
        except BaseException as exc:  # reported by the caller after join()
            self.error = exc
        finally:
            store.close()
            if self.on_exit is not None:
                self.on_exit()

    def request_detach(self) -> None:
        """Ask the engine to detach (as Ctrl-C would): it stops launching and leaves workers running."""
        self._detach_requested.set()
        if self.engine is not None:
            self.engine.request_detach(signal.SIGINT)

