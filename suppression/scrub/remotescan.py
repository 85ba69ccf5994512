"""Remote mode's fast path: a block scanned with numpy, its numbers sent as integers.

A worker process scans a block as the local engine's workers do
(:func:`suppression.scrub.fastpath.scan_block`), keeps each distinct number
it read once, and rewrites the block's other phones with the shortcut
(:func:`suppression.scrub.shortcut.canonicalize`). The remote engine then
sends the numbers as E.164 integers, the text only for the phones the fast
path could not read, and the servers normalize only those. When the
answers are in, :func:`read_answers` spreads them back over the block's rows
for :meth:`suppression.scrub.writing.ChunkWriter.write_fast`.

Unlike the local engine's workers, these cannot write the block's outputs:
its answers come from the servers, after the scan, so the rows are put
together in the scrub's process.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from suppression.checker import Verdict
from suppression.scrub.answers import Answers, distinct_strings
from suppression.scrub.distinct import distinct_with_inverse, sorted_distinct
from suppression.scrub.fastpath import FastChunk, ScanLayout, scan_block
from suppression.scrub.shortcut import canonicalize
from suppression.scrub.writing import ReadAnswers

__all__ = ["BlockToSend", "ScanTask", "read_answers", "scan_to_send"]

ScanTask = tuple[bytes, int, ScanLayout]
"""A block, its first line, and how to scan it."""


@dataclass(slots=True)
class BlockToSend:
    """A scanned block (without its bytes) and what its servers must be asked."""

    chunk: FastChunk
    values: npt.NDArray[np.uint64]
    """The distinct numbers the fast path read, sorted: sent as E.164 integers."""
    inverse: npt.NDArray[np.intp]
    """Per row whose number was read (``chunk.values`` not 0), its index in ``values``."""
    uids: npt.NDArray[np.int64]
    """Per text phone (``chunk.text_at``), its index in ``texts``."""
    texts: list[str]
    """The distinct text phones, after the shortcut: sent as text."""

    @property
    def size(self) -> int:
        """Numbers to ask for: the integers, then the texts."""
        return len(self.values) + len(self.texts)


def scan_to_send(task: ScanTask) -> BlockToSend:
    """Scan a block (in a worker process) and gather the numbers to ask for.

    Raises:
        RuntimeError: the block does not fit the fast path (the reader checked it: a bug).
    """
    data, first_line, layout = task
    chunk = scan_block(data, first_line, *layout, checked=True)
    if chunk is None:
        raise RuntimeError("a block the fast path took was refused by it")
    values, inverse = distinct_with_inverse(chunk.values[chunk.values != 0])
    uids, texts = distinct_strings(chunk.texts)
    chunk.data = b""  # the caller has it; do not send it back
    return BlockToSend(chunk, values, inverse, uids, canonicalize(texts, layout[4]))


def read_answers(
    block: BlockToSend, answers: Answers
) -> tuple[Answers, npt.NDArray[np.uint64], ReadAnswers, npt.NDArray[np.uint64]]:
    """Split the answers to ``block``'s numbers (integers first, then texts).

    Returns:
        The answers for the text phones; the matched lists and the verdicts of each
        row whose number was read, in row order; and the block's distinct valid
        numbers, sorted.
    """
    count = len(block.values)
    texts = dataclasses.replace(
        answers,
        verdicts=answers.verdicts[count:],
        masks=answers.masks[count:],
        reasons=answers.reasons[count:],
        values=answers.values[count:],
        earliest_ms=answers.earliest_ms[count:],
        rules=answers.rules[count:],
    )
    inverse = block.inverse
    read = ReadAnswers(answers.verdicts[:count][inverse], answers.reasons[:count][inverse])
    # Every distinct number and text of the block is some row's: together, its valid numbers.
    valid_read = block.values[answers.verdicts[:count] != Verdict.INVALID]
    valid_texts = texts.values[texts.verdicts != Verdict.INVALID]
    distinct = sorted_distinct(np.concatenate([valid_read, valid_texts]))
    return texts, answers.masks[:count][inverse], read, distinct
