"""One reader of plain, .gz and .zip input, and one message for lines that are not numbers."""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import pytest

from loader.changefile import read_change_file
from loader.readers import read_numbers
from suppression.compressed import read_bytes
from suppression.errors import ConfigError, NumberFileError
from suppression.numberfile import invalid_lines_message, read_number_file
from suppression.scrub.reading import InputFileError, open_lead_file


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_plain_gzip_and_zip_in_any_case(tmp_path: Path) -> None:
    plain = tmp_path / "a.txt"
    plain.write_bytes(b"1\n2\n")
    upper = tmp_path / "a.TXT.GZ"
    upper.write_bytes(gzip.compress(b"1\n2\n"))
    zipped = _zip(tmp_path / "a.Zip", {"b.txt": b"3\r\n", "a.txt": b"1\n2"})
    assert read_bytes(plain) == read_bytes(upper) == b"1\n2\n"
    assert read_bytes(zipped) == b"1\n2\n3", "members in name order, one line break between"


def test_unreadable_files_name_the_fault_in_the_callers_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match="no such file"):
        read_bytes(tmp_path / "missing.txt")
    with pytest.raises(InputFileError, match="it is a directory"):
        read_bytes(tmp_path, InputFileError)
    with pytest.raises(NumberFileError, match="cannot read .*broken.zip.*valid file"):
        read_bytes(broken, NumberFileError)


def test_every_reader_takes_every_compression(tmp_path: Path) -> None:
    """The loader, serve --list and scrub read through the same function."""
    numbers = _zip(tmp_path / "optouts.txt.zip", {"x.txt": b"+8613800138000\n"})
    assert read_number_file(numbers).numbers.tolist() == [8613800138000]
    assert read_numbers(numbers, "plain").numbers.tolist() == [8613800138000]
    changes = tmp_path / "changes.txt.GZ"
    changes.write_bytes(gzip.compress(b"A,2125550123\n"))
    assert read_change_file([changes]).additions.tolist() == [12125550123]
    leads = tmp_path / "leads.CSV.GZ"
    leads.write_bytes(gzip.compress(b"name,phone\nli,+8613800138000\n"))
    assert open_lead_file(leads).header == ["name", "phone"]
    # Scrub names its outputs after the input, so an archive is refused, not misnamed.
    zipped = _zip(tmp_path / "leads.csv.zip", {"leads.csv": b"name,phone\n"})
    with pytest.raises(InputFileError, match="unzip it first"):
        open_lead_file(zipped)


def test_one_message_for_lines_that_are_not_numbers(tmp_path: Path) -> None:
    bad = [(n, "too_short") for n in (2, 5, 9, 1_204, 1_500_000, 1_500_001, 1_500_002)]
    assert invalid_lines_message("a.txt", bad[:2]) == (
        "2 invalid line(s) in a.txt: line 2 (too_short), line 5 (too_short)"
    )
    assert invalid_lines_message("a.txt", bad).endswith(
        "line 1,204 (too_short), line 1,500,000 (too_short) and 2 more"
    )
    assert invalid_lines_message("the command line", bad[:1], item="argument") == (
        "1 invalid argument(s) in the command line: argument 2 (too_short)"
    )
    # Each reader says it the same way, naming its file.
    plain = tmp_path / "plain.txt"
    plain.write_text("+8613800138000\nnot a number\n")
    changes = tmp_path / "changes.txt"
    changes.write_text("A,2125550123\nX,2125550124\n")
    ten = tmp_path / "dnc.txt"
    ten.write_text("2125550123\n2125550124\n12\n")
    for read, path, reason in (
        (read_number_file, plain, "unparseable"),
        (lambda p: read_numbers(p, "plain"), plain, "unparseable"),
        (lambda p: read_change_file([p]), changes, "not 'A|D,number'"),
        (lambda p: read_numbers(p, "ten_digit"), ten, "not a ten-digit number"),
    ):
        with pytest.raises(NumberFileError) as caught:
            read(path)
        line = 3 if path is ten else 2
        assert str(caught.value).startswith(f"1 invalid line(s) in {path}: line {line} ({reason})")
