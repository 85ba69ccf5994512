"""Scrub options: --no-header, --compress, --dedupe, and chunks that change nothing."""

from __future__ import annotations

import gzip
import io
import json
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from suppression.errors import ConfigError
from suppression.scrub import ScrubOptions, ScrubSummary, run_scrub

QUIET = Console(file=io.StringIO())

LEADS = (
    "id,name,phone\n"
    "1,Ann,+12125550123\n"  # listed
    "2,Bo,(202) 555-0147\n"
    "3,Chen,12\n"  # too short
    "4,Dara,202-555-0147\n"  # the same number as row 2
    "5,Eli,+1 212 555 0123\n"  # the same number as row 1
    "6,Fang,\n"
    "7,Gus,+12025550148\n"
)


def options(folder: Path, **changes: object) -> ScrubOptions:
    (folder / "internal.txt").write_text("+12125550123\n")
    base = ScrubOptions(
        list_files=(f"internal={folder / 'internal.txt'}",), region="US", processes=1
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def scrub(settings: ScrubOptions, source: Path) -> ScrubSummary:
    return run_scrub(settings, source, console=QUIET, show_progress=False)


def outputs(folder: Path, suffix: str = "") -> dict[str, bytes]:
    found = {}
    for kind in ("clean", "suppressed", "invalid"):
        data = (folder / f"leads.{kind}.csv{suffix}").read_bytes()
        found[kind] = gzip.decompress(data) if suffix else data
    return found


def test_a_file_without_header_is_scrubbed_by_column_position(tmp_path: Path) -> None:
    source = tmp_path / "leads.csv"
    source.write_text(LEADS.split("\n", 1)[1])
    summary = scrub(options(tmp_path, no_header=True, column="3"), source)
    assert (summary.rows_in, summary.clean, summary.suppressed, summary.invalid) == (7, 3, 2, 2)
    written = outputs(tmp_path)
    assert written["clean"] == b"2,Bo,(202) 555-0147\n4,Dara,202-555-0147\n7,Gus,+12025550148\n"
    assert written["suppressed"] == (
        b"1,Ann,+12125550123,internal\n5,Eli,+1 212 555 0123,internal\n"
    )
    assert written["invalid"] == b"3,Chen,12,TOO_SHORT,3\n6,Fang,,MISSING_NUMBER,6\n"
    assert summary.column == "3"


def test_without_header_the_column_is_found_by_content(tmp_path: Path) -> None:
    source = tmp_path / "leads.csv"
    source.write_text(LEADS.split("\n", 1)[1])
    summary = scrub(options(tmp_path, no_header=True), source)
    assert summary.column == "3" and summary.column_detection == "content"
    assert summary.rows_in == 7


def test_without_header_a_column_name_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "leads.csv"
    source.write_text(LEADS.split("\n", 1)[1])
    with pytest.raises(ConfigError, match="takes a 1-based column position"):
        scrub(options(tmp_path, no_header=True, column="phone"), source)


def test_compressed_outputs_hold_the_same_bytes(tmp_path: Path) -> None:
    source = tmp_path / "leads.csv"
    source.write_text(LEADS)
    (tmp_path / "plain").mkdir()
    (tmp_path / "packed").mkdir()
    scrub(options(tmp_path, output_dir=tmp_path / "plain"), source)
    # Chunks of two lines: the files are several gzip members, one per chunk.
    summary = scrub(
        options(tmp_path, output_dir=tmp_path / "packed", compress=True, chunk_rows=2), source
    )
    assert outputs(tmp_path / "packed", ".gz") == outputs(tmp_path / "plain")
    assert summary.outputs["clean"].endswith("leads.clean.csv.gz")
    assert json.loads((tmp_path / "packed" / "leads.summary.json").read_text())["rows_in"] == 7


def test_dedupe_keeps_the_first_row_of_each_number(tmp_path: Path) -> None:
    source = tmp_path / "leads.csv"
    source.write_text(LEADS)
    summary = scrub(options(tmp_path, dedupe=True, chunk_rows=3), source)
    written = outputs(tmp_path)
    assert written["clean"] == b"id,name,phone\n2,Bo,(202) 555-0147\n7,Gus,+12025550148\n"
    assert written["suppressed"] == b"id,name,phone,suppressed_by\n1,Ann,+12125550123,internal\n"
    assert written["invalid"].count(b"\n") == 3  # invalid rows have no number: all kept
    assert summary.duplicates == summary.duplicates_dropped == 2
    assert summary.rows_in == 7 == summary.clean + summary.suppressed + summary.invalid + 2
    assert summary.distinct_numbers == 3


def test_without_dedupe_duplicates_are_counted_across_chunks(tmp_path: Path) -> None:
    source = tmp_path / "leads.csv"
    source.write_text(LEADS)
    for chunk_rows in (1, 2, 100):
        summary = scrub(options(tmp_path, chunk_rows=chunk_rows), source)
        assert (summary.duplicates, summary.distinct_numbers) == (2, 3)
        assert summary.duplicates_dropped == 0


def test_an_ascii_incompatible_encoding_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "leads.csv"
    source.write_bytes(LEADS.encode("utf-16"))
    with pytest.raises(ConfigError, match="not ASCII-compatible"):
        scrub(options(tmp_path, encoding="utf-16"), source)
