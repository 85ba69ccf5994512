"""Registry and list files into E.164 integers: US full-list downloads, CSV, plain lists.

Formats (``--input-format``):

- ``ten_digit``: the US registry's full-list download, one number per line as
  ten digits (``2125550123``) or as area code and number (``212,5550123``).
  Read with ``bytes`` and ``numpy`` only, at tens of millions of numbers per
  second; no per-line parsing.
- ``csv``: a CSV file with a header; ``--column`` names the number column.
  Values may take any number format (``--region`` for national forms).
- ``plain``: one number per line in any format, ``#`` comments, ``+1900xxxxxxx`` blocks.
- ``auto``: ``csv`` for ``*.csv``, ``ten_digit`` when the first lines look like
  it, else ``plain``.

Any of them may be plain, ``.gz`` or ``.zip`` (every member, in name order).
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from loader.progress import ReadProgress
from suppression.compressed import read_bytes
from suppression.e164 import NumberBlock
from suppression.errors import ConfigError, NumberFileError
from suppression.numberfile import invalid_lines_message, normalize_lines

__all__ = [
    "FORMATS",
    "ImportedNumbers",
    "TenDigitStream",
    "detect_format",
    "parse_ten_digit",
    "read_numbers",
    "ten_digit_stream",
]

FORMATS = ("auto", "ten_digit", "csv", "plain")
NANP_PREFIX = 10_000_000_000
"""+1 in front of a ten-digit NANP number."""

_TEN_DIGIT_LINE = re.compile(rb"^\s*(\d{10}|\d{3},\d{7})\s*$")
CHUNK_BYTES = 8 << 20
"""Ten-digit input is parsed in pieces of this size: about 760,000 numbers each."""
_POWERS = (10 ** np.arange(9, -1, -1, dtype=np.uint64)).astype(np.uint64)


@dataclass(slots=True)
class ImportedNumbers:
    """What a file held: numbers (sorted, distinct), blocks, and lines that were not numbers."""

    numbers: npt.NDArray[np.uint64]
    blocks: list[NumberBlock] = field(default_factory=list)
    bad_lines: list[tuple[int, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.numbers) + sum(len(block) for block in self.blocks)


def detect_format(path: Path, data: bytes) -> str:
    """Guess the format from the name and the first lines."""
    name = path.name.lower()
    for suffix in (".gz", ".zip"):
        name = name.removesuffix(suffix)
    if name.endswith(".csv"):
        return "csv"
    sample = [line for line in data[:4096].splitlines()[:20] if line.strip()]
    if sample and all(_TEN_DIGIT_LINE.match(line) for line in sample[:-1] or sample):
        return "ten_digit"
    return "plain"


def parse_ten_digit(
    data: bytes,
    *,
    skip_invalid: bool = False,
    progress: ReadProgress | None = None,
    where: str = "the input",
) -> ImportedNumbers:
    """Parse the US registry format: ten digits or ``AAA,NNNNNNN`` per line, as +1 numbers.

    The data is parsed in pieces of about :data:`CHUNK_BYTES`, whole lines each,
    so that ``progress`` moves during one large file.

    Args:
        data: the file's bytes.
        skip_invalid: drop lines that are not ten-digit NANP numbers (they are
            reported in ``bad_lines``) instead of refusing the file.
        progress: called after each piece with its size in bytes and how many
            numbers it held.
        where: the input's name in messages (its path).

    Raises:
        NumberFileError: some lines are not numbers and ``skip_invalid`` is off.
    """
    parts: list[npt.NDArray[np.uint64]] = []
    bad: list[tuple[int, str]] = []
    line = 1
    for piece in _pieces(data, CHUNK_BYTES):
        values, piece_bad = _ten_digit_values(piece, line)
        parts.append(values)
        bad += piece_bad
        line += piece.count(b"\n")
        if progress is not None:
            progress(len(piece), len(values))
    if bad and not skip_invalid:
        raise _bad_lines_error(where, bad)
    values = np.concatenate(parts) if parts else _empty()
    return ImportedNumbers(_distinct(values + np.uint64(NANP_PREFIX)), bad_lines=bad)


def _pieces(data: bytes, size: int) -> Iterator[bytes]:
    """``data`` in pieces of at least ``size`` bytes that end at a line end (the last may not)."""
    start = 0
    while start < len(data):
        end = data.find(b"\n", start + size - 1)
        end = len(data) if end < 0 else end + 1
        yield data[start:end]
        start = end


def _ten_digit_values(
    piece: bytes, first_line: int
) -> tuple[npt.NDArray[np.uint64], list[tuple[int, str]]]:
    """Ten-digit values (without the +1) of whole lines, and the lines that are not numbers."""
    cleaned = piece.replace(b"\r", b"").replace(b",", b"")
    if cleaned and not cleaned.endswith(b"\n"):
        cleaned += b"\n"
    values = _fixed_width(cleaned)
    if values is None:
        return _split_lines(cleaned, first_line)
    return values, []


def _fixed_width(cleaned: bytes) -> npt.NDArray[np.uint64] | None:
    """The fast path: every line exactly ten digits, so the bytes form an (n, 11) grid.

    Horner's rule over the ten digit columns: ten vector passes, no per-line
    Python: 6 to 17 million numbers a second here, whole read included, depending on load.
    """
    if len(cleaned) % 11:
        return None
    grid = np.frombuffer(cleaned, dtype=np.uint8).reshape(-1, 11)
    if not (grid[:, 10] == ord("\n")).all():
        return None
    values = np.zeros(len(grid), dtype=np.uint64)
    for position in range(10):
        column = grid[:, position]
        lowest = ord("2") if position == 0 else ord("0")  # NANP area codes start at 2
        if len(column) and (column.min() < lowest or column.max() > ord("9")):
            return None
        values *= np.uint64(10)
        values += column
    values -= np.uint64(ord("0") * 1_111_111_111)
    return values


def _split_lines(
    cleaned: bytes, first_line: int
) -> tuple[npt.NDArray[np.uint64], list[tuple[int, str]]]:
    """The general path: blank lines, stray spaces, a header or bad lines."""
    lines = cleaned.split(b"\n")
    good: list[bytes] = []
    bad: list[tuple[int, str]] = []
    for number, raw in enumerate(lines, start=first_line):
        line = raw.strip()
        if not line or line.startswith(b"#"):
            continue
        if len(line) == 10 and line.isdigit() and line[0] >= ord("2"):
            good.append(line)
        else:
            bad.append((number, "not a ten-digit number"))
    values = np.array(good, dtype=np.bytes_).astype(np.uint64) if good else _empty()
    return values, bad


def read_numbers(
    path: Path,
    input_format: str = "auto",
    *,
    column: str = "",
    region: str = "",
    skip_invalid: bool = False,
    progress: ReadProgress | None = None,
) -> ImportedNumbers:
    """Read one file in any supported format.

    Args:
        path: the file (plain, ``.gz`` or ``.zip``).
        input_format: one of :data:`FORMATS`.
        column: the CSV column that holds the numbers.
        region: default region for national number forms.
        skip_invalid: report lines that are not numbers instead of refusing the file.
        progress: called as the file is parsed with the bytes done and the
            numbers found; the bytes are counted of the file's stored size (a
            compressed file adds up to its size on disk) and add up to it.

    Raises:
        ConfigError: unknown format, missing file, or missing CSV column.
        NumberFileError: lines that are not numbers, without ``skip_invalid``.
    """
    if input_format not in FORMATS:
        raise ConfigError(f"--input-format {input_format!r}: use one of {', '.join(FORMATS)}")
    data = read_bytes(path)
    meter = _Meter(progress, path.stat().st_size)
    chosen = detect_format(path, data) if input_format == "auto" else input_format
    if chosen == "ten_digit":
        scale = meter.stored / max(len(data), 1)

        def report(size: int, numbers: int) -> None:
            meter.add(size * scale, numbers)

        result = parse_ten_digit(data, skip_invalid=skip_invalid, progress=report, where=str(path))
        meter.finish()
        return result
    text = data.decode("utf-8-sig", errors="replace")
    lines = text.count("\n") + 1
    if chosen == "csv":
        result = _parse_csv(path, text, column, region, skip_invalid, meter, lines)
    else:
        numbered = ((n, line.strip()) for n, line in enumerate(text.splitlines(), start=1))
        rows = ((n, line) for n, line in numbered if line and not line.startswith("#"))
        result = _normalize(path, meter.rows(rows, lines), region, skip_invalid)
    meter.finish()
    return result


class _Meter:
    """Turns a reader's progress into stored bytes and numbers for a :data:`ReadProgress`."""

    _EVERY = 16_384
    """Rows between reports from the per-line formats (each row costs microseconds anyway)."""

    def __init__(self, report: ReadProgress | None, stored: int) -> None:
        self.stored = stored
        self._report = report
        self._done = 0.0
        self._sent = 0

    def add(self, size: float, numbers: int) -> None:
        """``size`` more stored bytes read (fractions carried), holding ``numbers`` numbers."""
        self._done = min(self._done + size, float(self.stored))
        whole = int(self._done)
        if self._report is not None:
            self._report(whole - self._sent, numbers)
        self._sent = whole

    def rows(self, rows: Iterable[tuple[int, str]], lines: int) -> Iterator[tuple[int, str]]:
        """Pass ``(line number, text)`` rows on, reporting by line number out of ``lines``."""
        if self._report is None:
            yield from rows
            return
        count = 0
        for row in rows:
            yield row
            count += 1
            if count % self._EVERY == 0:
                self.add(self.stored * min(row[0], lines) / lines - self._done, self._EVERY)
        self.add(0, count % self._EVERY)

    def finish(self) -> None:
        """Report whatever is left of the stored size, so that the totals add up."""
        if self._report is not None and self._sent < self.stored:
            self._report(self.stored - self._sent, 0)
        self._sent = self.stored
        self._done = float(self.stored)


