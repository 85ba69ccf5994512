"""What the server, the client and the scrub must agree on about the wire: sizes, packed arrays.

The packed fields of ``CheckRequest`` and ``CheckResponse`` carry numbers,
verdicts and bitmasks as plain little-endian arrays in ``bytes`` fields, so
neither side builds or reads a Python object per number. These are the
server's numpy halves; the client reads them with the standard library only
(``suppression.client.packing``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from suppression.errors import InvalidRequestError

__all__ = [
    "E164_PACKED_WIDTH",
    "grpc_message_limit",
    "mask_width",
    "one_byte_varints",
    "pack_answer",
    "pack_one",
    "unpack_e164",
    "unpack_one",
]

_BYTES_PER_NUMBER_ON_WIRE = 64
"""Generous: a text number plus its share of every parallel response array."""

E164_PACKED_WIDTH = 8
"""Bytes per number of ``CheckRequest.e164_packed``."""

_MASK_DTYPES: dict[int, np.dtype[np.unsignedinteger[Any]]] = {
    1: np.dtype("<u1"),
    2: np.dtype("<u2"),
    4: np.dtype("<u4"),
    8: np.dtype("<u8"),
}


def grpc_message_limit(max_batch: int) -> int:
    """A message size limit that fits the largest batch, request or response."""
    return max_batch * _BYTES_PER_NUMBER_ON_WIRE + (1 << 20)


def unpack_e164(data: bytes) -> npt.NDArray[np.uint64]:
    """The numbers of ``e164_packed``, as a new native array.

    Raises:
        InvalidRequestError: the length is not a multiple of 8 bytes.
    """
    if len(data) % E164_PACKED_WIDTH:
        raise InvalidRequestError(
            f"e164_packed holds {len(data):,} bytes, not a multiple of {E164_PACKED_WIDTH}: "
            "each number is 8 bytes, unsigned little-endian"
        )
    return np.frombuffer(data, dtype="<u8").astype(np.uint64)


def pack_one(verdict: int, mask: int, list_count: int) -> tuple[bytes, bytes, int]:
    """:func:`pack_answer` for a single number, without numpy."""
    width = mask_width(list_count)
    return bytes((verdict,)), mask.to_bytes(width, "little"), width


def one_byte_varints(
    field_number: int, values: npt.NDArray[np.unsignedinteger[Any]]
) -> bytes | None:
    """A packed repeated varint field, encoded, if every value is below 128; else None.

    Each such value is one byte on the wire. Appending 10,000 ints to a repeated
    field with ``extend`` costs about 220 µs (protobuf checks each one); parsing
    the same field from these bytes with ``MergeFromString`` about 30 µs.
    """
    if len(values) and int(values.max()) >= 0x80:
        return None
    return (
        _varint((field_number << 3) | _LENGTH_DELIMITED)
        + _varint(len(values))
        + (values.astype(np.uint8).tobytes())
    )


_LENGTH_DELIMITED = 2
"""The wire type of packed repeated fields."""


def _varint(value: int) -> bytes:
    """``value`` (at least 0) as a protobuf base-128 varint."""
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def unpack_one(data: bytes) -> int:
    """The number of an ``e164_packed`` holding exactly one, without numpy."""
    return int.from_bytes(data, "little")


def mask_width(list_count: int) -> int:
    """Bytes per bitmask of ``matched_packed``: the fewest of 1, 2, 4 and 8 holding the bits."""
    for width in (1, 2, 4):
        if list_count <= 8 * width:
            return width
    return 8


def pack_answer(
    verdicts: npt.NDArray[np.uint8] | list[int],
    masks: npt.NDArray[np.uint64] | list[int],
    list_count: int,
) -> tuple[bytes, bytes, int]:
    """``verdicts_packed``, ``matched_packed`` and ``matched_width`` for one answer.

    Args:
        verdicts: one Verdict value per number.
        masks: one bitmask per number, no bit at or above ``list_count``.
        list_count: the length of the answer's ``list_names``.
    """
    width = mask_width(list_count)
    return (
        np.asarray(verdicts, dtype=np.uint8).tobytes(),
        np.asarray(masks, dtype=_MASK_DTYPES[width]).tobytes(),
        width,
    )
