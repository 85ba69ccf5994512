"""The change log's producer side: validate entries, then append them to the stream."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping, Sequence

import redis

from suppression.entries import Entry, encode_entry, validate_entry
from suppression.lists import ListKind, Version
from suppression.redisconn import redis_errors

__all__ = ["ChangeLogWriter", "default_producer"]

logger = logging.getLogger(__name__)


def default_producer(program: str) -> str:
    """A producer name for the ``producer`` field: program, host and process id."""
    return f"{program}@{socket.gethostname()}:{os.getpid()}"


class ChangeLogWriter:
    """Appends validated entries to the change-log stream. Thread-safe."""

    def __init__(self, client: redis.Redis, stream: str, producer: str = "") -> None:
        """Create a writer.

        Args:
            client: the Redis client (bytes responses).
            stream: the stream key.
            producer: written into each entry's ``producer`` field.
        """
        self._client = client
        self._stream = stream
        self._producer = producer

    @property
    def stream(self) -> str:
        """The stream key."""
        return self._stream

    def write(
        self, entries: Sequence[Entry], kinds: Mapping[str, ListKind] | None = None
    ) -> list[Version]:
        """Validate every entry, then append them all in one MULTI/EXEC, in order.

        Nothing is written unless every entry is valid. The entries of one call
        are contiguous in the stream, so no other writer's entry lands between them.

        Args:
            entries: the entries.
            kinds: the known kinds of existing lists, for the consent rule.

        Returns:
            The stream IDs the entries received, in order.

        Raises:
            InvalidEntryError: an entry is malformed.
            ConsentRequiredError: an entry would remove from an opt-out list
                without consent evidence.
            ChangeLogError: Redis is unreachable or refused the write.
        """
        known = kinds or {}
        for entry in entries:
            validate_entry(entry, known.get(entry.list_name))
        if not entries:
            return []
        encoded = []
        for entry in entries:
            fields = encode_entry(entry)
            if self._producer and not entry.producer:
                fields["producer"] = self._producer
            encoded.append(fields)
        with redis_errors(f"appending to change log {self._stream}"):
            pipe = self._client.pipeline(transaction=len(encoded) > 1)
            for fields in encoded:
                pipe.xadd(self._stream, fields)  # type: ignore[arg-type]
            ids = pipe.execute()
        versions = [Version.parse(_text(i)) for i in ids]
        logger.debug("appended %d entries, last %s", len(versions), versions[-1])
        return versions


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
