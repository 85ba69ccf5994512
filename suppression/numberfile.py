"""Plain number files: one number per line, in any format, for ``serve --list NAME=FILE``.

Blank lines and lines starting with ``#`` are ignored. A line such as
``+1900xxxxxxx`` is a whole block (see :func:`suppression.e164.parse_block`).
Files ending in ``.gz`` or ``.zip`` are read compressed.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pyroaring import BitMap64

from suppression.compressed import read_bytes
from suppression.e164 import InvalidReason, Normalizer, NumberBlock, parse_block
from suppression.errors import InvalidInputError, NumberFileError

__all__ = ["NumberFile", "invalid_lines_message", "normalize_lines", "read_number_file"]

logger = logging.getLogger(__name__)

_SHOWN_BAD_LINES = 5


@dataclass(slots=True)
class NumberFile:
    """What a number file held."""

    numbers: npt.NDArray[np.uint64]
    blocks: list[NumberBlock] = field(default_factory=list)
    skipped_lines: list[tuple[int, InvalidReason]] = field(default_factory=list)

    def to_bitmap(self) -> BitMap64:
        """All numbers and blocks as one bitmap."""
        bitmap = BitMap64(self.numbers)
        for block in self.blocks:
            bitmap.add_range(block.first, block.last + 1)
        bitmap.run_optimize()
        return bitmap


def _lines(path: Path) -> list[str]:
    text = read_bytes(path, NumberFileError).decode("utf-8-sig", errors="replace")
    # Universal newlines, as a text file reads: LF, CR LF and CR end a line.
    return io.StringIO(text, newline=None).readlines()


def invalid_lines_message(where: str, bad: Sequence[tuple[int, str]], *, item: str = "line") -> str:
    """Say which lines of an input are not usable: the first few, and how many more.

    ``"3 invalid line(s) in a.txt: line 2 (unparseable), line 5 (too_short),
    line 1,204 (too_long)"``; after five lines, ``"... and 12 more"``. Line numbers
    carry separators, so that the log filter does not mask one as a phone number.

    Args:
        where: the input, as the user named it (a path, "the command line").
        bad: ``(line number, reason)`` pairs in input order.
        item: what a position is called ("line", or "argument" for a command line).
    """
    shown = ", ".join(f"{item} {n:,} ({reason})" for n, reason in bad[:_SHOWN_BAD_LINES])
    more = len(bad) - _SHOWN_BAD_LINES
    return f"{len(bad):,} invalid {item}(s) in {where}: {shown}" + (
        f" and {more:,} more" if more > 0 else ""
    )


def normalize_lines(
    rows: Iterable[tuple[int, str]], region: str = "", normalizer: Normalizer | None = None
) -> NumberFile:
    """Normalize ``(line number, text)`` pairs: numbers in any format, or ``+1900xxxxxxx`` blocks.

    The one per-line loop for every reader of number lists (``serve --list``
    and the loader's plain and CSV formats). Lines that are neither land in
    ``skipped_lines`` with their reason; the caller decides whether to refuse.
    """
    normalize = (normalizer or Normalizer()).normalize
    values: list[int] = []
    result = NumberFile(np.zeros(0, dtype=np.uint64))
    for line_number, text in rows:
        try:
            block = parse_block(text)
        except InvalidInputError:
            result.skipped_lines.append((line_number, InvalidReason.UNPARSEABLE))
            continue
        if block is not None:
            result.blocks.append(block)
            continue
        value, reason = normalize(text, region)
        if reason:
            result.skipped_lines.append((line_number, reason))
        else:
            values.append(value)
    result.numbers = np.array(values, dtype=np.uint64)
    return result


def read_number_file(
    path: Path,
    region: str = "",
    *,
    skip_invalid: bool = False,
    normalizer: Normalizer | None = None,
) -> NumberFile:
    """Read a number file.

    Args:
        path: the file.
        region: default region for national forms ("US", "CN").
        skip_invalid: load the valid lines and report the others, instead of
            refusing the file.
        normalizer: the normalizer to use (a fresh one by default).

    Raises:
        NumberFileError: the file cannot be read, or it has invalid lines and
            ``skip_invalid`` is false.
    """
    numbered = ((n, line.strip()) for n, line in enumerate(_lines(path), start=1))
    result = normalize_lines(
        ((n, text) for n, text in numbered if text and not text.startswith("#")),
        region,
        normalizer,
    )
    if result.skipped_lines:
        summary = invalid_lines_message(
            str(path), [(n, reason.name.lower()) for n, reason in result.skipped_lines]
        )
        if not skip_invalid:
            hint = " (national forms need --region)" if not region else ""
            raise NumberFileError(
                f"{summary}{hint}; fix them, or pass --skip-invalid to load the rest"
            )
        logger.warning("skipped %s", summary)
    return result
