"""Calling windows on the wall clock of every zone a number may be in, daylight saving included.

A moment is inside a :class:`WindowRule` in a zone when that zone's wall clock
reads ``start <= time < end`` on an allowed weekday that is not a quiet day.
For a number that may be in several zones the window must hold in all of them.

How: between two *breakpoints* the answer cannot change. Breakpoints are each
local day's midnight, start and end, resolved both ways across a daylight
saving change (``fold`` 0 and 1), plus the instants the offset changes. So the
schedule of a set of (zone, rule) pairs over some days is the sorted
breakpoints with the answer at each, computed once per pair set and day and
cached; a batch is then answered with ``searchsorted``. The definition holds
the edge cases without special code: a start time that does not exist (02:30
on a spring-forward night) opens the window when the clock jumps past it; a
wall time that happens twice is inside both times its reading is.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import zoneinfo

import numpy as np
import numpy.typing as npt

from suppression.policy.model import WindowRule

__all__ = ["DAY", "day_of", "earliest_one", "earliest_open", "is_open", "schedule"]

DAY = 86_400
HORIZON_DAYS = 9
"""Days one cached schedule covers: a week plus the days around it."""
_MAX_HORIZONS = 45
"""About a year: a window closed longer than that never opens (SUPPRESSED)."""
_EPOCH = dt.date(1970, 1, 1)

Pairs = tuple[tuple[str, WindowRule], ...]


def is_open(pairs: Pairs, instant: int) -> bool:
    """Whether ``instant`` (UTC seconds) is inside every pair's window: the definition itself."""
    for zone_name, rule in pairs:
        local = dt.datetime.fromtimestamp(instant, _zone(zone_name))
        day = (local.date() - _EPOCH).days
        if local.weekday() not in rule.weekdays or day in rule.quiet_days:
            return False
        second = local.hour * 3600 + local.minute * 60 + local.second
        if not rule.start_minute * 60 <= second < rule.end_minute * 60:
            return False
    return True


@functools.lru_cache(maxsize=4096)
def schedule(pairs: Pairs, first_day: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Breakpoints over ``HORIZON_DAYS`` UTC days from ``first_day``, and the answer at each.

    The answer at breakpoint ``i`` holds on ``[breaks[i], breaks[i + 1])``;
    the first breakpoint is the start of ``first_day``.
    """
    begin = first_day * DAY
    end = begin + HORIZON_DAYS * DAY
    points = {begin}
    for zone_name, rule in pairs:
        points.update(_breakpoints(zone_name, rule, begin, end))
    breaks = sorted(p for p in points if begin <= p < end)
    answers = [is_open(pairs, p) for p in breaks]
    return np.array(breaks, dtype=np.int64), np.array(answers, dtype=bool)


def earliest_open(pairs: Pairs, times: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Per instant: itself if the window is open then, else the next opening; -1: none in a year."""
    result = np.full(len(times), -1, dtype=np.int64)
    pending = np.arange(len(times))
    query = times.copy()
    for _ in range(_MAX_HORIZONS):
        if not len(pending):
            break
        days = query[pending] // DAY
        still: list[npt.NDArray[np.intp]] = []
        for day in np.unique(days).tolist():
            members = pending[days == day]
            breaks, answers = schedule(pairs, int(day))
            opens = _next_true(answers)
            at = np.searchsorted(breaks, query[members], side="right") - 1
            nxt = opens[at]
            found = nxt >= 0
            hit = members[found]
            result[hit] = np.maximum(breaks[nxt[found]], query[hit])
            missed = members[~found]
            query[missed] = (int(day) + HORIZON_DAYS) * DAY
            still.append(missed)
        pending = np.concatenate(still) if still else pending[:0]
    return result


def earliest_one(pairs: Pairs, instant: int) -> int:
    """:func:`earliest_open` for one instant, without numpy's per-call cost.

    A batch asks this once per distinct set of zones and rules, not once per number.
    """
    query = instant
    for _ in range(_MAX_HORIZONS):
        day = query // DAY
        breaks = _break_list(pairs, day)
        index = _opens(pairs, day)[bisect.bisect_right(breaks, query) - 1]
        if index >= 0:
            return max(breaks[index], query)
        query = (day + HORIZON_DAYS) * DAY
    return -1


@functools.lru_cache(maxsize=4096)
def _break_list(pairs: Pairs, day: int) -> list[int]:
    return schedule(pairs, day)[0].tolist()  # type: ignore[no-any-return]


@functools.lru_cache(maxsize=4096)
def _opens(pairs: Pairs, day: int) -> list[int]:
    return _next_true(schedule(pairs, day)[1]).tolist()  # type: ignore[no-any-return]


def _next_true(answers: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    """For each index, the first index at or after it whose answer is True; -1 if none."""
    out = np.full(len(answers), -1, dtype=np.int64)
    upcoming = -1
    for index in range(len(answers) - 1, -1, -1):
        if answers[index]:
            upcoming = index
        out[index] = upcoming
    return out


def _breakpoints(zone_name: str, rule: WindowRule, begin: int, end: int) -> list[int]:
    zone = _zone(zone_name)
    first = dt.datetime.fromtimestamp(begin, zone).date() - dt.timedelta(days=1)
    last = dt.datetime.fromtimestamp(end, zone).date() + dt.timedelta(days=1)
    points: list[int] = []
    day = first
    while day <= last:
        for minute in (0, rule.start_minute, rule.end_minute):
            wall = dt.datetime.combine(day, dt.time(0)) + dt.timedelta(minutes=minute)
            for fold in (0, 1):
                points.append(int(wall.replace(tzinfo=zone, fold=fold).timestamp()))
        day += dt.timedelta(days=1)
    points.extend(_transitions(zone, begin - DAY, end + DAY))
    return points


def _transitions(zone: dt.tzinfo, begin: int, end: int) -> list[int]:
    """Instants in ``[begin, end]`` at which the zone's UTC offset changes (to the second)."""
    found = []
    step = 6 * 3600
    low = begin
    while low < end:
        high = min(low + step, end)
        if _offset(zone, low) != _offset(zone, high):
            a, b = low, high
            while b - a > 1:
                mid = (a + b) // 2
                if _offset(zone, mid) == _offset(zone, a):
                    a = mid
                else:
                    b = mid
            found.append(b)
        low = high
    return found


def _offset(zone: dt.tzinfo, instant: int) -> dt.timedelta | None:
    return dt.datetime.fromtimestamp(instant, zone).utcoffset()


@functools.cache
def _zone(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


def day_of(instant: int, zone_name: str) -> int:
    """The local date of an instant in a zone, as days since 1970-01-01."""
    return (dt.datetime.fromtimestamp(instant, _zone(zone_name)).date() - _EPOCH).days
