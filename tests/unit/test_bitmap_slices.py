"""Deserializing a BitMap64 a slice of containers at a time gives the same bitmap."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyroaring import BitMap64

from suppression.bitmapslices import deserialize_in_slices

# Array, bitset and run containers, in several 32-bit buckets.
parts = st.one_of(
    st.tuples(st.just("range"), st.integers(0, 1 << 40), st.integers(1, 200_000)),
    st.tuples(st.just("dense"), st.integers(0, 1 << 40), st.integers(4_097, 20_000)),
    st.tuples(st.just("sparse"), st.integers(0, 1 << 40), st.integers(1, 500)),
)


def build(spec: list[tuple[str, int, int]], optimize: bool) -> BitMap64:
    bitmap = BitMap64()
    for kind, base, size in spec:
        if kind == "range":
            bitmap.add_range(base, base + size)
        elif kind == "dense":
            bitmap.update(range(base, base + 2 * size, 2))
        else:
            bitmap.update(range(base, base + 1000 * size, 1000))
    if optimize:
        bitmap.run_optimize()
    return bitmap


@given(st.lists(parts, max_size=6), st.booleans(), st.sampled_from([1, 3_000, 1 << 20]))
def test_slices_rebuild_the_same_bitmap(
    spec: list[tuple[str, int, int]], optimize: bool, slice_bytes: int
) -> None:
    bitmap = build(spec, optimize)
    data = bitmap.serialize()
    rebuilt = deserialize_in_slices(lambda offset, size: data[offset : offset + size], len(data),
                                    slice_bytes)  # fmt: skip
    assert rebuilt == bitmap
    assert len(rebuilt) == len(bitmap)


def test_a_truncated_or_padded_payload_is_refused() -> None:
    data = build([("range", 5 << 32, 100_000), ("dense", 7, 5_000)], True).serialize()
    with pytest.raises(ValueError, match="ends before|past the end"):
        deserialize_in_slices(lambda o, n: data[: len(data) - 3][o : o + n], len(data) - 3)
    padded = data + b"\0\0"
    with pytest.raises(ValueError, match="not at its length"):
        deserialize_in_slices(lambda o, n: padded[o : o + n], len(padded))
    garbage = b"\1\0\0\0\0\0\0\0" + b"\0" * 12
    with pytest.raises(ValueError, match="cookie"):
        deserialize_in_slices(lambda o, n: garbage[o : o + n], len(garbage))
