"""What an Explain question is: one number, and one point in time (a version or a time)."""

from __future__ import annotations

from datetime import UTC, datetime

from suppression.e164 import InvalidReason, Normalizer, e164_reason, validate_region
from suppression.errors import InvalidInputError, InvalidRequestError
from suppression.explain.model import version_at_time
from suppression.lists import Version

__all__ = ["parse_time", "point_of", "single_number"]


def single_number(e164: int, text: str, region: str = "") -> int:
    """The one number asked about, as an E.164 integer.

    Raises:
        InvalidRequestError: no number, or both forms given.
        InvalidInputError: the number is not a valid E.164 number.
    """
    if bool(e164) == bool(text):
        raise InvalidRequestError("give exactly one number: as an E.164 integer or as text")
    if e164:
        reason = e164_reason(e164)
        value = e164
    else:
        value, reason = Normalizer().normalize(text.strip(), validate_region(region))
    if reason is not InvalidReason.VALID:
        raise InvalidInputError(f"the number is not a valid phone number ({reason.name})")
    return value


def point_of(version: str, at_ms: int) -> tuple[Version, int | None]:
    """The version asked about, and the time in ms when the question was a time.

    Raises:
        InvalidRequestError: neither or both given.
        InvalidInputError: the version does not parse.
    """
    if bool(version) == bool(at_ms):
        raise InvalidRequestError(
            "give exactly one point in time: a version (<milliseconds>-<sequence>) or a time"
        )
    if version:
        return Version.parse(version), None
    if at_ms < 0:
        raise InvalidInputError(f"time {at_ms} ms is before 1970")
    return version_at_time(at_ms), at_ms


def parse_time(text: str) -> int:
    """Milliseconds since the epoch from ISO 8601 (UTC unless it says otherwise) or digits.

    Raises:
        InvalidInputError: neither form.
    """
    stripped = text.strip()
    if stripped.isdigit():
        return int(stripped)
    try:
        moment = datetime.fromisoformat(stripped.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidInputError(
            f"time {text!r} is neither ISO 8601 (2026-11-24T15:04:05Z) nor milliseconds"
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)
