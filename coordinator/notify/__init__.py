"""Notifications: telling a person who walked away that a phase is blocked, a plan waits on a usage limit, or a
run finished — desktop, webhook, ntfy, Slack and the rest through ``apprise`` URLs.

Who uses it: the engine subscribes a :class:`Notifier` to the store's committed events when the plan (``notify:``)
or the user's config file (``$XDG_CONFIG_HOME/coord/config.yaml``, ``~/.config/coord/config.yaml``) names URLs.
Off by default. Sending happens on a thread of its own, so a slow or dead endpoint never holds up the loop; what
could not be sent is logged to the run as a warning, once.

May import: ``plan``, ``state``, ``util`` and apprise; nothing above the engine.
"""

from coordinator.notify.notifier import Notifier, load_user_config, notification_for

__all__ = ["Notifier", "load_user_config", "notification_for"]
