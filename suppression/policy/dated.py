"""A dated list: a day per number (consent, disconnect, opt-out arrival), close to a plain list.

Layout: the numbers as a ``BitMap64`` (exactly a plain list) plus one
``uint16`` day per number in the bitmap's sorted order, so a number's day is
``days[rank(number) - 1]``. That costs the plain list plus 2 bytes a number.
A bit-sliced index (one bitmap per bit of the day) was measured against it
(``benchmarks/bench_policy.py``): with days spread over two and a half years
it took about 4.5 times the dated list, since every bit-slice holds about half
of the numbers, and a lookup would cost one bitmap call per bit.

``rank`` on a ``BitMap64`` walks containers (microseconds a call), so the hot
path never asks a day per number: an exemption asks :meth:`DatedList.on_days`
for the numbers recorded in the range of days it holds on today, a bitmap
built once and cached, and then one ``in`` per number.

Immutable: :meth:`with_days` and :meth:`without` return a new list, as the
copy-on-write views of :mod:`suppression.lists` do.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from pyroaring import BitMap64

Numbers = Sequence[int] | npt.NDArray[np.uint64]
Days = Sequence[int] | npt.NDArray[np.integer]

__all__ = ["MAX_DAY", "DatedList"]

MAX_DAY = 65_535
"""Days since 1970-01-01 fit in uint16 up to the year 2149."""


class DatedList:
    """Numbers with one day each. Never mutate ``bitmap`` or ``days``."""

    __slots__ = ("_ranges", "bitmap", "days")

    def __init__(self, bitmap: BitMap64 | None = None, days: npt.NDArray[np.uint16] | None = None):
        """Wrap a bitmap and its days in sorted order (both taken over, not copied)."""
        self.bitmap = bitmap if bitmap is not None else BitMap64()
        self.days = days if days is not None else np.zeros(0, dtype=np.uint16)
        if len(self.days) != len(self.bitmap):
            raise ValueError(f"{len(self.bitmap):,} numbers but {len(self.days):,} days")
        self._ranges: dict[tuple[int, int], BitMap64] = {}

    @classmethod
    def build(cls, numbers: Numbers, days: Days) -> DatedList:
        """A list from parallel numbers and days; a number given twice keeps its last day."""
        return cls().with_days(numbers, days)

    def __len__(self) -> int:
        return len(self.bitmap)

    def nbytes(self) -> int:
        """Bytes in memory: the bitmap's containers plus the days."""
        stats = self.bitmap.get_statistics()
        containers = (
            stats["n_bytes_array_containers"]
            + stats["n_bytes_run_containers"]
            + stats["n_bytes_bitset_containers"]
        )
        return int(containers) + int(self.days.nbytes)

    def lookup(self, values: npt.NDArray[np.uint64]) -> npt.NDArray[np.int32]:
        """Each number's day; -1 for numbers not on the list (and for 0)."""
        result = np.full(len(values), -1, dtype=np.int32)
        if not len(values) or not self.bitmap:
            return result
        as_ints = values.tolist()
        # One C call per number, as ListView.lookup; rank only for the few found.
        found = np.flatnonzero(
            np.fromiter(map(self.bitmap.__contains__, as_ints), dtype=bool, count=len(as_ints))
        )
        if len(found):
            ranks = np.fromiter(
                map(self.bitmap.rank, values[found].tolist()), dtype=np.int64, count=len(found)
            )
            result[found] = self.days[ranks - 1]
        return result

    def on_days(self, first: int, last: int) -> BitMap64:
        """The numbers whose day is in ``[first, last]``, as a bitmap; cached per range.

        An exemption asks for the same range (the days it holds on today) for
        every number of every batch of a day, so one bitmap built once a day
        answers it with one ``in`` per number, where a day per number costs a
        ``rank`` (which walks the bitmap's containers: microseconds).
        """
        key = (first, last)
        cached = self._ranges.get(key)
        if cached is None:
            inside = (self.days >= first) & (self.days <= last)
            if inside.all():
                cached = self.bitmap
            else:
                numbers = np.array(self.bitmap.to_array(), dtype=np.uint64)
                cached = BitMap64(numbers[inside].tolist())
            if len(self._ranges) >= 4:
                self._ranges.clear()
            self._ranges[key] = cached
        return cached

    def with_days(self, numbers: Numbers, days: Days) -> DatedList:
        """A new list where ``numbers`` carry ``days`` (added, or their day replaced)."""
        new_numbers = np.asarray(numbers, dtype=np.uint64)
        new_days = np.asarray(days, dtype=np.int64)
        if len(new_numbers) != len(new_days):
            raise ValueError("numbers and days must be parallel")
        if len(new_days) and (new_days.min() < 0 or new_days.max() > MAX_DAY):
            raise ValueError(f"days must be 0 to {MAX_DAY} (1970-01-01 to 2149-06-06)")
        old_numbers = np.array(self.bitmap.to_array(), dtype=np.uint64)
        all_numbers = np.concatenate([old_numbers, new_numbers])
        all_days = np.concatenate([self.days.astype(np.int64), new_days])
        # Stable sort keeps input order among equal numbers: the last one wins.
        order = np.argsort(all_numbers, kind="stable")
        sorted_numbers = all_numbers[order]
        last = np.ones(len(order), dtype=bool)
        last[:-1] = sorted_numbers[1:] != sorted_numbers[:-1]
        kept = sorted_numbers[last]
        bitmap = BitMap64(kept.tolist())
        return DatedList(bitmap, all_days[order][last].astype(np.uint16))

    def without(self, numbers: Numbers) -> DatedList:
        """A new list without ``numbers``."""
        gone = np.asarray(numbers, dtype=np.uint64)
        current = np.array(self.bitmap.to_array(), dtype=np.uint64)
        keep = ~np.isin(current, gone)
        return DatedList(BitMap64(current[keep].tolist()), self.days[keep].copy())
