"""Which engine events become notifications, and sending them with apprise off the engine's thread."""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from pathlib import Path

from coordinator.plan.model import NOTIFY_EVENTS, Notify
from coordinator.plan.user_config import read_section
from coordinator.state.events import EngineEvent, PhaseStateChanged, RunFinished
from coordinator.states import PhaseState

SEND_TIMEOUT = 10.0
"""Seconds :meth:`Notifier.close` waits for notifications still being sent when the run ends."""


@dataclass(frozen=True)
class Notification:
    """One message: ``kind`` is one of ``NOTIFY_EVENTS`` (``blocked``, ``waiting``, ``finished``)."""

    kind: str
    title: str
    body: str


def notification_for(plan_id: str, event: EngineEvent) -> Notification | None:
    """The notification an event calls for, or None: a phase blocked, a phase waiting on a usage limit, the
    run finished (with how many phases passed)."""
    if isinstance(event, PhaseStateChanged) and event.state == PhaseState.BLOCKED:
        return Notification("blocked", f"coord: {plan_id} {event.phase_id} blocked", event.message)
    if isinstance(event, PhaseStateChanged) and event.state == PhaseState.WAITING:
        return Notification("waiting", f"coord: {plan_id} {event.phase_id} waits on a usage limit", event.message)
    if isinstance(event, RunFinished):
        verdict = "all passed" if event.passed == event.total else f"{event.passed}/{event.total} passed"
        return Notification("finished", f"coord: {plan_id} finished, {verdict}", event.message)
    return None


def load_user_config(path: Path | None = None) -> Notify:
    """The ``notify:`` section of the user's config file (``$COORD_CONFIG``, else
    ``$XDG_CONFIG_HOME/coord/config.yaml``, else ``~/.config/coord/config.yaml``); empty when there is none or it
    is unreadable (notifications are a convenience, never a reason for a run to fail)."""
    try:
        _, section = read_section("notify", path)
    except ValueError:
        return Notify()
    if not isinstance(section, dict):
        return Notify()
    urls = section.get("urls") or []
    on = section.get("on") or list(NOTIFY_EVENTS)
    return Notify(urls=tuple(str(url) for url in urls if isinstance(url, str)),
                  on=tuple(str(kind) for kind in on if kind in NOTIFY_EVENTS))


class Notifier:
    """Sends the notifications a run's events call for, on a thread of its own.

    Args:
        plan_id: the plan, for titles.
        config: where to send (``urls``, apprise syntax) and for which kinds (``on``).
    The first notification that could not be sent is kept for :meth:`take_failure` (the engine records it as a
    warning notice, on its own thread: the store is not shared with this one).
    """

    def __init__(self, plan_id: str, config: Notify) -> None:
        import apprise  # only runs that notify pay for importing it

        self.plan_id = plan_id
        self.config = config
        self._failure: str | None = None
        self._failure_taken = False
        self._lock = threading.Lock()
        self._apprise = apprise.Apprise()
        for url in config.urls:
            if not self._apprise.add(url):
                self._fail(f"notification URL not understood by apprise: {url.split('://', 1)[0]}://…")
        self._queue: queue.Queue[Notification | None] = queue.Queue()
        self._thread = threading.Thread(target=self._send_all, name="coord-notify", daemon=True)
        self._thread.start()

    def on_event(self, event: EngineEvent) -> None:
        """Store subscriber: queue the event's notification, if it calls for one this config wants."""
        notification = notification_for(self.plan_id, event)
        if notification is not None and notification.kind in self.config.on:
            self._queue.put(notification)

    def close(self, timeout: float = SEND_TIMEOUT) -> None:
        """Send what is queued (at most ``timeout`` seconds more), then stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _send_all(self) -> None:
        while True:
            notification = self._queue.get()
            if notification is None:
                return
            try:
                sent = bool(self._apprise.notify(title=notification.title, body=notification.body))
            except Exception as exc:  # noqa: BLE001 - a notifier bug must never reach the run
                sent, why = False, repr(exc)
            else:
                why = "every endpoint refused it or was unreachable"
            if not sent:
                self._fail(f"notification {notification.title!r} not sent: {why}")

    def take_failure(self) -> str | None:
        """The first sending failure, once (None before one, and after it was taken)."""
        with self._lock:
            if self._failure is None or self._failure_taken:
                return None
            self._failure_taken = True
            return self._failure

    def _fail(self, reason: str) -> None:
        with self._lock:
            if self._failure is None:
                self._failure = reason
