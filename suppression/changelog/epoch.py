"""The change log's identity: an epoch per life of the log, and a sequence number per entry.

Redis does not say when it lost data: restarted without persistence, flushed,
or failed over to a replica that lacked the last writes, a stream simply holds
fewer entries, or none, and new entries may even get smaller IDs than old
ones. So the log carries its own identity in a hash beside the stream
(:func:`~suppression.changelog.streaminfo.meta_key`):

- ``epoch``: a random name for this life of the log;
- ``seq``: the sequence number of the last entry written in it;
- ``base``: the data version the epoch starts from (``0-0`` for an empty start);
- ``lost``: set by a replica that found the epoch gone, so that no writer starts
  a fresh epoch over the loss; only :func:`reseed` clears it.

Writers append through :data:`APPEND_SCRIPT`, which stamps each entry with the
epoch and the next sequence number in the same atomic step as the XADD, and
refuses to write into a log whose epoch is not the one the writer knows. A
follower that finds the epoch gone or changed, a number skipped, or the
counter behind its own knows that changes are missing, and says so.

After a loss, :func:`reseed` starts a new epoch from the newest snapshot
(``suppression-loader reseed``); replicas then load that snapshot and follow on.
See docs/changelog-format.md.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from suppression.changelog.streaminfo import meta_key, stream_info
from suppression.errors import ChangeLogResetError, SnapshotError
from suppression.lists import ListView, LogPosition
from suppression.snapshot import find_newest, read_snapshot, write_snapshot
from suppression.snapshotkey import SnapshotKey

if TYPE_CHECKING:
    import redis

__all__ = ["APPEND_SCRIPT", "mark_lost", "new_epoch", "reseed"]

logger = logging.getLogger(__name__)

APPEND_SCRIPT = """
local epoch = redis.call('HGET', KEYS[2], 'epoch')
local expected = ARGV[1]
if not epoch then
  if expected ~= '' then
    return redis.error_reply('EPOCHGONE the change log lost its epoch ' .. expected)
  end
  if redis.call('HEXISTS', KEYS[2], 'lost') == 1 then
    return redis.error_reply('EPOCHGONE replicas found the change log lost')
  end
  if redis.call('EXISTS', KEYS[1]) == 1 and redis.call('XLEN', KEYS[1]) > 0 then
    return redis.error_reply('NOEPOCH the change log has entries but no epoch')
  end
  epoch = ARGV[2]
  redis.call('HSET', KEYS[2], 'epoch', epoch, 'seq', 0, 'base', '0-0')
elseif expected ~= '' and expected ~= epoch then
  return redis.error_reply('EPOCHCHANGED the change log is now epoch ' .. epoch)
end
local out = {epoch}
local i = 5
for n = 1, tonumber(ARGV[4]) do
  local count = tonumber(ARGV[i])
  local seq = redis.call('HINCRBY', KEYS[2], 'seq', 1)
  local fields = {'epoch', epoch, 'seq', seq}
  for k = i + 1, i + count do
    fields[#fields + 1] = ARGV[k]
  end
  out[#out + 1] = redis.call('XADD', KEYS[1], '*', unpack(fields))
  i = i + count + 1
end
return out
"""
"""Append entries stamped with the epoch and consecutive sequence numbers, atomically.

KEYS: the stream, its meta hash. ARGV: the epoch the writer's data comes
from ("" for data that never saw one), a fresh epoch to start if the log is
new (no epoch and no entries) and the writer knows none, an unused slot, the
number of entries, then per entry its field count and fields. Returns the
epoch, then the new entry IDs."""


def new_epoch() -> str:
    """A fresh, unguessable epoch name."""
    return secrets.token_hex(16)


def reseed(
    client: redis.Redis,
    stream: str,
    data_dir: Path,
    *,
    force: bool = False,
    key: SnapshotKey | None = None,
) -> tuple[str, Path]:
    """Start a new epoch of the change log from the newest snapshot in ``data_dir``.

    For a log that Redis lost (or rewound, with ``force``). The snapshot is
    written again, stamped with the new epoch and a version past everything
    the stream ever held, so new entries sort after it; replicas waiting for
    a resync load it and follow the new epoch.

    With ``key``, the snapshot must be signed with it, and the new one is.

    Returns:
        The new epoch and the path of the snapshot it starts from.

    Raises:
        SnapshotError: no snapshot to start from, or it is corrupt or not
            signed with ``key``.
        ChangeLogResetError: the log still has an epoch and ``force`` is not given.
        redis.RedisError: Redis is unreachable or refused.
    """
    newest = find_newest(data_dir)
    if newest is None:
        raise SnapshotError(
            f"no snapshot in {data_dir} to reseed the change log from; copy the newest "
            "snapshot of any replica there first"
        )
    snapshot = read_snapshot(newest, key)
    info = stream_info(client, stream)
    if info.epoch and not force:
        raise ChangeLogResetError(
            f"change log {stream} has epoch {info.epoch[:8]} at entry {info.seq:,}; reseeding "
            "would make replicas drop it. Pass --force only if replicas report that the log "
            "went backwards"
        )
    base = max(snapshot.version, info.last_generated).next()
    epoch = new_epoch()
    view = ListView(
        base, snapshot.bitmaps, snapshot.infos, (), LogPosition(epoch, 0), days=snapshot.days
    )
    path = write_snapshot(data_dir, view, key)
    pipe = client.pipeline(transaction=True)
    # An empty stream whose next ID is past the base: a group made with MKSTREAM and dropped.
    pipe.xgroup_create(stream, "reseed", id="$", mkstream=True)
    pipe.xgroup_destroy(stream, "reseed")
    pipe.execute_command("XSETID", stream, str(base))  # type: ignore[no-untyped-call]
    pipe.delete(meta_key(stream))
    pipe.hset(meta_key(stream), mapping={"epoch": epoch, "seq": 0, "base": str(base)})
    pipe.execute()
    logger.warning(
        "change log %s reseeded: epoch %s starts at version %s from snapshot %s",
        stream,
        epoch[:8],
        base,
        newest.name,
    )
    return epoch, path


def mark_lost(client: redis.Redis, stream: str, epoch: str) -> None:
    """Record that the log lost ``epoch``, unless it has an epoch again by now.

    Until :func:`reseed` runs, writers refuse to start a new epoch over it.
    """
    client.eval(_MARK_LOST_SCRIPT, 1, meta_key(stream), epoch)


_MARK_LOST_SCRIPT = """
if redis.call('HEXISTS', KEYS[1], 'epoch') == 0 then
  redis.call('HSET', KEYS[1], 'lost', ARGV[1])
end
return 0
"""
