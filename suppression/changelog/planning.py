"""Turns change-log stream entries into list changes; invalid entries become dead letters.

Pure: no I/O. The follower and the loader's ``compact`` plan the same way, so
a snapshot the loader writes holds exactly what a replica would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from suppression.entries import Entry, decode_entry, field_text
from suppression.errors import ChangeLogError
from suppression.lists import Change, ListInfo, ListKind, Op

__all__ = ["DeadLetter", "Plan", "RawEntry", "plan_batch"]

RawEntry = tuple[bytes | str, Mapping[bytes, bytes]]
"""One stream entry as redis-py returns it: ``(id, fields)``."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An entry that cannot be applied, and why."""

    entry_id: str
    reason: str
    fields: Mapping[bytes, bytes]


@dataclass(slots=True)
class Plan:
    """What one read of the stream turns into."""

    changes: list[Change] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    numbers_by_op: dict[str, int] = field(default_factory=dict)
    last_id: str = ""


def plan_batch(entries: Sequence[RawEntry], infos: Mapping[str, ListInfo]) -> Plan:
    """Turn stream entries into list changes; invalid entries become dead letters.

    Args:
        entries: ``(id, fields)`` pairs in stream order.
        infos: the lists as they are before the batch; their kinds decide
            the consent rule, not the kind an entry claims.
    """
    kinds: dict[str, ListKind] = {name: info.kind for name, info in infos.items()}
    plan = Plan()
    for raw_id, fields in entries:
        entry_id = field_text(raw_id)
        plan.last_id = entry_id
        try:
            list_name = field_text(fields.get(b"list", b""))
            entry = decode_entry(fields, kinds.get(list_name))
        except ChangeLogError as exc:
            plan.dead.append(DeadLetter(entry_id, str(exc), fields))
            continue
        if entry.list_name not in kinds and _creates(entry):
            kinds[entry.list_name] = entry.kind
        plan.changes.append(entry.to_change(kinds.get(entry.list_name)))
        plan.numbers_by_op[entry.op] = plan.numbers_by_op.get(entry.op, 0) + entry.count
    return plan


def _creates(entry: Entry) -> bool:
    return entry.op in (Op.ADD, Op.ADD_RANGE)
