"""The scrub's fast path: a block of lead-file bytes split into rows and fields with numpy.

Most lead rows are one line with the header's number of fields. For a block
of such rows this module finds the lines, the phone field of each and, for
the common shapes, the E.164 number (:mod:`suppression.scrub.phonearrays`),
with whole-array numpy operations instead of Python work per row (the
per-row path costs about 6 µs a row; this one well under 1 µs).

Quoted fields are split here too, as the ``csv`` module splits them, when
every quote on the line is where ``csv`` reads it as quoting: an opening
quote first in its field, a closing one followed by the delimiter, the line
end or a second quote (an escaped ``""``). A delimiter is then inside quotes
exactly when an odd number of quotes precede it on its line. Lines with any
other quote (a stray one inside an unquoted field, text after a closing
quote), with the wrong number of fields, or whose quoted phone holds an
escaped quote are parsed by the ``csv`` module one by one, as the text path
does. A block with a line whose quotes may open a multi-line field, a lone
CR, or bytes the encoding cannot decode is not taken at all (:func:`fits`
is false): the text path reads it.

pyarrow's CSV reader was the other candidate; it parses fields well, but a
scrub must also copy each row's exact input bytes and report its line, which
a byte-level split gives for free.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from suppression.scrub.phonearrays import nanp_region, read_phones
from suppression.scrub.reading import RowProblem

__all__ = [
    "FastChunk",
    "FastRead",
    "RawBlock",
    "ScanLayout",
    "fast_codec",
    "fits",
    "fitting_lines",
    "nanp_region",
    "scan_block",
]

_LF, _CR, _QUOTE = 10, 13, 34
_ASCII_SAFE = frozenset({"utf-8", "ascii", "latin-1", "iso8859-1", "cp1252"})
"""Encodings whose multi-byte characters never hold an ASCII byte."""
_GB_SAFE_DELIMITERS = frozenset("\t,;")
"""GB18030's second and fourth bytes can be digits or ``@``-``~``, never these."""
_NOT_QUOTE_OR_LF = bytes(byte for byte in range(256) if byte not in (_LF, _QUOTE))
_MISSING = int(RowProblem.MISSING_NUMBER)
_RAGGED = int(RowProblem.RAGGED_ROW)
_MALFORMED = int(RowProblem.MALFORMED_ROW)


def fast_codec(codec: str, delimiter: str) -> bool:
    """True if blocks in ``codec`` can be split at the bytes of ``delimiter``, quotes and LF."""
    if codec in _ASCII_SAFE:
        return True
    return codec in ("gb18030", "gbk", "gb2312") and delimiter in _GB_SAFE_DELIMITERS


@dataclass(frozen=True, slots=True)
class FastRead:
    """How a scrub reads blocks with numpy."""

    nanp: bool
    """The default region's national forms follow :func:`nanp_region`'s rule."""


ScanLayout = tuple[str, str, int, int, str]
""":func:`scan_block`'s arguments after ``first_line``: codec, delimiter, width, column, region."""


@dataclass(frozen=True, slots=True)
class RawBlock:
    """Whole lines of the file that :func:`fits` the fast path, not yet scanned."""

    data: bytes
    first_line: int


@dataclass(slots=True)
class FastChunk:
    """Consecutive rows read from bytes: offsets into the block, and what each phone is."""

    data: bytes
    first_line: int
    line_count: int
    """Physical lines in the block (rows and blank lines)."""
    starts: npt.NDArray[np.int64]
    """Per row: where it starts in ``data``."""
    bodies: npt.NDArray[np.int64]
    """Per row: where its line end starts."""
    ends: npt.NDArray[np.int64]
    """Per row: where the next line starts."""
    lines: npt.NDArray[np.int64]
    problems: npt.NDArray[np.int64]
    values: npt.NDArray[np.uint64]
    """Per row: the E.164 number read here; 0 if not (see ``reasons`` and ``texts``)."""
    reasons: npt.NDArray[np.uint8]
    """Per row: the invalid reason of a canonical ``+digits`` phone read here; 0 otherwise."""
    text_at: npt.NDArray[np.int64]
    """Rows whose phone must be checked as text."""
    texts: list[str]
    """Their phones, stripped, in order."""
    rewritten: dict[int, list[str]] = field(default_factory=dict)
    """Fields of ragged and broken rows, which are written again rather than copied."""
    blank_lines: int = 0

    @property
    def rows(self) -> int:
        """Rows in the chunk."""
        return len(self.starts)

    @property
    def next_line(self) -> int:
        """The line after the block."""
        return self.first_line + self.line_count


