"""Dated list files for the loader: read them, and what a dated import must write."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pyroaring import BitMap64

from suppression.errors import ConfigError
from suppression.policy.dated import NO_DAY, DatedList
from suppression.policy.datedfile import load_dated_file

__all__ = ["changed_days", "read_dated"]

logger = logging.getLogger(__name__)


def read_dated(files: Sequence[Path], region: str) -> DatedList:
    """Every number of the files with its day; a later row (or file) wins for a number.

    Raises:
        ConfigError: a file is missing, has no number or date column, or has a bad
            row (the whole import is refused, naming the line).
    """
    started = time.perf_counter()
    dated = DatedList()
    for path in files:
        if not path.is_file():
            raise ConfigError(f"{path}: no such file")
        part = load_dated_file(path, region)
        dated = part if not len(dated) else dated.with_days(_numbers(part), part.days)
    # Counts with separators: the log filter masks bare runs of 7+ digits as phone numbers.
    logger.info(
        "read %s dated numbers from %s file(s) in %.2f s",
        f"{len(dated):,}",
        f"{len(files):,}",
        time.perf_counter() - started,
    )
    return dated


def changed_days(
    target: DatedList, existing: BitMap64, days: DatedList | None
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint16]]:
    """The numbers of ``target`` to write as dated adds: new to the list, or with another day.

    Args:
        target: what the files say.
        existing: the list's numbers now.
        days: the list's days now (over ``existing``), if it has any.
    """
    numbers = _numbers(target)
    current = np.full(len(numbers), NO_DAY, dtype=np.uint32)
    present = np.zeros(len(numbers), dtype=bool)
    if len(existing) and len(numbers):
        held = np.array(existing.to_array(), dtype=np.uint64)
        at = np.minimum(np.searchsorted(held, numbers), len(held) - 1)
        present = held[at] == numbers
        if days is not None:
            current[present] = days.days[at[present]]
    changed = ~present | (current != target.days)
    return numbers[changed], target.days[changed]


def _numbers(dated: DatedList) -> npt.NDArray[np.uint64]:
    return np.array(dated.bitmap.to_array(), dtype=np.uint64)
