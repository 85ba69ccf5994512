"""Sorting a scrub's rows into the clean, suppressed, invalid (and deferred) files, in input order.

Every row is copied from its input lines, byte for byte (quoting, spacing,
line breaks inside quotes, line ends), with the extra columns inserted before
its line end. Only ragged and broken rows are written again with the csv
module, to fit them to the header's width. Copying lines is several times
faster than formatting fields again, and it changes nothing the lead file's
owner wrote.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import operator
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from pyroaring import BitMap64

from suppression.checker import Verdict
from suppression.e164 import InvalidReason
from suppression.scrub.answers import Answers
from suppression.scrub.distinct import SeenNumbers, sorted_distinct
from suppression.scrub.encoding import ERRORS
from suppression.scrub.fastpath import FastChunk
from suppression.scrub.outputs import ROW_OUTPUTS, OutputKind, OutputSet, OutputStream
from suppression.scrub.reading import Chunk, LeadFile, RowProblem
from suppression.scrub.slots import SlotRef

__all__ = [
    "DEFERRED_COLUMNS",
    "INVALID_COLUMNS",
    "SUPPRESSED_COLUMNS",
    "BlockOutputs",
    "ChunkWriter",
    "ReadAnswers",
    "Tally",
    "WriteLayout",
    "assemble",
    "earliest_text",
    "write_layout",
]


def write_layout(lead: LeadFile) -> WriteLayout:
    """The :class:`WriteLayout` of ``lead``."""
    encoding = "utf-8" if lead.encoding == "utf-8-sig" else lead.encoding
    return WriteLayout(encoding, lead.delimiter, lead.line_terminator, len(lead.header))


SUPPRESSED_COLUMNS = ("suppressed_by",)
INVALID_COLUMNS = ("invalid_reason", "line")
DEFERRED_COLUMNS = ("earliest_dial_utc",)
"""Under a policy: when a deferred row may first be dialed, ISO 8601 in UTC."""
FAILED_CLOSED_LABEL = "failed-closed"
_DROPPED = 255
"""A verdict no output takes: a duplicate row that ``--dedupe`` leaves out."""
_REASON_NAMES = {int(reason): reason.name for reason in InvalidReason} | {
    int(problem): problem.name for problem in RowProblem
}


@dataclass(slots=True)
class Tally:
    """The summary's counts, added up chunk by chunk (and kept in a resume checkpoint)."""

    rows_in: int = 0
    written: dict[str, int] = field(default_factory=dict)
    """Rows per output file (``clean``, ``suppressed``, ``invalid``)."""
    duplicates: int = 0
    dropped: int = 0
    """Duplicate rows left out by ``--dedupe``."""
    distinct_numbers: int = 0
    blank_lines: int = 0
    suppressed_per_list: dict[str, int] = field(default_factory=dict)
    invalid_per_reason: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain data, for the checkpoint."""
        return {name: getattr(self, name) for name in self.__slots__}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Tally:
        """Read :meth:`to_dict`'s output back."""
        return cls(**{name: data[name] for name in cls.__slots__})

    def summary_counts(self) -> dict[str, Any]:
        """The counts as :class:`ScrubSummary` fields."""
        return {
            "rows_in": self.rows_in,
            "clean": self.written.get(OutputKind.CLEAN.value, 0),
            "suppressed": self.written.get(OutputKind.SUPPRESSED.value, 0),
            "invalid": self.written.get(OutputKind.INVALID.value, 0),
            "deferred": self.written.get(OutputKind.DEFERRED.value, 0),
            "duplicates": self.duplicates,
            "duplicates_dropped": self.dropped,
            "distinct_numbers": self.distinct_numbers,
            "blank_lines": self.blank_lines,
            "suppressed_per_list": dict(self.suppressed_per_list),
            "invalid_per_reason": dict(sorted(self.invalid_per_reason.items())),
        }


