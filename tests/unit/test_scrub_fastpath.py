"""The numpy fast path reads exactly what the shortcut and the normalizer read, or leaves it."""

from __future__ import annotations

import csv

import numpy as np
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from suppression.e164 import Normalizer
from suppression.scrub.fastpath import fits, scan_block
from suppression.scrub.shortcut import canonicalize

NORMALIZER = Normalizer()

pieces = st.sampled_from(
    ["+", "1", "0", "2", "5", "9", "44", "86", "212", "555", "0123", " ", "-", ".", "(", ")"]
    + ["x", "\t", "é", "+1 ", "011", "１"]
)
phones = st.lists(pieces, max_size=12).map("".join)


def expected(phone: str, region: str) -> tuple[int, int]:
    stripped = phone.strip()
    (text,) = canonicalize([stripped], region)
    value, reason = NORMALIZER.normalize(text, region)
    return value, int(reason)


@settings(max_examples=300)
@given(
    st.lists(phones, min_size=1, max_size=40),
    st.sampled_from(["US", "CA", "CN", ""]),
    st.sets(st.integers(0, 39)),
)
@example(["+12125550123", "(212) 555-0123", "+1 212 555 0123", "212.555.0123"], "US", {1, 3})
@example(["1-212-555-0123", "+999", "+0123", "  +12125550123 ", "2125550123"], "US", {3})
@example(["+86 138 0013 8000", "+44 20 7946 0000", "+1 (212) 555-0123", "+1 12"], "", {0, 2})
@example(["+86 1190 1234 567", "+7 8 495 123 456", "+7 495 123 4567", "+44 0 20 7946"], "CN", set())
@example(["1 800 555 0199", "1-012-555-0123", "1 (1) 555", "+33 1 23 45 67 89"], "CA", {1})
def test_phones_read_by_numpy_match_the_shortcut_and_the_normalizer(
    phones: list[str], region: str, quoted: set[int]
) -> None:
    """Plain and quoted phone fields (quoted rows go through the csv module first)."""
    lines = [
        f'{index},"{phone}",z\n' if index in quoted else f"{index},{phone},z\n"
        for index, phone in enumerate(phones)
    ]
    data = "".join(lines).encode("utf-8")
    chunk = scan_block(data, 2, "utf-8", ",", 3, 1, region)
    assert chunk is not None
    texts = dict(zip(chunk.text_at.tolist(), chunk.texts, strict=True))
    for row, phone in enumerate(phones):
        if row in texts:
            assert texts[row] == phone.strip()
            continue
        if chunk.problems[row]:
            assert not phone.strip()
            continue
        value, reason = expected(phone, region)
        assert (int(chunk.values[row]), int(chunk.reasons[row])) == (value, reason), phone


def test_a_block_with_a_field_over_two_lines_is_left_to_the_text_path() -> None:
    assert scan_block(b'1,"a\n",+12125550123\n', 2, "utf-8", ",", 3, 1, "US") is None
    assert scan_block(b"1,+12125550123,z\r2,x,y\n", 2, "utf-8", ",", 3, 1, "US") is None
    assert scan_block(b"1,\xff,z\n", 2, "utf-8", ",", 3, 1, "US") is None


def test_rows_keep_their_bytes_and_line_numbers() -> None:
    data = b'1,+12125550123,z\r\n\r\n2,"x,y",+1\r\n3,2,3,4\r\n'
    chunk = scan_block(data, 5, "utf-8", ",", 3, 1, "US")
    assert chunk is not None
    assert chunk.lines.tolist() == [5, 7, 8] and chunk.blank_lines == 1
    assert [data[s:e] for s, e in zip(chunk.starts, chunk.ends, strict=True)] == [
        b"1,+12125550123,z\r\n",
        b'2,"x,y",+1\r\n',
        b"3,2,3,4\r\n",
    ]
    assert chunk.texts == ["x,y"] and chunk.rewritten == {2: ["3", "2", "3", "4"]}
    assert np.array_equal(chunk.problems, [0, 0, 101])


cells = st.sampled_from(
    ["", "a", " ", '"', '""', ",", "x y", "+12125550123", "(212) 555-0123", "2125550123"]
    + ['"q,r"', '"s""t"', ' "u"', '"v" ', '"w"x', "1", '"+1 212 555 0123"', '" 212.555.0123 "']
)
fields = st.lists(cells, max_size=3).map("".join)
lines = st.tuples(st.lists(fields, min_size=1, max_size=4).map(",".join), st.booleans())


@settings(max_examples=300)
@given(st.lists(lines, min_size=1, max_size=30))
@example([('1,"+1 212 555 0123",z', False), ('2,"a,b",+12125550123', True), ('3,"x""y",z', False)])
@example([('1,a"b,c', False), ('2,"a"b,c', False), ('3, "a",c', False), ('"",,', True)])
@example([('1,a"b,c",d', False), ('1,"a" ,c', False), ('"1",2,"3"', True), ('x,"p""q",r', False)])
def test_quoted_lines_split_as_the_csv_module_splits_them(
    records: list[tuple[str, bool]],
) -> None:
    """Every row's problem and phone are what csv.reader (the text path) makes of its line."""
    texts = [line + ("\r\n" if crlf else "\n") for line, crlf in records]
    data = "".join(texts).encode("utf-8")
    assume(fits(data, "utf-8"))  # a line with an odd number of quotes is the text path's
    chunk = scan_block(data, 2, "utf-8", ",", 3, 1, "US")
    assert chunk is not None
    found = dict(zip(chunk.text_at.tolist(), chunk.texts, strict=True))
    rows = [text for text in texts if text.rstrip("\r\n")]
    assert chunk.rows == len(rows) and chunk.blank_lines == len(texts) - len(rows)
    for row, text in enumerate(rows):
        try:
            parsed = next(csv.reader([text], delimiter=",", strict=True))
        except csv.Error:
            assert chunk.problems[row] == 102 and chunk.rewritten[row] == [text.rstrip("\r\n")]
            continue
        if len(parsed) != 3:
            assert chunk.problems[row] == 101 and chunk.rewritten[row] == parsed
            continue
        phone = parsed[1].strip()
        if not phone:
            assert chunk.problems[row] == 100
        elif row in found:
            assert found[row] == phone
        else:
            assert chunk.problems[row] == 0
            assert (int(chunk.values[row]), int(chunk.reasons[row])) == expected(phone, "US")
