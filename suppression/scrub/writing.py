"""Sorting a scrub's rows into the clean, suppressed and invalid files, in input order.

Every row is copied from its input lines, byte for byte (quoting, spacing,
line breaks inside quotes, line ends), with the extra columns inserted before
its line end. Only ragged and broken rows are written again with the csv
module, to fit them to the header's width. Copying lines is several times
faster than formatting fields again, and it changes nothing the lead file's
owner wrote.
"""

from __future__ import annotations

import itertools
import operator
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from suppression.checker import Verdict
from suppression.e164 import InvalidReason
from suppression.scrub.answers import Answers
from suppression.scrub.outputs import OutputKind, OutputSet
from suppression.scrub.progress import ScrubProgress
from suppression.scrub.reading import LeadFile, RowProblem

__all__ = ["INVALID_COLUMNS", "SUPPRESSED_COLUMNS", "RowTable", "write_outputs"]

SUPPRESSED_COLUMNS = ("suppressed_by",)
INVALID_COLUMNS = ("invalid_reason", "line")
FAILED_CLOSED_LABEL = "failed-closed"
_REASON_NAMES = {int(reason): reason.name for reason in InvalidReason} | {
    int(problem): problem.name for problem in RowProblem
}


@dataclass(slots=True)
class RowTable:
    """Every row read, as parallel lists."""

    rows: list[list[str] | None] = field(default_factory=list)
    """Fields of the rows written again (ragged or broken); None for rows copied from input."""
    lines: list[int] = field(default_factory=list)
    """The input line each row starts on."""
    problems: list[int] = field(default_factory=list)
    uids: list[int] = field(default_factory=list)
    """1 + the index of the row's phone string among the distinct strings; 0 if unchecked."""
    spans: dict[int, int] = field(default_factory=dict)
    """Physical lines per row, for the rows that span several; see :attr:`Chunk.spans`."""
    distinct: int = 0
    blank_lines: int = 0


def _quote(text: str, delimiter: str) -> str:
    """One field as the csv module's minimal quoting would write it."""
    if delimiter in text or '"' in text or "\n" in text or "\r" in text:
        return '"' + text.replace('"', '""') + '"'
    return text


def _fit(row: list[str], width: int, delimiter: str) -> list[str]:
    """Make a ragged row as wide as the header, so the invalid file stays rectangular.

    Short rows are padded with empty fields; the overflow of a long row is
    joined with the delimiter into its last field (which the writer then
    quotes), so no data is lost.
    """
    if len(row) == width:
        return row
    if len(row) < width:
        return row + [""] * (width - len(row))
    return [*row[: width - 1], delimiter.join(row[width - 1 :])]


def _line_end(text: str, body: str) -> str:
    return text[len(body) :]


def _with_tail(text: str, tail: str) -> str:
    """``text`` (lines ending in a line end) with ``tail`` inserted before its last line end."""
    body = text.rstrip("\r\n")
    return body + tail + text[len(body) :]


class _Emitter:
    """Writes selected rows to one output: input lines copied, ragged and broken rows rewritten."""

    def __init__(self, lead: LeadFile, table: RowTable) -> None:
        self._raw = lead.lines
        self._delimiter = lead.delimiter
        self._width = len(lead.header)
        self._rows = table.rows
        self._spans = table.spans
        self._lines = np.asarray(table.lines, dtype=np.int64)
        special = np.fromiter(
            map(operator.is_not, table.rows, itertools.repeat(None)),
            dtype=bool,
            count=len(table.rows),
        )
        if table.spans:
            special[np.fromiter(table.spans.keys(), dtype=np.int64, count=len(table.spans))] = True
        self._special: npt.NDArray[np.bool_] = special

    def tail(self, fields: list[str]) -> str:
        """The extra fields of a row, each with its delimiter before it."""
        delimiter = self._delimiter
        return "".join([delimiter + _quote(value, delimiter) for value in fields])

    def emit(
        self,
        stream: IO[str],
        writer: Any,
        at: npt.NDArray[np.int64],
        extras: list[list[str]] | None = None,
    ) -> None:
        """Write rows ``at``, the i-th followed by the fields ``extras[i]``."""
        raw = self._raw
        starts = (self._lines[at] - 1).tolist()
        tails = [self.tail(fields) for fields in extras] if extras is not None else None
        if not self._special[at].any():
            texts = list(map(raw.__getitem__, starts))
            if tails is None:
                stream.writelines(texts)
                return
            bodies = list(map(str.rstrip, texts, itertools.repeat("\r\n")))
            ends = map(_line_end, texts, bodies)
            stream.writelines(map(operator.add, map(operator.add, bodies, tails), ends))
            return
        rows = self._rows
        spans = self._spans
        for position, (index, start) in enumerate(zip(at.tolist(), starts, strict=True)):
            row = rows[index]
            if row is not None:
                fields = extras[position] if extras is not None else []
                writer.writerow([*_fit(row, self._width, self._delimiter), *fields])
                continue
            span = spans.get(index, 1)
            text = raw[start] if span == 1 else "".join(raw[start : start + span])
            stream.write(text if tails is None else _with_tail(text, tails[position]))


