"""The packed fields of a Check answer, read with the standard library only.

A server asked for ``packed_answer`` sends one byte per verdict and one
little-endian integer of ``matched_width`` bytes per bitmask, in two ``bytes``
fields. The verdicts are used as the ``bytes`` they came in (indexing bytes
gives ints) and the masks are copied into an :class:`array.array`: about 1 ns
a number here, against about 60 ns for reading the repeated fields one Python
int at a time. The client sends its numbers packed too (:func:`pack_e164`), to
servers that answered packed before.
"""

from __future__ import annotations

import array
import sys
from collections.abc import Sequence

__all__ = ["pack_e164", "unpack_masks"]

_TYPECODES = {
    width: code
    for code in ("B", "H", "I", "L", "Q")
    for width in (array.array(code).itemsize,)
    if width in (1, 2, 4, 8)
}
"""The array type code of each width, as this platform sizes them."""


def pack_e164(values: Sequence[int]) -> bytes:
    """``e164_packed``: each number as 8 bytes, unsigned little-endian.

    Raises:
        ValueError: a number is negative or does not fit 64 bits.
    """
    try:
        packed = array.array(_TYPECODES[8], values)
    except OverflowError:
        raise ValueError("E.164 integers are unsigned 64-bit values") from None
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tobytes()


def unpack_masks(data: bytes, width: int, count: int) -> array.array[int]:
    """``matched_packed`` as one bitmask per number, in native byte order.

    Raises:
        ValueError: an unknown width, or not ``count`` masks.
    """
    code = _TYPECODES.get(width)
    if code is None or len(data) != width * count:
        raise ValueError(
            f"matched_packed holds {len(data):,} bytes, not {count:,} masks of "
            f"matched_width {width} bytes"
        )
    masks = array.array(code, data)
    if sys.byteorder == "big" and width > 1:
        masks.byteswap()
    return masks
