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

__all__ = ["INFO_SCRIPT", "StreamInfo", "meta_key", "parse_info", "stream_info"]

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
