"""Per-identity quotas of numbers checked: token buckets shared by every process of a replica.

Pre-forked workers share one port, so a quota kept in each worker's memory would
multiply by the number of workers. :class:`SharedQuota` keeps the buckets in a
memory-mapped file instead. The parent creates it before forking; the children
inherit the mapping (``MAP_SHARED`` survives ``fork``) and serialize updates with
``fcntl`` record locks (between processes) and a thread lock (between threads of
one process: fcntl locks belong to a process, not a thread).

Each identity has two buckets: one per minute (capacity ``burst``, refilled at
``numbers_per_minute / 60`` a second) and one per day (capacity and refill
``numbers_per_day`` a day). A batch of ``n`` numbers takes ``n`` tokens from both,
or from neither. One charge costs two ``fcntl`` calls and a few ``struct``
operations: microseconds, once per batch.
"""

from __future__ import annotations

import fcntl
import hashlib
import math
import mmap
import os
import struct
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter

from suppression.errors import ConfigError, SuppressionError

__all__ = ["IdentityMetrics", "QuotaExceededError", "QuotaLimits", "SharedQuota"]

_MAGIC = b"SUPQUOTA"
_HEADER = struct.Struct("<8sII")
"""Magic, format version, number of slots."""
_SLOT = struct.Struct("<16sdddd")
"""Identity key (blake2b-128 of the name; zeros when free), then per bucket: tokens, last refill."""
_VERSION = 1
_EMPTY_KEY = bytes(16)
_DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class QuotaLimits:
    """How many numbers one identity may check."""

    per_minute: int
    """Sustained rate: numbers a minute."""
    per_day: int
    """Numbers a day, however they are spread."""
    burst: int
    """Numbers that may be checked at once after a quiet spell; the largest batch."""


class QuotaExceededError(SuppressionError):
    """An identity asked for more numbers than its quota has left (RESOURCE_EXHAUSTED)."""

    def __init__(self, message: str, retry_after: float | None) -> None:
        """Create the error.

        Args:
            message: what happened and what to do.
            retry_after: seconds until the same request would pass; None when it never will.
        """
        super().__init__(message)
        self.retry_after = retry_after

    @property
    def retry_after_ms(self) -> int | None:
        """:attr:`retry_after` in whole milliseconds, rounded up."""
        return None if self.retry_after is None else math.ceil(self.retry_after * 1000)


def _key(identity: str) -> bytes:
    return hashlib.blake2b(identity.encode(), digest_size=16).digest()


