"""Reading lead files: encodings, BOM, quotes, ragged and broken lines, line numbers."""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from suppression.errors import ConfigError
from suppression.scrub.encoding import decode, detect_encoding
from suppression.scrub.reading import (
    Chunk,
    InputFileError,
    LeadFile,
    RowProblem,
    open_lead_file,
    parse_delimiter,
)


def read_all(lead: LeadFile, column: int, size: int = 50_000) -> Chunk:
    total = Chunk()
    for chunk in lead.chunks(column, size):
        # Copied rows carry no fields (their lines are copied); parse the lines to compare.
        total.rows += [
            row
            if row is not None
            else next(
                csv.reader(
                    chunk.text[
                        line - chunk.first_line : line - chunk.first_line + chunk.spans.get(at, 1)
                    ],
                    delimiter=lead.delimiter,
                )
            )
            for at, (row, line) in enumerate(zip(chunk.rows, chunk.lines, strict=True))
        ]
        total.lines += chunk.lines
        total.phones += chunk.phones
        total.problems += chunk.problems
        total.blank_lines += chunk.blank_lines
        total.text += chunk.text
    return total


def lead_from(tmp_path: Path, data: bytes, name: str = "leads.csv", **options: str) -> LeadFile:
    path = tmp_path / name
    path.write_bytes(data)
    return open_lead_file(path, **options)


# -- encodings ---------------------------------------------------------------

GBK_TEXT = "姓名,手机号,城市\n张三,13800138000,北京\n李四,139 1234 5678,上海\n"


def test_utf8_without_bom(tmp_path: Path) -> None:
    lead = lead_from(tmp_path, GBK_TEXT.encode("utf-8"))
    assert lead.encoding == "utf-8"
    assert lead.header == ["姓名", "手机号", "城市"]
    assert read_all(lead, 1).rows[0] == ["张三", "13800138000", "北京"]


def test_a_utf8_bom_is_not_part_of_the_first_column(tmp_path: Path) -> None:
    lead = lead_from(tmp_path, b"\xef\xbb\xbf" + b"phone,name\n+12125550123,Ann\n")
    assert lead.encoding == "utf-8-sig"
    assert lead.header == ["phone", "name"]


def test_a_bom_is_dropped_even_when_utf8_is_given(tmp_path: Path) -> None:
    lead = lead_from(tmp_path, b"\xef\xbb\xbfphone\n+12125550123\n", encoding="utf-8")
    assert lead.header == ["phone"]


@pytest.mark.parametrize("codec", ["gbk", "gb18030"])
def test_gbk_lead_lists_are_detected(tmp_path: Path, codec: str) -> None:
    lead = lead_from(tmp_path, GBK_TEXT.encode(codec))
    assert lead.encoding == "gb18030"
    assert lead.header == ["姓名", "手机号", "城市"]
    chunk = read_all(lead, 1)
    assert [row[0] for row in chunk.rows] == ["张三", "李四"]
    assert chunk.problems == [0, 0]


def test_an_encoding_can_be_given(tmp_path: Path) -> None:
    lead = lead_from(tmp_path, GBK_TEXT.encode("gbk"), encoding="GBK")
    assert lead.encoding == "gbk"
    assert read_all(lead, 1).rows[1][2] == "上海"


def test_an_unknown_encoding_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown --encoding 'klingon'"):
        lead_from(tmp_path, b"phone\n1\n", encoding="klingon")


def test_a_few_bad_bytes_keep_a_utf8_file_utf8_and_only_their_rows_are_invalid(
    tmp_path: Path,
) -> None:
    good = "名字,phone\n" + "".join(f"张{index},+1212555{index:04d}\n" for index in range(20))
    data = good.encode("utf-8") + b"\xff\xfe broken,+12125550199\n" + "王,+12125550100\n".encode()
    lead = lead_from(tmp_path, data)
    assert lead.encoding == "utf-8"
    chunk = read_all(lead, 1)
    assert len(chunk.rows) == 22
    assert chunk.problems[20] == RowProblem.UNDECODABLE
    assert chunk.lines[20] == 22
    assert chunk.problems[:20] == [0] * 20 and chunk.problems[21] == 0


