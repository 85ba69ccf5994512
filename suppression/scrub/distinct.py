"""Distinct numbers: those of a block, sorted, and the set a scrub has seen so far.

numpy 2.4's ``np.unique`` runs about 20x slower here than a sort and a
comparison of neighbours (it hashes), so the scrub uses these instead.

The set of numbers seen so far counts duplicates across chunks, as sorted arrays.

Each block brings tens of thousands of distinct numbers, and the scrub asks
which of them are new. A ``BitMap64`` answers one number per Python call
(about 0.3 µs each here, as much again to add it), which made this the
parent process's largest cost. Here the numbers are kept as sorted
``uint32`` arrays, one per value of their top 32 bits (a handful for real
phone numbers), and a block is checked with one ``searchsorted`` per array:
about 20 ns a number. Memory stays near the bitmap's, 4 bytes a number
(twice that while two arrays merge).

New numbers go to a small ``recent`` array, merged into the ``main`` one when
it reaches an eighth of it, so each number is copied a few times in all
rather than once per block.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["SeenNumbers", "distinct_with_inverse", "sorted_distinct"]

_LOW = np.uint64(0xFFFFFFFF)
_HIGH_SHIFT = np.uint64(32)
_MERGE_SHARE = 8
"""``recent`` is merged into ``main`` once it holds this fraction of it."""
_MERGE_MIN = 1 << 16


def sorted_distinct(values: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """The distinct values, sorted: ``np.unique(values)``."""
    ordered = np.sort(values)
    if ordered.size < 2:
        return ordered
    keep = np.empty(ordered.size, dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


def distinct_with_inverse(
    values: npt.NDArray[np.uint64],
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.intp]]:
    """The distinct values, sorted, and each value's index among them.

    ``np.unique(values, return_inverse=True)``: ``distinct[inverse] == values``.
    """
    order = np.argsort(values)
    ordered = values[order]
    starts = np.ones(ordered.size, dtype=bool)
    np.not_equal(ordered[1:], ordered[:-1], out=starts[1:])
    inverse = np.empty(ordered.size, dtype=np.intp)
    inverse[order] = np.cumsum(starts) - 1
    return ordered[starts], inverse


def _contains(
    members: npt.NDArray[np.uint32], keys: npt.NDArray[np.uint32]
) -> npt.NDArray[np.bool_]:
    """Which ``keys`` are in the sorted array ``members``."""
    if members.size == 0:
        return np.zeros(keys.size, dtype=bool)
    at = np.searchsorted(members, keys)
    np.minimum(at, members.size - 1, out=at)
    found: npt.NDArray[np.bool_] = members[at] == keys
    return found


def _merge(first: npt.NDArray[np.uint32], second: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint32]:
    """Two sorted arrays with no value in common, as one sorted array."""
    if first.size == 0:
        return second
    # A stable sort (timsort) finds the two sorted runs and merges them: 2.4x np.insert's speed.
    merged: npt.NDArray[np.uint32] = np.sort(np.concatenate([first, second]), kind="stable")
    return merged


class _Bucket:
    """The low 32 bits of the numbers that share their top 32 bits."""

    __slots__ = ("main", "merge_min", "recent")

    def __init__(self, merge_min: int) -> None:
        self.main = np.zeros(0, dtype=np.uint32)
        self.recent = np.zeros(0, dtype=np.uint32)
        self.merge_min = merge_min

    def add(self, keys: npt.NDArray[np.uint32]) -> npt.NDArray[np.bool_]:
        """Add sorted distinct ``keys``; which of them were new."""
        fresh = ~_contains(self.main, keys)
        if self.recent.size:
            fresh &= ~_contains(self.recent, keys)
        new = keys[fresh]
        if new.size:
            self.recent = _merge(self.recent, new)
            if self.recent.size * _MERGE_SHARE >= max(self.main.size, self.merge_min):
                self.main = _merge(self.main, self.recent)
                self.recent = np.zeros(0, dtype=np.uint32)
        return fresh

    def __len__(self) -> int:
        return int(self.main.size + self.recent.size)


class SeenNumbers:
    """A set of E.164 numbers that grows a block at a time and says which were new."""

    def __init__(
        self, numbers: npt.NDArray[np.uint64] | None = None, merge_min: int = _MERGE_MIN
    ) -> None:
        """Start with ``numbers`` (any order, repeats allowed), or empty.

        Args:
            numbers: the numbers seen already.
            merge_min: ``recent`` is never merged into ``main`` below this size
                (tests set it low to exercise the merge).
        """
        self._buckets: dict[int, _Bucket] = {}
        self._merge_min = merge_min
        if numbers is not None and numbers.size:
            self.add(sorted_distinct(numbers))

    def add(self, values: npt.NDArray[np.uint64]) -> npt.NDArray[np.bool_]:
        """Add sorted distinct ``values``.

        Returns:
            Which of them were not seen before.
        """
        if values.size == 0:
            return np.zeros(0, dtype=bool)
        high = values >> _HIGH_SHIFT
        cuts = np.flatnonzero(high[1:] != high[:-1]) + 1
        bounds = [0, *cuts.tolist(), values.size]
        fresh = np.zeros(values.size, dtype=bool)
        for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
            bucket = self._buckets.get(int(high[start]))
            if bucket is None:
                bucket = self._buckets[int(high[start])] = _Bucket(self._merge_min)
            keys = (values[start:stop] & _LOW).astype(np.uint32)
            fresh[start:stop] = bucket.add(keys)
        return fresh

    def __len__(self) -> int:
        return sum(map(len, self._buckets.values()))
