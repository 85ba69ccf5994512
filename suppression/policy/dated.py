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

A list of the replica's data that carries days (``ListView.days``) is a
``DatedList`` over the list's own bitmap: numbers added without a day hold
:data:`NO_DAY`, so the days cost 2 bytes a number and no second bitmap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
from pyroaring import BitMap64

from suppression import membership

Numbers = Sequence[int] | npt.NDArray[np.uint64]
Days = Sequence[int] | npt.NDArray[np.integer]

__all__ = ["MAX_DAY", "NO_DAY", "DatedList", "carry_days"]

MAX_DAY = 65_534
"""Days since 1970-01-01 fit in uint16 up to the year 2149 (2149-06-05)."""
NO_DAY = 65_535
"""The day of a number on the list that has none recorded (added without a day)."""


class DatedList:
    """Numbers with one day each. Never mutate ``bitmap`` or ``days``."""

    __slots__ = ("_ranges", "bitmap", "days")

    def __init__(self, bitmap: BitMap64 | None = None, days: npt.NDArray[np.uint16] | None = None):
        """Wrap a bitmap and its days in sorted order (both taken over, not copied)."""
        self.bitmap = bitmap if bitmap is not None else BitMap64()
        self.days = days if days is not None else np.zeros(0, dtype=np.uint16)
        if len(self.days) != len(self.bitmap):
            raise ValueError(f"{len(self.bitmap):,} numbers but {len(self.days):,} days")
        self._ranges: dict[tuple[int, int, bool], BitMap64] = {}

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
        """Each number's day; -1 for numbers not on the list (and for 0) or without a day."""
        result = np.full(len(values), -1, dtype=np.int32)
        if not len(values) or not self.bitmap:
            return result
        # Membership for the batch, as ListView.lookup; rank only for the few found.
        found = np.flatnonzero(membership.members(self.bitmap, values))
        if len(found):
            ranks = np.fromiter(
                map(self.bitmap.rank, values[found].tolist()), dtype=np.int64, count=len(found)
            )
            days = self.days[ranks - 1].astype(np.int32)
            result[found] = np.where(days == NO_DAY, -1, days)
        return result

    def on_days(self, first: int, last: int, *, undated: bool = False) -> BitMap64:
        """The numbers whose day is in ``[first, last]``, as a bitmap; cached per range.

        ``undated`` adds the numbers without a day (:data:`NO_DAY`), which a
        day range never holds.

        An exemption asks for the same range (the days it holds on today) for
        every number of every batch of a day, so one bitmap built once a day
        answers it with one ``in`` per number, where a day per number costs a
        ``rank`` (which walks the bitmap's containers: microseconds).
        """
        key = (first, last, undated)
        cached = self._ranges.get(key)
        if cached is None:
            inside = (self.days >= first) & (self.days <= min(last, MAX_DAY))
            if undated:
                inside |= self.days == NO_DAY
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
            raise ValueError(f"days must be 0 to {MAX_DAY} (1970-01-01 to 2149-06-05)")
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


def carry_days(
    bitmap: BitMap64,
    previous: DatedList | None,
    dropped: BitMap64,
    updates: Sequence[tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint16]]],
    way: str = "",
) -> DatedList | None:
    """A list's days after a batch changed its numbers; None when no number has a day.

    Args:
        bitmap: the list's numbers after the batch (the new view's bitmap, shared, not copied).
        previous: the days before the batch, if the list had any.
        dropped: numbers the batch removed: they lose their old day even if
            the batch adds them back (without a day).
        updates: (numbers, days) the batch's dated adds set, in order; the
            last day given for a number wins. Numbers removed later in the
            batch must already be filtered out.
        way: "" chooses by cost; "rebuild", "arrays" or "ranks" forces one (tests).

    A list that had days moves its days array in place (``np.delete`` and
    ``np.insert`` at the changed numbers' positions: a copy of 2 bytes a number
    plus one ``rank`` per changed number, or one ``to_array`` and binary
    searches, whichever costs less); a list's first days are built from its numbers.
    """
    if (previous is None or not len(previous)) and not updates:
        return None
    if previous is not None and len(previous):
        gone = previous.bitmap - bitmap
        new = bitmap - previous.bitmap
        if way != "rebuild":
            return _carry_in_place(bitmap, previous, gone, new, dropped, updates, way)
    numbers = np.array(bitmap.to_array(), dtype=np.uint64)
    days = np.full(len(numbers), NO_DAY, dtype=np.uint16)
    if previous is not None and len(previous):
        old = np.array(previous.bitmap.to_array(), dtype=np.uint64)
        keep = previous.days != NO_DAY
        lost = previous.bitmap & dropped
        if lost:
            keep &= ~np.isin(old, np.array(lost.to_array(), dtype=np.uint64))
        _place(numbers, days, old[keep], previous.days[keep])
    for values, values_days in updates:
        # Last occurrence wins: unique over the reversed input keeps it.
        _, first_reversed = np.unique(values[::-1], return_index=True)
        last = len(values) - 1 - first_reversed
        _place(numbers, days, values[last], values_days[last])
    if not len(days) or bool((days == NO_DAY).all()):
        return None
    return DatedList(bitmap, days)


