"""The scrub's fast path: a block of lead-file bytes split and its phone numbers read with numpy.

Most lead rows are one line with no quote, the header's number of
delimiters and a phone in a handful of shapes. For a block of such rows this
module finds the lines, the phone field of each and, for the common shapes,
the E.164 number, with whole-array numpy operations instead of Python work
per row (the per-row path costs about 6 µs a row; this one well under 1 µs):

- ``+12125550123`` (``+`` then digits): the normalizer's own canonical rule,
  validated with the country-code tables; its invalid reasons too;
- with a default region of the North American plan (US, CA, ...), whose
  international prefix is ``011`` and national prefix ``1``: ``(212) 555-0123``,
  ``212.555.0123`` and ``+1 212 555 0123``, exactly where
  :mod:`suppression.scrub.shortcut` rewrites them (no leading ``0`` or ``1``
  in the national number) and only when the result is valid.

Every other phone (letters, other countries' punctuated forms, a national
prefix, an invalid number) is handed back as text, to be checked as before.
Lines with a quote character or the wrong number of delimiters are parsed by
the ``csv`` module one by one, as the text path does. A block with a line
whose quotes may open a multi-line field, a lone CR, or bytes the encoding
cannot decode is not taken at all (None): the text path reads it.

pyarrow's CSV reader was the other candidate; it parses fields well, but a
scrub must also copy each row's exact input bytes and report its line, which
a byte-level split gives for free.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from suppression.e164 import e164_reasons
from suppression.scrub.reading import RowProblem
from suppression.scrub.shortcut import _region_prefixes

__all__ = [
    "FastChunk",
    "FastRead",
    "RawBlock",
    "ScanLayout",
    "fast_codec",
    "fits",
    "nanp_region",
    "scan_block",
]

_WIDTH = 24
"""Phone fields longer than this go the text way."""
_MAX_UINT64_DIGITS = 19
_MAX_E164 = 15
_LF, _CR, _QUOTE = 10, 13, 34
_OTHER, _DIGIT, _SPACE_CLASS, _PUNCT, _PLUS_CLASS, _PAD = range(6)
_CLASS = np.full(256, _OTHER, dtype=np.uint8)
"""A class per byte: digits, space, the other punctuation the shortcut drops (``-.()``),
``+``, or anything else (which sends the phone to the text path)."""
_CLASS[48:58] = _DIGIT
_CLASS[32] = _SPACE_CLASS
_CLASS[list(b"-.()")] = _PUNCT
_CLASS[43] = _PLUS_CLASS
_ASCII_SAFE = frozenset({"utf-8", "ascii", "latin-1", "iso8859-1", "cp1252"})
"""Encodings whose multi-byte characters never hold an ASCII byte."""
_GB_SAFE_DELIMITERS = frozenset("\t,;")
"""GB18030's second and fourth bytes can be digits or ``@``-``~``, never these."""
_TEN = np.array([10**k for k in range(_MAX_UINT64_DIGITS + 1)], dtype=np.uint64)
_MISSING = int(RowProblem.MISSING_NUMBER)
_RAGGED = int(RowProblem.RAGGED_ROW)
_MALFORMED = int(RowProblem.MALFORMED_ROW)


def fast_codec(codec: str, delimiter: str) -> bool:
    """True if blocks in ``codec`` can be split at the bytes of ``delimiter``, quotes and LF."""
    if codec in _ASCII_SAFE:
        return True
    return codec in ("gb18030", "gbk", "gb2312") and delimiter in _GB_SAFE_DELIMITERS


def nanp_region(region: str) -> bool:
    """True if ``region``'s national forms follow the rule this module vectorizes (US, CA...)."""
    prefixes = _region_prefixes(region) if region else None
    return (
        prefixes is not None
        and prefixes.country_code == "1"
        and prefixes.idd is not None
        and prefixes.idd.pattern == "011"
        and prefixes.national_prefix is not None
        and prefixes.national_prefix.pattern == "1"
    )


