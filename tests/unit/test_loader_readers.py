"""Registry, CSV and plain list readers, and registry change files."""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import numpy as np
import pytest

from loader.changefile import read_change_file
from loader.readers import detect_format, parse_ten_digit, read_numbers
from suppression.e164 import NumberBlock
from suppression.errors import ConfigError, NumberFileError


def test_ten_digit_and_area_code_forms() -> None:
    result = parse_ten_digit(b"2125550123\n212,5550124\n3125550100")
    assert result.numbers.tolist() == [12125550123, 12125550124, 13125550100]
    crlf = parse_ten_digit(b"2125550123\r\n2125550123\r\n")
    assert crlf.numbers.tolist() == [12125550123]  # distinct


def test_ten_digit_fast_path_handles_a_large_file() -> None:
    values = np.random.default_rng(1).integers(2_000_000_000, 9_999_999_999, 200_000)
    data = ("\n".join(map(str, values)) + "\n").encode()
    result = parse_ten_digit(data)
    assert result.numbers.tolist() == sorted(set((values + 10_000_000_000).tolist()))


def test_ten_digit_bad_lines_are_refused_or_skipped_without_echoing_them() -> None:
    data = b"2125550123\n1234\n0125550123\n\n# comment\n3125550100\n"
    with pytest.raises(
        NumberFileError, match=r"2 invalid line\(s\) in the input: line 2 \(.*\), line 3 \("
    ) as caught:
        parse_ten_digit(data)
    assert "1234" not in str(caught.value)
    skipped = parse_ten_digit(data, skip_invalid=True)
    assert skipped.numbers.tolist() == [12125550123, 13125550100]
    assert [line for line, _ in skipped.bad_lines] == [2, 3]


def test_compressed_files(tmp_path: Path) -> None:
    gz = tmp_path / "dnc.txt.gz"
    gz.write_bytes(gzip.compress(b"2125550123\n"))
    archive = tmp_path / "dnc.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("b.txt", "3125550100\n")
        out.writestr("a.txt", "212,5550124")
    assert read_numbers(gz).numbers.tolist() == [12125550123]
    assert read_numbers(archive).numbers.tolist() == [12125550124, 13125550100]


def test_csv_with_a_named_column(tmp_path: Path) -> None:
    path = tmp_path / "crm.csv"
    path.write_text('id,phone,name\n1,+86 138 0013 8000,"Li, Wei"\n2,(212) 555-0123,Ann\n3,,x\n')
    result = read_numbers(path, column="phone", region="US")
    assert result.numbers.tolist() == [12125550123, 8613800138000]
    with pytest.raises(ConfigError, match="no column 'tel'"):
        read_numbers(path, column="tel")
    with pytest.raises(ConfigError, match="--column"):
        read_numbers(path)


def test_plain_lists_with_blocks_and_formats(tmp_path: Path) -> None:
    path = tmp_path / "optouts.txt"
    path.write_text("# company opt-outs\n+8613800138000\n0086 138 0013 8001\n+1900xxxxxxx\n")
    result = read_numbers(path, region="CN")
    assert detect_format(path, path.read_bytes()) == "plain"
    assert result.numbers.tolist() == [8613800138000, 8613800138001]
    assert result.blocks == [NumberBlock(19000000000, 19009999999)]
    bad = tmp_path / "bad.txt"
    bad.write_text("+8613800138000\nnot a number\n")
    with pytest.raises(NumberFileError, match="line 2"):
        read_numbers(bad)
    assert len(read_numbers(bad, skip_invalid=True).numbers) == 1


def test_format_detection(tmp_path: Path) -> None:
    assert detect_format(Path("x.csv.gz"), b"") == "csv"
    assert detect_format(Path("x.txt"), b"2125550123\n212,5550124\n") == "ten_digit"
    assert detect_format(Path("x.txt"), b"+12125550123\n") == "plain"
    with pytest.raises(ConfigError, match="input-format"):
        read_numbers(tmp_path / "x", "xml")


def test_change_files(tmp_path: Path) -> None:
    first = tmp_path / "changes-1.txt"
    first.write_text("action,number\nA,2125550123\nD,212,5550124\n3125550100,A\n")
    second = tmp_path / "changes-2.txt"
    second.write_text("# later file wins\nd,2125550123\nADD,+8613800138000\n")
    changes = read_change_file([first, second])
    assert changes.additions.tolist() == [13125550100, 8613800138000]
    assert changes.deletions.tolist() == [12125550123, 12125550124]
    bad = tmp_path / "bad.txt"
    bad.write_text("A,2125550123\nX,2125550124\nA,12\n")
    with pytest.raises(
        NumberFileError,
        match=r"2 invalid line\(s\) in \S*bad.txt: line 2 \(not 'A\|D,number'\), line 3",
    ):
        read_change_file([bad])
    assert read_change_file([bad], skip_invalid=True).skipped_lines == 2


def _registry_lines(count: int) -> list[bytes]:
    values = np.arange(count, dtype=np.uint64) + np.uint64(2_125_550_000)
    return [str(v).encode() for v in values.tolist()]


def test_ten_digit_progress_moves_within_one_file_and_counts_numbers() -> None:
    # More than one parse piece (CHUNK_BYTES), so a single large file reports as it goes.
    lines = _registry_lines(1_000_000)
    data = b"\n".join(lines) + b"\n"
    reports: list[tuple[int, int]] = []
    result = parse_ten_digit(data, progress=lambda size, numbers: reports.append((size, numbers)))
    assert len(reports) >= 2, "progress is reported per piece, not once per file"
    assert sum(size for size, _ in reports) == len(data)
    assert sum(numbers for _, numbers in reports) == 1_000_000 == len(result.numbers)


def test_ten_digit_bad_line_numbers_are_exact_across_pieces() -> None:
    lines = _registry_lines(1_000_000)
    lines[899_999] = b"12345"  # line 900,000: in the second piece
    data = b"\n".join(lines) + b"\n"
    with pytest.raises(
        NumberFileError,
        match=r"1 invalid line\(s\) in the input: line 900,000 \(not a ten-digit number\)",
    ):
        parse_ten_digit(data)
    skipped = parse_ten_digit(data, skip_invalid=True)
    assert skipped.bad_lines == [(900_000, "not a ten-digit number")]
    assert len(skipped.numbers) == 999_999


@pytest.mark.parametrize(
    ("name", "content", "fmt"),
    [
        ("dnc.txt.gz", gzip.compress(b"2125550123\n2125550124\n" * 3), "auto"),
        ("plain.txt", "\n".join(f"+86138{n:08d}" for n in range(40_000)).encode(), "plain"),
        ("list.csv", b"phone\n" + b"\n".join(b"+12125%06d" % n for n in range(20_000)), "csv"),
    ],
)
def test_read_numbers_reports_stored_bytes_and_numbers(
    tmp_path: Path, name: str, content: bytes, fmt: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    reports: list[tuple[int, int]] = []
    result = read_numbers(
        path,
        fmt,
        column="phone",
        progress=lambda size, numbers: reports.append((size, numbers)),
    )
    assert all(size >= 0 for size, _ in reports)
    assert sum(size for size, _ in reports) == path.stat().st_size, "bytes add up to the file"
    counted = sum(numbers for _, numbers in reports)
    assert counted >= len(result.numbers) > 0
    if fmt != "auto":
        assert len(reports) >= 2, "per-line formats report during the file"
