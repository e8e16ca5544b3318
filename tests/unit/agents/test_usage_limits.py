"""Reading a usage limit and its reset time from what codex and Claude Code print."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from coordinator.agents.usage_limits import find_usage_limit

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("text, resets", [
    ("You've hit your usage limit. Upgrade to Pro or try again at 12:16 PM.",
     datetime(2026, 12, 1, 12, 16, tzinfo=timezone.utc)),
    ("You've hit your usage limit. Try again at 9:30 AM.", datetime(2026, 12, 2, 9, 30, tzinfo=timezone.utc)),
    # A reset on another day, as codex words it (seen from a real codex 0.169 against a scripted 429).
    ("You’ve hit your usage limit. Upgrade to Pro (https://chatgpt.com/explore/pro), visit "
     "https://chatgpt.com/settings/usage to purchase more credits or try again at Dec 2nd, 2026 12:13 AM.",
     datetime(2026, 12, 2, 0, 13, tzinfo=timezone.utc)),
    ("You've hit your usage limit. Try again at Jan 3rd 9:05 PM.", datetime(2027, 1, 3, 21, 5, tzinfo=timezone.utc)),
    ("You've hit your usage limit. Upgrade to Plus or try again in 2 days 17 hours 3 minutes.",
     datetime(2026, 12, 4, 3, 3, tzinfo=timezone.utc)),
    ("You've hit your session limit · resets 12:50am (America/Los_Angeles)",
     datetime(2026, 12, 2, 0, 50, tzinfo=ZoneInfo("America/Los_Angeles"))),
    ("Claude AI usage limit reached|1767225600", datetime.fromtimestamp(1767225600, timezone.utc)),
    ("unexpected status 429 Too Many Requests: Quota exceeded. Check your plan and billing details.", None),
])
def test_limits_and_their_reset_times_are_read(text: str, resets: datetime | None) -> None:
    found = find_usage_limit("some earlier line\n" + text, NOW)
    assert found is not None and found.message == text
    assert found.resets_at == (resets.timestamp() if resets else None)


def test_a_reset_rounded_down_to_the_current_minute_is_due_now_not_tomorrow() -> None:
    found = find_usage_limit("You\u2019ve hit your usage limit. … or try again at 10:00 AM.",
                             datetime(2026, 12, 1, 10, 0, 20, tzinfo=timezone.utc))
    assert found is not None and found.resets_at == datetime(2026, 12, 1, 10, 1, tzinfo=timezone.utc).timestamp()


def test_other_failures_are_not_limits() -> None:
    assert find_usage_limit("stream disconnected before completion", NOW) is None
    assert find_usage_limit("API Error: 500 overloaded", NOW) is None