@dataclass(frozen=True, slots=True)
class FastRead:
    """How a scrub reads blocks with numpy."""

    nanp: bool
    """The default region's national forms follow :func:`nanp_region`'s rule."""


ScanLayout = tuple[str, str, int, int, bool]
""":func:`scan_block`'s arguments after ``first_line``: codec, delimiter, width, column, NANP."""


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
    if not data.endswith(b"\n"):
        return False
    if b"\r" in data and data.count(b"\r") != data.count(b"\r\n"):
        return False
    if not data.isascii():
        try:
            data.decode(codec)
        except UnicodeDecodeError:
            return False
    if b'"' in data:
        arr = np.frombuffer(data, dtype=np.uint8)
        ends = np.flatnonzero(arr == _LF) + 1
        if np.any(_quotes_per_line(arr, ends, len(ends)) % 2):
            return False
    return True


def _quotes_per_line(
    arr: npt.NDArray[np.uint8], ends: npt.NDArray[np.int64], count: int
) -> npt.NDArray[np.int64]:
    quotes = np.flatnonzero(arr == _QUOTE)
    return np.bincount(np.searchsorted(ends, quotes, side="right"), minlength=count)[:count]


def scan_block(
    data: bytes,
    first_line: int,
    codec: str,
    delimiter: str,
    width: int,
    column: int,
    region_is_nanp: bool,
) -> FastChunk | None:
    """Split ``data`` (whole lines, each ending in LF) into rows and read their phones.

    Args:
        data: the block; must end with a line end.
        first_line: the line number of its first line.
        codec: the file's codec (with :func:`fast_codec` true for it).
        delimiter: the field delimiter.
        width: fields in the header.
        column: index of the phone field.
        region_is_nanp: the default region takes :func:`nanp_region`'s rule.

    Returns:
        The chunk, or None when the text path must read this block.
    """
    if not fits(data, codec):
        return None
    text_lines: dict[int, str] = {}
    arr = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(arr == _LF)
    count = len(newlines)
    ends = newlines + 1
    starts = np.empty(count, dtype=np.int64)
    starts[0] = 0
    starts[1:] = ends[:-1]
    bodies = newlines - (arr[np.maximum(newlines - 1, 0)] == _CR)
    bodies = np.maximum(bodies, starts)
    quoted = np.zeros(count, dtype=bool)
    if b'"' in data:
        quoted = _quotes_per_line(arr, ends, count) > 0
    separator = ord(delimiter)
    delimiters = np.flatnonzero(arr == separator)
    per_line_delimiters = np.bincount(
        np.searchsorted(ends, delimiters, side="right"), minlength=count
    )[:count]
    blank = bodies == starts
    special = (quoted | (per_line_delimiters != width - 1)) & ~blank
    keep = ~blank
    # The phone field of every plain line, from the delimiters around it.
    first = np.searchsorted(delimiters, starts)
    if column == 0:
        field_start = starts.copy()
    else:
        at = np.minimum(first + column - 1, max(len(delimiters) - 1, 0))
        field_start = delimiters[at] + 1 if len(delimiters) else starts.copy()
    if column == width - 1:
        field_end = bodies.copy()
    else:
        at = np.minimum(first + column, max(len(delimiters) - 1, 0))
        field_end = delimiters[at] if len(delimiters) else bodies.copy()
    plain = keep & ~special
    field_start = np.where(plain, field_start, 0)
    field_end = np.where(plain, field_end, 0)
    rows = np.flatnonzero(keep)
    values, reasons, slow = _read_phones(arr, field_start[rows], field_end[rows], region_is_nanp)
    problems = np.zeros(len(rows), dtype=np.int64)
    texts_at: list[int] = []
    texts: list[str] = []
    rewritten: dict[int, list[str]] = {}
    special_rows = np.flatnonzero(special[rows])
    parsed_at: list[int] = []
    parsed_phones: list[str] = []
    slow_rows = np.flatnonzero(slow & plain[rows])
    # Rows the arrays could not settle, in order: plain ones by their field, special ones
    # by the csv module, one line at a time, as the text path does.
    if special_rows.size:
        for row in special_rows.tolist():
            line = rows[row]
            text = data[starts[line] : ends[line]].decode(codec)
            text_lines[row] = text
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
    values[special[rows]] = 0
    reasons[special[rows]] = 0
    if parsed_phones:
        # Quoted rows' phones are mostly plain shapes too: read them the same way.
        read_at, read_values, read_reasons, left = _read_texts(
            parsed_at, parsed_phones, region_is_nanp
        )
        values[read_at] = read_values
        reasons[read_at] = read_reasons
        for row, phone in left:
            texts_at.append(row)
            texts.append(phone)
    for row in slow_rows.tolist():
        line = rows[row]
        phone = data[field_start[line] : field_end[line]].decode(codec).strip()
        if phone:
            texts_at.append(row)
            texts.append(phone)
        else:
            problems[row] = _MISSING
    order = np.argsort(np.array(texts_at, dtype=np.int64), kind="stable")
    text_at = np.array(texts_at, dtype=np.int64)[order]
    texts = [texts[index] for index in order.tolist()]
    return FastChunk(
        data=data,
        first_line=first_line,
        line_count=count,
        starts=starts[rows],
        bodies=bodies[rows],
        ends=ends[rows],
        lines=rows.astype(np.int64) + first_line,
        problems=problems,
        values=values,
        reasons=reasons,
        text_at=text_at,
        texts=texts,
        rewritten=rewritten,
        blank_lines=int(np.count_nonzero(blank)),
    )