def _parse_csv(
    path: Path,
    text: str,
    column: str,
    region: str,
    skip_invalid: bool,
    meter: _Meter,
    lines: int,
) -> ImportedNumbers:
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        return ImportedNumbers(_empty())
    names = [name.strip() for name in header]
    if not column:
        raise ConfigError(f"{path} is CSV: name the number column with --column (one of {names})")
    if column not in names:
        raise ConfigError(f"{path} has no column {column!r}; its columns are {names}")
    index = names.index(column)
    rows = (
        (line, row[index].strip())
        for line, row in enumerate(reader, start=2)
        if len(row) > index and row[index].strip()
    )
    return _normalize(path, meter.rows(rows, lines), region, skip_invalid)


def _normalize(
    path: Path, rows: Iterable[tuple[int, str]], region: str, skip_invalid: bool
) -> ImportedNumbers:
    """Normalize ``(line number, text)`` pairs with phonenumbers' fallback; blocks allowed."""
    loaded = normalize_lines(rows, region)
    bad = [(line, reason.name.lower()) for line, reason in loaded.skipped_lines]
    if bad and not skip_invalid:
        raise _bad_lines_error(str(path), bad)
    array = _distinct(loaded.numbers) if len(loaded.numbers) else _empty()
    return ImportedNumbers(array, loaded.blocks, bad)


