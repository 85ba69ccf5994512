"""Rows reach the clean, suppressed and invalid files as their input bytes, untouched."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st
from rich.console import Console

from suppression.scrub import ScrubOptions, ScrubSummary, run_scrub

QUIET = Console(file=io.StringIO())

# Each phone's file is known in advance: +12125550123 is listed, 12 is too short.
PHONES = {
    "+12125550123": ("suppressed", "internal"),
    "(212) 555-0123": ("suppressed", "internal"),
    "+12025550147": ("clean", ""),
    "202-555-0148": ("clean", ""),
    "12": ("invalid", "TOO_SHORT"),
    "": ("invalid", "MISSING_NUMBER"),
}


def scrub(folder: Path, source: Path, encoding: str, chunk_rows: int = 100_000) -> ScrubSummary:
    (folder / "internal.txt").write_text("+12125550123\n")
    options = ScrubOptions(
        list_files=(f"internal={folder / 'internal.txt'}",),
        region="US",
        processes=1,
        encoding=encoding,
        chunk_rows=chunk_rows,
    )
    return run_scrub(options, source, console=QUIET, show_progress=False)


def quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


plain_text = st.text(alphabet='ab 张€\x0c"', max_size=6).filter(lambda t: not t.startswith('"'))
quoted_text = st.text(alphabet='ab ,;张€"\n\r', max_size=6).map(quoted)
field = st.one_of(plain_text, quoted_text)
phone = st.sampled_from(sorted(PHONES)).flatmap(
    lambda number: st.sampled_from([number, quoted(number), f" {number} "])
)
row = st.tuples(field, phone, field, st.sampled_from(["\n", "\r\n"]))


def record(fields: tuple[str, str, str, str]) -> str:
    first, number, last, end = fields
    return f"{first},{number},{last}{end}"


def spans_lines(text: str) -> bool:
    return any(mark in text for mark in "\r\n")


def stray_quote(text: str) -> bool:
    return '"' in text and not text.startswith('"')


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030"])
@given(
    rows=st.lists(row, min_size=1, max_size=25), chunk_rows=st.sampled_from([1, 2, 3, 7, 100_000])
)
@example(rows=[('na"me', "+12025550147", "x", "\n")], chunk_rows=100_000)
@example(rows=[('na"me', "+12125550123", "5' 10\"", "\r\n")], chunk_rows=100_000)
@example(rows=[("a", "", '"two\nlines"', "\n")], chunk_rows=100_000)
@example(rows=[("a", "", '"two\nlines"', "\n"), ("b", "12", '"x\r\ny"', "\r\n")], chunk_rows=1)
def test_rows_are_copied_byte_for_byte(
    tmp_path_factory: pytest.TempPathFactory,
    encoding: str,
    rows: list[tuple[str, str, str, str]],
    chunk_rows: int,
) -> None:
    """Quotes, delimiters and line breaks inside quotes, and line ends survive unchanged.

    Chunks of a few lines put chunk boundaries everywhere, also inside quoted fields.
    """
    for first, _, last, _ in rows:
        # The documented limit: a stray quote before a quoted field that runs onto the next
        # line reads as a broken row.
        assume(not (stray_quote(first) and spans_lines(last)))
    folder = tmp_path_factory.mktemp("copy")
    header = 'name,"phone",note\r\n'
    text = header + "".join(record(fields) for fields in rows)
    source = folder / "leads.csv"
    source.write_bytes(text.encode(encoding))

    expected: dict[str, list[str]] = {"clean": [], "suppressed": [], "invalid": []}
    line = 2
    for fields in rows:
        kind, extra = PHONES[fields[1].strip().strip('"').strip()]
        body = record(fields)
        end = fields[3]
        if kind == "clean":
            expected[kind].append(body)
        elif kind == "suppressed":
            expected[kind].append(body[: -len(end)] + f",{extra}{end}")
        else:
            expected[kind].append(body[: -len(end)] + f",{extra},{line}{end}")
        line += len(io.StringIO(body, newline="").readlines())  # CSV's line ends only

    summary = scrub(folder, source, encoding, chunk_rows)
    assert summary.rows_in == len(rows) == summary.clean + summary.suppressed + summary.invalid
    assert [summary.clean, summary.suppressed, summary.invalid] == [
        len(expected["clean"]),
        len(expected["suppressed"]),
        len(expected["invalid"]),
    ]
    written = {kind: (folder / f"leads.{kind}.csv").read_bytes() for kind in expected}
    assert written["clean"] == (header + "".join(expected["clean"])).encode(encoding)
    assert written["suppressed"] == (
        'name,"phone",note,suppressed_by\r\n' + "".join(expected["suppressed"])
    ).encode(encoding)
    assert written["invalid"] == (
        'name,"phone",note,invalid_reason,line\r\n' + "".join(expected["invalid"])
    ).encode(encoding)
