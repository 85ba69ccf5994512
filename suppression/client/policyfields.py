"""A check's pre-dial policy fields: Python dates and times turned into the wire's values.

The server decides under a policy (docs/policy.md); the request names it, the moment to
decide for, the consent day per number or for the batch, and the calling line. Times
cross the wire as milliseconds since the Unix epoch and days as days since 1970-01-01,
so naive datetimes are refused here: a time without a UTC offset would silently be the
client machine's local time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from suppression.client.errors import InvalidRequestError

__all__ = ["ConsentDay", "DecideAt", "PolicyFields", "consent_days_of", "day_of", "ms_of"]

DecideAt = dt.datetime | int
"""The moment to decide for: an aware datetime, or milliseconds since the Unix epoch."""

ConsentDay = dt.date | int | None
"""A consent day: a date, days since 1970-01-01, or None (not given)."""

_EPOCH_DAY = dt.date(1970, 1, 1)


@dataclass(frozen=True, slots=True)
class PolicyFields:
    """What every request of one check says about the policy (consent days aside)."""

    policy: str = ""
    """The policy's name; empty: the server's default."""
    decide_at_ms: int = 0
    """Milliseconds since the epoch; 0: the answering server's now."""
    consent_day: int = 0
    """One consent day for the whole batch, days since 1970-01-01; 0: none."""
    calling_line: str = ""
    """The calling line whose caps apply; empty: line caps are not checked."""


def ms_of(moment: DecideAt | None) -> int:
    """Milliseconds since the epoch of ``moment``; 0 for None (now).

    Raises:
        InvalidRequestError: a naive datetime, or a time before 1970.
    """
    if moment is None:
        return 0
    if isinstance(moment, dt.datetime):
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise InvalidRequestError(
                f"decide_at {moment.isoformat()} has no UTC offset: pass an aware datetime, "
                "such as datetime(2026, 11, 26, 9, tzinfo=ZoneInfo('America/New_York'))"
            )
        value = int(moment.timestamp() * 1000)
    elif isinstance(moment, int) and not isinstance(moment, bool):
        value = moment
    else:
        raise InvalidRequestError(
            f"decide_at must be a datetime or milliseconds since the epoch, not {moment!r}"
        )
    if value < 0:
        raise InvalidRequestError(f"decide_at {value} ms is before 1970")
    return value


def day_of(day: ConsentDay) -> int:
    """Days since 1970-01-01 of ``day``; 0 for None (not given).

    Raises:
        InvalidRequestError: a day before 1970-01-02 (day 0 means "none" on the wire).
    """
    if day is None:
        return 0
    if isinstance(day, dt.datetime):
        raise InvalidRequestError(f"consent day {day!r} is a datetime: pass its date()")
    if isinstance(day, dt.date):
        value = (day - _EPOCH_DAY).days
    elif isinstance(day, int) and not isinstance(day, bool):
        value = day
    else:
        raise InvalidRequestError(f"a consent day is a date or days since 1970, not {day!r}")
    if value < 0 or (isinstance(day, dt.date) and value == 0):
        raise InvalidRequestError(f"consent day {day} is before 1970-01-02; it cannot be sent")
    return value


def consent_days_of(days: Sequence[ConsentDay] | None, count: int) -> list[int]:
    """The per-number consent days as wire values; empty when none were given.

    Raises:
        InvalidRequestError: not one per number, or a bad day.
    """
    if days is None:
        return []
    if len(days) != count:
        raise InvalidRequestError(
            f"{len(days):,} consent days for {count:,} numbers: give one per number "
            "(None where there is none), or consent_day= for the whole batch"
        )
    return [day_of(day) for day in days]
