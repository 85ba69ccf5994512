"""Redis connections for the change log, and the one place Redis errors become ours.

A change log is either one Redis server (``--redis-url``) or whatever primary
a set of Redis Sentinels names (``--sentinel`` and ``--sentinel-master``).
With Sentinel, redis-py asks the sentinels for the primary on every new
connection, and drops a connection that finds its server demoted, so a
follower or a writer that retries after a connection error reaches the
promoted replica without a restart. The URL then gives only the database
and the credentials.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import redis
from redis.connection import parse_url
from redis.sentinel import Sentinel

from suppression.errors import ChangeLogError, ConfigError

__all__ = ["connect", "parse_sentinel", "redis_errors"]

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