def _read_texts(
    rows: list[int], phones: list[str], region_is_nanp: bool
) -> tuple[
    npt.NDArray[np.int64], npt.NDArray[np.uint64], npt.NDArray[np.uint8], list[tuple[int, str]]
]:
    """:func:`_read_phones` over phone strings; the rows read, and the (row, phone) pairs left."""
    left = [(row, phone) for row, phone in zip(rows, phones, strict=True) if not phone.isascii()]
    ascii_rows = [row for row, phone in zip(rows, phones, strict=True) if phone.isascii()]
    ascii_phones = [phone for phone in phones if phone.isascii()]
    if not ascii_phones:
        return np.zeros(0, np.int64), np.zeros(0, np.uint64), np.zeros(0, np.uint8), left
    lengths = np.fromiter(map(len, ascii_phones), dtype=np.int64, count=len(ascii_phones))
    starts = np.cumsum(lengths) - lengths
    arr = np.frombuffer("".join(ascii_phones).encode("ascii") + b"\n", dtype=np.uint8)
    values, reasons, slow = _read_phones(arr, starts, starts + lengths, region_is_nanp)
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


_SLICE = 16_384
"""Phones read at a time: the work arrays stay a few MiB whatever the block."""


def _read_phones(
    arr: npt.NDArray[np.uint8],
    starts: npt.NDArray[np.int64],
    ends: npt.NDArray[np.int64],
    region_is_nanp: bool,
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint8], npt.NDArray[np.bool_]]:
    """:func:`_read_slice` over ``starts``, a slice at a time."""
    parts = [
        _read_slice(arr, starts[at : at + _SLICE], ends[at : at + _SLICE], region_is_nanp)
        for at in range(0, len(starts), _SLICE)
    ]
    if not parts:
        return np.zeros(0, np.uint64), np.zeros(0, np.uint8), np.zeros(0, bool)
    values, reasons, slow = zip(*parts, strict=True)
    return np.concatenate(values), np.concatenate(reasons), np.concatenate(slow)


