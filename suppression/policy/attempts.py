"""Dial attempts per called number and per calling line, counted over rolling windows in bulk.

Layout: the called numbers that have attempts, sorted (``keys``), and one
``uint64`` per attempt, ``(index of its number << 32) | time``, sorted. The
attempts of number ``k`` in ``(t - w, t]`` are then the difference of two
``searchsorted`` calls, for a whole batch at once. Calling lines are few, so
they keep a sorted array of times each.

Every replica applies the same attempts (from the change log) to the same
state and prunes by the attempts' own times, never by its clock, so replicas
at the same version give the same cap answers. Immutable: :meth:`with_attempts`
returns a new log, as the list views do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = ["ATTEMPT_RETENTION", "MAX_TIME", "Attempt", "AttemptLog"]

MAX_TIME = 2**32 - 1
"""Attempt times are UTC seconds that fit 32 bits (until 2106)."""

ATTEMPT_RETENTION = 31 * 86_400
"""Attempts are kept 31 days before the newest one: the longest cap window a policy may use.
A constant, not a setting: replicas that kept attempts for different times would disagree."""

_LOW = np.uint64(0xFFFF_FFFF)
_SHIFT = np.uint64(32)


@dataclass(frozen=True, slots=True)
class Attempt:
    """One dial attempt: who was called, from which line, when (UTC seconds)."""

    number: int
    line: str
    time: int


@dataclass(frozen=True, slots=True)
class AttemptLog:
    """Attempts kept for ``retention`` seconds before the newest one seen."""

    retention: int
    keys: npt.NDArray[np.uint64] = field(default_factory=lambda: np.zeros(0, dtype=np.uint64))
    packed: npt.NDArray[np.uint64] = field(default_factory=lambda: np.zeros(0, dtype=np.uint64))
    lines: Mapping[str, npt.NDArray[np.int64]] = field(default_factory=dict)
    newest: int = 0
    oldest: int = 0
    """The oldest attempt kept: nothing to prune until the floor passes it."""

    def __len__(self) -> int:
        return len(self.packed)

    def with_attempts(self, attempts: Sequence[Attempt]) -> AttemptLog:
        """A new log with ``attempts`` added and attempts older than the retention dropped.

        Linear in the log's size (the copy of copy-on-write, plus ``np.insert``), never a
        sort of the whole log: recording stays cheap as the log grows.
        """
        if not attempts:
            return self
        times_list = [a.time for a in attempts]
        if min(times_list) < 0 or max(times_list) > MAX_TIME:
            raise ValueError("attempt times must be UTC seconds from 1970 to 2106")
        newest = max(self.newest, max(times_list))
        floor = newest - self.retention
        numbers = np.array([a.number for a in attempts], dtype=np.uint64)
        times = np.array(times_list, dtype=np.uint64)
        fresh = times.astype(np.int64) > floor
        numbers, times = numbers[fresh], times[fresh]
        keys, packed, oldest = self.keys, self.packed, self.oldest
        pruning = len(packed) > 0 and oldest <= floor
        if pruning:
            keys, packed = _prune(keys, packed, floor)
        if len(numbers):
            keys, packed = _insert(keys, packed, numbers, times)
        oldest = int((packed & _LOW).min()) if len(packed) else 0
        return AttemptLog(
            self.retention, keys, packed, self._lines(attempts, floor, pruning), newest, oldest
        )

    def _lines(
        self, attempts: Sequence[Attempt], floor: int, pruning: bool
    ) -> dict[str, npt.NDArray[np.int64]]:
        """The lines' times with ``attempts`` added; every line pruned when ``pruning``."""
        added: dict[str, list[int]] = {}
        for attempt in attempts:
            if attempt.line and attempt.time > floor:
                added.setdefault(attempt.line, []).append(attempt.time)
        merged = dict(self.lines)
        for line in set(self.lines) | set(added) if pruning else set(added):
            values = np.concatenate(
                [
                    self.lines.get(line, np.zeros(0, np.int64)),
                    np.array(added.get(line, []), np.int64),
                ]
            )
            values = np.sort(values[values > floor])
            if len(values):
                merged[line] = values
            else:
                merged.pop(line, None)
        return merged

    def number_counts(
        self, numbers: npt.NDArray[np.uint64], at: npt.NDArray[np.int64], seconds: int, limit: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Attempts to each number in ``(at - seconds, at]``, and when the cap frees.

        Returns:
            The counts, and per number the first instant at which fewer than
            ``limit`` attempts made up to ``at`` fall within the window (0
            where the count is under the limit).
        """
        counts = np.zeros(len(numbers), dtype=np.int64)
        frees = np.zeros(len(numbers), dtype=np.int64)
        if not len(self.keys) or not len(numbers):
            return counts, frees
        at_key = np.searchsorted(self.keys, numbers)
        at_key[at_key >= len(self.keys)] = 0
        known = np.flatnonzero(self.keys[at_key] == numbers)
        if not len(known):
            return counts, frees
        base = at_key[known].astype(np.uint64) << _SHIFT
        upper = np.clip(at[known], 0, MAX_TIME).astype(np.uint64)
        lower = np.clip(at[known] - seconds, 0, MAX_TIME).astype(np.uint64)
        high = np.searchsorted(self.packed, base | upper, side="right")
        low = np.searchsorted(self.packed, base | lower, side="right")
        found = (high - low).astype(np.int64)
        counts[known] = found
        over = found >= limit
        if over.any():
            oldest_counted = low[over] + found[over] - limit
            frees[known[over]] = (self.packed[oldest_counted] & _LOW).astype(np.int64) + seconds
        return counts, frees

    def line_count(self, line: str, at: int, seconds: int, limit: int) -> tuple[int, int]:
        """Attempts from ``line`` in ``(at - seconds, at]``, and when the cap frees (0 if under)."""
        times = self.lines.get(line)
        if times is None:
            return 0, 0
        high = int(np.searchsorted(times, at, side="right"))
        low = int(np.searchsorted(times, at - seconds, side="right"))
        count = high - low
        if count < limit:
            return count, 0
        return count, int(times[low + count - limit]) + seconds


def _prune(
    keys: npt.NDArray[np.uint64], packed: npt.NDArray[np.uint64], floor: int
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
    """Drop attempts at or before ``floor``, and the numbers left with none."""
    packed = packed[(packed & _LOW).astype(np.int64) > floor]
    index = (packed >> _SHIFT).astype(np.intp)
    used = np.zeros(len(keys), dtype=bool)
    used[index] = True
    renumber = np.cumsum(used) - 1
    packed = (renumber[index].astype(np.uint64) << _SHIFT) | (packed & _LOW)
    return keys[used], packed


def _insert(
    keys: npt.NDArray[np.uint64],
    packed: npt.NDArray[np.uint64],
    numbers: npt.NDArray[np.uint64],
    times: npt.NDArray[np.uint64],
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
    """Add attempts: new numbers inserted into ``keys`` (indexes shifted), then the attempts."""
    distinct = np.unique(numbers)
    if len(keys):
        at = np.minimum(np.searchsorted(keys, distinct), len(keys) - 1)
        missing = distinct[keys[at] != distinct]
    else:
        missing = distinct
    if len(missing):
        positions = np.searchsorted(keys, missing)
        index = (packed >> _SHIFT).astype(np.int64)
        shifted = index + np.searchsorted(positions, index, side="right")
        packed = (shifted.astype(np.uint64) << _SHIFT) | (packed & _LOW)
        keys = np.insert(keys, positions, missing)
    added = np.sort((np.searchsorted(keys, numbers).astype(np.uint64) << _SHIFT) | times)
    return keys, np.insert(packed, np.searchsorted(packed, added), added)