def _carry_in_place(
    bitmap: BitMap64,
    previous: DatedList,
    gone: BitMap64,
    new: BitMap64,
    dropped: BitMap64,
    updates: Sequence[tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint16]]],
    way: str,
) -> DatedList | None:
    """:func:`carry_days` for a batch that changed few numbers: positions of the changes only.

    The positions come from ``rank`` when few numbers changed for the list's
    containers (a call walks them: 15-20 µs on registry-shaped lists of 1 to 10
    million numbers, milliseconds on 10 million spread ones), else from one
    ``to_array`` of the old list and binary searches (tens of ns a number).
    """
    readded = previous.bitmap & dropped & bitmap
    touched = [
        np.array(gone.to_array(), dtype=np.uint64),
        np.array(new.to_array(), dtype=np.uint64),
        np.array(readded.to_array(), dtype=np.uint64),
    ]
    last_updates = []
    for values, values_days in updates:
        _, first_reversed = np.unique(values[::-1], return_index=True)
        last = len(values) - 1 - first_reversed
        last_updates.append((values[last], values_days[last]))
    changes = sum(len(t) for t in touched) + sum(len(v) for v, _ in last_updates)
    containers = int(previous.bitmap.get_statistics()["n_containers"])
    rank_ns = _RANK_NS + _RANK_NS_PER_CONTAINER * containers
    if way == "arrays" or (way != "ranks" and changes * rank_ns > len(previous) * _TO_ARRAY_NS):
        old = np.array(previous.bitmap.to_array(), dtype=np.uint64)
        removed = np.searchsorted(old, touched[0])
        numbers = np.delete(old, removed)
        days = np.delete(previous.days, removed)
        at = np.searchsorted(numbers, touched[1])
        days = np.insert(days, at, NO_DAY).astype(np.uint16)
        numbers = np.insert(numbers, at, touched[1])
        _place(numbers, days, touched[2], np.full(len(touched[2]), NO_DAY, dtype=np.uint16))
        for values, values_days in last_updates:
            _place(numbers, days, values, values_days)
    else:
        days = previous.days
        if len(touched[0]):
            days = np.delete(days, _ranks(previous.bitmap.rank, touched[0]) - 1)
        # The k-th new number (0-based) lands at its final rank; before it, k were inserted.
        final = _ranks(bitmap.rank, touched[1]) - 1
        if len(final):
            days = np.insert(days, final - np.arange(len(final)), NO_DAY)
        if days is previous.days:
            days = days.copy()  # never write into the previous view's days
        days[_ranks(bitmap.rank, touched[2]) - 1] = NO_DAY
        for values, values_days in last_updates:
            # Most dated adds are new numbers, whose ranks are known already.
            at = np.minimum(np.searchsorted(touched[1], values), max(len(final) - 1, 0))
            known = (touched[1][at] == values) if len(final) else np.zeros(len(values), bool)
            days[final[at[known]]] = values_days[known]
            rest, rest_days = values[~known], values_days[~known]
            present = membership.members(bitmap, rest)
            days[_ranks(bitmap.rank, rest[present]) - 1] = rest_days[present]
    if not len(days) or bool((days == NO_DAY).all()):
        return None
    return DatedList(bitmap, days)


_RANK_NS = 2_000
_RANK_NS_PER_CONTAINER = 30
"""``BitMap64.rank`` walks the containers before the number: about 30 ns each here
(15-20 µs on a registry-shaped 1 to 10 million, 3-5 ms on 10 million spread numbers)."""
_TO_ARRAY_NS = 40
"""About what ``to_array``, the binary searches and the copies cost per number, in nanoseconds."""


def _ranks(rank: Callable[[int], int], values: npt.NDArray[np.uint64]) -> npt.NDArray[np.int64]:
    """``rank`` of each number (1-based positions in a bitmap), one C call each."""
    as_ints = values.tolist()
    return np.fromiter(map(rank, as_ints), dtype=np.int64, count=len(as_ints))


def _place(
    numbers: npt.NDArray[np.uint64],
    days: npt.NDArray[np.uint16],
    values: npt.NDArray[np.uint64],
    values_days: npt.NDArray[np.uint16],
) -> None:
    """Set ``days`` at the ranks of ``values`` in the sorted ``numbers`` (absent ones skipped)."""
    if not len(values) or not len(numbers):
        return
    at = np.searchsorted(numbers, values)
    inside = at < len(numbers)
    present = inside.copy()
    present[inside] = numbers[at[inside]] == values[inside]
    days[at[present]] = values_days[present]