class SharedQuota:
    """Token buckets per identity in a shared memory-mapped file.

    Create it in the parent before forking workers (:meth:`create`), or open an
    existing table from another process (:meth:`open`).
    """

    def __init__(
        self,
        path: Path,
        fd: int,
        table: mmap.mmap,
        slots: int,
        clock: Callable[[], float],
        lease: float = 0.0,
    ) -> None:
        """Use :meth:`create` or :meth:`open`."""
        self.path = path
        self._fd = fd
        self._map = table
        self._slots = slots
        self._clock = clock
        self._lease = lease
        self._leased: dict[str, int] = {}
        self._thread_lock = threading.Lock()
        reference = weakref.ref(self)

        def after_fork() -> None:
            quota = reference()
            if quota is not None:
                quota._after_fork()

        os.register_at_fork(after_in_child=after_fork)

    def _after_fork(self) -> None:
        # A thread of the parent may have held the lock at fork; the child has no such thread.
        self._thread_lock = threading.Lock()
        # Tokens the parent leased are the parent's: a child spending them would double them.
        self._leased = {}

    @classmethod
    def create(
        cls,
        directory: Path,
        *,
        slots: int = 1024,
        clock: Callable[[], float] = time.monotonic,
        lease: float = 0.0,
    ) -> SharedQuota:
        """Create a fresh, empty table in ``directory`` (every bucket starts full).

        Args:
            directory: where the table file goes; a tmpfs such as /dev/shm keeps it in memory.
            slots: identities it can hold; give at least the trust file's identities.
            clock: seconds, the same clock in every process (CLOCK_MONOTONIC is system-wide).
            lease: share of an identity's burst that a process takes from the table at a
                time and then spends locally, without the file lock (0: exact, a lock on
                every charge). Leased tokens are spent early, never twice, so an identity
                is only ever held to less than its quota, by at most a lease per process.

        Raises:
            ConfigError: the directory is not writable.
        """
        if slots < 1:
            raise ConfigError(f"a quota table needs at least one slot, not {slots}")
        size = _HEADER.size + slots * _SLOT.size
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd, name = _mkstemp(directory)
            os.ftruncate(fd, size)
        except OSError as exc:
            raise ConfigError(
                f"cannot create the quota table in {directory}: {exc.strerror}; "
                "give a writable directory"
            ) from exc
        table = mmap.mmap(fd, size, flags=mmap.MAP_SHARED)
        _HEADER.pack_into(table, 0, _MAGIC, _VERSION, slots)
        return cls(Path(name), fd, table, slots, clock, lease)

    @classmethod
    def open(cls, path: Path, *, clock: Callable[[], float] = time.monotonic) -> SharedQuota:
        """Open a table that another process created.

        Raises:
            ConfigError: the file is missing or is not a quota table.
        """
        try:
            fd = os.open(path, os.O_RDWR)
            size = os.fstat(fd).st_size
        except OSError as exc:
            raise ConfigError(f"cannot open the quota table {path}: {exc.strerror}") from exc
        if size < _HEADER.size:
            os.close(fd)
            raise ConfigError(f"{path} is not a quota table (too short)")
        table = mmap.mmap(fd, size, flags=mmap.MAP_SHARED)
        magic, version, slots = _HEADER.unpack_from(table, 0)
        if magic != _MAGIC or version != _VERSION or size != _HEADER.size + slots * _SLOT.size:
            table.close()
            os.close(fd)
            raise ConfigError(f"{path} is not a quota table of format {_VERSION}")
        return cls(path, fd, table, slots, clock)

    def close(self, *, remove: bool = False) -> None:
        """Unmap the table; ``remove`` also deletes its file (the creator, at shutdown)."""
        self._map.close()
        os.close(self._fd)
        if remove:
            self.path.unlink(missing_ok=True)

    def charge(self, identity: str, limits: QuotaLimits, numbers: int) -> None:
        """Take ``numbers`` tokens from the identity's buckets, or none.

        Raises:
            QuotaExceededError: with the seconds until the same batch would pass.
        """
        if numbers <= 0:
            return
        biggest = min(limits.burst, limits.per_day)
        if numbers > biggest:
            raise QuotaExceededError(
                f"a batch of {numbers:,} numbers exceeds the {biggest:,} that identity "
                f"{identity!r} may check at once; send smaller batches",
                None,
            )
        with self._thread_lock:
            leased = self._leased.get(identity, 0)
            if leased >= numbers:
                # Spent from this process's lease: no file lock, no system call.
                self._leased[identity] = leased - numbers
                return
        extra = int(biggest * self._lease)
        minute_rate = limits.per_minute / 60.0
        day_rate = limits.per_day / _DAY
        with self._locked():
            offset = self._slot(_key(identity))
            _, m_tokens, m_at, d_tokens, d_at = _SLOT.unpack_from(self._map, offset)
            now = self._clock()
            if m_at == 0.0 and d_at == 0.0:
                m_tokens, d_tokens = float(limits.burst), float(limits.per_day)
            else:
                m_tokens = min(float(limits.burst), m_tokens + max(0.0, now - m_at) * minute_rate)
                d_tokens = min(float(limits.per_day), d_tokens + max(0.0, now - d_at) * day_rate)
            if m_tokens >= numbers and d_tokens >= numbers:
                # Take a lease on top where there is room; whatever is left of the old one
                # stays this process's to spend.
                taken = numbers + max(
                    0, min(extra, int(m_tokens) - numbers, int(d_tokens) - numbers)
                )
                m_tokens -= taken
                d_tokens -= taken
                _SLOT.pack_into(self._map, offset, _key(identity), m_tokens, now, d_tokens, now)
                self._leased[identity] = self._leased.get(identity, 0) + taken - numbers
                return
            _SLOT.pack_into(self._map, offset, _key(identity), m_tokens, now, d_tokens, now)
        wait = max(
            (numbers - m_tokens) / minute_rate if m_tokens < numbers else 0.0,
            (numbers - d_tokens) / day_rate if d_tokens < numbers else 0.0,
        )
        which = "day" if d_tokens < numbers else "minute"
        raise QuotaExceededError(
            f"identity {identity!r} has used its quota of numbers per {which}; "
            f"retry in {wait:.1f} s, or ask for a larger quota",
            wait,
        )

    def remaining(self, identity: str, limits: QuotaLimits) -> tuple[float, float]:
        """Tokens left now in the identity's minute and day buckets (for tests and tools)."""
        with self._locked():
            offset = self._slot(_key(identity))
            _, m_tokens, m_at, d_tokens, d_at = _SLOT.unpack_from(self._map, offset)
        if m_at == 0.0 and d_at == 0.0:
            return float(limits.burst), float(limits.per_day)
        now = self._clock()
        return (
            min(float(limits.burst), m_tokens + (now - m_at) * limits.per_minute / 60.0),
            min(float(limits.per_day), d_tokens + (now - d_at) * limits.per_day / _DAY),
        )

    def _slot(self, key: bytes) -> int:
        """The byte offset of ``key``'s slot, claiming a free one; called under the lock."""
        start = int.from_bytes(key[:8], "little") % self._slots
        for probe in range(self._slots):
            offset = _HEADER.size + ((start + probe) % self._slots) * _SLOT.size
            stored = self._map[offset : offset + 16]
            if stored == key:
                return offset
            if stored == _EMPTY_KEY:
                _SLOT.pack_into(self._map, offset, key, 0.0, 0.0, 0.0, 0.0)
                return offset
        raise QuotaExceededError(
            f"the quota table {self.path} is full ({self._slots:,} identities); "
            "restart with more slots",
            None,
        )

    def _locked(self) -> _Locked:
        return _Locked(self._thread_lock, self._fd)


