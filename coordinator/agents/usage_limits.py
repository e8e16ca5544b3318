"""Usage limits: an agent refusing work until its account's quota resets, and when that is.

Who calls it: the engine, on an attempt that failed, with what the agent said (``AgentSummary.error`` and its last
message). A limit is not the worker's failure: the phase waits for the reset (``PhaseState.WAITING``) and then
continues the same session. The texts, as the CLIs print them (docs/design.md §10):

- codex: ``You've hit your usage limit. … try again at 12:16 PM.``, ``… try again at Dec 2nd, 2026 12:13 AM.`` (a
  reset on another day) or ``… try again in 2 days 17 hours 3 minutes.`` (an ``error`` event, then ``turn.failed``);
- Claude Code: ``You've hit your session limit · resets 12:50am (America/Los_Angeles)``, older versions
  ``Claude AI usage limit reached|1767225600`` (the reset as epoch seconds);
- an API key out of credit: ``Quota exceeded`` / ``insufficient_quota`` / ``credit balance is too low`` (no reset
  time: the plan's ``limit_wait`` applies).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

LIMIT_PATTERNS = (
    re.compile(r"you['’]?ve hit your (?:usage|session|weekly|daily) limit", re.IGNORECASE),
    re.compile(r"usage limit reached", re.IGNORECASE),
    re.compile(r"quota exceeded|insufficient_quota|exceeded your current quota|credit balance is too low",
               re.IGNORECASE),
)
EPOCH_RESET = re.compile(r"limit reached\|(\d{9,11})")
RELATIVE_RESET = re.compile(r"\bin\s+((?:\d+\s*(?:days?|hours?|hrs?|minutes?|mins?|seconds?|secs?)[\s,]*(?:and\s+)?)+)",
                            re.IGNORECASE)
DATE_RESET = re.compile(r"(?:try again at|resets?(?: at| on)?)\s+([A-Z][a-z]{2,8})\.?\s+(\d{1,2})(?:st|nd|rd|th)?,?"
                        r"(?:\s+(\d{4}),?)?\s+(?:at\s+)?(\d{1,2})(?::(\d{2}))?\s*([ap]\.?m\.?)?", re.IGNORECASE)
MONTHS = {name: number for number, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)}
CLOCK_RESET = re.compile(r"(?:try again at|resets?(?: at)?)\s+(\d{1,2})(?::(\d{2}))?\s*([ap]\.?m\.?)?"
                         r"(?:\s*\(([A-Za-z_]+/[A-Za-z_/]+|UTC)\))?", re.IGNORECASE)
UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


@dataclass(frozen=True)
class UsageLimit:
    """An agent's refusal for quota reasons.

    Attributes:
        message: the agent's own line saying so (at most 300 characters).
        resets_at: when the limit lifts (seconds since the epoch), or None when the text gives no time coord can
            read (the plan's ``limit_wait`` applies then, and the reason says so).
    """

    message: str
    resets_at: float | None


def find_usage_limit(text: str, now: datetime) -> UsageLimit | None:
    """The usage limit ``text`` reports, or None when it reports none.

    Args:
        text: what the agent said (its error and last message).
        now: the current time, timezone-aware: a clock time (``12:16 PM``) is its next occurrence after ``now``,
            in the zone the text names, else in ``now``'s zone; one up to 15 minutes past is the end of that
            minute (the agent rounds the reset to the minute; a reset that is due now is not tomorrow's).
    """
    line = next((line for line in text.splitlines() if any(p.search(line) for p in LIMIT_PATTERNS)), None)
    if line is None:
        return None
    return UsageLimit(message=line.strip()[:300], resets_at=_reset_time(line, now))


def _reset_time(line: str, now: datetime) -> float | None:
    epoch = EPOCH_RESET.search(line)
    if epoch:
        return float(epoch.group(1))
    relative = RELATIVE_RESET.search(line)
    if relative:
        seconds = sum(int(amount) * UNIT_SECONDS[unit[0].lower()]
                      for amount, unit in re.findall(r"(\d+)\s*([A-Za-z]+)", relative.group(1)))
        return (now + timedelta(seconds=seconds)).timestamp() if seconds else None
    dated = DATE_RESET.search(line)
    if dated and dated.group(1)[:3].lower() in MONTHS:
        hour = _hour(int(dated.group(4)), dated.group(6))
        minute = int(dated.group(5) or 0)
        if hour is None or minute > 59:
            return None
        local_now = now.astimezone(now.tzinfo)
        year = int(dated.group(3)) if dated.group(3) else local_now.year
        try:
            reset = local_now.replace(year=year, month=MONTHS[dated.group(1)[:3].lower()], day=int(dated.group(2)),
                                      hour=hour, minute=minute, second=0, microsecond=0)
        except ValueError:
            return None
        if dated.group(3) is None and reset < local_now - timedelta(days=1):
            reset = reset.replace(year=year + 1)  # "Jan 2nd" said on Dec 31st: next year's
        return reset.timestamp()
    clock = CLOCK_RESET.search(line)
    if clock:
        found_hour, minute = _hour(int(clock.group(1)), clock.group(3)), int(clock.group(2) or 0)
        if found_hour is None or minute > 59:
            return None
        hour = found_hour
        zone = now.tzinfo
        if clock.group(4):
            try:
                zone = ZoneInfo(clock.group(4))
            except (ZoneInfoNotFoundError, ValueError):
                return None
        local_now = now.astimezone(zone)
        reset = local_now.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if reset <= local_now - timedelta(minutes=15):
            reset += timedelta(days=1)  # a time of day already past: tomorrow's
        elif reset <= local_now:
            reset += timedelta(minutes=1)  # the agent rounds to the minute: the reset is due within it
        return reset.timestamp()
    return None


def _hour(hour: int, meridiem: str | None) -> int | None:
    """The 24-hour hour of ``hour`` with an optional ``am``/``pm`` (dots allowed), or None when out of range."""
    marker = (meridiem or "").replace(".", "").lower()
    if marker == "pm" and hour < 12:
        hour += 12
    elif marker == "am" and hour == 12:
        hour = 0
    return hour if hour <= 23 else None
