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


DENSE_DIGITS = 7
"""Heads this long are looked up in one dense array (10 million int16, 20 MB) when a table
is large: one gather per batch instead of one ``searchsorted`` per prefix length (the
time-zone table has prefixes of 1 to 9 digits)."""
_DENSE_MIN_PREFIXES = 256
_DEEPER = 0x4000
"""Flag in the dense array: a longer prefix starts with this head; look further."""


class PrefixTable:
    """Maps digit prefixes to small integers; looks up the longest prefix of each number."""

    def __init__(self, prefixes: Mapping[str, int]) -> None:
        """Build the table.

        Args:
            prefixes: digit strings (no "+") to the value (0 to 16,383) a number starting
                with them gets.
        """
        by_length: dict[int, list[tuple[int, int]]] = {}
        for digits, value in prefixes.items():
            if not digits.isdigit():
                raise ValueError(f"prefix {digits!r} is not digits")
            if not 0 <= value < _DEEPER:
                raise ValueError(f"prefix value {value} is not 0 to {_DEEPER - 1}")
            by_length.setdefault(len(digits), []).append((int(digits), value))
        self._levels: list[tuple[int, npt.NDArray[np.uint64], npt.NDArray[np.int32]]] = []
        self._dense: npt.NDArray[np.int16] | None = None
        self._short_prefixes = {
            (length, prefix): value
            for length, pairs in by_length.items()
            if length <= DENSE_DIGITS
            for prefix, value in pairs
        }
        if len(prefixes) >= _DENSE_MIN_PREFIXES:
            self._dense = _dense_heads(by_length)
            by_length = {n: pairs for n, pairs in by_length.items() if n > DENSE_DIGITS}
        for length in sorted(by_length, reverse=True):
            pairs = sorted(by_length[length])
            keys = np.array([p for p, _ in pairs], dtype=np.uint64)
            values = np.array([v for _, v in pairs], dtype=np.int32)
            self._levels.append((length, keys, values))

    def lookup(self, numbers: npt.NDArray[np.uint64]) -> npt.NDArray[np.int32]:
        """The value of each number's longest matching prefix; -1 where none matches."""
        found = np.full(len(numbers), -1, dtype=np.int32)
        if not len(numbers):
            return found
        digits = digit_counts(numbers)
        deeper = np.ones(len(numbers), dtype=bool)
        dense_found = None
        if self._dense is not None:
            long_enough = digits >= DENSE_DIGITS
            heads = np.where(
                long_enough,
                numbers // _POW10[np.maximum(digits - DENSE_DIGITS, 0)],
                numbers * _POW10[np.maximum(DENSE_DIGITS - digits, 0)],
            )
            # A shorter number is its own head padded with zeros: only prefixes no
            # longer than itself may match it, which the padded head cannot tell.
            short = np.flatnonzero(~long_enough & (digits > 0))
            dense_found = self._dense[heads.astype(np.intp)].astype(np.int32)
            deeper = (dense_found & _DEEPER) != 0
            dense_found &= ~_DEEPER
            dense_found[dense_found == _DEEPER - 1] = -1
            if len(short):
                dense_found[short] = self._short(numbers[short], digits[short])
                deeper[short] = False
        for length, keys, values in self._levels:
            todo = np.flatnonzero(deeper & (found < 0) & (digits >= length))
            if not len(todo):
                continue
            heads = numbers[todo] // _POW10[digits[todo] - length]
            at = np.searchsorted(keys, heads)
            at[at >= len(keys)] = len(keys) - 1
            hit = keys[at] == heads
            found[todo[hit]] = values[at[hit]]
        if dense_found is not None:
            missing = found < 0
            found[missing] = dense_found[missing]
        return found

    def _short(
        self, numbers: npt.NDArray[np.uint64], digits: npt.NDArray[np.intp]
    ) -> npt.NDArray[np.int32]:
        """Numbers shorter than the dense heads: one lookup per number (rare: not E.164 lengths)."""
        assert self._dense is not None
        result = np.full(len(numbers), -1, dtype=np.int32)
        for index, (number, count) in enumerate(
            zip(numbers.tolist(), digits.tolist(), strict=True)
        ):
            for length in range(count, 0, -1):
                head = number // 10 ** (count - length)
                value = int(self._short_prefixes.get((length, head), -1))
                if value >= 0:
                    result[index] = value
                    break
        return result


def _dense_heads(by_length: Mapping[int, list[tuple[int, int]]]) -> npt.NDArray[np.int16]:
    """The value of the longest prefix of at most DENSE_DIGITS digits of every head.

    Heads with no prefix hold ``_DEEPER - 1`` (none); heads that a longer prefix
    starts with also carry the ``_DEEPER`` flag.
    """
    dense = np.full(10**DENSE_DIGITS, _DEEPER - 1, dtype=np.int16)
    for length in sorted(n for n in by_length if n <= DENSE_DIGITS):
        scale = 10 ** (DENSE_DIGITS - length)
        for prefix, value in by_length[length]:
            dense[prefix * scale : (prefix + 1) * scale] = value
    for length in (n for n in by_length if n > DENSE_DIGITS):
        for prefix, _ in by_length[length]:
            head = prefix // 10 ** (length - DENSE_DIGITS)
            dense[head] |= _DEEPER
    return dense


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