def test_detection_prefers_utf8_when_most_lines_are_utf8() -> None:
    lines = ["张三,1\n".encode()] * 10 + [b"\xb0\xa1,2\n"]
    assert detect_encoding(b"".join(lines)) == "utf-8"
    assert detect_encoding("张三,1\n".encode("gbk") * 10) == "gb18030"


def test_undecodable_bytes_survive_a_round_trip() -> None:
    decoded = decode(b"ok,\xff\n", "utf-8")
    assert decoded.undecodable
    assert decoded.text.encode("utf-8", "surrogateescape") == b"ok,\xff\n"


# -- dialect -----------------------------------------------------------------


def test_tsv_is_detected_from_the_extension(tmp_path: Path) -> None:
    lead = lead_from(tmp_path, b"phone,x\tname\n+12125550123,1\tAnn\n", name="leads.tsv")
    assert lead.delimiter == "\t"
    assert lead.header == ["phone,x", "name"]


def test_tsv_is_detected_from_the_header(tmp_path: Path) -> None:
    lead = lead_from(tmp_path, b"id\tphone\tname\n1\t+12125550123\tAnn\n")
    assert lead.delimiter == "\t"


def test_semicolons_are_detected_and_a_delimiter_can_be_given(tmp_path: Path) -> None:
    assert lead_from(tmp_path, b"id;phone\n1;2\n").delimiter == ";"
    assert lead_from(tmp_path, b"id;phone\n1;2\n", delimiter=",").header == ["id;phone"]
    assert parse_delimiter("tab") == "\t"
    with pytest.raises(InputFileError, match="one character"):
        parse_delimiter(",,")


def test_crlf_files_keep_crlf(tmp_path: Path) -> None:
    lead = lead_from(tmp_path, b"id,phone\r\n1,+12125550123\r\n2,+12125550124")
    assert lead.line_terminator == "\r\n"
    chunk = read_all(lead, 1)
    assert chunk.phones == ["+12125550123", "+12125550124"]
    assert chunk.text[-1] == "2,+12125550124\r\n"  # the missing last line end was added


def test_gzip_input(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv.gz"
    path.write_bytes(gzip.compress(b"phone\n+12125550123\n"))
    assert read_all(open_lead_file(path), 0).phones == ["+12125550123"]


# -- rows --------------------------------------------------------------------


def test_quoted_fields_with_delimiters_quotes_and_newlines(tmp_path: Path) -> None:
    data = (
        b"id,name,phone,notes\n"
        b'1,"Smith, Ann",+12125550123,"said ""call later"""\n'
        b'2,Bo,"(202) 555-0147","two\nline note"\n'
        b"3,Cy,+12125550124,\n"
    )
    chunk = read_all(lead_from(tmp_path, data), 2)
    assert chunk.rows[0] == ["1", "Smith, Ann", "+12125550123", 'said "call later"']
    assert chunk.rows[1] == ["2", "Bo", "(202) 555-0147", "two\nline note"]
    assert chunk.lines == [2, 3, 5]
    assert chunk.problems == [0, 0, 0]


def test_ragged_broken_blank_and_empty_rows(tmp_path: Path) -> None:
    data = (
        b"id,phone,city\n"  # line 1
        b"1,+12125550123,NYC\n"  # 2
        b"2,+12125550124\n"  # 3: too few fields
        b"3,+12125550125,NYC,extra\n"  # 4: too many
        b"\n"  # 5: blank
        b'4,"bad"quote,NYC\n'  # 6: broken quoting
        b"5,,NYC\n"  # 7: no number
        b"6,+12125550126,NYC\n"  # 8
    )
    chunk = read_all(lead_from(tmp_path, data), 1)
    assert chunk.lines == [2, 3, 4, 6, 7, 8]
    assert chunk.problems == [
        0,
        RowProblem.RAGGED_ROW,
        RowProblem.RAGGED_ROW,
        RowProblem.MALFORMED_ROW,
        RowProblem.MISSING_NUMBER,
        0,
    ]
    assert chunk.rows[3] == ['4,"bad"quote,NYC']  # the raw line, kept whole
    assert chunk.blank_lines == 1


def test_an_unclosed_quote_does_not_swallow_the_rows_after_it(tmp_path: Path) -> None:
    data = b'id,phone\n1,"+12125550123\n2,+12125550124\n3,+12125550125\n'
    chunk = read_all(lead_from(tmp_path, data), 1)
    assert chunk.lines == [2, 3, 4]
    assert chunk.problems == [RowProblem.MALFORMED_ROW, 0, 0]
    assert chunk.phones[1:] == ["+12125550124", "+12125550125"]


def test_the_header_may_follow_blank_lines_and_a_sample_skips_ragged_rows(tmp_path: Path) -> None:
    lead = lead_from(tmp_path, b"\n\nid,phone\n1\n2,+12125550123\n")
    assert lead.header == ["id", "phone"] and lead.header_line == 3
    assert lead.sample(5) == [["2", "+12125550123"]]


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"", "is empty"), (b"\n\n", "is empty"), (b'"id,phone\n', "header on line 1 is broken")],
)
def test_files_without_a_usable_header(tmp_path: Path, data: bytes, message: str) -> None:
    with pytest.raises(InputFileError, match=message):
        lead_from(tmp_path, data)