def _bad_lines_error(where: str, bad: list[tuple[int, str]]) -> NumberFileError:
    return NumberFileError(f"{invalid_lines_message(where, bad)}; fix them or pass --skip-invalid")


def _distinct(values: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """Sorted and without repeats; sorted input also builds a bitmap many times faster.

    (``np.unique`` took seconds for 5 million numbers here; sort and compare takes 0.1 s.)
    """
    ordered = np.sort(values)
    if len(ordered) < 2:
        return ordered
    keep = np.empty(len(ordered), dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


def _empty() -> npt.NDArray[np.uint64]:
    return np.zeros(0, dtype=np.uint64)


class TenDigitStream:
    """A ten-digit registry file read piece by piece, never whole.

    The full US registry is a 2.9 GB download: read whole, then parsed, then
    sorted, it took several times that in memory. Iterating :meth:`pieces`
    holds one piece of about :data:`CHUNK_BYTES` at a time; a caller adds
    each piece's numbers to a bitmap as it comes.
    """

    def __init__(
        self, path: Path, *, skip_invalid: bool = False, progress: ReadProgress | None = None
    ) -> None:
        """Describe the read; nothing is opened until :meth:`pieces`."""
        self.path = path
        self.skip_invalid = skip_invalid
        self.progress = progress
        self.bad_lines: list[tuple[int, str]] = []
        """Lines that were not numbers (complete once :meth:`pieces` is exhausted)."""

    def pieces(self) -> Iterator[npt.NDArray[np.uint64]]:
        """Each piece's numbers as E.164 integers (+1), unsorted, possibly repeated.

        Raises:
            NumberFileError: lines that are not numbers, without ``skip_invalid``
                (after the last piece), or the file cannot be read.
        """
        line = 1
        try:
            with self.path.open("rb") as raw:
                stream = gzip.GzipFile(fileobj=raw) if _gzipped(self.path) else raw
                carry = b""
                done = 0
                while True:
                    block = stream.read(CHUNK_BYTES)
                    piece = carry + block
                    end = piece.rfind(b"\n") + 1 if block else len(piece)
                    piece, carry = piece[:end], piece[end:]
                    if piece:
                        values, bad = _ten_digit_values(piece, line)
                        self.bad_lines += bad
                        line += piece.count(b"\n")
                        if self.progress is not None:
                            stored = raw.tell()
                            self.progress(stored - done, len(values))
                            done = stored
                        yield values + np.uint64(NANP_PREFIX)
                    if not block:
                        break
        except (OSError, EOFError, zlib.error) as exc:
            raise NumberFileError(f"cannot read {self.path}: {exc}") from None
        if self.bad_lines and not self.skip_invalid:
            raise _bad_lines_error(str(self.path), self.bad_lines)


def ten_digit_stream(
    path: Path,
    input_format: str,
    *,
    skip_invalid: bool = False,
    progress: ReadProgress | None = None,
) -> TenDigitStream | None:
    """A piece-by-piece reader when ``path`` is a ten-digit file stored plain or gzipped.

    None for any other format or a zip: :func:`read_numbers` reads those whole.
    """
    if input_format not in ("auto", "ten_digit") or path.suffix.lower() == ".zip":
        return None
    if input_format == "auto":
        try:
            with path.open("rb") as raw:
                head = (gzip.GzipFile(fileobj=raw) if _gzipped(path) else raw).read(4096)
        except (OSError, EOFError, zlib.error):
            return None  # read_numbers reports it
        if detect_format(path, head) != "ten_digit":
            return None
    return TenDigitStream(path, skip_invalid=skip_invalid, progress=progress)


def _gzipped(path: Path) -> bool:
    return path.suffix.lower() == ".gz"
