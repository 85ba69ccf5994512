"""Calling windows: daylight saving's missing and doubled hours, and numbers that span two zones."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from suppression.policy.model import WindowRule
from suppression.policy.window import earliest_open, is_open, schedule

NEW_YORK = "America/New_York"


def utc(*args: int) -> int:
    return int(dt.datetime(*args, tzinfo=dt.UTC).timestamp())


def earliest(pairs: tuple[tuple[str, WindowRule], ...], instant: int) -> int:
    return int(earliest_open(pairs, np.array([instant], dtype=np.int64))[0])


def rule(start: str, end: str, **kwargs: object) -> WindowRule:
    def minute(text: str) -> int:
        hours, minutes = text.split(":")
        return int(hours) * 60 + int(minutes)

    return WindowRule(minute(start), minute(end), **kwargs)  # type: ignore[arg-type]


def test_a_start_in_the_missing_hour_opens_when_the_clock_jumps_past_it() -> None:
    # 2026-03-08: New York's clocks go from 02:00 EST to 03:00 EDT at 07:00 UTC.
    pairs = ((NEW_YORK, rule("02:30", "05:00")),)
    assert earliest(pairs, utc(2026, 3, 8, 6, 30)) == utc(2026, 3, 8, 7, 0)
    assert not is_open(pairs, utc(2026, 3, 8, 6, 59, 59))
    assert is_open(pairs, utc(2026, 3, 8, 7, 0))


def test_a_window_inside_the_missing_hour_is_skipped_that_day() -> None:
    pairs = ((NEW_YORK, rule("02:00", "02:59")),)
    # It does not exist on the 8th; on the 9th 02:00 EDT is 06:00 UTC.
    assert earliest(pairs, utc(2026, 3, 8, 5, 0)) == utc(2026, 3, 9, 6, 0)


def test_the_doubled_hour_is_inside_both_times() -> None:
    # 2026-11-01: 02:00 EDT becomes 01:00 EST at 06:00 UTC; 01:00-01:59 happens twice.
    pairs = ((NEW_YORK, rule("01:00", "01:30")),)
    assert is_open(pairs, utc(2026, 11, 1, 5, 10))  # 01:10 EDT
    assert not is_open(pairs, utc(2026, 11, 1, 5, 45))  # 01:45 EDT
    assert earliest(pairs, utc(2026, 11, 1, 5, 45)) == utc(2026, 11, 1, 6, 0)  # 01:00 EST
    assert is_open(pairs, utc(2026, 11, 1, 6, 29, 59))
    assert earliest(pairs, utc(2026, 11, 1, 6, 30)) == utc(2026, 11, 2, 6, 0)


def test_a_window_that_ends_in_the_doubled_hour_reopens_when_the_clock_goes_back() -> None:
    pairs = ((NEW_YORK, rule("00:00", "01:30")),)
    assert not is_open(pairs, utc(2026, 11, 1, 5, 30))  # 01:30 EDT
    assert earliest(pairs, utc(2026, 11, 1, 5, 30)) == utc(2026, 11, 1, 6, 0)


def test_federal_hours_on_the_spring_forward_day_follow_the_new_offset() -> None:
    pairs = ((NEW_YORK, rule("08:00", "21:00")),)
    assert earliest(pairs, utc(2026, 3, 8, 11, 59)) == utc(2026, 3, 8, 12, 0)  # 08:00 EDT
    assert is_open(pairs, utc(2026, 3, 8, 12, 30))
    assert earliest(pairs, utc(2026, 3, 9, 1, 0)) == utc(2026, 3, 9, 12, 0)  # 21:00 EDT: closed


def test_a_number_in_two_zones_waits_for_both() -> None:
    # Area code 605: America/Denver (UTC-7 in November) and America/North_Dakota/Center (UTC-6).
    pairs = (
        ("America/Denver", rule("08:00", "21:00")),
        ("America/North_Dakota/Center", rule("08:00", "21:00")),
    )
    assert earliest(pairs, utc(2026, 11, 25, 14, 30)) == utc(2026, 11, 25, 15, 0)
    assert is_open(pairs, utc(2026, 11, 26, 2, 30))  # 19:30 and 20:30
    # 21:00 in Center: closed until Denver reaches 08:00 the next morning.
    assert earliest(pairs, utc(2026, 11, 26, 3, 0)) == utc(2026, 11, 26, 15, 0)


def test_windows_that_never_overlap_never_open() -> None:
    pairs = (
        ("Asia/Tokyo", rule("09:00", "10:00")),
        ("Europe/Paris", rule("09:00", "10:00")),
    )
    assert earliest(pairs, utc(2026, 6, 15, 0, 0)) == -1


def test_weekdays_and_quiet_days_are_local_dates() -> None:
    christmas = (dt.date(2026, 12, 25) - dt.date(1970, 1, 1)).days
    pairs = (
        (
            NEW_YORK,
            rule("09:00", "17:00", weekdays=frozenset(range(5)), quiet_days=frozenset({christmas})),
        ),
    )
    # Thursday 2026-12-24 at 17:00 EST: Friday is Christmas, then the weekend.
    assert earliest(pairs, utc(2026, 12, 24, 22, 0)) == utc(2026, 12, 28, 14, 0)
    # 2026-12-25 02:00 UTC is still the 24th in New York, and past 17:00.
    assert not is_open(pairs, utc(2026, 12, 25, 2, 0))


@pytest.mark.parametrize("zone", ["America/New_York", "Europe/London", "Australia/Lord_Howe"])
def test_schedule_agrees_with_the_definition_minute_by_minute(zone: str) -> None:
    # Lord Howe moves by 30 minutes; London and New York by an hour.
    pairs = ((zone, rule("01:15", "02:45")),)
    for first in (utc(2026, 3, 8, 0, 0), utc(2026, 10, 4, 0, 0), utc(2026, 3, 29, 0, 0)):
        day = first // 86_400
        breaks, answers = schedule(pairs, day)
        for instant in range(first, first + 2 * 86_400, 60):
            at = int(np.searchsorted(breaks, instant, side="right")) - 1
            assert bool(answers[at]) == is_open(pairs, instant), (zone, instant)
