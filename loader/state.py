"""The current state of every list: the newest snapshot plus the change log replayed onto it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import redis

from suppression.changelog.planning import (
    DeadLetter,
    RawEntry,
    counter_ahead,
    follow_on,
    lost_log,
    plan_batch,
)
from suppression.changelog.streaminfo import stream_info
from suppression.entries import field_text
from suppression.errors import ChangeLogError, ChangeLogResetError
from suppression.lists import ListInfo, ListKind, ListView, SuppressionLists, Version
from suppression.redisconn import redis_errors
from suppression.snapshot import find_newest, read_snapshot
from suppression.snapshotkey import SnapshotKey

__all__ = ["Materialized", "materialize"]

logger = logging.getLogger(__name__)

_PAGE = 2_000
"""Entries per XRANGE page; each page is one batch apply (one bitmap copy per touched list)."""


@dataclass(slots=True)
class Materialized:
    """Lists rebuilt from a snapshot and the stream, up to the stream's head when read."""

    lists: SuppressionLists
    base: Path | None
    entries: int = 0
    dead: list[DeadLetter] = field(default_factory=list)


def materialize(
    data_dir: Path | None,
    client: redis.Redis,
    stream: str,
    advance: Callable[[int], None] | None = None,
    key: SnapshotKey | None = None,
) -> Materialized:
    """Load the newest snapshot in ``data_dir`` and replay the stream onto it.

    Args:
        data_dir: where snapshots are; None starts from empty lists.
        client: the change log's Redis.
        stream: the stream key.
        advance: called with the number of entries replayed after each page.
        key: the snapshot must be signed with it.

    Raises:
        ChangeLogError: Redis is unreachable, or the stream no longer holds
            the entries after the snapshot (a newer snapshot is needed).
        SnapshotError: the newest snapshot is corrupt, or not signed with ``key``.
    """
    newest = find_newest(data_dir) if data_dir is not None else None
    if newest is not None:
        snapshot = read_snapshot(newest, key)
        lists = SuppressionLists(
            snapshot.bitmaps,
            snapshot.infos.values(),
            snapshot.version,
            position=snapshot.position,
            days=snapshot.days,
        )
    else:
        lists = SuppressionLists()
    result = Materialized(lists, newest)
    with redis_errors(f"reading change log {stream}"):
        info = stream_info(client, stream)
        head = info.last_generated
        position = lists.version
        while True:
            loss = lost_log(lists.view.position, info.position)
            if loss:
                raise ChangeLogResetError(
                    f"change log {stream} was {loss}: the data in {newest or 'no snapshot'} is "
                    f"at {lists.view.position}, the log at {info.position}. Reseed the log "
                    "from the newest snapshot (suppression-loader reseed) before writing to it"
                )
            page = (
                client.xrange(stream, min=f"({position}", max=str(head), count=_PAGE)
                if position < head
                else []
            )
            # Checked after the read, so a trim racing with it is caught as well.
            info = stream_info(client, stream)
            entries = cast(list[RawEntry], page)
            sequenced, consumed, kept, dead = follow_on(entries, lists.view.position)
            gap = consumed < len(entries) or (
                len(entries) < _PAGE and counter_ahead(sequenced, info.position, lists.version)
            )
            if info.missing_after(position) or gap:
                where = newest or "no snapshot"
                raise ChangeLogError(
                    f"change log {stream} no longer holds the entries after {position} "
                    f"({where}); it starts at {info.first_recorded}. Put a snapshot at "
                    f"{info.first_recorded} or later into --data-dir"
                )
            if not entries:
                break
            plan = plan_batch(kept, lists.view.infos)
            last = Version.parse(field_text(entries[-1][0]))
            lists.apply(plan.changes, version=last, position=sequenced)
            _keep_opt_outs(lists, kept, plan.dead)
            result.dead.extend([*dead, *plan.dead])
            result.entries += len(entries)
            position = lists.version
            if advance is not None:
                advance(len(entries))
    return result


def _keep_opt_outs(
    lists: SuppressionLists,
    page: list[RawEntry],
    dead: list[DeadLetter],
) -> None:
    """Treat a list as opt-out when an applied entry was written for it as one.

    Every producer writes the kind it holds, so an entry written for an opt-out
    list that this state holds as another kind means a snapshot was built
    without the log (a bootstrap import while replicas followed it). Replicas
    that followed the log hold it as opt-out and would dead-letter a removal
    without consent that the other kind allows; the loader checks against the
    strictest of the two, so it refuses that removal before writing it.
    """
    refused = {letter.entry_id for letter in dead}
    infos = lists.view.infos
    opt_out = ListKind.OPT_OUT.value.encode()
    conflicts = sorted(
        {
            name
            for entry_id, fields in page
            if fields.get(b"kind") == opt_out and field_text(entry_id) not in refused
            for name in [field_text(fields.get(b"list", b""))]
            if name in infos and infos[name].kind is not ListKind.OPT_OUT
        }
    )
    if not conflicts:
        return
    for name in conflicts:
        logger.warning(
            "change log entries were written for list %s as an opt-out list, but the snapshot "
            "holds it as %s (built without the change log?); treating it as opt-out",
            name,
            infos[name].kind.value,
        )
    view = lists.view
    promoted = {name: ListInfo(name, ListKind.OPT_OUT) for name in conflicts}
    lists.replace(
        ListView(
            view.version,
            view.bitmaps,
            {**infos, **promoted},
            (),
            view.position,
            days=view.days,
        )
    )