def earliest_text(ms: int) -> str:
    """``ms`` since the epoch as ISO 8601 in UTC, to the second: ``2026-11-26T14:00:00Z``."""
    return dt.datetime.fromtimestamp(ms // 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _add(counts: dict[str, int], name: str, count: int) -> None:
    if count:
        counts[name] = counts.get(name, 0) + count


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
    """Writes selected rows of one chunk: input lines copied, ragged and broken rows rewritten."""

    def __init__(self, chunk: Chunk, delimiter: str, width: int) -> None:
        self._raw = chunk.text
        self._first = chunk.first_line
        self._delimiter = delimiter
        self._width = width
        self._rows = chunk.rows
        self._spans = chunk.spans
        self._lines = np.asarray(chunk.lines, dtype=np.int64)
        special = np.fromiter(
            map(operator.is_not, chunk.rows, itertools.repeat(None)),
            dtype=bool,
            count=len(chunk.rows),
        )
        if chunk.spans:
            special[np.fromiter(chunk.spans.keys(), dtype=np.int64, count=len(chunk.spans))] = True
        self._special: npt.NDArray[np.bool_] = special

    def tail(self, fields: list[str]) -> str:
        """The extra fields of a row, each with its delimiter before it."""
        return _tail(fields, self._delimiter)

    def emit(
        self,
        stream: OutputStream,
        writer: Any,
        at: npt.NDArray[np.int64],
        extras: list[list[str]] | None = None,
    ) -> None:
        """Write rows ``at``, the i-th followed by the fields ``extras[i]``."""
        raw = self._raw
        starts = (self._lines[at] - self._first).tolist()
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


_EXTRA_COLUMNS: dict[OutputKind, tuple[str, ...]] = {
    OutputKind.CLEAN: (),
    OutputKind.SUPPRESSED: SUPPRESSED_COLUMNS,
    OutputKind.INVALID: INVALID_COLUMNS,
    OutputKind.DEFERRED: DEFERRED_COLUMNS,
}


def _policy_labels(
    answers: Answers,
    masks: npt.NDArray[np.uint64],
    checked: npt.NDArray[np.bool_],
    safe: npt.NDArray[np.int64],
    suppressed_at: npt.NDArray[np.int64],
) -> list[list[str]]:
    """``suppressed_by`` under a policy: the lists, as without one; else the rules that decided.

    A policy also suppresses numbers on no list (a reassigned number, a blocked
    number type, a zone whose window never opens): those name the rule.
    """
    rules = np.zeros(len(masks), dtype=np.uint64)
    rules[checked] = answers.rules[safe[checked]]
    names, rule_names = answers.list_names, answers.rule_names
    labels: dict[tuple[int, int], list[str]] = {}
    matched: list[list[str]] = []
    pairs = zip(masks[suppressed_at].tolist(), rules[suppressed_at].tolist(), strict=True)
    for mask, rule in pairs:
        label = labels.get((mask, rule))
        if label is None:
            chosen = [name for bit, name in enumerate(names) if mask >> bit & 1]
            if not chosen:
                chosen = [
                    FAILED_CLOSED_LABEL if name == "failed_closed" else name
                    for bit, name in enumerate(rule_names)
                    if rule >> bit & 1 and not name.startswith("list.")
                ]
            label = labels[(mask, rule)] = [";".join(chosen) or FAILED_CLOSED_LABEL]
        matched.append(label)
    return matched


def _tail(fields: list[str], delimiter: str) -> str:
    return "".join([delimiter + _quote(value, delimiter) for value in fields])


class ChunkWriter:
    """Sorts each chunk's rows into the row files, in input order, and counts them."""

    def __init__(
        self,
        lead: LeadFile,
        outputs: OutputSet,
        seen: BitMap64,
        *,
        dedupe: bool = False,
        deferred: bool = False,
    ) -> None:
        """Open the row files and write their headers (unless a resumed file has them).

        Args:
            lead: the input: dialect, header, header line.
            outputs: the set of temporary files.
            seen: every E.164 number of an earlier chunk (a resumed scrub's); the writer
                keeps its own set from there.
            dedupe: leave out rows whose number an earlier row had.
            deferred: the scrub decides under a policy: write the deferred file even
                if no row is deferred. Otherwise it is written only if a server
                (deciding under its default policy) defers a row.
        """
        self._delimiter = lead.delimiter
        self._width = len(lead.header)
        self._layout = write_layout(lead)
        self._seen = SeenNumbers(np.frombuffer(seen.to_array(), dtype=np.uint64))
        self._dedupe = dedupe
        self._outputs = outputs
        self._lead = lead
        self._streams: dict[OutputKind, OutputStream] = {}
        self._writers: dict[OutputKind, Any] = {}
        for kind in ROW_OUTPUTS:
            if kind is not OutputKind.DEFERRED or deferred or outputs.resumed(kind):
                self._open(kind)

    def _open(self, kind: OutputKind) -> None:
        lead, outputs = self._lead, self._outputs
        resumed = outputs.resumed(kind)
        self._writers[kind] = outputs.writer(kind, lead.delimiter, lead.line_terminator)
        self._streams[kind] = stream = outputs.stream(kind)
        if not resumed and lead.header_text:
            stream.write(
                _with_tail(lead.header_text, _tail(list(_EXTRA_COLUMNS[kind]), lead.delimiter))
            )

    def write(
        self, chunk: Chunk, uids: npt.NDArray[np.int64], answers: Answers, tally: Tally
    ) -> npt.NDArray[np.uint64]:
        """Write one chunk's rows and add its counts to ``tally``.

        Args:
            chunk: the rows.
            uids: per row, the index of its phone string in ``answers``; -1 if unchecked.
            answers: the answers for the chunk's distinct strings.
            tally: the running counts.

        Returns:
            The numbers first seen in this chunk, sorted (now also in ``seen``).
        """
        total = len(chunk.rows)
        problems = np.array(chunk.problems, dtype=np.int64)
        checked = problems == 0
        safe = np.where(checked, uids, 0)
        verdicts = np.full(total, Verdict.INVALID, dtype=np.uint8)
        masks = np.zeros(total, dtype=np.uint64)
        values = np.zeros(total, dtype=np.uint64)
        reasons = problems.copy()
        if answers.verdicts.size:
            verdicts[checked] = answers.verdicts[safe[checked]]
            masks[checked] = answers.masks[safe[checked]]
            reasons[checked] = answers.reasons[safe[checked]]
            values[checked] = answers.values[safe[checked]]
        invalid = verdicts == Verdict.INVALID
        # Every INVALID answer carries a reason; this only guards the summary's sums.
        reasons[invalid & (reasons == 0)] = InvalidReason.UNPARSEABLE
        valid_at = np.flatnonzero(~invalid)
        fresh, keep = self._first_seen(values[valid_at])
        tally.rows_in += total
        tally.blank_lines += chunk.blank_lines
        tally.distinct_numbers += len(fresh)
        tally.duplicates += len(valid_at) - len(fresh)
        if self._dedupe and len(keep) < len(valid_at):
            written = np.zeros(total, dtype=bool)
            written[invalid] = True
            written[valid_at[keep]] = True
            tally.dropped += total - int(np.count_nonzero(written))
            verdicts[~written] = _DROPPED

        emitter = _Emitter(chunk, self._delimiter, self._width)
        clean_at = np.flatnonzero(verdicts == Verdict.ALLOWED)
        emitter.emit(self._streams[OutputKind.CLEAN], self._writers[OutputKind.CLEAN], clean_at)
        _add(tally.written, OutputKind.CLEAN.value, len(clean_at))

        suppressed_at = np.flatnonzero(verdicts == Verdict.SUPPRESSED)
        names = answers.list_names
        if answers.rules.size:
            matched = _policy_labels(answers, masks, checked, safe, suppressed_at)
        else:
            labels: dict[int, list[str]] = {}
            matched = []
            for mask in masks[suppressed_at].tolist():
                label = labels.get(mask)
                if label is None:
                    chosen = [name for bit, name in enumerate(names) if mask >> bit & 1]
                    label = labels[mask] = [";".join(chosen) or FAILED_CLOSED_LABEL]
                matched.append(label)
        emitter.emit(
            self._streams[OutputKind.SUPPRESSED],
            self._writers[OutputKind.SUPPRESSED],
            suppressed_at,
            matched,
        )
        _add(tally.written, OutputKind.SUPPRESSED.value, len(suppressed_at))
        one = np.uint64(1)
        suppressed_masks = masks[suppressed_at]
        for bit, name in enumerate(names):
            hits = int(np.count_nonzero((suppressed_masks >> np.uint64(bit)) & one))
            tally.suppressed_per_list[name] = tally.suppressed_per_list.get(name, 0) + hits

        invalid_at = np.flatnonzero(invalid)
        lines = chunk.lines
        reason_and_line = [
            [_REASON_NAMES[reason], str(lines[index])]
            for index, reason in zip(invalid_at.tolist(), reasons[invalid_at].tolist(), strict=True)
        ]
        emitter.emit(
            self._streams[OutputKind.INVALID],
            self._writers[OutputKind.INVALID],
            invalid_at,
            reason_and_line,
        )
        _add(tally.written, OutputKind.INVALID.value, len(invalid_at))
        per_reason = np.bincount(reasons[invalid_at], minlength=1)
        for code in np.flatnonzero(per_reason).tolist():
            _add(tally.invalid_per_reason, _REASON_NAMES[code], int(per_reason[code]))

        deferred_at = np.flatnonzero(verdicts == Verdict.DEFERRED)
        if len(deferred_at):
            if OutputKind.DEFERRED not in self._streams:
                self._open(OutputKind.DEFERRED)
            earliest = np.zeros(total, dtype=np.int64)
            if answers.earliest_ms.size:
                earliest[checked] = answers.earliest_ms[safe[checked]]
            texts: dict[int, list[str]] = {}
            stamps = [
                texts.get(ms) or texts.setdefault(ms, [earliest_text(ms)])
                for ms in earliest[deferred_at].tolist()
            ]
            emitter.emit(
                self._streams[OutputKind.DEFERRED],
                self._writers[OutputKind.DEFERRED],
                deferred_at,
                stamps,
            )
            _add(tally.written, OutputKind.DEFERRED.value, len(deferred_at))
        return fresh

    def write_fast(
        self,
        chunk: FastChunk,
        uids: npt.NDArray[np.int64],
        answers: Answers,
        masks_read: npt.NDArray[np.uint64],
        tally: Tally,
        read: ReadAnswers | None = None,
        distinct: npt.NDArray[np.uint64] | None = None,
    ) -> npt.NDArray[np.uint64]:
        """Write one chunk read by the fast path, copying its rows' bytes (``--dedupe`` too).

        Args:
            chunk: the rows.
            uids: per text phone (``chunk.text_at``), its index in ``answers``.
            answers: the answers for the chunk's distinct text phones.
            masks_read: matched lists of each row whose number the fast path read
                (``chunk.values`` not 0), in row order, over ``answers.list_names``.
            tally: the running counts.
            read: a server's verdicts and reasons for those rows (remote mode); None:
                a row is SUPPRESSED exactly when it is on a list.
            distinct: the chunk's distinct valid numbers, sorted, if the caller has them:
                without ``--dedupe`` its rows are then not sorted here.

        Returns:
            The numbers first seen in this chunk, sorted.
        """
        decided = _decide(chunk, uids, answers, masks_read, read)
        verdicts, values = decided.verdicts, decided.values
        if distinct is not None and not self._dedupe:
            # Every row is written: counted as a block a worker assembled.
            block = _block_outputs(chunk, decided, answers.list_names, self._layout)
            block.rows, block.blank_lines, block.distinct = chunk.rows, chunk.blank_lines, distinct
            block.valid = int(np.count_nonzero(verdicts != Verdict.INVALID))
            return self.write_assembled(block, tally)
        tally.rows_in += chunk.rows
        tally.blank_lines += chunk.blank_lines
        valid_at = np.flatnonzero(verdicts != Verdict.INVALID)
        fresh, keep = self._first_seen(values[valid_at])
        tally.distinct_numbers += len(fresh)
        tally.duplicates += len(valid_at) - len(fresh)
        if self._dedupe and len(keep) < len(valid_at):
            written = verdicts == Verdict.INVALID
            written[valid_at[keep]] = True
            tally.dropped += chunk.rows - int(np.count_nonzero(written))
            verdicts[~written] = _DROPPED
        block = _block_outputs(chunk, decided, answers.list_names, self._layout)
        self.write_block(block, tally)
        return fresh

    def write_block(self, block: BlockOutputs, tally: Tally) -> None:
        """Write a block's outputs (made here or in a worker) and add its counts."""
        for kind, data in block.data.items():
            if data:
                self._streams[kind].write_bytes(data)
        for kind, count in block.counts.items():
            _add(tally.written, kind.value, count)
        for name, hits in block.per_list.items():
            tally.suppressed_per_list[name] = tally.suppressed_per_list.get(name, 0) + hits
        for reason, count in block.per_reason.items():
            _add(tally.invalid_per_reason, reason, count)

    def write_assembled(self, block: BlockOutputs, tally: Tally) -> npt.NDArray[np.uint64]:
        """Write a block a worker decided and assembled; count its duplicates here.

        Returns:
            The numbers first seen in this block, sorted.
        """
        fresh = block.distinct[self._seen.add(block.distinct)]
        tally.rows_in += block.rows
        tally.blank_lines += block.blank_lines
        tally.distinct_numbers += len(fresh)
        tally.duplicates += block.valid - len(fresh)
        self.write_block(block, tally)
        return fresh

    def _first_seen(
        self, values: npt.NDArray[np.uint64]
    ) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.int64]]:
        """The numbers not seen before (sorted), and the rows that first hold each of them."""
        if values.size == 0:
            return values, np.zeros(0, dtype=np.int64)
        order = np.argsort(values, kind="stable")
        ordered = values[order]
        starts = np.ones(ordered.size, dtype=bool)
        np.not_equal(ordered[1:], ordered[:-1], out=starts[1:])
        distinct, first = ordered[starts], order[starts]
        new = self._seen.add(distinct)
        return distinct[new], np.sort(first[new])


