"""A ten-digit registry file read piece by piece gives what reading it whole gives."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

import loader.readers as readers
from loader.readers import read_numbers, ten_digit_stream
from suppression.errors import NumberFileError


def registry_lines(count: int) -> bytes:
    rng = np.random.default_rng(3)
    values = rng.integers(2_000_000_000, 9_999_999_999, size=count, dtype=np.uint64)
    lines = [f"{v}" if i % 3 else f"{v // 10_000_000},{v % 10_000_000:07d}" for i, v in
             enumerate(values.tolist())]  # fmt: skip
    return ("\r\n".join(lines[:50]) + "\n" + "\n".join(lines[50:])).encode()


@pytest.mark.parametrize("gzipped", [False, True])
def test_pieces_hold_every_number_of_the_whole_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gzipped: bool
) -> None:
    monkeypatch.setattr(readers, "CHUNK_BYTES", 1000)  # many pieces, lines cut across them
    data = registry_lines(2_000)
    path = tmp_path / ("dnc.txt.gz" if gzipped else "dnc.txt")
    path.write_bytes(gzip.compress(data) if gzipped else data)
    reported: list[tuple[int, int]] = []
    stream = ten_digit_stream(path, "auto", progress=lambda b, n: reported.append((b, n)))
    assert stream is not None
    pieces = list(stream.pieces())
    assert len(pieces) > 10
    streamed = np.unique(np.concatenate(pieces))
    assert np.array_equal(streamed, read_numbers(path).numbers)
    assert sum(b for b, _ in reported) == path.stat().st_size, "progress adds up to the file"
    assert sum(n for _, n in reported) == 2_000


def test_bad_lines_are_reported_with_their_line_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(readers, "CHUNK_BYTES", 64)
    path = tmp_path / "dnc.txt"
    path.write_bytes(b"2125550123\n" * 20 + b"not a number\n" + b"2125550124\n" * 20)
    stream = ten_digit_stream(path, "ten_digit")
    assert stream is not None
    with pytest.raises(NumberFileError, match="line 21"):
        list(stream.pieces())
    skipping = ten_digit_stream(path, "ten_digit", skip_invalid=True)
    assert skipping is not None
    assert len(np.concatenate(list(skipping.pieces()))) == 40
    assert [n for n, _ in skipping.bad_lines] == [21]


def test_other_formats_are_read_whole(tmp_path: Path) -> None:
    csv = tmp_path / "leads.csv"
    csv.write_text("phone\n+12125550123\n")
    assert ten_digit_stream(csv, "auto") is None
    plain = tmp_path / "list.txt"
    plain.write_text("+8613800138000\n")
    assert ten_digit_stream(plain, "auto") is None
    assert ten_digit_stream(plain, "plain") is None
