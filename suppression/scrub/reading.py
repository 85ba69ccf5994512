"""Reading a lead file: bytes (plain or gzip), text, CSV/TSV dialect, header, numbered rows.

Every physical line ends up in exactly one place: the header, a row, a blank
line (counted), or a problem row that goes to the invalid file with its line
number. Nothing is dropped silently.
"""

from __future__ import annotations

import codecs
import csv
import enum
import io
import itertools
import operator
from collections.abc import Iterable, Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from suppression.errors import SuppressionError
from suppression.scrub.blocks import BLOCK_BYTES, ByteBlocks, _last_line_end
from suppression.scrub.encoding import (
    ERRORS,
    check_ascii_compatible,
    detect_encoding,
    has_undecodable,
    resolve_encoding,
)

if TYPE_CHECKING:
    from _csv import Reader as CsvReader

    from suppression.scrub.fastpath import FastRead, RawBlock

__all__ = [
    "Chunk",
    "InputFileError",
    "LeadFile",
    "RowProblem",
    "open_lead_file",
    "parse_delimiter",
]

_DELIMITER_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}
_CANDIDATE_DELIMITERS = ("\t", ",", ";", "|")
# csv's own limit is 128 KiB; a field this long is a runaway quote, not a lead.
_FIELD_SIZE_LIMIT = 1 << 20
_LOOKAHEAD_CHARS = 4 * _FIELD_SIZE_LIMIT
"""Text held beyond a chunk whose quotes may open a field that runs on: a record longer
than this is read as broken, as one at the end of the file is."""
_SAMPLE_BYTES = 8 << 20
"""Bytes read first, to choose the encoding (and to estimate the number of rows)."""
_SAMPLE_LINES = 5_000
_FIRST_PIECE = 256 << 10
"""Bytes decoded at a time for the header and the sample; later pieces are whole blocks."""


class InputFileError(SuppressionError):
    """The lead file cannot be read, or has no usable header."""


class RowProblem(enum.IntEnum):
    """Why a row never reached the number check; 0 means it did."""

    NONE = 0
    MISSING_NUMBER = 100
    """The phone field is empty."""
    RAGGED_ROW = 101
    """The row has more or fewer fields than the header."""
    MALFORMED_ROW = 102
    """The CSV syntax is broken (stray quote, runaway field)."""
    UNDECODABLE = 103
    """The row holds bytes the file's encoding cannot decode."""


_MISSING = int(RowProblem.MISSING_NUMBER)
_RAGGED = int(RowProblem.RAGGED_ROW)
_MALFORMED = int(RowProblem.MALFORMED_ROW)
_UNDECODABLE = int(RowProblem.UNDECODABLE)


@dataclass(slots=True)
class Chunk:
    """Consecutive rows of a lead file, as parallel lists."""

    rows: list[list[str] | None] = field(default_factory=list)
    """The fields of a row that is written again (ragged or broken); None for every other row,
    which the outputs copy from its input lines."""
    lines: list[int] = field(default_factory=list)
    """The input line number each row starts on (the header is line 1)."""
    phones: list[str] = field(default_factory=list)
    """The phone field, stripped; "" for a row with a problem."""
    problems: list[int] = field(default_factory=list)
    """A :class:`RowProblem` value per row."""
    spans: dict[int, int] = field(default_factory=dict)
    """Physical lines per row, for the rows (by position in the chunk) that span several."""
    blank_lines: int = 0
    text: list[str] = field(default_factory=list)
    """The chunk's physical lines, each with its line end: rows are copied from these."""
    first_line: int = 0
    """The line number of ``text[0]``."""


_OTHER_LINE_BREAKS = "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
"""Characters str.splitlines also breaks at, but CSV does not."""


def _split_lines(text: str) -> list[str]:
    """Split at LF, CR LF and CR only, keeping the line ends, as the csv module reads."""
    if any(mark in text for mark in _OTHER_LINE_BREAKS):
        return io.StringIO(text, newline="").readlines()
    return text.splitlines(keepends=True)  # twice as fast, and the same without those marks


def parse_delimiter(text: str) -> str:
    r"""Turn ``--delimiter`` into one character: ``,``, ``tab``, ``\\t``, ``;``, ``|``.

    Raises:
        InputFileError: the value is not a single character or a known name.
    """
    value = _DELIMITER_NAMES.get(text.strip().lower(), text)
    if len(value) != 1 or value in '"\r\n':
        raise InputFileError(f"--delimiter {text!r} must be one character, or 'tab'")
    return value