def _read_slice(
    arr: npt.NDArray[np.uint8],
    starts: npt.NDArray[np.int64],
    ends: npt.NDArray[np.int64],
    region_is_nanp: bool,
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint8], npt.NDArray[np.bool_]]:
    """Read the phone fields ``arr[starts:ends]``.

    Returns:
        E.164 values (0 where not read), invalid reasons of canonical phones
        read here, and which phones must be checked as text instead (including
        every empty one, which the caller counts as missing).
    """
    count = len(starts)
    lengths = ends - starts
    offsets = np.arange(_WIDTH, dtype=np.int64)
    # Character j of every phone is row j: each step below is one pass over a short array.
    chars = arr[np.minimum(offsets[:, None] + starts[None, :], len(arr) - 1)]
    classes = _CLASS[chars]
    classes[offsets[:, None] >= lengths[None, :]] = _PAD
    value = np.zeros(count, dtype=np.uint64)
    digits = np.zeros(count, dtype=np.int64)
    lead = np.zeros(count, dtype=np.int64)
    second = np.zeros(count, dtype=np.int64)
    seen = np.zeros(count, dtype=bool)
    """A non-space character came before."""
    first_plus = np.zeros(count, dtype=bool)
    gap = np.zeros(count, dtype=bool)
    """Spaces since the last non-space character."""
    inner_space = np.zeros(count, dtype=bool)
    pluses = np.zeros(count, dtype=np.int64)
    ten = np.uint64(10)
    for column in range(_WIDTH):
        kind = classes[column]
        if not (kind != _PAD).any():
            break
        is_digit = kind == _DIGIT
        digit = chars[column].astype(np.int64) - 48
        value = np.where(is_digit, value * ten + digit.astype(np.uint64), value)
        digits += is_digit
        lead = np.where(is_digit & (digits == 1), digit, lead)
        second = np.where(is_digit & (digits == 2), digit, second)
        nonspace = (kind != _SPACE_CLASS) & (kind != _PAD)
        first_plus |= ~seen & (kind == _PLUS_CLASS)
        inner_space |= gap & nonspace
        gap = (gap | (seen & (kind == _SPACE_CLASS))) & ~nonspace
        seen |= nonspace
        pluses += kind == _PLUS_CLASS
    bad = (classes == _OTHER).any(axis=0)
    inner_punct = (classes == _PUNCT).any(axis=0) | inner_space
    leading_plus = first_plus & (pluses == 1)
    slow = (
        (lengths > _WIDTH)
        | bad
        | ~seen
        | (pluses > 1)
        | ((pluses == 1) & ~leading_plus)
        | (digits == 0)
        | (digits > _MAX_UINT64_DIGITS)
    )

    values = np.zeros(count, dtype=np.uint64)
    reasons = np.zeros(count, dtype=np.uint8)
    # ``+digits`` after stripping, at most 19 digits, no leading 0: the normalizer's rule.
    canonical = ~slow & leading_plus & ~inner_punct & (lead != 0)
    if canonical.any():
        found = e164_reasons(value[canonical])
        values[canonical] = np.where(found == 0, value[canonical], np.uint64(0))
        reasons[canonical] = found
    done = canonical.copy()
    # ``+1 ...`` with punctuation: the shortcut keeps the digits when the national number
    # starts with neither 0 nor 1 (whatever the default region).
    plus_one = (
        ~slow
        & leading_plus
        & inner_punct
        & (lead == 1)
        & (digits >= 3)
        & (digits <= _MAX_E164)
        & (second >= 2)
    )
    # National forms in a NANP region: no 0 or 1 first (the IDD and the national prefix).
    national = ~slow & ~leading_plus & (lead >= 2) & (digits >= 2) & (digits < _MAX_E164)
    if not region_is_nanp:
        national[:] = False
    national_value = value + _TEN[np.minimum(digits, _MAX_UINT64_DIGITS)]
    candidate = plus_one | national
    number = np.where(national, national_value, value)
    if candidate.any():
        ok = np.zeros(count, dtype=bool)
        ok[candidate] = e164_reasons(number[candidate]) == 0
        values[ok] = number[ok]
        done |= ok
    return values, reasons, ~done