@dataclass(frozen=True, slots=True)
class WriteLayout:
    """What assembling a block's outputs needs to know of the file."""

    encoding: str
    """The codec rows are written in (``utf-8`` for ``utf-8-sig``: the BOM is the header's)."""
    delimiter: str
    terminator: str
    width: int


@dataclass(slots=True)
class BlockOutputs:
    """A block's rows as the bytes of each output, and their counts."""

    data: dict[OutputKind, bytes | memoryview]
    counts: dict[OutputKind, int]
    per_list: dict[str, int]
    per_reason: dict[str, int]
    rows: int = 0
    blank_lines: int = 0
    valid: int = 0
    """Rows with a valid number."""
    distinct: npt.NDArray[np.uint64] = field(default_factory=lambda: np.zeros(0, np.uint64))
    """The block's distinct valid numbers, sorted."""
    in_slot: dict[OutputKind, SlotRef] = field(default_factory=dict)
    """Outputs a worker put in a shared slot instead (their ``data`` is empty)."""


@dataclass(slots=True)
class _Decided:
    verdicts: npt.NDArray[np.uint8]
    masks: npt.NDArray[np.uint64]
    reasons: npt.NDArray[np.int64]
    values: npt.NDArray[np.uint64]


@dataclass(frozen=True, slots=True)
class ReadAnswers:
    """A server's answers for the rows whose number the fast path read, in row order.

    A server may answer SUPPRESSED with no list (its data too stale to trust, when it
    fails closed), or, in principle, INVALID: its verdicts are taken as they are.
    """

    verdicts: npt.NDArray[np.uint8]
    reasons: npt.NDArray[np.uint8]


