"""The policy options of ``check``, ``explain`` and ``evidence``, as one PolicyRequest."""

from __future__ import annotations

import datetime as dt

from suppression.errors import ConfigError
from suppression.policy.batch import PolicyRequest
from suppression.settings import Settings

__all__ = ["decide_at_ms", "policy_request_of"]


def decide_at_ms(text: str) -> int:
    """``--decide-at``'s ISO 8601 time as milliseconds since the epoch; 0 for "".

    Raises:
        ConfigError: malformed, or without a UTC offset (it would be this machine's time).
    """
    if not text:
        return 0
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(f"--decide-at {text!r}: {exc}") from exc
    if moment.tzinfo is None:
        raise ConfigError(
            f"--decide-at {text!r} has no UTC offset: add one, such as "
            "2026-11-26T09:00-05:00 or 2026-11-26T14:00Z"
        )
    return int(moment.timestamp() * 1000)


def policy_request_of(settings: Settings) -> PolicyRequest:
    """The policy options as a request; refused with the reason if malformed.

    Raises:
        ConfigError: a time without a UTC offset, or a malformed date.
    """
    at_ms = decide_at_ms(settings.decide_at)
    consent_day = 0
    if settings.consent_date:
        try:
            day = dt.date.fromisoformat(settings.consent_date)
        except ValueError as exc:
            raise ConfigError(f"--consent-date {settings.consent_date!r}: {exc}") from exc
        consent_day = (day - dt.date(1970, 1, 1)).days
    return PolicyRequest(
        settings.policy, at_ms, consent_day=consent_day, calling_line=settings.calling_line
    )
