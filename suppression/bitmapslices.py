"""Deserialize a serialized BitMap64 a slice of containers at a time, to load in little memory.

``BitMap64.deserialize`` needs the whole serialized bitmap in memory: for the
full US registry that is 370 MB of bytes beside the 320 MB bitmap it builds,
so loading peaked at 1.8 times the memory the data needs once loaded. This
module reads the portable format (RoaringFormatSpec, 64-bit extension: a
bucket count, then per bucket its high 32 bits and a portable 32-bit bitmap)
through a ``read(offset, size)`` callable, cuts each 32-bit bitmap into
slices of about ``slice_bytes`` of containers, rewrites a valid portable
header for each slice, deserializes it and ORs it into the result. Peak
memory is the bitmap plus about two slices. Pure: no I/O of its own, no gRPC, no Redis.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import numpy as np
from pyroaring import BitMap64

__all__ = ["SLICE_BYTES", "deserialize_in_slices"]

SLICE_BYTES = 1 << 20
"""Container bytes per slice. Small on purpose: glibc serves freed buffers of several MiB
again from its heap and keeps them, so 8 MiB slices left 20 MB more resident after loading
50 million numbers than 1 MiB slices, which load as fast (benchmarks/RESULTS.md)."""

Reader = Callable[[int, int], bytes]
"""``read(offset, size)``: exactly ``size`` bytes from ``offset`` of the payload."""

_COOKIE_RUNS = 12347
_COOKIE_NO_RUNS = 12346
_NO_OFFSET_THRESHOLD = 4
_BITSET_BYTES = 8192
_ARRAY_MAX = 4096


def deserialize_in_slices(read: Reader, length: int, slice_bytes: int = SLICE_BYTES) -> BitMap64:
    """The BitMap64 serialized in ``length`` bytes that ``read`` returns.

    Raises:
        ValueError: the bytes are not a portable BitMap64 of exactly ``length`` bytes.
    """
    if length < 8:
        raise ValueError(f"a serialized BitMap64 takes at least 8 bytes, not {length}")
    (buckets,) = struct.unpack("<Q", _exact(read, 0, 8))
    result = BitMap64()
    position = 8
    for _ in range(buckets):
        (high,) = struct.unpack("<I", _exact(read, position, 4))
        position += 4
        position = _bucket(read, position, length, high, result, slice_bytes)
    if position != length:
        raise ValueError(f"the bitmap ends at byte {position:,}, not at its length {length:,}")
    return result


def _exact(read: Reader, offset: int, size: int) -> bytes:
    data = read(offset, size)
    if len(data) != size:
        raise ValueError(f"the payload ends before byte {offset + size:,}")
    return data


def _bucket(
    read: Reader, start: int, length: int, high: int, result: BitMap64, slice_bytes: int
) -> int:
    """OR one bucket (a portable 32-bit bitmap at ``start``) into ``result``; returns its end."""
    (cookie,) = struct.unpack("<I", _exact(read, start, 4))
    if cookie & 0xFFFF == _COOKIE_RUNS:
        size = (cookie >> 16) + 1
        flags_at = start + 4
        run_flags = np.unpackbits(
            np.frombuffer(_exact(read, flags_at, (size + 7) // 8), dtype=np.uint8),
            bitorder="little",
        )[:size].astype(bool)
        keys_at = flags_at + (size + 7) // 8
    elif cookie == _COOKIE_NO_RUNS:
        (size,) = struct.unpack("<I", _exact(read, start + 4, 4))
        run_flags = np.zeros(size, dtype=bool)
        keys_at = start + 8
    else:
        raise ValueError(f"bucket {high} has no portable roaring cookie ({cookie:#x})")
    pairs = np.frombuffer(_exact(read, keys_at, 4 * size), dtype="<u2").reshape(size, 2)
    cards = pairs[:, 1].astype(np.int64) + 1
    has_runs = cookie & 0xFFFF == _COOKIE_RUNS
    stored_offsets = not has_runs or size >= _NO_OFFSET_THRESHOLD
    header_end = keys_at + 4 * size
    if stored_offsets:
        offsets = np.frombuffer(_exact(read, header_end, 4 * size), dtype="<u4").astype(np.int64)
        starts = start + offsets
        header_end += 4 * size
    else:
        starts = np.zeros(size, dtype=np.int64)
    sizes = np.where(cards > _ARRAY_MAX, _BITSET_BYTES, 2 * cards)
    position = header_end
    for i in range(size):  # run containers' sizes are in their own first two bytes
        if stored_offsets:
            position = int(starts[i])
        else:
            starts[i] = position
        if run_flags[i]:
            (runs,) = struct.unpack("<H", _exact(read, position, 2))
            sizes[i] = 2 + 4 * runs
        position += int(sizes[i])
    end = int(starts[-1] + sizes[-1]) if size else header_end
    if end > length:
        raise ValueError(f"bucket {high} runs past the end of the payload ({end:,} > {length:,})")
    first = 0
    while first < size:
        # At least one container per slice; then as many as fit in slice_bytes.
        budget = np.cumsum(sizes[first:]) <= max(slice_bytes, int(sizes[first]))
        last = first + max(1, int(np.count_nonzero(budget)))
        blob = _slice(read, high, has_runs, pairs[first:last], run_flags[first:last],
                      int(starts[first]), int(starts[last - 1] + sizes[last - 1]),
                      sizes[first:last])  # fmt: skip
        result |= BitMap64.deserialize(blob)
        first = last
    return end


def _slice(
    read: Reader,
    high: int,
    has_runs: bool,
    pairs: np.ndarray,
    run_flags: np.ndarray,
    data_start: int,
    data_end: int,
    sizes: np.ndarray,
) -> bytes:
    """A one-bucket serialized BitMap64 holding these containers of bucket ``high``."""
    count = len(pairs)
    if has_runs:
        flags = np.packbits(run_flags, bitorder="little").tobytes()
        head = struct.pack("<I", _COOKIE_RUNS | ((count - 1) << 16)) + flags
    else:
        head = struct.pack("<II", _COOKIE_NO_RUNS, count)
    head += pairs.astype("<u2").tobytes()
    if not has_runs or count >= _NO_OFFSET_THRESHOLD:
        first = len(head) + 4 * count
        offsets = first + np.concatenate(([0], np.cumsum(sizes[:-1])))
        head += offsets.astype("<u4").tobytes()
    return struct.pack("<QI", 1, high) + head + _exact(read, data_start, data_end - data_start)
