"""The attempts a snapshot does not hold, read back from the change log at start-up.

Snapshots store lists, not dial attempts. A replica that starts from a
snapshot follows the log from the snapshot's version on, so without this it
would count only attempts made after the snapshot, and an attempt cap would
answer ALLOWED where a replica that never restarted answers DEFERRED. Before
following, the replica reads the ``attempts`` entries from the retention
window up to the snapshot's version (``XRANGE``) and adds them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import cast

import redis

from suppression.entries import decode_entry, field_text
from suppression.errors import ChangeLogError
from suppression.lists import Op, Version
from suppression.policy.attempts import Attempt

__all__ = ["Backfill", "attempts_before"]

logger = logging.getLogger(__name__)

_PAGE = 1000


class Backfill:
    """What :func:`attempts_before` found."""

    def __init__(self, attempts: list[Attempt], complete: bool) -> None:
        """The attempts, and whether the log still held the whole window."""
        self.attempts = attempts
        self.complete = complete


def attempts_before(
    client: redis.Redis, stream: str, version: Version, retention_seconds: int
) -> Backfill:
    """Attempts entries from ``version`` minus the retention up to ``version`` itself.

    Raises:
        redis.RedisError: Redis is unreachable (the caller maps it).
    """
    low = Version(max(0, version.ms - retention_seconds * 1000), 0)
    cursor = str(low)
    attempts: list[Attempt] = []
    while True:
        page = cast(
            list[tuple[bytes, dict[bytes, bytes]]],
            client.xrange(stream, min=cursor, max=str(version), count=_PAGE) or [],
        )
        for raw_id, fields in page:
            if fields.get(b"op") != Op.ATTEMPTS.value.encode():
                continue
            try:
                entry = decode_entry(fields)
            except ChangeLogError as exc:  # the follower dead-lettered it too
                logger.warning("attempts entry %s not counted: %s", field_text(raw_id), exc)
                continue
            attempts += [
                Attempt(number, line, at)
                for number, line, at in zip(entry.numbers, entry.lines, entry.times, strict=True)
            ]
        if len(page) < _PAGE:
            break
        last = Version.parse(field_text(page[-1][0]))
        cursor = str(Version(last.ms, last.seq + 1))
    return Backfill(attempts, _held_since(client, stream, low))


def _held_since(client: redis.Redis, stream: str, low: Version) -> bool:
    """Whether nothing at or after ``low`` was ever trimmed from the stream."""
    try:
        info = cast(Mapping[str, object], client.xinfo_stream(stream))
    except redis.ResponseError:  # no stream: nothing was ever written, nothing is missing
        return True
    deleted = info.get("max-deleted-entry-id")
    if not isinstance(deleted, bytes | str) or not deleted:
        return True
    return Version.parse(field_text(deleted)) < low
