"""Plain number files: one number per line, in any format, for ``serve --list NAME=FILE``.

Blank lines and lines starting with ``#`` are ignored. A line such as
``+1900xxxxxxx`` is a whole block (see :func:`suppression.e164.parse_block`).
Files ending in ``.gz`` are read compressed.
"""

from __future__ import annotations

import gzip
import io
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pyroaring import BitMap64

from suppression.e164 import InvalidReason, Normalizer, NumberBlock, parse_block
from suppression.errors import InvalidInputError, NumberFileError

__all__ = ["NumberFile", "normalize_lines", "read_number_file"]

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


def _lines(path: Path) -> Iterator[str]:
    raw = gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")
    with raw, io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace") as text:
        yield from text


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
    try:
        numbered = ((n, line.strip()) for n, line in enumerate(_lines(path), start=1))
        result = normalize_lines(
            ((n, text) for n, text in numbered if text and not text.startswith("#")),
            region,
            normalizer,
        )
    except (OSError, EOFError) as exc:
        raise NumberFileError(f"cannot read number file {path}: {exc}") from exc
    if result.skipped_lines:
        shown = ", ".join(
            f"line {n:,} ({reason.name.lower()})"
            for n, reason in result.skipped_lines[:_SHOWN_BAD_LINES]
        )
        more = len(result.skipped_lines) - _SHOWN_BAD_LINES
        summary = f"{len(result.skipped_lines):,} invalid line(s) in {path}: {shown}" + (
            f" and {more:,} more" if more > 0 else ""
        )
        if not skip_invalid:
            hint = " (national forms need --region)" if not region else ""
            raise NumberFileError(
                f"{summary}{hint}; fix them, or pass --skip-invalid to load the rest"
            )
        logger.warning("skipped %s", summary)
    return result
