"""Longest-prefix lookup of E.164 integers in bulk, and the time-zone table built on it.

phonenumbers maps number prefixes to time zones (``phonenumbers.tzdata``:
3,240 prefixes of 1 to 9 digits, 315 distinct zone sets). Calling
``time_zones_for_number`` per number costs a parse (about 11-17 µs); here the
table is built once into one sorted numpy array per prefix length, and a
batch is looked up with one ``searchsorted`` per length, longest first.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

__all__ = ["PrefixTable", "ZoneTable", "zone_table"]

_POW10 = np.array([10**i for i in range(20)], dtype=np.uint64)


def digit_counts(values: npt.NDArray[np.uint64]) -> npt.NDArray[np.intp]:
    """How many decimal digits each value has (0 for 0)."""
    return np.searchsorted(_POW10, values, side="right").astype(np.intp)


class PrefixTable:
    """Maps digit prefixes to small integers; looks up the longest prefix of each number."""

    def __init__(self, prefixes: Mapping[str, int]) -> None:
        """Build the table.

        Args:
            prefixes: digit strings (no "+") to the value a number starting with them gets.
        """
        by_length: dict[int, list[tuple[int, int]]] = {}
        for digits, value in prefixes.items():
            if not digits.isdigit():
                raise ValueError(f"prefix {digits!r} is not digits")
            by_length.setdefault(len(digits), []).append((int(digits), value))
        self._levels: list[tuple[int, npt.NDArray[np.uint64], npt.NDArray[np.int32]]] = []
        for length in sorted(by_length, reverse=True):
            pairs = sorted(by_length[length])
            keys = np.array([p for p, _ in pairs], dtype=np.uint64)
            values = np.array([v for _, v in pairs], dtype=np.int32)
            self._levels.append((length, keys, values))

    def lookup(self, numbers: npt.NDArray[np.uint64]) -> npt.NDArray[np.int32]:
        """The value of each number's longest matching prefix; -1 where none matches."""
        found = np.full(len(numbers), -1, dtype=np.int32)
        if not len(numbers) or not self._levels:
            return found
        digits = digit_counts(numbers)
        for length, keys, values in self._levels:
            todo = np.flatnonzero((found < 0) & (digits >= length))
            if not len(todo):
                continue
            heads = numbers[todo] // _POW10[digits[todo] - length]
            at = np.searchsorted(keys, heads)
            at[at >= len(keys)] = len(keys) - 1
            hit = keys[at] == heads
            found[todo[hit]] = values[at[hit]]
        return found


class ZoneTable:
    """The time zones a number may be in, as ids of zone sets, for a whole batch at once."""

    def __init__(self, data: Mapping[str, tuple[str, ...]]) -> None:
        """Build from a prefix -> zones mapping (phonenumbers' ``TIMEZONE_DATA``)."""
        ids: dict[tuple[str, ...], int] = {}
        prefixes: dict[str, int] = {}
        for prefix, zones in data.items():
            key = tuple(sorted(zones))
            prefixes[prefix] = ids.setdefault(key, len(ids))
        self.zone_sets: tuple[tuple[str, ...], ...] = tuple(ids)
        """Zone set id -> the zones (sorted)."""
        self._table = PrefixTable(prefixes)

    def lookup(self, numbers: npt.NDArray[np.uint64]) -> npt.NDArray[np.int32]:
        """A zone set id per number; -1 where phonenumbers knows no zone."""
        return self._table.lookup(numbers)


@functools.cache
def zone_table() -> ZoneTable:
    """The table from the installed phonenumbers, built once per process (about 10 ms)."""
    from phonenumbers import tzdata

    return ZoneTable(tzdata.TIMEZONE_DATA)