def _sniff_delimiter(path: Path, header: str) -> str:
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".tsv", ".tab")):
        return "\t"
    counts = {candidate: header.count(candidate) for candidate in _CANDIDATE_DELIMITERS}
    best = max(counts, key=lambda candidate: counts[candidate])
    return best if counts[best] else ","


class LeadFile:
    """A lead file read a block at a time: its dialect, header, and an iterator over row chunks.

    Only the lines of the chunk being read (and, after a quote that may open a
    field running over several lines, a few MiB beyond it) are held in memory.
    """

    def __init__(
        self,
        path: Path,
        encoding: str = "",
        delimiter: str = "",
        *,
        no_header: bool = False,
        block_bytes: int = BLOCK_BYTES,
    ) -> None:
        """Open the file, choose its encoding and delimiter, and read the header.

        Args:
            path: the CSV or TSV file, plain or ``.gz``.
            encoding: a codec name, or "" to detect it from the first MiBs.
            delimiter: one character, or "" to detect.
            no_header: the file has no header row: every line is a lead, and
                the columns are named by position (``1``, ``2``, ...).
            block_bytes: bytes read at a time.

        Raises:
            InputFileError: the file cannot be read, is empty, or its header is unusable.
            ConfigError: ``encoding`` names no codec, or one a scrub cannot read.
        """
        if path.suffix.lower() == ".zip":
            raise InputFileError(
                f"cannot read {path}: scrub reads plain or .gz lead files; unzip it first"
            )
        self.path = path
        self._piece = _FIRST_PIECE
        self._handed = 0
        """Decoded bytes handed out so far."""
        self._blocks = ByteBlocks(path, InputFileError, block_bytes)
        try:
            self._open(encoding, delimiter, no_header)
        except BaseException:
            self._blocks.close()
            raise

    def _open(self, encoding: str, delimiter: str, no_header: bool) -> None:
        path = self.path
        sample = self._blocks.skip(_SAMPLE_BYTES)
        if encoding:
            encoding = resolve_encoding(encoding)
            if encoding == "utf-8" and sample.startswith(codecs.BOM_UTF8):
                encoding = "utf-8-sig"  # a BOM is never part of the first column's name
        else:
            encoding = detect_encoding(sample[: _last_line_end(sample) or len(sample)])
        check_ascii_compatible(encoding)
        self.encoding = encoding
        # A block decodes on its own; only the file's first bytes may hold the BOM.
        self._codec = "utf-8" if encoding == "utf-8-sig" else encoding
        if encoding == "utf-8-sig" and sample.startswith(codecs.BOM_UTF8):
            sample = sample[len(codecs.BOM_UTF8) :]
        self._pending = sample
        self.undecodable = False
        self._lines: list[str] = []
        self._first_line = 1
        """The line number of ``_lines[0]``."""
        self._eof = False
        self.line_terminator = "\n"
        first = self._find_first()
        if first is None:
            raise InputFileError(f"{path} is empty: expected a header row and lead rows")
        line = self._lines[first]
        self.delimiter = parse_delimiter(delimiter) if delimiter else _sniff_delimiter(path, line)
        self.line_terminator = "\r\n" if line.endswith("\r\n") else "\n"
        if not line.endswith(("\n", "\r")):
            self._lines[first] += self.line_terminator
        header_rows = csv.reader([line], delimiter=self.delimiter, strict=True)
        try:
            fields = [name.strip() for name in next(header_rows)]
        except csv.Error as exc:
            if no_header:
                fields = [""]
            else:
                raise InputFileError(
                    f"{path}: the header on line {first + 1} is broken: {exc}"
                ) from None
        self.no_header = no_header
        if no_header:
            self.header = [str(number) for number in range(1, len(fields) + 1)]
            self.header_line = 0
            self._start = first
            self.header_text = ""
        else:
            if has_undecodable(line):
                raise InputFileError(
                    f"{path}: the header on line {first + 1} does not decode as {self.encoding}; "
                    "give the right --encoding"
                )
            self.header = fields
            self.header_line = first + 1
            self._start = first + 1
            self.header_text = self._lines[first]
        self.rows_estimate = self._estimate()

    def _estimate(self) -> int:
        """Roughly how many lines the file holds, from the part read so far."""
        self._fill(_SAMPLE_LINES)
        stored, unpacked = self._blocks.position, self._blocks.unpacked
        if self._eof or not stored or not self._handed:
            return len(self._lines)
        # Lines per decoded byte, times the decoded size the stored size stands for.
        return int(len(self._lines) / self._handed * unpacked / stored * self._blocks.size)

    def _decode(self, data: bytes) -> list[str]:
        try:
            text = data.decode(self._codec)
        except UnicodeDecodeError:
            text = data.decode(self._codec, ERRORS)
            self.undecodable = True
        return _split_lines(text)

    def _next_bytes(self) -> bytes | None:
        """The next piece of the file, ending at a line end (or the file's end); None at the end."""
        if self._eof:
            return None
        data: bytes | None
        if self._pending:
            # The sample read for detection is handed out a piece at a time too.
            pending = self._pending
            cut = _last_line_end(pending[: self._piece])
            if cut and cut < len(pending):
                self._pending = pending[cut:]
                data = pending[:cut]
            else:
                self._pending = b""
                data = pending if cut else pending + (self._blocks.next_block() or b"")
        else:
            data = self._blocks.next_block()
        if data:
            self._handed += len(data)
        if not data:
            self._eof = True
            if self._lines and not self._lines[-1].endswith(("\n", "\r")):
                # Rows are copied to the outputs line by line; each needs its end.
                self._lines[-1] += self.line_terminator
            return None
        return data

    def _more(self) -> bool:
        """Read one more block into the line buffer; False at the end of the file."""
        data = self._next_bytes()
        if data is None:
            return False
        self._push(data)
        return True

    def _push(self, data: bytes) -> None:
        lines = self._decode(data)
        if self._lines and not self._lines[-1].endswith(("\n", "\r")):
            lines[0] = self._lines.pop() + lines[0]  # a block cut mid-line (no line end yet)
        self._lines += lines

    def _fill(self, count: int) -> None:
        """Read until the buffer holds ``count`` lines, or the file ends."""
        while len(self._lines) < count and self._more():
            pass

    def _fill_chars(self, start: int, chars: int) -> None:
        """Read until the buffer holds ``chars`` characters after line ``start``, or the end."""
        held = sum(map(len, self._lines[start:]))
        while held < chars:
            before = len(self._lines)
            if not self._more():
                return
            held += sum(map(len, self._lines[before - 1 :]))

    def _find_first(self) -> int | None:
        at = 0
        while True:
            self._fill(at + 1)
            if at >= len(self._lines):
                return None
            if self._lines[at].strip():
                return at
            at += 1

    def close(self) -> None:
        """Close the file."""
        self._blocks.close()

    def __del__(self) -> None:
        # A LeadFile dropped unclosed (a sample read by a test) must not leak its file.
        blocks = getattr(self, "_blocks", None)
        if blocks is not None:
            blocks.close()

    def __enter__(self) -> LeadFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def sample(self, count: int) -> list[list[str]]:
        """Up to ``count`` well-formed rows after the header, for column detection."""
        self._fill(self._start + _SAMPLE_LINES)
        reader = self._reader(self._start)
        sample: list[list[str]] = []
        width = len(self.header)
        try:
            for row in reader:
                if len(row) == width:
                    sample.append(row)
                    if len(sample) >= count:
                        break
        except csv.Error:
            pass
        return sample

    def _reader(self, start: int, stop: int | None = None) -> CsvReader:
        csv.field_size_limit(_FIELD_SIZE_LIMIT)
        return csv.reader(
            itertools.islice(self._lines, start, stop), delimiter=self.delimiter, strict=True
        )

    def skip_to(self, line: int) -> None:
        """Move past every line before ``line`` (1-based) unread: resuming a scrub.

        Raises:
            InputFileError: the file has fewer lines.
        """
        while self._first_line + len(self._lines) < line:
            self._first_line += len(self._lines)
            self._lines = []
            self._start = 0
            if not self._more():
                raise InputFileError(f"{self.path} has fewer than {line - 1:,} lines")
        drop = line - self._first_line
        if drop > self._start:
            del self._lines[:drop]
            self._first_line = line
            self._start = 0

    def chunks(
        self, column: int, size: int = 50_000, fast: FastRead | None = None
    ) -> Iterator[Chunk | RawBlock]:
        """Every row after the header, in order, about ``size`` lines per chunk.

        A chunk ends where a record ends. With ``fast``, each block of the file
        that :func:`suppression.scrub.fastpath.fits` the fast path comes as a
        :class:`RawBlock`, for a worker to scan; the others are read line by
        line as :class:`Chunk`.

        Args:
            column: index of the phone column in the header.
            size: physical lines per chunk (of the line-by-line path).
            fast: how to read blocks with numpy; None reads every line as text.
        """
        # fastpath reads RowProblem from here
        from suppression.scrub.fastpath import RawBlock, fast_codec, fitting_lines

        self._piece = self._blocks.block_bytes
        if fast is not None and not fast_codec(self._codec, self.delimiter):
            fast = None
        while True:
            if fast is not None and self._start >= len(self._lines):
                self._first_line += len(self._lines)
                self._lines = []
                self._start = 0
                data = self._next_bytes()
                if data is None:
                    return
                lines = fitting_lines(data, self._codec)
                if lines is not None:
                    block = RawBlock(data, self._first_line)
                    self._first_line += lines
                    yield block
                    continue
                self._push(data)
                if not self._lines[-1].endswith(("\n", "\r")):
                    self._fill(len(self._lines) + 1)  # the file's last line: give it its end
            start = self._start
            if fast is None:
                # One line more than the chunk: the file's last line gets its line end on EOF.
                self._fill(start + size + 1)
            end = len(self._lines)
            if start >= end:
                if fast is None:
                    return
                continue
            stop = min(start + size, end)
            chunk = self._plain_block(start, stop, column)
            if chunk is None:
                self._fill_chars(stop, _LOOKAHEAD_CHARS)
                chunk, stop = self._careful_block(start, stop, column)
            chunk.text = self._lines[start:stop]
            chunk.first_line = self._first_line + start
            del self._lines[:stop]
            self._first_line += stop
            self._start = 0
            yield chunk

    def _plain_block(self, start: int, stop: int, column: int) -> Chunk | None:
        """Split lines ``[start, stop)`` with string methods, if every record is one line.

        Most lead rows hold no quote character, and for those a field count
        and one ``split`` find the phone in a third of the time the csv module
        takes to build every field. Lines with quotes go through the csv
        module one by one. Fields are kept only for rows that are written again
        (ragged or broken ones); other rows are copied to the outputs as lines.

        Returns:
            The chunk, or None when a quoted field may span lines (an odd
            number of quote characters on a line); the careful path takes those.
        """
        block = self._lines[start:stop]
        quoted = [index for index, line in enumerate(block) if '"' in line]
        if any(block[index].count('"') % 2 for index in quoted):
            return None
        delimiter = self.delimiter
        width = len(self.header)
        separators = width - 1
        counts = list(map(str.count, block, itertools.repeat(delimiter)))
        special = set(quoted)
        special.update(index for index, count in enumerate(counts) if count != separators)
        if self.undecodable:
            special.update(i for i, line in enumerate(block) if has_undecodable(line))
        # Every other line splits into the header's width: find the phones with C-level
        # maps only (a comprehension costs twice as much), standing in a line of empty
        # fields for each special line, which is parsed properly below.
        plain = block
        if special:
            plain = block.copy()
            empty = delimiter * separators
            for index in special:
                plain[index] = empty
        pieces = map(str.split, plain, itertools.repeat(delimiter), itertools.repeat(column + 1))
        phones = list(map(str.strip, map(operator.itemgetter(column), pieces)))
        rows: list[list[str] | None] = [None] * len(block)
        problems = [0] * len(block)
        blank = [index for index in special if block[index] in ("\n", "\r\n", "\r")]
        parsed = sorted(special.difference(blank))
        parsed_fields = self._parse_lines([block[index] for index in parsed])
        for index, fields in zip(parsed, parsed_fields, strict=True):
            line = block[index]
            if fields is None:
                rows[index], phones[index] = [line.rstrip("\r\n")], ""
                problems[index] = _MALFORMED
                continue
            if len(fields) != width:
                rows[index], phones[index], problems[index] = fields, "", _RAGGED
            elif self.undecodable and has_undecodable(line):
                phones[index], problems[index] = "", _UNDECODABLE
            else:
                phones[index] = fields[column].strip()
        if not all(phones):
            for index, phone in enumerate(phones):
                if not phone and not problems[index]:
                    problems[index] = _MISSING
        lines = list(range(self._first_line + start, self._first_line + stop))
        if blank:
            keep = sorted(set(range(len(block))).difference(blank))
            rows = [rows[index] for index in keep]
            lines = [lines[index] for index in keep]
            phones = [phones[index] for index in keep]
            problems = [problems[index] for index in keep]
        return Chunk(rows, lines, phones, problems, blank_lines=len(blank))

    def _parse_lines(self, lines: list[str]) -> list[list[str] | None]:
        """Parse single-line records: all in one C call, or line by line if one is broken."""
        try:
            rows: list[list[str] | None] = list(
                csv.reader(lines, delimiter=self.delimiter, strict=True)
            )
        except csv.Error:
            pass
        else:
            if len(rows) == len(lines):  # else a quote opened a field that ran on
                return rows
        parsed: list[list[str] | None] = []
        for line in lines:
            try:
                parsed.append(next(csv.reader([line], delimiter=self.delimiter, strict=True)))
            except csv.Error:
                parsed.append(None)  # broken quoting: a MALFORMED_ROW
        return parsed

    def _sort_rows(
        self,
        rows: list[list[str]],
        lines: Iterable[int],
        spans: Iterable[int],
        column: int,
        broken: AbstractSet[int] = frozenset(),
    ) -> Chunk:
        """Check each parsed row for blankness, width and undecodable bytes.

        Args:
            rows: parsed rows.
            lines: the line each row starts on.
            spans: the physical lines each row takes.
            column: the phone column.
            broken: positions of rows that failed to parse (each holds its raw line).
        """
        width = len(self.header)
        ragged = int(RowProblem.RAGGED_ROW)
        undecodable = int(RowProblem.UNDECODABLE)
        missing = int(RowProblem.MISSING_NUMBER)
        check_bytes = self.undecodable
        chunk = Chunk()
        malformed = int(RowProblem.MALFORMED_ROW)
        for position, (row, line, span) in enumerate(zip(rows, lines, spans, strict=True)):
            kept: list[str] | None = None
            if position in broken:
                problem, phone, kept = malformed, "", row
            elif not row:
                chunk.blank_lines += 1
                continue
            elif len(row) != width:
                problem, phone, kept = ragged, "", row
            elif check_bytes and has_undecodable(self.delimiter.join(row)):
                problem, phone = undecodable, ""
            else:
                phone = row[column].strip()
                problem = 0 if phone else missing
            if span > 1:
                chunk.spans[len(chunk.rows)] = span
            chunk.rows.append(kept)
            chunk.lines.append(line)
            chunk.phones.append(phone)
            chunk.problems.append(problem)
        return chunk

    def _careful_block(self, start: int, stop: int, column: int) -> tuple[Chunk, int]:
        """Parse record by record from ``start`` until a record ends at or after ``stop``.

        A record that fails to parse keeps only its first line, as a
        MALFORMED_ROW, and parsing starts again on the next line, so a stray
        quote cannot swallow the rows after it.

        Returns:
            The chunk, and the index of the first line it did not use.
        """
        rows: list[list[str]] = []
        lines: list[int] = []
        spans: list[int] = []
        broken: set[int] = set()  # positions in rows of records that failed to parse
        while start < stop:
            reader = self._reader(start)
            consumed = 0
            try:
                for row in reader:
                    rows.append(row)
                    lines.append(self._first_line + start + consumed)
                    spans.append(reader.line_num - consumed)
                    consumed = reader.line_num
                    if start + consumed >= stop:
                        break
                start += consumed
                if start < stop:  # the reader ran out of lines
                    start = stop
            except csv.Error:
                bad = start + consumed
                broken.add(len(rows))
                rows.append([self._lines[bad].rstrip("\r\n")])
                lines.append(self._first_line + bad)
                spans.append(1)
                start = bad + 1
        return self._sort_rows(rows, lines, spans, column, broken), start


def open_lead_file(
    path: Path, encoding: str = "", delimiter: str = "", *, no_header: bool = False
) -> LeadFile:
    """Open a lead file (CSV or TSV, plain or ``.gz``) and read its header; close it after use.

    Raises:
        InputFileError: the file cannot be read or has no header.
        ConfigError: ``encoding`` names no codec.
    """
    return LeadFile(path, encoding, delimiter, no_header=no_header)
