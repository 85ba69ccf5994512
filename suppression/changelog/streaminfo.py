"""Where a change-log stream stands: ``XINFO STREAM`` fields and gap detection.

Redis does not say when an XREAD skipped trimmed entries, so readers compare
their position with ``recorded-first-entry-id`` and ``max-deleted-entry-id``.
Used by the follower and by the loader's ``compact``; imports no Redis client.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from suppression.entries import field_text
from suppression.lists import LogPosition, Version

if TYPE_CHECKING:
    import redis

__all__ = [
    "INFO_SCRIPT",
    "STAMP_SCRIPT",
    "EntryStamp",
    "StreamInfo",
    "meta_key",
    "parse_info",
    "parse_stamp",
    "stream_info",
]

INFO_SCRIPT = """
local out = {}
local meta = redis.call('HMGET', KEYS[2], 'epoch', 'seq')
if meta[1] then
  out[#out + 1] = 'meta-epoch'
  out[#out + 1] = meta[1]
  out[#out + 1] = 'meta-seq'
  out[#out + 1] = meta[2] or '0'
end
local ok, info = pcall(redis.call, 'XINFO', 'STREAM', KEYS[1])
if not ok then return out end
out[#out + 1] = 'exists'
out[#out + 1] = '1'

for i = 1, #info, 2 do
  local k = info[i]
  if k == 'max-deleted-entry-id' or k == 'last-generated-id' or k == 'entries-added'
     or k == 'length' or k == 'recorded-first-entry-id' then
    out[#out + 1] = k
    out[#out + 1] = info[i + 1]
  end
end
return out
"""
"""XINFO STREAM without the first and last entries (which may hold 100,000 numbers each),
and the log's epoch and sequence counter (see :mod:`suppression.changelog.epoch`).
KEYS: the stream, then its meta hash."""


STAMP_SCRIPT = """
local out = {'', '', redis.call('HGET', KEYS[2], 'base') or ''}
local found = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #found == 0 then return out end
local fields = found[1][2]
out[1] = 'none'
for i = 1, #fields, 2 do
  if fields[i] == 'epoch' then out[1] = fields[i + 1] end
  if fields[i] == 'seq' then out[2] = fields[i + 1] end
end
return out
"""
"""The epoch and sequence number of the entry at one ID (not its numbers), and the epoch's
base version: does the log still hold the entry a replica applied last?
KEYS: the stream, then its meta hash. ARGV: the entry ID."""


@dataclass(frozen=True, slots=True)
class EntryStamp:
    """What :data:`STAMP_SCRIPT` found at one stream ID."""

    found: bool
    """An entry exists at the ID."""
    position: LogPosition
    """Its epoch and sequence number (empty for an entry written without them)."""
    base: Version
    """The version the log's epoch starts from (0-0 for an epoch begun on an empty log)."""


def parse_stamp(reply: Sequence[Any]) -> EntryStamp:
    """Read :data:`STAMP_SCRIPT`'s reply."""
    epoch, seq, base = (field_text(part) for part in reply)
    found = bool(epoch)
    position = (
        LogPosition(epoch, int(seq))
        if found and epoch != "none" and seq.isdigit()
        else LogPosition()
    )
    return EntryStamp(found, position, Version.parse(base) if base else Version())


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """The parts of ``XINFO STREAM`` the follower needs; all zero for a missing stream."""

    exists: bool = False
    length: int = 0
    entries_added: int = 0
    last_generated: Version = field(default_factory=Version)
    first_recorded: Version = field(default_factory=Version)
    max_deleted: Version = field(default_factory=Version)
    epoch: str = ""
    """The log's epoch; empty when the log has none (a new or a lost log, or an old one)."""
    seq: int = 0
    """The sequence number of the last entry written in this epoch."""

    @property
    def position(self) -> LogPosition:
        """The log's own position: its epoch and the last sequence number written."""
        return LogPosition(self.epoch, self.seq)

    def missing_after(self, position: Version) -> bool:
        """Whether entries after ``position`` may have been removed before being read.

        Conservative: a replica just behind a trim point resyncs, which is
        harmless because a trim only follows a snapshot at that point.
        """
        if not self.exists:
            return False
        if self.max_deleted > position:
            return True
        return self.entries_added > self.length and self.first_recorded > position


def parse_info(reply: Sequence[Any]) -> StreamInfo:
    """Read :data:`INFO_SCRIPT`'s reply; an empty reply means the stream does not exist."""
    values = {field_text(reply[i]): reply[i + 1] for i in range(0, len(reply) - 1, 2)}
    return StreamInfo(
        exists="exists" in values,
        epoch=field_text(values.get("meta-epoch", b"")),
        seq=int(values.get("meta-seq", 0)),
        length=int(values.get("length", 0)),
        entries_added=int(values.get("entries-added", 0)),
        last_generated=Version.parse(field_text(values.get("last-generated-id", b"0-0"))),
        first_recorded=Version.parse(field_text(values.get("recorded-first-entry-id", b"0-0"))),
        max_deleted=Version.parse(field_text(values.get("max-deleted-entry-id", b"0-0"))),
    )


def meta_key(stream: str) -> str:
    """The hash beside a stream that holds its epoch and sequence counter."""
    return f"{stream}:meta"


def stream_info(client: redis.Redis, stream: str) -> StreamInfo:
    """Read a stream's :class:`StreamInfo` (raises redis errors)."""
    script = client.register_script(INFO_SCRIPT)
    return parse_info(script(keys=[stream, meta_key(stream)]))
