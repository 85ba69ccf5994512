"""The compiled batch-membership loop against pyroaring's own answers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyroaring import BitMap64

from suppression import membership
from tests.samples import lookup_way

_WIDE = st.one_of(
    st.integers(min_value=0, max_value=2**64 - 1),
    st.integers(min_value=10_000_000_000, max_value=10_000_200_000),
    st.integers(min_value=0, max_value=70_000),
)


def test_the_compiled_loop_is_built_and_bound() -> None:
    """`pip install` builds it here (CI has a compiler); a silent fallback would cost 2-3x."""
    assert membership.COMPILED


@settings(max_examples=200, deadline=None)
@given(
    singles=st.lists(_WIDE, max_size=200),
    ranges=st.lists(
        st.tuples(st.integers(min_value=0, max_value=2**64 - 70_000), st.integers(1, 70_000)),
        max_size=3,
    ),
    asked=st.lists(_WIDE, max_size=300),
    bit=st.integers(min_value=0, max_value=63),
    optimize=st.booleans(),
)
def test_marks_exactly_the_members_and_keeps_other_bits(
    singles: list[int], ranges: list[tuple[int, int]], asked: list[int], bit: int, optimize: bool
) -> None:
    bitmap = BitMap64(singles)
    for start, length in ranges:
        bitmap.add_range(start, start + length)  # run or bitset containers
    if optimize:
        bitmap.run_optimize()
    probes = asked + singles[:50] + [start + length - 1 for start, length in ranges]
    values = np.array(probes, dtype=np.uint64)
    others = np.uint64(0xFFFF_FFFF_FFFF_FFFF) ^ (np.uint64(1) << np.uint64(bit))
    for way in ("compiled", "per-number"):
        with lookup_way(way):
            masks = np.full(len(values), others, dtype=np.uint64)
            membership.mark_members(bitmap, values, masks, bit)
            assert (masks == others | (np.uint64(1) << np.uint64(bit))).tolist() == [
                probe in bitmap for probe in probes
            ], way
            assert membership.members(bitmap, values).tolist() == [
                probe in bitmap for probe in probes
            ]


def test_the_compiled_loop_counts_what_it_found() -> None:
    bitmap = BitMap64([5, 2**40])
    values = np.array([5, 6, 2**40, 5], dtype=np.uint64)
    masks = np.zeros(4, dtype=np.uint64)
    assert membership._compiled is not None
    assert membership._compiled.mark_members(bitmap.raw_pointer, values, masks, 3) == 3
    assert masks.tolist() == [8, 0, 8, 8]


@pytest.mark.parametrize(
    ("values", "masks", "bit", "error", "message"),
    [
        (np.zeros(3, np.int64), np.zeros(3, np.uint64), 0, TypeError, "unsigned 64-bit"),
        (np.zeros(3, np.uint32), np.zeros(3, np.uint64), 0, TypeError, "unsigned 64-bit"),
        (np.zeros(3, np.float64), np.zeros(3, np.uint64), 0, TypeError, "unsigned 64-bit"),
        (np.zeros(3, ">u8"), np.zeros(3, np.uint64), 0, TypeError, "unsigned 64-bit"),
        (np.zeros(3, np.uint64), np.zeros(2, np.uint64), 0, ValueError, "3 values but 2 masks"),
        (np.zeros(3, np.uint64), np.zeros(3, np.uint64), 64, ValueError, "0 to 63"),
        (np.zeros(3, np.uint64), np.zeros(3, np.uint64), -1, ValueError, "0 to 63"),
        (np.zeros(6, np.uint64)[::2], np.zeros(3, np.uint64), 0, ValueError, "C-contiguous"),
    ],
)
def test_the_compiled_loop_refuses_what_it_cannot_read(
    values: np.ndarray, masks: np.ndarray, bit: int, error: type[Exception], message: str
) -> None:
    assert membership._compiled is not None
    bitmap = BitMap64([0])
    with pytest.raises(error, match=message):
        membership._compiled.mark_members(bitmap.raw_pointer, values, masks, bit)
    assert masks.tolist() == [0] * len(masks)  # nothing written before refusing


def test_the_compiled_loop_never_writes_into_read_only_masks() -> None:
    assert membership._compiled is not None
    masks = np.zeros(2, np.uint64)
    masks.flags.writeable = False
    with pytest.raises((BufferError, ValueError), match="writable|read-only"):
        membership._compiled.mark_members(
            BitMap64([1]).raw_pointer, np.ones(2, np.uint64), masks, 0
        )
    assert masks.tolist() == [0, 0]


def test_the_compiled_loop_refuses_a_null_bitmap() -> None:
    assert membership._compiled is not None
    with pytest.raises(ValueError, match="address is 0"):
        membership._compiled.mark_members(0, np.ones(1, np.uint64), np.zeros(1, np.uint64), 0)


class _Impostor:
    """Answers ``in`` like one bitmap while pointing the loop at another."""

    def __init__(self, answers: BitMap64, pointed: BitMap64 | None) -> None:
        self._answers = answers
        self._pointed = pointed

    def __contains__(self, value: int) -> bool:
        return value in self._answers

    def to_array(self) -> object:
        return self._answers.to_array()

    @property
    def raw_pointer(self) -> int:
        if self._pointed is None:
            raise AttributeError("'BitMap64' object has no attribute 'raw_pointer'")
        return int(self._pointed.raw_pointer)


def test_binding_falls_back_when_the_function_is_not_found(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from suppression import _membership

    monkeypatch.setattr(_membership, "bind", lambda path: False)
    assert membership._bind() is None
    assert "roaring64_bitmap_contains not found" in caplog.text


@pytest.mark.parametrize("pointed", [BitMap64(), None], ids=["disagrees", "no-raw-pointer"])
def test_binding_falls_back_when_the_loop_cannot_be_trusted(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, pointed: BitMap64 | None
) -> None:
    members, probes = membership._probe_set()
    monkeypatch.setattr(membership, "_probe_set", lambda: (_Impostor(members, pointed), probes))
    assert membership._bind() is None
    assert "using pyroaring's calls" in caplog.text
    monkeypatch.undo()
    assert membership._bind() is not None  # the real probe binds again
