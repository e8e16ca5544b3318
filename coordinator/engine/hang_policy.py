"""The hang policy: after each poll cycle of a running attempt, wait on or declare the worker hung.

Pure: it reads the phase's policy and what the engine observed (cycles, silent cycles) and decides; the engine
does the watching, the logging and the killing.
"""

from __future__ import annotations

from dataclasses import dataclass

from coordinator.plan.model import Policy
from coordinator.util.timefmt import format_seconds


@dataclass(frozen=True)
class CycleDecision:
    """Outcome of one poll cycle for one running attempt."""

    hung: bool
    reason: str = ""


def decide_deadline(policy: Policy, running_seconds: float | None) -> CycleDecision:
    """Whether an attempt that has run ``running_seconds`` (wall clock; None when its start is unknown) is past
    the phase's ``deadline``. Checked on every pass of the loop, not only at poll cycles, so a deadline shorter
    than ``poll_interval`` holds too."""
    if policy.deadline is None or running_seconds is None or running_seconds < policy.deadline:
        return CycleDecision(False)
    return CycleDecision(True, f"deadline: still running after {format_seconds(round(running_seconds))} "
                               f"(deadline {format_seconds(policy.deadline)})")


def decide_cycle(policy: Policy, cycle: int, silent_cycles: int, busy_cycles: int = 0, *,
                 stuck_on_stdin: bool = False) -> CycleDecision:
    """Apply the hang policy after poll cycle number ``cycle`` (1-based) has elapsed.

    Args:
        policy: the phase's effective policy (``max_cycles``, ``max_silent_cycles``, ``max_command_cycles``,
            ``poll_interval``).
        cycle: cycles observed since the attempt started (or was adopted).
        silent_cycles: cycles without output in which the worker was not busy (its log did not grow).
        busy_cycles: consecutive cycles without output while a command ran or the agent retried the model;
            they do not count as silence, only against ``max_command_cycles``.
        stuck_on_stdin: the worker waits for input on stdin that never comes: hung at once.

    Returns:
        ``hung=True`` with a reason once a limit is reached.
    """
    if stuck_on_stdin:
        return CycleDecision(True, "hung: stuck on stdin")
    if policy.max_command_cycles is not None and busy_cycles >= policy.max_command_cycles:
        return CycleDecision(True, f"hung: one command (or model retry) ran for {busy_cycles} poll cycles "
                                   f"({format_seconds(busy_cycles * policy.poll_interval)}) without output")
    if policy.max_silent_cycles is not None and silent_cycles >= policy.max_silent_cycles:
        return CycleDecision(
            True,
            f"hung: no output for {silent_cycles} poll cycles ({format_seconds(silent_cycles * policy.poll_interval)})",
        )
    if cycle >= policy.max_cycles:
        return CycleDecision(
            True,
            f"hung: still running after {cycle} poll cycles ({format_seconds(cycle * policy.poll_interval)})",
        )
    return CycleDecision(False)
