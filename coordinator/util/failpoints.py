"""Named crash points for recovery tests: inert unless ``COORD_FAILPOINTS`` names them.

``COORD_FAILPOINTS="launch.after_intent=kill;finish.after_exit_read=raise"`` makes the coordinator SIGKILL itself
(``kill``) or raise (``raise``) when it reaches that point, so tests can crash it at an exact protocol step.
"""

from __future__ import annotations

import os
import signal

NAMES = (
    "launch.after_intent",
    "launch.after_spawn",
    "launch.after_identity",
    "finish.after_exit_read",
    "finish.after_verdict_commit",
    "remediate.after_intent",
    "git.after_before_ref",
    "git.after_attempt_ref",
    "git.after_checkpoint",
)


class FailpointError(RuntimeError):
    """Raised by a failpoint set to ``raise``."""


def _active() -> dict[str, str]:
    spec = os.environ.get("COORD_FAILPOINTS", "")
    points = {}
    for item in spec.split(";"):
        name, _, action = item.partition("=")
        if name.strip():
            points[name.strip()] = action.strip() or "kill"
    return points


def hit(name: str) -> None:
    """Act on failpoint ``name`` if it is switched on; otherwise do nothing."""
    action = _active().get(name)
    if action is None:
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if action == "raise":
        raise FailpointError(f"failpoint {name}")