def _decide(
    chunk: FastChunk,
    uids: npt.NDArray[np.int64],
    answers: Answers,
    masks_read: npt.NDArray[np.uint64],
    given: ReadAnswers | None = None,
) -> _Decided:
    """Each row's verdict, lists, reason and number, from the fast path's reading and answers."""
    total = chunk.rows
    values = chunk.values.copy()
    read = values != 0
    reasons = chunk.problems.copy()
    reasons[chunk.reasons != 0] = chunk.reasons[chunk.reasons != 0]
    verdicts = np.full(total, Verdict.INVALID, dtype=np.uint8)
    masks = np.zeros(total, dtype=np.uint64)
    masks[read] = masks_read
    if given is not None:
        verdicts[read] = given.verdicts
        reasons[read] = given.reasons
    else:
        # Arithmetic, not np.where: numpy 2.4's where costs 7x as much on a mixed condition.
        on_a_list = (masks_read != 0).view(np.uint8)
        verdicts[read] = Verdict.ALLOWED + (Verdict.SUPPRESSED - Verdict.ALLOWED) * on_a_list
    if chunk.text_at.size:
        at = chunk.text_at
        verdicts[at] = answers.verdicts[uids]
        masks[at] = answers.masks[uids]
        reasons[at] = answers.reasons[uids]
        values[at] = answers.values[uids]
    invalid = verdicts == Verdict.INVALID
    values[invalid] = 0
    reasons[invalid & (reasons == 0)] = InvalidReason.UNPARSEABLE
    return _Decided(verdicts, masks, reasons, values)


