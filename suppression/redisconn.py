"""Redis connections for the change log, and the one place Redis errors become ours.

A change log is either one Redis server (``--redis-url``) or whatever primary
a set of Redis Sentinels names (``--sentinel`` and ``--sentinel-master``).
With Sentinel, redis-py asks the sentinels for the primary on every new
connection, and drops a connection that finds its server demoted, so a
follower or a writer that retries after a connection error reaches the
promoted replica without a restart. The URL then gives only the database
and the credentials.

A connection that stays open is not enough: after a failover that the old
primary did not see (it was paused, or only the sentinels lost sight of it),
the old primary still calls itself a primary, still accepts writes and
still answers reads, until the sentinels reach it again, which can take many
seconds. A follower reading from it applies writes the real log never gets.
:class:`PrimaryWatch` asks the sentinels, about twice a second, where the
primary is, and drops every connection to any other server.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import redis
from redis.connection import parse_url
from redis.sentinel import Sentinel, SentinelConnectionPool

from suppression.errors import ChangeLogError, ConfigError

__all__ = ["PrimaryWatch", "connect", "parse_sentinel", "redis_errors"]

logger = logging.getLogger(__name__)

_CONNECT_TIMEOUT = 2.0
_SENTINEL_TIMEOUT = 1.0
"""Seconds one sentinel gets to answer before the next one is asked."""


def connect(
    url: str,
    *,
    socket_timeout: float | None = 10.0,
    sentinels: Sequence[str] = (),
    master: str = "",
) -> redis.Redis:
    """A client for the change log's Redis (bytes in and out, no connection yet).

    Args:
        url: the Redis URL; with ``sentinels``, only its database and credentials count.
        socket_timeout: seconds one command may take.
        sentinels: ``HOST:PORT`` of Redis Sentinels to ask for the primary.
        master: the master name the sentinels monitor (with ``sentinels``).

    Raises:
        ConfigError: the URL or a sentinel address is malformed, or the master name is missing.
    """
    if not url:
        raise ConfigError("no change log configured: give --redis-url redis://host:port/db")
    try:
        if not sentinels:
            return redis.Redis.from_url(
                url,
                socket_timeout=socket_timeout,
                socket_connect_timeout=_CONNECT_TIMEOUT,
                decode_responses=False,
            )
        params: dict[str, Any] = parse_url(url)  # type: ignore[no-untyped-call]
    except ValueError as exc:
        raise ConfigError(f"--redis-url {url!r} is not a Redis URL: {exc}") from exc
    if not master:
        raise ConfigError("--sentinel needs --sentinel-master: the name the sentinels monitor")
    credentials = {k: params[k] for k in ("db", "username", "password") if k in params}
    watchers = Sentinel(  # type: ignore[no-untyped-call]
        [parse_sentinel(address) for address in sentinels],
        sentinel_kwargs={
            "socket_timeout": _SENTINEL_TIMEOUT,
            "socket_connect_timeout": _SENTINEL_TIMEOUT,
        },
    )
    client: redis.Redis = watchers.master_for(  # type: ignore[no-untyped-call]
        master,
        socket_timeout=socket_timeout,
        socket_connect_timeout=_CONNECT_TIMEOUT,
        decode_responses=False,
        **credentials,
    )
    return client


class PrimaryWatch:
    """Keeps a Sentinel-managed client on the server the sentinels name as the primary.

    :meth:`check`, called before each use, asks the sentinels at most every
    ``interval`` seconds. When they name another server than the one the
    client's connections were made to, the idle connections close at once and
    the busy ones when they are released, so the next command reaches the
    named primary. For a client of one Redis server (no sentinels) it does
    nothing.
    """

    def __init__(
        self,
        client: redis.Redis,
        interval: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Watch ``client``'s connections; ask the sentinels at most every ``interval`` s."""
        pool = client.connection_pool
        self._pool = pool if isinstance(pool, SentinelConnectionPool) else None
        self._interval = interval
        self._clock = clock
        self._next = 0.0
        self._unanswered = False

    def check(self) -> bool:
        """Ask the sentinels (if due); True if they named another primary than before.

        When no sentinel answers, the client keeps its connections: a sentinel
        outage alone must not cut a replica off a primary that still works.
        """
        if self._pool is None:
            return False
        now = self._clock()
        if now < self._next:
            return False
        self._next = now + self._interval
        before = self._pool.master_address
        try:
            # redis-py remembers the answer: connections to any other server are
            # closed now if idle, or when released (SentinelConnectionPool.owns_connection).
            after = self._pool.get_master_address()  # type: ignore[no-untyped-call]
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            if not self._unanswered:
                logger.warning("no sentinel names the primary (%s); keeping the connection", exc)
                self._unanswered = True
            return False
        self._unanswered = False
        if before is None or tuple(after) == tuple(before):
            return False
        logger.warning(
            "the sentinels name %s:%s as the primary, not %s:%s: reconnecting",
            after[0],
            after[1],
            before[0],
            before[1],
        )
        return True


def parse_sentinel(address: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too) as a pair.

    Raises:
        ConfigError: not HOST:PORT with a port from 1 to 65535.
    """
    host, _, port = address.strip().rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--sentinel {address!r}: write HOST:PORT, as in redis-sentinel-0:26379")
    return host, int(port)


@contextmanager
def redis_errors(what: str) -> Iterator[None]:
    """Turn Redis errors inside the block into :class:`ChangeLogError`.

    Args:
        what: what was being done, for the message ("appending to suppression:deltas").
    """
    try:
        yield
    except redis.ConnectionError as exc:
        raise ChangeLogError(f"{what}: Redis is unreachable ({exc}); retry shortly") from exc
    except redis.TimeoutError as exc:
        raise ChangeLogError(f"{what}: Redis did not answer in time ({exc})") from exc
    except redis.RedisError as exc:
        raise ChangeLogError(f"{what}: Redis refused ({exc})") from exc
