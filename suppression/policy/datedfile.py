"""Dated list files: CSV of a number and a day per row, for ``--dated-list NAME=FILE``.

Format: a header row naming a ``number`` column and a ``date`` column
(``YYYY-MM-DD``), in any order, other columns ignored; plain or ``.gz``.
Numbers in any format (national forms need ``--region``). A file with any
bad row is refused whole, naming the line: an exemption list that silently
lost rows would suppress people it should not, a reassigned list that lost
rows would let a reassigned number be dialed.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

from suppression.compressed import read_bytes
from suppression.e164 import InvalidReason, Normalizer
from suppression.errors import ConfigError
from suppression.policy.dated import MAX_DAY, DatedList

__all__ = ["load_dated_file", "parse_dated_spec"]

_EPOCH = dt.date(1970, 1, 1)


def parse_dated_spec(spec: str) -> tuple[str, Path]:
    """``NAME=FILE`` into its parts.

    Raises:
        ConfigError: not of that form.
    """
    name, sep, file = spec.partition("=")
    if not sep or not name.strip() or not file.strip():
        raise ConfigError(f"--dated-list {spec!r} is not NAME=FILE (a CSV of number,date)")
    return name.strip(), Path(file.strip())


def load_dated_file(path: Path, region: str = "") -> DatedList:
    """Read a dated list file; a number given twice keeps its last row's day.

    Raises:
        ConfigError: unreadable, no number or date column, or a bad row (its line named).
    """
    try:
        text = read_bytes(path).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"dated list {path}: not UTF-8 text") from exc
    reader = csv.reader(io.StringIO(text))
    header = [name.strip().lower() for name in next(reader, [])]
    if "number" not in header or "date" not in header:
        raise ConfigError(
            f"dated list {path}: the first row must name a 'number' and a 'date' column "
            f"(found {header})"
        )
    at_number, at_date = header.index("number"), header.index("date")
    normalize = Normalizer().normalize
    numbers: list[int] = []
    days: list[int] = []
    for line, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) <= max(at_number, at_date):
            raise ConfigError(f"dated list {path} line {line}: missing the number or the date")
        value, reason = normalize(row[at_number].strip(), region)
        if reason is not InvalidReason.VALID:
            raise ConfigError(
                f"dated list {path} line {line}: not a phone number ({reason.name}); fix or "
                "remove the row, nothing was loaded"
            )
        try:
            day = (dt.date.fromisoformat(row[at_date].strip()) - _EPOCH).days
        except ValueError:
            raise ConfigError(
                f"dated list {path} line {line}: {row[at_date].strip()[:20]!r} is not a date "
                "(YYYY-MM-DD)"
            ) from None
        if not 0 <= day <= MAX_DAY:
            raise ConfigError(
                f"dated list {path} line {line}: the date is before 1970 or after 2149"
            )
        numbers.append(value)
        days.append(day)
    return DatedList.build(numbers, days)