def assemble(
    chunk: FastChunk,
    uids: npt.NDArray[np.int64],
    answers: Answers,
    masks_read: npt.NDArray[np.uint64],
    layout: WriteLayout,
) -> BlockOutputs:
    """Decide and assemble a whole block's outputs (in a worker; without ``--dedupe``)."""
    decided = _decide(chunk, uids, answers, masks_read)
    block = _block_outputs(chunk, decided, answers.list_names, layout)
    valid = decided.values[decided.verdicts != Verdict.INVALID]
    block.rows, block.blank_lines, block.valid = chunk.rows, chunk.blank_lines, len(valid)
    block.distinct = sorted_distinct(valid)
    return block


def _block_outputs(
    chunk: FastChunk, decided: _Decided, names: tuple[str, ...], layout: WriteLayout
) -> BlockOutputs:
    verdicts, masks, reasons = decided.verdicts, decided.masks, decided.reasons
    out: dict[OutputKind, bytes | memoryview] = {}
    counts: dict[OutputKind, int] = {}

    clean_at = np.flatnonzero(verdicts == Verdict.ALLOWED)
    out[OutputKind.CLEAN] = _copy_rows(chunk, clean_at)
    counts[OutputKind.CLEAN] = len(clean_at)

    encoding, delimiter = layout.encoding, layout.delimiter
    # Every row of the block ends with LF (the usual file): each tail carries it, and a row
    # is copied as two pieces rather than three.
    ending = "\n" if bool((chunk.ends - chunk.bodies == 1).all()) else ""
    suppressed_at = np.flatnonzero(verdicts == Verdict.SUPPRESSED)
    suppressed_masks = masks[suppressed_at]
    labels: dict[int, bytes] = {}
    for mask in set(suppressed_masks.tolist()):
        chosen = [name for bit, name in enumerate(names) if mask >> bit & 1]
        text = _tail([";".join(chosen) or FAILED_CLOSED_LABEL], delimiter) + ending
        labels[mask] = text.encode(encoding, ERRORS)
    tails = list(map(labels.__getitem__, suppressed_masks.tolist()))
    out[OutputKind.SUPPRESSED] = _copy_with_tails(
        chunk, suppressed_at, tails, {}, layout, ended=bool(ending)
    )
    counts[OutputKind.SUPPRESSED] = len(suppressed_at)
    one = np.uint64(1)
    per_list = {
        name: int(np.count_nonzero((suppressed_masks >> np.uint64(bit)) & one))
        for bit, name in enumerate(names)
    }

    invalid_at = np.flatnonzero(verdicts == Verdict.INVALID)
    invalid_reasons = reasons[invalid_at].tolist()
    invalid_lines = chunk.lines[invalid_at].tolist()
    invalid_tails = _invalid_tails(invalid_reasons, invalid_lines, delimiter, encoding, ending)
    rewritten = {
        position: [
            *_fit(chunk.rewritten[row], layout.width, delimiter),
            _REASON_NAMES[invalid_reasons[position]],
            str(invalid_lines[position]),
        ]
        for position, row in _positions(invalid_at, chunk.rewritten)
    }
    out[OutputKind.INVALID] = _copy_with_tails(
        chunk, invalid_at, invalid_tails, rewritten, layout, ended=bool(ending)
    )
    counts[OutputKind.INVALID] = len(invalid_at)
    per_reason_counts = np.bincount(reasons[invalid_at], minlength=1)
    per_reason = {
        _REASON_NAMES[code]: int(per_reason_counts[code])
        for code in np.flatnonzero(per_reason_counts).tolist()
    }
    return BlockOutputs(out, counts, per_list, per_reason)


