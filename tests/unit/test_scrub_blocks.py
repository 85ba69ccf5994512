"""A lead file's bytes as blocks that end at line ends, whatever the read size."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from suppression.errors import SuppressionError
from suppression.scrub.blocks import ByteBlocks


def expected_blocks(content: bytes, size: int) -> list[bytes]:
    """The blocks as the rule says: read ``size`` bytes at a time, cut after the last line end
    known (an LF, or a CR with something after it), keep the rest for the next block."""
    blocks, held = [], b""
    for at in range(0, len(content), size):
        held += content[at : at + size]
        last_lf = held.rfind(b"\n")
        last_cr = held.rfind(b"\r", 0, len(held) - 1)
        cut = last_lf + 1 if last_lf >= 0 else last_cr + 1
        if cut:
            blocks.append(held[:cut])
            held = held[cut:]
    if held:
        blocks.append(held)
    return blocks


@settings(max_examples=300, deadline=None)
@given(
    content=st.lists(st.sampled_from([b"a", b"bc", b"\n", b"\r", b"\r\n", b",", b"xyz"])).map(
        b"".join
    ),
    size=st.integers(1, 12),
)
def test_blocks_end_at_line_ends_and_add_up_to_the_file(
    tmp_path_factory: object, content: bytes, size: int
) -> None:
    folder = tmp_path_factory.mktemp("blocks")  # type: ignore[attr-defined]
    path = Path(folder) / "leads.csv"
    path.write_bytes(content)
    reader = ByteBlocks(path, SuppressionError, size)
    blocks = []
    while (block := reader.next_block()) is not None:
        blocks.append(block)
    reader.close()
    assert b"".join(blocks) == content
    assert blocks == expected_blocks(content, size)