def fits(data: bytes, codec: str) -> bool:
    """True if :func:`scan_block` takes ``data``; else the text path must read it.

    The block must end with LF, hold no lone CR (a line end too), decode, and
    have an even number of quotes on every line (else a quoted field may run on).
    """
    return fitting_lines(data, codec) is not None


def fitting_lines(data: bytes, codec: str) -> int | None:
    """The number of lines in ``data`` if it :func:`fits`; None if it does not."""
    if not data.endswith(b"\n"):
        return None
    if b"\r" in data and data.count(b"\r") != data.count(b"\r\n"):
        return None
    if not data.isascii():
        try:
            data.decode(codec)
        except UnicodeDecodeError:
            return None
    if b'"' not in data:
        return data.count(b"\n")
    # Only quotes and line ends kept, a line's quotes stand together: dropping every pair
    # leaves a quote exactly where a line holds an odd number of them. The lines are counted
    # in the short string too.
    marks = data.translate(None, _NOT_QUOTE_OR_LF)
    if b'"' in marks.replace(b'""', b""):
        return None
    return marks.count(b"\n")


@dataclass(slots=True)
class _Lines:
    """A block's lines and, for each, its phone field where the line is split here."""

    starts: npt.NDArray[np.int64]
    bodies: npt.NDArray[np.int64]
    ends: npt.NDArray[np.int64]
    blank: npt.NDArray[np.bool_]
    special: npt.NDArray[np.bool_]
    """Lines the csv module must parse."""
    field_starts: npt.NDArray[np.int64]
    field_ends: npt.NDArray[np.int64]
    """The phone field's bytes, inside its quotes if it has them; 0, 0 on special lines."""


def _split(
    arr: npt.NDArray[np.uint8], separator: int, width: int, column: int, quoted: bool = True
) -> _Lines:
    """Find every line, and the phone field of every line that splits into ``width`` fields.

    ``arr`` ends with LF, holds no lone CR and an even number of quotes on each
    line; ``quoted`` False: it holds no quote (the caller knows it cheaply).
    """
    quoted = quoted and bool((arr == _QUOTE).any())
    marks = (arr == _LF) | (arr == separator)
    if quoted:
        marks |= arr == _QUOTE
    at = np.flatnonzero(marks)
    kinds = arr[at]
    wrong_quotes = np.zeros(0, dtype=np.int64)
    quotes = wrong_quotes
    if quoted:
        is_quote = kinds == _QUOTE
        # Each line holds an even number of quotes, so the count before a mark, from the
        # block's start, is odd exactly when the mark is inside a quoted field.
        # Counted in bytes: the count wraps at 256, its parity does not (3x faster than int64).
        quote_bytes = is_quote.view(np.uint8)
        inside = ((np.cumsum(quote_bytes, dtype=np.uint8) - quote_bytes) & 1).view(bool)
        quotes = at[is_quote]
        closing = inside[is_quote]
        before = arr[np.maximum(quotes - 1, 0)]
        after = arr[quotes + 1]  # the block ends with LF: a quote is never its last byte
        opens_well = (quotes == 0) | (before == separator) | (before == _LF) | (before == _QUOTE)
        closes_well = (after == separator) | (after == _LF) | (after == _CR) | (after == _QUOTE)
        wrong_quotes = quotes[(closing & ~closes_well) | (~closing & ~opens_well)]
        keep = ~is_quote & ~inside
        at, kinds = at[keep], kinds[keep]
    line_at = np.flatnonzero(kinds == _LF)
    """Per line: the index in ``at`` of its LF; its delimiters come just before."""
    newlines = at[line_at]
    count = len(newlines)
    ends = newlines + 1
    starts = np.empty(count, dtype=np.int64)
    starts[:1] = 0
    starts[1:] = ends[:-1]
    bodies = np.maximum(newlines - (arr[np.maximum(newlines - 1, 0)] == _CR), starts)
    blank = bodies == starts
    first = np.empty(count, dtype=np.int64)
    first[:1] = 0
    first[1:] = line_at[:-1] + 1
    special = (line_at - first + 1 != width) & ~blank
    if wrong_quotes.size:
        special[np.searchsorted(newlines, wrong_quotes)] = True
    last = len(at) - 1
    field_starts = starts if column == 0 else at[np.minimum(first + column - 1, last)] + 1
    field_ends = bodies if column == width - 1 else at[np.minimum(first + column, last)]
    if quotes.size:
        # A quoted phone is read inside its quotes; one holding an escaped quote by csv.
        # Counted on the lines that hold a quote only (a few in the usual file).
        has_quote = np.zeros(count, dtype=bool)
        has_quote[np.searchsorted(newlines, quotes)] = True
        on = np.flatnonzero(has_quote)
        inner = np.zeros(count, dtype=np.int64)
        inner[on] = np.searchsorted(quotes, field_ends[on]) - np.searchsorted(
            quotes, field_starts[on]
        )
        special |= (inner > 2) & ~blank
        wrapped = (inner == 2) & ~special
        field_starts = field_starts + wrapped
        field_ends = field_ends - wrapped
    plain = ~special & ~blank
    return _Lines(
        starts,
        bodies,
        ends,
        blank,
        special,
        field_starts * plain,
        field_ends * plain,
    )


