"""The change log's producer side: validate entries, append them, wait for Redis replicas.

Redis replicates asynchronously: a write the primary accepted can vanish in a
failover. With ``min_replicas``, every append is followed, on the same
connection, by ``WAIT min_replicas timeout``; the write counts as done only
once that many Redis replicas hold it, and otherwise fails with
:class:`~suppression.errors.ChangeLogError` (the change may still be in the
log: every change is idempotent, so the caller retries it).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping, Sequence

import redis

from suppression.changelog.epoch import APPEND_SCRIPT, new_epoch
from suppression.changelog.streaminfo import meta_key
from suppression.entries import Entry, encode_entry, field_text, validate_entry
from suppression.errors import ChangeLogError, ChangeLogResetError
from suppression.lists import ListKind, Version
from suppression.redisconn import PrimaryWatch, redis_errors

__all__ = ["ChangeLogWriter", "default_producer"]

logger = logging.getLogger(__name__)


def default_producer(program: str) -> str:
    """A producer name for the ``producer`` field: program, host and process id."""
    return f"{program}@{socket.gethostname()}:{os.getpid()}"


class ChangeLogWriter:
    """Appends validated entries to the change-log stream. Thread-safe."""

    def __init__(
        self,
        client: redis.Redis,
        stream: str,
        producer: str = "",
        *,
        epoch: str = "",
        min_replicas: int = 0,
        replica_timeout: float = 1.0,
    ) -> None:
        """Create a writer.

        Args:
            client: the Redis client (bytes responses).
            stream: the stream key.
            producer: written into each entry's ``producer`` field.
            epoch: the epoch of the log the writer's data comes from, for
                every write that names none (see :meth:`write`).
            min_replicas: Redis replicas that must hold a write before
                :meth:`write` returns; 0 trusts the primary alone.
            replica_timeout: seconds to wait for them.
        """
        self._client = client
        self._primary = PrimaryWatch(client)
        self._stream = stream
        self._producer = producer
        self._epoch = epoch
        self._append = client.register_script(APPEND_SCRIPT)
        self._min_replicas = min_replicas
        self._replica_timeout_ms = max(1, round(replica_timeout * 1000))

    @property
    def stream(self) -> str:
        """The stream key."""
        return self._stream

    def write(
        self,
        entries: Sequence[Entry],
        kinds: Mapping[str, ListKind] | None = None,
        *,
        epoch: str | None = None,
    ) -> list[Version]:
        """Validate every entry, then append them all in one atomic step, in order.

        Nothing is written unless every entry is valid. The entries of one call
        are contiguous in the stream and numbered consecutively in the log's
        epoch (see :mod:`suppression.changelog.epoch`).

        Args:
            entries: the entries.
            kinds: the known kinds of existing lists, for the consent rule.
            epoch: the epoch of the log the writer's data comes from (None: the
                one given at construction). The write is refused if the log's
                epoch is another one, or gone: Redis lost the log. "" is data
                that never saw an epoch: it joins the log's epoch, or starts
                the first one in a new, empty log.

        Returns:
            The stream IDs the entries received, in order.

        Raises:
            InvalidEntryError: an entry is malformed.
            ConsentRequiredError: an entry would remove from an opt-out list
                without consent evidence.
            ChangeLogResetError: the log lost its epoch or has another one;
                nothing was written.
            ChangeLogError: Redis is unreachable or refused the write, or fewer
                than ``min_replicas`` Redis replicas confirmed it in time (the
                entries may be in the log, or lost at a failover: retry).
        """
        known = kinds or {}
        for entry in entries:
            validate_entry(entry, known.get(entry.list_name))
        if not entries:
            return []
        known_epoch = self._epoch if epoch is None else epoch
        arguments: list[str] = [known_epoch, new_epoch(), "", str(len(entries))]
        for entry in entries:
            fields = encode_entry(entry)
            if self._producer and not entry.producer:
                fields["producer"] = self._producer
            arguments.append(str(2 * len(fields)))
            for name, value in fields.items():
                arguments += (name, value)
        what = f"appending to change log {self._stream}"
        try:
            with redis_errors(what):
                reply, confirmed = self._append_and_wait(arguments)
        except ChangeLogError as exc:
            raise _reset_error(exc, self._stream) from exc.__cause__
        versions = [Version.parse(field_text(i)) for i in reply[1:]]
        if confirmed < self._min_replicas:
            raise ChangeLogError(
                f"not acknowledged: the change is on the Redis primary as {versions[-1]}, but "
                f"only {confirmed} of the {self._min_replicas} Redis replica(s) required "
                f"confirmed it within {self._replica_timeout_ms / 1000:g} s, so a failover could "
                "lose it; retry the write (changes are idempotent) once Redis replication is "
                "healthy"
            )
        logger.debug("appended %d entries, last %s", len(versions), versions[-1])
        return versions

    def _append_and_wait(self, arguments: Sequence[str]) -> tuple[list[bytes], int]:
        """Run the append script, then WAIT on its connection: (reply, replicas that confirmed)."""
        self._primary.check()  # never append to a primary the sentinels have replaced
        if self._min_replicas <= 0:
            reply = self._append(keys=[self._stream, meta_key(self._stream)], args=arguments)
            return list(reply), 0
        # WAIT counts the writes of its own connection: a pipeline keeps both on one.
        pipe = self._client.pipeline(transaction=False)
        self._append(keys=[self._stream, meta_key(self._stream)], args=arguments, client=pipe)
        pipe.execute_command("WAIT", self._min_replicas, self._replica_timeout_ms)  # type: ignore[no-untyped-call]
        reply, confirmed = pipe.execute()
        return list(reply), int(confirmed)


def _reset_error(exc: ChangeLogError, stream: str) -> ChangeLogError:
    """Turn the append script's refusals into errors that say what happened and what to do."""
    text = str(exc)
    if "EPOCHGONE" in text or "EPOCHCHANGED" in text:
        return ChangeLogResetError(
            f"nothing was written: change log {stream} is not the log this data came from "
            "(Redis lost it, or it was reseeded). Replicas refuse to answer until it is "
            "reseeded from the newest snapshot (suppression-loader reseed); then retry"
        )
    if "NOEPOCH" in text:
        return ChangeLogResetError(
            f"nothing was written: change log {stream} holds entries but no epoch (it was "
            "written by an older version); start its epoch from the newest snapshot with "
            "suppression-loader reseed"
        )
    return exc
