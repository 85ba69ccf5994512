"""A whole scrub in this process (local engine): every row lands in exactly one file."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from suppression.e164 import Normalizer
from suppression.errors import ConfigError, UnknownListError
from suppression.scrub import ScrubOptions, ScrubSummary, run_scrub
from tests.samples import scrub_with_two_lists

LISTED = {"+12125550123": "internal", "+8613800138000": "national"}
QUIET = Console(file=io.StringIO())


def data_folder(folder: Path) -> ScrubOptions:
    return scrub_with_two_lists(folder, ["+12125550123"], ["+8613800138000", "+12125550188"])


def scrub(settings: ScrubOptions, source: Path) -> ScrubSummary:
    return run_scrub(settings, source, console=QUIET, show_progress=False)


def read_rows(path: Path, encoding: str = "utf-8") -> list[list[str]]:
    with path.open(encoding=encoding, newline="") as stream:
        return list(csv.reader(stream))


def test_a_small_file_end_to_end(tmp_path: Path) -> None:
    settings = data_folder(tmp_path)
    source = tmp_path / "leads.csv"
    source.write_text(
        "id,name,phone,city\n"
        '1,"Smith, Ann",(212) 555-0123,NYC\n'  # internal, by its national form
        "2,Bo,+8613800138000,Beijing\n"  # national
        "3,Cy,202.555.0147,DC\n"  # clean
        "4,Di,12,SF\n"  # too short
        "5,Ed,+12025550147,DC\n"  # clean again: a duplicate
        "6,Fo\n"  # ragged
    )
    summary = scrub(settings, source)
    assert (summary.rows_in, summary.clean, summary.suppressed, summary.invalid) == (6, 2, 2, 2)
    assert summary.duplicates == 1
    assert summary.suppressed_per_list == {"internal": 1, "national": 1}
    assert summary.invalid_per_reason == {"TOO_SHORT": 1, "RAGGED_ROW": 1}
    assert summary.data_versions == {"local": "0-0"}
    assert (summary.column, summary.column_detection, summary.mode) == ("phone", "name", "local")
    assert (tmp_path / "leads.clean.csv").read_text() == (
        "id,name,phone,city\n3,Cy,202.555.0147,DC\n5,Ed,+12025550147,DC\n"
    )
    assert read_rows(tmp_path / "leads.suppressed.csv") == [
        ["id", "name", "phone", "city", "suppressed_by"],
        ["1", "Smith, Ann", "(212) 555-0123", "NYC", "internal"],
        ["2", "Bo", "+8613800138000", "Beijing", "national"],
    ]
    assert read_rows(tmp_path / "leads.invalid.csv") == [
        ["id", "name", "phone", "city", "invalid_reason", "line"],
        ["4", "Di", "12", "SF", "TOO_SHORT", "5"],
        ["6", "Fo", "", "", "RAGGED_ROW", "7"],
    ]
    written = json.loads((tmp_path / "leads.summary.json").read_text())
    assert written == json.loads(summary.to_json()) | {"seconds": written["seconds"]}
    assert "clean + suppressed + invalid" in (tmp_path / "leads.summary.txt").read_text()


def test_a_gbk_file_is_scrubbed_and_written_back_in_gbk(tmp_path: Path) -> None:
    settings = replace(data_folder(tmp_path), region="CN")
    source = tmp_path / "客户.csv"
    source.write_bytes("姓名,手机号\n张三,138 0013 8000\n李四,139 1234 5678\n".encode("gbk"))
    summary = scrub(settings, source)
    assert (summary.encoding, summary.column, summary.clean, summary.suppressed) == (
        "gb18030",
        "手机号",
        1,
        1,
    )
    assert (tmp_path / "客户.clean.csv").read_bytes() == "姓名,手机号\n李四,139 1234 5678\n".encode(
        "gbk"
    )
    suppressed = read_rows(tmp_path / "客户.suppressed.csv", "gbk")
    assert suppressed[1] == ["张三", "138 0013 8000", "national"]


def test_undecodable_bytes_go_to_the_invalid_file_unchanged(tmp_path: Path) -> None:
    settings = data_folder(tmp_path)
    source = tmp_path / "leads.csv"
    source.write_bytes(b"name,phone\nAnn,+12025550147\n\xff\xfeBo,+12025550148\n")
    summary = scrub(settings, source)
    assert summary.invalid_per_reason == {"UNDECODABLE": 1}
    assert (tmp_path / "leads.invalid.csv").read_bytes().splitlines()[1] == (
        b"\xff\xfeBo,+12025550148,UNDECODABLE,3"
    )


def test_option_errors_come_before_any_output(tmp_path: Path) -> None:
    settings = data_folder(tmp_path)
    source = tmp_path / "leads.csv"
    source.write_text("id,tel\n1,+12025550147\n")
    with pytest.raises(ConfigError, match="column 'mobile' is not in"):
        scrub(replace(settings, column="mobile"), source)
    with pytest.raises(UnknownListError, match="unknown list"):
        scrub(replace(settings, lists=("nope",)), source)
    with pytest.raises(ConfigError, match="unknown default region"):
        scrub(replace(settings, region="XX"), source)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["internal.txt", "leads.csv", "national.txt"]


PHONES = [
    "+12125550123",
    "(212) 555-0123",
    "+8613800138000",
    "+86 138 0013 8000",
    "+12025550147",
    "202-555-0148",
    "1-202-555-0149",
    "12",
    "n/a",
    "",
    " +12025550150 ",
]
fields = st.text(alphabet='ab ,"\n张', max_size=5)


@given(
    rows=st.lists(
        st.tuples(fields, st.sampled_from(PHONES), fields, st.booleans()), min_size=1, max_size=30
    )
)
def test_rows_in_equal_clean_plus_suppressed_plus_invalid(
    tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[str, str, str, bool]]
) -> None:
    """Every row lands in exactly one file, whole, in input order, with the right verdict."""
    folder = tmp_path_factory.mktemp("scrub")
    settings = data_folder(folder)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["name", "phone", "notes"])
    expected: list[tuple[list[str], str]] = []
    normalizer = Normalizer()
    for name, phone, notes, ragged in rows:
        row = [name, phone] if ragged else [name, phone, notes]
        writer.writerow(row)
        if ragged:
            expected.append((row, "invalid"))
            continue
        value, reason = normalizer.normalize(phone.strip(), "US")
        if reason or not phone.strip():
            expected.append((row, "invalid"))
        elif f"+{value}" in LISTED:
            expected.append((row, "suppressed"))
        else:
            expected.append((row, "clean"))
    source = folder / "leads.csv"
    source.write_text(buffer.getvalue())
    summary = scrub(settings, source)

    assert summary.rows_in == len(rows)
    assert summary.rows_in == summary.clean + summary.suppressed + summary.invalid
    for kind, extra in (("clean", 0), ("suppressed", 1), ("invalid", 2)):
        written = read_rows(folder / f"leads.{kind}.csv")[1:]
        wanted = [row for row, where in expected if where == kind]
        assert len(written) == len(wanted) == getattr(summary, kind)
        for got, want in zip(written, wanted, strict=True):
            if len(want) == 3:
                assert got[: len(got) - extra] == want
            else:  # a ragged row, padded to the header's width
                assert got[:3] == [*want, ""]
