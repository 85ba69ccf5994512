"""Turns change-log stream entries into list changes; invalid entries become dead letters.

Pure: no I/O. The follower and the loader's ``compact`` plan the same way, so
a snapshot the loader writes holds exactly what a replica would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from suppression.entries import Entry, decode_entry, field_text, strictest
from suppression.errors import ChangeLogError
from suppression.lists import Change, ListInfo, ListKind, LogPosition, Op, Version

__all__ = [
    "LOSS_KINDS",
    "RESET",
    "REWOUND",
    "TRIMMED",
    "DeadLetter",
    "Plan",
    "RawEntry",
    "applied_entry_gone",
    "counter_ahead",
    "follow_on",
    "lost_log",
    "plan_batch",
    "sequence_of",
]

RawEntry = tuple[bytes | str, Mapping[bytes, bytes]]
"""One stream entry as redis-py returns it: ``(id, fields)``."""

TRIMMED = "trimmed"
"""Entries after this replica's position were removed before it read them."""
RESET = "reset"
"""The log lost its epoch or has another one: Redis lost it, or it was reseeded."""
REWOUND = "rewound"
"""The log numbers fewer entries than this replica applied: a failover lost writes."""
LOSS_KINDS = (TRIMMED, RESET, REWOUND)

EPOCH_FIELD = b"epoch"
SEQ_FIELD = b"seq"


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
        infos: the lists as they are before the batch. An entry's claimed
            kind can only make a list stricter (see
            :func:`~suppression.entries.strictest`).
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
        current = kinds.get(entry.list_name)
        if current is not None or _creates(entry):
            kinds[entry.list_name] = strictest(current, entry.kind)
        plan.changes.append(entry.to_change(kinds.get(entry.list_name)))
        plan.numbers_by_op[entry.op] = plan.numbers_by_op.get(entry.op, 0) + entry.count
    return plan


def _creates(entry: Entry) -> bool:
    return entry.op in (Op.ADD, Op.ADD_RANGE)


def sequence_of(fields: Mapping[bytes, bytes]) -> LogPosition | None:
    """An entry's epoch and sequence number; None for an entry written without them."""
    epoch = fields.get(EPOCH_FIELD)
    seq = fields.get(SEQ_FIELD)
    if not epoch or not seq or not seq.isdigit():
        return None
    return LogPosition(field_text(epoch), int(seq))


def lost_log(data: LogPosition, log: LogPosition) -> str:
    """RESET or REWOUND if the log is not one this data can follow on from, else ""."""
    if not data.epoch:
        return ""
    if log.epoch != data.epoch:
        return RESET
    if log.seq < data.seq:
        return REWOUND
    return ""


def applied_entry_gone(data: LogPosition, stamp_found: bool, stamp: LogPosition) -> bool:
    """Is the entry this data applied last no longer in the log as it was applied?

    After a failover to a Redis replica that lacked the last writes, new
    writes take the lost sequence numbers under other IDs, so the log's
    counter alone may not show the loss: the entry at the data's version is
    gone, or another one. A caller asks only while that entry would still be
    in the stream (not trimmed), and never for data at the start of an epoch
    (sequence 0), which applied no entry of it. An entry without a sequence
    number there was dead-lettered after the last one applied: it cannot tell.
    """
    if not data.epoch or data.seq == 0:
        return False
    if not stamp_found:
        return True
    return bool(stamp.epoch) and stamp != data


def counter_ahead(data: LogPosition, log: LogPosition, version: Version) -> bool:
    """After reading everything there is: did the log number entries this data never saw?

    Data from before sequenced logs (a snapshot without an epoch) cannot tell,
    unless it is empty and so must have read the epoch from its first entry.
    """
    if not log.epoch:
        return False
    if data.epoch == log.epoch:
        return log.seq > data.seq
    return not data.epoch and version == Version() and log.seq > 0


def follow_on(
    entries: Sequence[RawEntry], start: LogPosition
) -> tuple[LogPosition, int, list[RawEntry], list[DeadLetter]]:
    """The entries that follow on from ``start``, in order.

    Returns the position after them, how many entries were consumed, those to
    apply and those to dead-letter.

    An entry numbered past the next expected one means entries in between are
    gone: it and everything after it are left for a resync. An entry without
    epoch and sequence number, in a log that has them, was not written through
    the change-log writer and is dead-lettered.
    """
    position = start
    kept: list[RawEntry] = []
    dead: list[DeadLetter] = []
    consumed = 0
    for raw_id, fields in entries:
        stamp = sequence_of(fields)
        if stamp is None:
            if position.epoch:
                reason = (
                    "entry has no epoch and sequence number: it was not written through the "
                    "change-log writer (suppression-loader publish, or the Suppress RPC)"
                )
                dead.append(DeadLetter(field_text(raw_id), reason, fields))
            else:
                kept.append((raw_id, fields))
            consumed += 1
            continue
        if position.epoch and (stamp.epoch != position.epoch or stamp.seq != position.seq + 1):
            break
        position = stamp
        kept.append((raw_id, fields))
        consumed += 1
    return position, consumed, kept, dead