def scan_block(
    data: bytes,
    first_line: int,
    codec: str,
    delimiter: str,
    width: int,
    column: int,
    region: str,
    *,
    checked: bool = False,
) -> FastChunk | None:
    """Split ``data`` (whole lines, each ending in LF) into rows and read their phones.

    Args:
        data: the block; must end with a line end.
        first_line: the line number of its first line.
        codec: the file's codec (with :func:`fast_codec` true for it).
        delimiter: the field delimiter.
        width: fields in the header.
        column: index of the phone field.
        region: the validated default region, or "".
        checked: the caller found that the block :func:`fits`.

    Returns:
        The chunk, or None when the text path must read this block.
    """
    if not checked and not fits(data, codec):
        return None
    arr = np.frombuffer(data, dtype=np.uint8)
    split = _split(arr, ord(delimiter), width, column, b'"' in data)
    starts, ends = split.starts, split.ends
    rows = np.flatnonzero(~split.blank)
    field_starts, field_ends = split.field_starts[rows], split.field_ends[rows]
    values, reasons, slow = read_phones(arr, field_starts, field_ends, region)
    special = split.special[rows]
    problems = np.zeros(len(rows), dtype=np.int64)
    texts_at: list[int] = []
    texts: list[str] = []
    rewritten: dict[int, list[str]] = {}
    special_rows = np.flatnonzero(special)
    parsed_at: list[int] = []
    parsed_phones: list[str] = []
    # Rows the arrays could not settle, in order: plain ones by their field, special ones
    # by the csv module, one line at a time, as the text path does.
    if special_rows.size:
        text_lines: dict[int, str] = {}
        for row in special_rows.tolist():
            line = rows[row]
            text_lines[row] = data[starts[line] : ends[line]].decode(codec)
        parsed = _parse(list(text_lines.values()), delimiter)
        for row, fields in zip(text_lines, parsed, strict=True):
            if fields is None:
                rewritten[row] = [text_lines[row].rstrip("\r\n")]
                problems[row] = _MALFORMED
            elif len(fields) != width:
                rewritten[row] = fields
                problems[row] = _RAGGED
            else:
                phone = fields[column].strip()
                if phone:
                    parsed_at.append(row)
                    parsed_phones.append(phone)
                else:
                    problems[row] = _MISSING
        values[special] = 0
        reasons[special] = 0
    if parsed_phones:
        # Quoted rows' phones are mostly plain shapes too: read them the same way.
        read_at, read_values, read_reasons, left = _read_texts(parsed_at, parsed_phones, region)
        values[read_at] = read_values
        reasons[read_at] = read_reasons
        for row, phone in left:
            texts_at.append(row)
            texts.append(phone)
    slow_rows = np.flatnonzero(slow & ~special)
    phones = _field_texts(arr, field_starts[slow_rows], field_ends[slow_rows], codec)
    for row, phone in zip(slow_rows.tolist(), phones, strict=True):
        phone = phone.strip()
        if phone:
            texts_at.append(row)
            texts.append(phone)
        else:
            problems[row] = _MISSING
    text_at = np.array(texts_at, dtype=np.int64)
    if parsed_phones:
        order = np.argsort(text_at, kind="stable")
        text_at = text_at[order]
        texts = [texts[index] for index in order.tolist()]
    return FastChunk(
        data=data,
        first_line=first_line,
        line_count=len(starts),
        starts=starts[rows],
        bodies=split.bodies[rows],
        ends=ends[rows],
        lines=rows.astype(np.int64) + first_line,
        problems=problems,
        values=values,
        reasons=reasons,
        text_at=text_at,
        texts=texts,
        rewritten=rewritten,
        blank_lines=len(starts) - len(rows),
    )


