"""Redis connections for the change log, and the one place Redis errors become ours."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis

from suppression.errors import ChangeLogError, ConfigError

__all__ = ["connect", "redis_errors"]


def connect(url: str, *, socket_timeout: float | None = 10.0) -> redis.Redis:
    """A client for the change log's Redis (bytes in and out, no connection yet).

    Raises:
        ConfigError: the URL is malformed.
    """
    if not url:
        raise ConfigError("no change log configured: give --redis-url redis://host:port/db")
    try:
        return redis.Redis.from_url(
            url, socket_timeout=socket_timeout, socket_connect_timeout=2.0, decode_responses=False
        )
    except ValueError as exc:
        raise ConfigError(f"--redis-url {url!r} is not a Redis URL: {exc}") from exc


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
