"""Publishing numbers to the change log as entries of bounded size."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from suppression.e164 import NumberBlock
from suppression.entries import entries_for
from suppression.lists import ListKind, Op, Version
from suppression.writer import ChangeLogWriter

__all__ = ["ENTRIES_PER_WRITE", "Provenance", "publish"]

ENTRIES_PER_WRITE = 8
"""Entries per MULTI/EXEC: about 10 MB of stream data per round trip."""

Provenance = Mapping[str, str]
"""``source``, ``actor`` and ``evidence`` for every entry written."""


def publish(
    writer: ChangeLogWriter,
    op: Op,
    list_name: str,
    kind: ListKind,
    numbers: npt.NDArray[np.uint64] | Sequence[int],
    blocks: Sequence[NumberBlock] = (),
    *,
    provenance: Provenance,
    kinds: Mapping[str, ListKind] | None = None,
    advance: Callable[[int], None] | None = None,
) -> list[Version]:
    """Write ``numbers`` and ``blocks`` as ADD/REMOVE (and range) entries.

    Every entry is validated before its group is written; a consent failure
    stops before the first write because the rule depends only on the list.

    Returns:
        The stream IDs written, in order.

    Raises:
        InvalidEntryError: a number or block is invalid.
        ConsentRequiredError: removal from an opt-out list without consent evidence.
        ChangeLogError: Redis is unreachable or refused.
    """
    entries = entries_for(
        op,
        list_name,
        kind,
        np.asarray(numbers, dtype=np.uint64),
        blocks,
        source=provenance.get("source", ""),
        actor=provenance.get("actor", ""),
        evidence=provenance.get("evidence", ""),
    )
    written: list[Version] = []
    for start in range(0, len(entries), ENTRIES_PER_WRITE):
        group = entries[start : start + ENTRIES_PER_WRITE]
        written += writer.write(group, kinds)
        if advance is not None:
            advance(sum(entry.count for entry in group))
    return written