def _count_distinct(values: npt.NDArray[np.uint64]) -> int:
    """Distinct values, by sorting: numpy's hash-based unique takes seconds on a million."""
    if values.size == 0:
        return 0
    ordered = np.sort(values)
    return int(np.count_nonzero(ordered[1:] != ordered[:-1])) + 1


def write_outputs(
    lead: LeadFile,
    table: RowTable,
    answers: Answers,
    outputs: OutputSet,
    progress: ScrubProgress,
) -> dict[str, Any]:
    """Sort rows into the three files, in input order.

    Returns:
        The summary's counts: rows in and per file, duplicates, distinct
        numbers, rows per list and per invalid reason.
    """
    total = len(table.rows)
    progress.total("writing", total)
    uids = np.array(table.uids, dtype=np.int64) - 1
    problems = np.array(table.problems, dtype=np.int64)
    checked = problems == 0
    safe = np.where(checked, uids, 0)
    verdicts = np.full(total, Verdict.INVALID, dtype=np.uint8)
    masks = np.zeros(total, dtype=np.uint64)
    reasons = problems.copy()
    if answers.verdicts.size:
        verdicts[checked] = answers.verdicts[safe[checked]]
        masks[checked] = answers.masks[safe[checked]]
        reasons[checked] = answers.reasons[safe[checked]]
    clean_at = np.flatnonzero(verdicts == Verdict.ALLOWED)
    suppressed_at = np.flatnonzero(verdicts == Verdict.SUPPRESSED)
    invalid_at = np.flatnonzero(verdicts == Verdict.INVALID)
    # Every INVALID answer carries a reason; this only guards the summary's sums.
    reasons[invalid_at[reasons[invalid_at] == 0]] = InvalidReason.UNPARSEABLE

    emitter = _Emitter(lead, table)
    header = lead.lines[lead.header_line - 1]
    dialect = (lead.delimiter, lead.line_terminator)

    clean = outputs.writer(OutputKind.CLEAN, *dialect)
    stream = outputs.stream(OutputKind.CLEAN)
    stream.write(header)
    emitter.emit(stream, clean, clean_at)
    progress.advance("writing", len(clean_at))

    names = answers.list_names
    labels: dict[int, list[str]] = {}
    matched: list[list[str]] = []
    for mask in masks[suppressed_at].tolist():
        label = labels.get(mask)
        if label is None:
            chosen = [name for bit, name in enumerate(names) if mask >> bit & 1]
            label = labels[mask] = [";".join(chosen) or FAILED_CLOSED_LABEL]
        matched.append(label)
    suppressed = outputs.writer(OutputKind.SUPPRESSED, *dialect)
    stream = outputs.stream(OutputKind.SUPPRESSED)
    stream.write(_with_tail(header, emitter.tail(list(SUPPRESSED_COLUMNS))))
    emitter.emit(stream, suppressed, suppressed_at, matched)
    progress.advance("writing", len(suppressed_at))

    lines = table.lines
    reason_and_line = [
        [_REASON_NAMES[reason], str(lines[index])]
        for index, reason in zip(invalid_at.tolist(), reasons[invalid_at].tolist(), strict=True)
    ]
    invalid = outputs.writer(OutputKind.INVALID, *dialect)
    stream = outputs.stream(OutputKind.INVALID)
    stream.write(_with_tail(header, emitter.tail(list(INVALID_COLUMNS))))
    emitter.emit(stream, invalid, invalid_at, reason_and_line)
    progress.advance("writing", len(invalid_at))

    valid = verdicts != Verdict.INVALID
    distinct = _count_distinct(answers.values[safe[valid]])
    per_reason = np.bincount(reasons[invalid_at], minlength=1)
    reason_codes = np.flatnonzero(per_reason)
    one = np.uint64(1)
    suppressed_masks = masks[suppressed_at]
    return {
        "rows_in": total,
        "clean": len(clean_at),
        "suppressed": len(suppressed_at),
        "invalid": len(invalid_at),
        "duplicates": int(np.count_nonzero(valid)) - distinct,
        "distinct_numbers": distinct,
        "suppressed_per_list": {
            name: int(np.count_nonzero((suppressed_masks >> np.uint64(bit)) & one))
            for bit, name in enumerate(names)
        },
        "invalid_per_reason": {
            _REASON_NAMES[code]: int(per_reason[code]) for code in reason_codes.tolist()
        },
    }
