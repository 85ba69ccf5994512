"""Blocks and outputs through the shared slots: same bytes as in one process, and the fallbacks."""

from __future__ import annotations

from pyroaring import BitMap64

from suppression.lists import SuppressionLists, Version
from suppression.scrub.fastpath import RawBlock
from suppression.scrub.local import LocalEngine
from suppression.scrub.outputs import OutputKind
from suppression.scrub.pool import POOL_THRESHOLD
from suppression.scrub.slots import SharedSlots
from suppression.scrub.writing import WriteLayout

LAYOUT = ("utf-8", ",", 2, 1, "US")
WRITING = WriteLayout("utf-8", ",", "\n", 2)


def lists() -> SuppressionLists:
    return SuppressionLists(
        {"internal": BitMap64([12125550123, 12025550147])}, [], Version(1_700_000_000_000, 5)
    )


def block(rows: int, first_line: int = 2) -> RawBlock:
    phones = ["+12125550123", "(202) 555-0147", "junk", "+12025550148", "+1 212 555 01"]
    lines = [f"{n},{phones[n % len(phones)]}\n" for n in range(rows)]
    return RawBlock("".join(lines).encode(), first_line)


def outputs(engine: LocalEngine, raw: RawBlock, slot: bool = False) -> dict[OutputKind, bytes]:
    """The block's outputs; ``slot``: check that they came through a shared slot."""
    future = engine.scan(raw, LAYOUT, WRITING)
    assert (future in engine._slot_of) == slot
    scanned = engine.scanned(future)
    assembled = scanned[5]
    assert assembled is not None and not assembled.in_slot
    copied = {kind: bytes(data) for kind, data in assembled.data.items()}
    engine.release(future)
    return copied


def test_slots_keep_bytes_apart_and_refuse_what_does_not_fit() -> None:
    slots = SharedSlots(2, 8, 16)
    first, second = slots.acquire(), slots.acquire()
    assert first is not None and second is not None and first != second
    assert slots.acquire() is None
    assert slots.put_input(first, b"123456789") is None
    into_first = slots.put_input(first, b"abcdefgh")
    into_second = slots.put_input(second, b"ABCDEFGH")
    out = slots.put_output(first, 4, b"0123456789")
    assert into_first is not None and into_second is not None and out is not None
    assert slots.put_output(first, 8, b"0123456789") is None
    assert slots.read(into_first) == b"abcdefgh"
    assert slots.read(into_second) == b"ABCDEFGH"
    assert bytes(slots.view(out)) == b"0123456789"
    slots.release(second)
    assert slots.acquire() == second
    slots.close()


def test_outputs_through_the_slots_equal_those_made_in_one_process() -> None:
    """Blocks in the slots, one too big for a slot, and more blocks than slots at once."""
    view = lists().view
    alone = LocalEngine(view, "US", [], processes=1)
    pooled = LocalEngine(view, "US", [], processes=2, expected_rows=POOL_THRESHOLD, slot_bytes=4096)
    try:
        raws = [block(150, 2), block(7, 152)]
        big = block(500)
        assert len(raws[0].data) < 4096 < len(big.data)  # sent through the pipe
        for raw in raws:
            assert outputs(pooled, raw, slot=True) == outputs(alone, raw)
        assert outputs(pooled, big) == outputs(alone, big)
        # Every slot taken and still unreleased: the last blocks go through the pipe.
        assert pooled._slots is not None
        count = len(pooled._slots._free)
        many = [block(50 + n, 2) for n in range(count + 2)]
        futures = [pooled.scan(raw, LAYOUT, WRITING) for raw in many]
        assert len(pooled._slot_of) == count
        for raw, future in zip(many, futures, strict=True):
            scanned = pooled.scanned(future)[5]
            assert scanned is not None
            got = {kind: bytes(data) for kind, data in scanned.data.items()}
            pooled.release(future)
            assert got == outputs(alone, raw)
        assert not pooled._slot_of
        assert outputs(pooled, big)[OutputKind.CLEAN].count(b"\n") == 100
    finally:
        pooled.close()
        alone.close()