def _positions(at: npt.NDArray[np.int64], rows: dict[int, list[str]]) -> list[tuple[int, int]]:
    """(position in ``at``, row) for each of ``rows`` in the sorted ``at``, by position.

    A block has few such rows: found by a search each, not by a pass over ``at``.
    """
    if not rows or not len(at):
        return []
    wanted = np.array(sorted(rows), dtype=np.int64)
    places = np.minimum(np.searchsorted(at, wanted), len(at) - 1)
    found = at[places] == wanted
    return list(zip(places[found].tolist(), wanted[found].tolist(), strict=True))


def _invalid_tails(
    reasons: list[int], lines: list[int], delimiter: str, encoding: str, ending: str = ""
) -> list[bytes]:
    """The ``invalid_reason`` and ``line`` fields of each invalid row, encoded, then ``ending``."""
    if delimiter.isdigit():  # the line number itself would need quoting
        return [
            (_tail([_REASON_NAMES[reason], str(line)], delimiter) + ending).encode(encoding, ERRORS)
            for reason, line in zip(reasons, lines, strict=True)
        ]
    # Reason names are upper-case words: quoted only if the delimiter is one of their letters.
    named = {code: _tail([name], delimiter) + delimiter for code, name in _REASON_NAMES.items()}
    texts = [
        named[reason] + str(line) + ending for reason, line in zip(reasons, lines, strict=True)
    ]
    return [text.encode(encoding, ERRORS) for text in texts]


