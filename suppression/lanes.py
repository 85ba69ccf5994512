"""Interactive calls before bulk work: one bulk batch at a time, paused while small calls run.

Every call of one process shares one GIL. Four streams of 10,000-number
batches, each taking the GIL for milliseconds at a time, made a single-number
``Check`` wait 30 ms at the median and 80 ms at p99 against under 2 ms alone
(``benchmarks/bench_interactive.py``). :class:`Lanes` therefore lets one bulk
batch compute at a time (the others wait on a semaphore, without the GIL), and
the running one, between slices of its batch (see
:func:`~suppression.checker.pausing_between_slices`), waits while any
interactive call is in its handler.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["GIL_HOLD", "Lanes"]

GIL_HOLD = 0.0005
"""Seconds a bulk batch computes before it drops the GIL at a slice boundary.

Each drop costs 50-90 µs here; dropping at every 5,000-number slice (0.25-0.5 ms
of lookups) cost a 10,000-number Check about a tenth of its time at the server.
Text slices take about 1 ms, so they still drop it at every boundary. An
interactive call that arrives meanwhile waits for the GIL about one slice at most.
"""


class Lanes:
    """Admission of calls by size: bulk batches one at a time, interactive ones first."""

    def __init__(
        self,
        bulk_threshold: int = 1_000,
        bulk_concurrency: int = 1,
        longest_pause: float = 0.05,
        longest_hold: float = GIL_HOLD,
    ) -> None:
        """Create the lanes.

        Args:
            bulk_threshold: batches of at least this many numbers are bulk.
            bulk_concurrency: bulk batches computed at once.
            longest_pause: seconds a bulk batch waits at most, between two
                slices, for interactive calls; bulk work never stops for longer.
            longest_hold: seconds a bulk batch computes, at least, before a
                slice boundary drops the GIL for other threads (see :data:`GIL_HOLD`).
        """
        self._threshold = bulk_threshold
        self._bulk = threading.BoundedSemaphore(bulk_concurrency)
        self._longest_pause = longest_pause
        self._longest_hold = longest_hold
        self._interactive = _InteractiveCalls()

    @property
    def threshold(self) -> int:
        """The smallest batch that is bulk work."""
        return self._threshold

    def is_bulk(self, size: int) -> bool:
        """Whether a batch of ``size`` numbers takes the bulk lane."""
        return size >= self._threshold

    @contextmanager
    def bulk(self) -> Iterator[Callable[[], None]]:
        """Hold a bulk slot; yields the pause to call between slices."""
        with self._bulk:
            yield _BulkPause(self._interactive, self._longest_pause, self._longest_hold)

    def interactive(self) -> _InteractiveCalls:
        """Mark an interactive call in flight, so bulk work pauses for it.

        Use as ``with lanes.interactive():``.
        """
        return self._interactive


class _BulkPause:
    """The pause of one bulk batch, called between its slices.

    It waits while interactive calls run. Otherwise, once the batch has held
    the GIL for ``longest_hold`` seconds, it drops it, so that a thread waiting
    for it (gRPC's own, dispatching an interactive call) may take it.
    """

    __slots__ = ("_interactive", "_last_drop", "_longest_hold", "_longest_pause")

    def __init__(
        self, interactive: _InteractiveCalls, longest_pause: float, longest_hold: float
    ) -> None:
        self._interactive = interactive
        self._longest_pause = longest_pause
        self._longest_hold = longest_hold
        self._last_drop = _clock()

    def __call__(self) -> None:
        if self._interactive.in_flight:
            self._interactive.wait_until_none(self._longest_pause)
        elif _clock() - self._last_drop >= self._longest_hold:
            _drop_gil()
        else:
            return
        self._last_drop = _clock()


def _drop_gil() -> None:
    """Let another thread take the GIL: ``sleep(0)`` always gives it up.

    It costs 50-90 µs here (Linux rounds a zero sleep up to the timer slack),
    so :class:`_BulkPause` calls it once per ``longest_hold`` of work, not per slice.
    """
    time.sleep(0)


_clock = time.perf_counter


class _InteractiveCalls:
    """Counts interactive calls in flight; the context of :meth:`Lanes.interactive`.

    One object, entered by every call: ``@contextmanager`` built a generator and
    a wrapper per call, a few µs of a single-number Check's few tens.
    """

    __slots__ = ("_idle", "_lock", "_waiting", "in_flight")

    def __init__(self) -> None:
        self.in_flight = 0
        self._waiting = 0
        """Bulk batches waiting in :meth:`wait_until_none`: without any, nobody is notified."""
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)

    def __enter__(self) -> None:
        with self._lock:
            self.in_flight += 1

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            self.in_flight -= 1
            if not self.in_flight and self._waiting:
                self._idle.notify_all()

    def wait_until_none(self, timeout: float) -> None:
        """Wait until no interactive call is in flight, or ``timeout`` seconds."""
        with self._lock:
            self._waiting += 1
            try:
                self._idle.wait_for(lambda: not self.in_flight, timeout)
            finally:
                self._waiting -= 1
