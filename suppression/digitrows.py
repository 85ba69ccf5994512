"""Numbers from bytes with numpy, many texts at once: the two steps every such reader takes.

The normalizer's batch reader (:mod:`suppression.canonical_texts`) and the scrub's
phone reader (:mod:`suppression.scrub.phonearrays`) both take a fixed-width window
of bytes from each text, turn it so that character ``j`` of every text is row
``j`` (each step is then one pass over contiguous memory), and read the digits
of each column as one number.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["digits_value", "windows"]

_SPACE = 32


def windows(
    arr: npt.NDArray[np.uint8], starts: npt.NDArray[np.int64], width: int
) -> npt.NDArray[np.uint8]:
    """The ``width`` bytes from each of ``starts`` (a copy), spaces past the end of ``arr``.

    Read from a strided view of ``arr`` itself; only windows that run past its end
    come from a padded copy of its last bytes.
    """
    size = len(arr)
    if size < width:
        padded = np.concatenate([arr, np.full(width, _SPACE, dtype=np.uint8)])
        short: npt.NDArray[np.uint8] = sliding_window_view(padded, width)[starts]
        return short
    last = size - width
    found: npt.NDArray[np.uint8] = sliding_window_view(arr, width)[np.minimum(starts, last)]
    late = np.flatnonzero(starts > last)
    if late.size:
        tail = np.concatenate([arr[last:], np.full(width, _SPACE, dtype=np.uint8)])
        found[late] = sliding_window_view(tail, width)[starts[late] - last]
    return found


def digits_value(
    digit_values: npt.NDArray[np.uint8], taken: npt.NDArray[np.bool_]
) -> npt.NDArray[np.uint64]:
    """The number each column's taken digits spell, read down its rows (Horner).

    Args:
        digit_values: character ``j`` of every text in row ``j``, less ``ord("0")``.
        taken: which characters are digits of the number; the others are skipped.

    Returns:
        Per column: times 10 plus the digit at each taken character, unchanged at
        the others; in place, two passes a row. Up to 19 digits fit.
    """
    taken_bytes = taken.view(np.uint8)
    factors = taken_bytes * np.uint8(9) + np.uint8(1)
    addends = digit_values * taken_bytes
    value = np.zeros(digit_values.shape[1], dtype=np.uint64)
    for row in range(len(digit_values)):
        np.multiply(value, factors[row], out=value)
        np.add(value, addends[row], out=value)
    return value