def _slices(data: bytes, starts: list[int], ends: list[int]) -> Iterator[bytes]:
    return map(data.__getitem__, map(slice, starts, ends))


def _copy_rows(chunk: FastChunk, at: npt.NDArray[np.int64]) -> bytes:
    """The bytes of rows ``at``, copied a run of neighbouring rows at a time."""
    if not len(at):
        return b""
    if chunk.blank_lines == 0:
        # The rows tile the block: one mask over its bytes, a row's value repeated over its
        # length, picks them all (about 2x faster than joining runs, for the usual share).
        chosen = np.zeros(chunk.rows, dtype=bool)
        chosen[at] = True
        inside = np.repeat(chosen, chunk.ends - chunk.starts)
        copied: bytes = np.frombuffer(chunk.data, dtype=np.uint8)[inside].tobytes()
        return copied
    starts, ends = chunk.starts[at], chunk.ends[at]
    # A run goes on while the next row starts where the last one ended (no row or blank
    # line between them).
    breaks = np.flatnonzero(starts[1:] != ends[:-1])
    run_starts = np.concatenate([starts[:1], starts[breaks + 1]])
    run_ends = np.concatenate([ends[breaks], ends[-1:]])
    return b"".join(_slices(chunk.data, run_starts.tolist(), run_ends.tolist()))


def _copy_with_tails(
    chunk: FastChunk,
    at: npt.NDArray[np.int64],
    tails: list[bytes],
    rewritten: dict[int, list[str]],
    layout: WriteLayout,
    *,
    ended: bool = False,
) -> bytes:
    """Rows ``at`` with ``tails[i]`` before each line end; ``rewritten`` ones written again.

    Each row is three pieces (body, tail, line end), joined in one C-level pass;
    ``ended``: each tail ends with the row's line end already, and a row is two.
    """
    if not len(at):
        return b""
    for position, fields in rewritten.items():
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter=layout.delimiter, lineterminator=layout.terminator)
        writer.writerow(fields)
        tails[position] = buffer.getvalue().encode(layout.encoding, ERRORS)
    starts, bodies, ends = chunk.starts[at], chunk.bodies[at], chunk.ends[at]
    if rewritten:  # a rewritten row is its tail alone
        again = np.fromiter(rewritten.keys(), dtype=np.int64, count=len(rewritten))
        starts, bodies, ends = starts.copy(), bodies.copy(), ends.copy()
        starts[again] = bodies[again] = ends[again] = 0
    data = chunk.data
    heads = _slices(data, starts.tolist(), bodies.tolist())
    if ended:
        return b"".join(itertools.chain.from_iterable(zip(heads, tails, strict=True)))
    line_ends = _slices(data, bodies.tolist(), ends.tolist())
    return b"".join(itertools.chain.from_iterable(zip(heads, tails, line_ends, strict=True)))