def _field_texts(
    arr: npt.NDArray[np.uint8],
    starts: npt.NDArray[np.int64],
    ends: npt.NDArray[np.int64],
    codec: str,
) -> list[str]:
    """The fields ``arr[starts[i]:ends[i]]``, decoded: gathered with numpy and decoded at once.

    The fields hold no LF (the fast path's rows are single lines), so LF separates
    them; and they decode alone, for the block decodes and they end at ASCII bytes.
    """
    if not len(starts):
        return []
    spans = ends - starts + 1
    total = int(spans.sum())
    offsets = np.cumsum(spans) - spans
    gathered = arr[np.repeat(starts - offsets, spans) + np.arange(total)]
    gathered[offsets + spans - 1] = _LF
    return gathered.tobytes().decode(codec).split("\n")[:-1]


def _read_texts(
    rows: list[int], phones: list[str], region: str
) -> tuple[
    npt.NDArray[np.int64], npt.NDArray[np.uint64], npt.NDArray[np.uint8], list[tuple[int, str]]
]:
    """:func:`read_phones` over phone strings; the rows read, and the (row, phone) pairs left."""
    left = [(row, phone) for row, phone in zip(rows, phones, strict=True) if not phone.isascii()]
    ascii_rows = [row for row, phone in zip(rows, phones, strict=True) if phone.isascii()]
    ascii_phones = [phone for phone in phones if phone.isascii()]
    if not ascii_phones:
        return np.zeros(0, np.int64), np.zeros(0, np.uint64), np.zeros(0, np.uint8), left
    lengths = np.fromiter(map(len, ascii_phones), dtype=np.int64, count=len(ascii_phones))
    starts = np.cumsum(lengths) - lengths
    arr = np.frombuffer("".join(ascii_phones).encode("ascii") + b"\n", dtype=np.uint8)
    values, reasons, slow = read_phones(arr, starts, starts + lengths, region)
    at = np.array(ascii_rows, dtype=np.int64)
    left += [(ascii_rows[index], ascii_phones[index]) for index in np.flatnonzero(slow).tolist()]
    return at[~slow], values[~slow], reasons[~slow], left


def _parse(lines: list[str], delimiter: str) -> list[list[str] | None]:
    """Parse single-line records, ``None`` for a broken one (as the text path does)."""
    parsed: list[list[str] | None] = []
    try:
        rows = list(csv.reader(lines, delimiter=delimiter, strict=True))
        if len(rows) == len(lines):
            return list(rows)
    except csv.Error:
        pass
    for line in lines:
        try:
            parsed.append(next(csv.reader([line], delimiter=delimiter, strict=True)))
        except csv.Error:
            parsed.append(None)
    return parsed