def test_unreadable_files_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="no such file"):
        open_lead_file(tmp_path / "missing.csv")
    with pytest.raises(InputFileError, match="it is a directory"):
        open_lead_file(tmp_path)
    broken = tmp_path / "broken.csv.gz"
    broken.write_bytes(b"not gzip at all")
    with pytest.raises(InputFileError, match="cannot read"):
        open_lead_file(broken)


field_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\r"),
    max_size=8,
)


@given(
    rows=st.lists(st.lists(field_text, min_size=3, max_size=3), max_size=40),
    ragged=st.sets(st.integers(min_value=0, max_value=39)),
    chunk_size=st.integers(min_value=1, max_value=7),
)
def test_every_row_comes_back_with_its_line_number(
    tmp_path_factory: pytest.TempPathFactory,
    rows: list[list[str]],
    ragged: set[int],
    chunk_size: int,
) -> None:
    """Whatever the fields hold, each row is read back whole, in order, at its line."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["a", "phone", "c"])
    expected: list[tuple[list[str], int, bool]] = []
    line = 2
    for index, row in enumerate(rows):
        written = row[:2] if index in ragged else row
        if written == [""] * len(written) and len(written) < 3:
            written = ["x", ""]
        start = buffer.tell()
        writer.writerow(written)
        text = buffer.getvalue()[start:]
        if text.strip() == "":
            continue  # a row of empty fields is a blank line
        expected.append((written, line, len(written) != 3))
        line += text.count("\n")
    folder = tmp_path_factory.mktemp("rows")
    lead = lead_from(folder, buffer.getvalue().encode("utf-8"))
    chunk = read_all(lead, 1, chunk_size)
    assert chunk.rows == [row for row, _, _ in expected]
    assert chunk.lines == [line for _, line, _ in expected]
    for problem, (row, _, is_ragged) in zip(chunk.problems, expected, strict=True):
        if is_ragged:
            assert problem == RowProblem.RAGGED_ROW
        else:
            assert problem in (0, RowProblem.MISSING_NUMBER)
            assert (problem == RowProblem.MISSING_NUMBER) == (row[1].strip() == "")


def test_only_lf_and_cr_end_lines(tmp_path: Path) -> None:
    data = "id,phone,note\n1,+12125550123,a\u2028b\x0cc\n2,+12125550124,\x85\n".encode()
    chunk = read_all(lead_from(tmp_path, data), 1)
    assert chunk.lines == [2, 3]
    assert chunk.rows[0][2] == "a\u2028b\x0cc"


def test_a_quote_inside_an_unquoted_field_is_kept(tmp_path: Path) -> None:
    chunk = read_all(lead_from(tmp_path, b'id,phone,note\n1,+12125550123,5" tall\n'), 1)
    assert chunk.rows == [["1", "+12125550123", '5" tall']]
    assert chunk.problems == [0]
