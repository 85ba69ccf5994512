"""Publishing numbers to the change log as entries of bounded size, all checked first."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from suppression.e164 import NumberBlock
from suppression.entries import Entry, entries_for, validate_entries
from suppression.lists import ListKind, Op, Version
from suppression.writer import ChangeLogWriter

__all__ = ["ENTRIES_PER_WRITE", "Provenance", "entries", "publish"]

ENTRIES_PER_WRITE = 8
"""Entries per append (one atomic script call): about 10 MB of stream data per round trip."""

Provenance = Mapping[str, str]
"""``source``, ``actor`` and ``evidence`` for every entry written."""


def entries(
    op: Op,
    list_name: str,
    kind: ListKind,
    numbers: npt.NDArray[np.uint64] | Sequence[int],
    blocks: Sequence[NumberBlock] = (),
    *,
    provenance: Provenance,
    days: npt.NDArray[np.uint16] | Sequence[int] | None = None,
) -> list[Entry]:
    """The ADD/REMOVE (and range) entries that write ``numbers`` and ``blocks`` to one list.

    ``days``, with ADD, gives each number its day (dated adds), parallel to ``numbers``.
    """
    return entries_for(
        op,
        list_name,
        kind,
        np.asarray(numbers, dtype=np.uint64),
        blocks,
        source=provenance.get("source", ""),
        actor=provenance.get("actor", ""),
        evidence=provenance.get("evidence", ""),
        days=days,
    )


def publish(
    writer: ChangeLogWriter,
    batch: Sequence[Entry],
    kinds: Mapping[str, ListKind],
    *,
    advance: Callable[[int], None] | None = None,
) -> list[Version]:
    """Check every entry as the replicas will, then write them in groups, in order.

    Nothing is written unless every entry passes
    :func:`suppression.entries.validate_entries` against the lists' actual
    kinds: what the loader writes, no replica dead-letters, and a refusal
    leaves the change log as it was.

    Args:
        writer: the change log.
        batch: the entries, in order.
        kinds: the kind of every list that exists now (the materialized state).
        advance: called with the numbers each group covered, once it is written.

    Returns:
        The stream IDs written, in order.

    Raises:
        InvalidEntryError: a number or block is invalid.
        ConsentRequiredError: removal from an opt-out list without consent evidence.
        ChangeLogError: Redis is unreachable or refused.
    """
    validate_entries(batch, kinds)
    written: list[Version] = []
    for start in range(0, len(batch), ENTRIES_PER_WRITE):
        group = batch[start : start + ENTRIES_PER_WRITE]
        written += writer.write(group, kinds)
        if advance is not None:
            advance(sum(entry.count for entry in group))
    return written