class _Locked:
    """The thread lock, then an exclusive fcntl lock on the whole table."""

    def __init__(self, thread_lock: threading.Lock, fd: int) -> None:
        self._thread_lock = thread_lock
        self._fd = fd

    def __enter__(self) -> None:
        self._thread_lock.acquire()
        try:
            fcntl.lockf(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._thread_lock.release()
            raise

    def __exit__(self, *_exc: object) -> None:
        try:
            fcntl.lockf(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()


def _mkstemp(directory: Path) -> tuple[int, str]:
    return tempfile.mkstemp(prefix="quota-", suffix=".bin", dir=directory)


class IdentityMetrics:
    """Numbers checked and suppressed, and calls refused, per identity.

    The ``identity`` label is bounded by the trust file's identities. Count once
    per batch, never per number.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        """Create and register the metrics in ``registry``."""
        # The labelled children, looked up once per identity: labels() costs
        # microseconds and a lock on every call.
        self._checked: dict[str, Counter] = {}
        self._suppressed: dict[str, Counter] = {}
        self.checked = Counter(
            "suppression_identity_numbers_checked",
            "Numbers checked, by the identity that asked.",
            ["identity"],
            registry=registry,
        )
        self.suppressed = Counter(
            "suppression_identity_numbers_suppressed",
            "Numbers answered SUPPRESSED, by the identity that asked.",
            ["identity"],
            registry=registry,
        )
        self.refused = Counter(
            "suppression_identity_calls_refused",
            "Calls refused by authentication, scopes or quota, by identity and reason "
            "(unauthenticated, permission_denied, quota).",
            ["identity", "reason"],
            registry=registry,
        )

    def count_checked(self, identity: str, numbers: int) -> None:
        """Count ``numbers`` checked by ``identity`` (the interceptor does this)."""
        if numbers:
            child = self._checked.get(identity)
            if child is None:
                child = self._checked.setdefault(identity, self.checked.labels(identity))
            child.inc(numbers)

    def count_suppressed(self, identity: str, numbers: int) -> None:
        """Count ``numbers`` answered SUPPRESSED to ``identity`` (the servicer does this)."""
        if numbers:
            child = self._suppressed.get(identity)
            if child is None:
                child = self._suppressed.setdefault(identity, self.suppressed.labels(identity))
            child.inc(numbers)

    def count_refused(self, identity: str, reason: str) -> None:
        """Count one refused call."""
        self.refused.labels(identity, reason).inc()
