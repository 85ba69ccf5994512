"""The archive's segment file: a header, then length-prefixed, checksummed records.

Layout (integers little-endian; see docs/evidence.md)::

    0   8 bytes   magic b"SUPPARCH"
    8   uint32    format version (1)
    12  uint32    reserved, 0
    16  records, each:
        uint32    body length L (at least 1)
        uint32    CRC-32 (zlib) of the body
        L bytes   body: one type byte, then UTF-8 JSON

Records are only ever appended. A process killed in mid-write leaves at most
one incomplete record at the end (a *torn tail*): the writer cuts it when it
opens the segment again. Anything else that fails its checksum is *damage*,
reported with the segment's name and the byte offset.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

__all__ = [
    "HEADER",
    "MAX_BODY",
    "Damage",
    "RawRecord",
    "Scan",
    "encode_record",
    "scan_records",
]

MAGIC = b"SUPPARCH"
FORMAT_VERSION = 1
_HEADER = struct.Struct("<8sII")
HEADER = _HEADER.pack(MAGIC, FORMAT_VERSION, 0)
"""The bytes every segment starts with."""
_PREFIX = struct.Struct("<II")
MAX_BODY = 256 * 1024 * 1024
"""A longer length field cannot be one we wrote: damage."""

TORN = "torn"
"""An incomplete record at the very end: a write that never finished."""
CHECKSUM = "checksum"
"""A record whose CRC-32 does not match its body."""
BAD_HEADER = "header"
"""A file that does not start with the segment header."""


@dataclass(frozen=True, slots=True)
class Damage:
    """Where a segment stops being readable, and why."""

    offset: int
    """Byte offset of the first unreadable record (0 for a bad header)."""
    kind: str
    """TORN, CHECKSUM or BAD_HEADER."""
    at_end: bool
    """Nothing readable follows: a torn tail the writer may cut."""

    def describe(self, name: str) -> str:
        """A message for operators, with the file's name and the position."""
        if self.kind == TORN:
            return f"{name}: incomplete record at byte {self.offset:,} (a write cut short)"
        if self.kind == BAD_HEADER:
            return f"{name}: not an archive segment (bad header)"
        return f"{name}: record at byte {self.offset:,} fails its CRC-32 check"


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One record as stored: its offset, type byte and JSON body."""

    offset: int
    kind: int
    body: bytes


@dataclass(frozen=True, slots=True)
class Scan:
    """What reading a segment found: where the good records end, and any damage."""

    end: int
    """Offset just past the last good record."""
    damage: Damage | None


def encode_record(kind: int, body: bytes) -> bytes:
    """One record's bytes: length, CRC-32, type byte and body."""
    payload = bytes((kind,)) + body
    return _PREFIX.pack(len(payload), zlib.crc32(payload)) + payload


def scan_records(data: bytes | memoryview, origin: int = 0) -> tuple[list[RawRecord], Scan]:
    """Read every good record of a segment's bytes.

    Args:
        data: the segment's bytes from file offset ``origin`` to its end.
        origin: 0 for a whole segment, or an offset just past a good record
            (a reader that follows a growing segment reads only what is new).

    Returns:
        The good records, and where they end with the first damage found;
        every offset is a file offset.
    """
    return _scan(memoryview(data), origin)


def _scan(view: memoryview, origin: int) -> tuple[list[RawRecord], Scan]:
    size = len(view)
    records: list[RawRecord] = []
    start = 0
    if origin == 0:
        if size < _HEADER.size:
            kind = TORN if bytes(view) == HEADER[:size] else BAD_HEADER
            return records, Scan(0, Damage(0, kind, True))
        if bytes(view[: _HEADER.size]) != HEADER:
            return records, Scan(0, Damage(0, BAD_HEADER, False))
        start = _HEADER.size
    offset = start
    while offset < size:
        if size - offset < _PREFIX.size:
            return records, _stop(origin, offset, TORN, True)
        length, crc = _PREFIX.unpack_from(view, offset)
        body_start = offset + _PREFIX.size
        if length == 0 or length > MAX_BODY:
            # Zeros to the end: a file extended by a crash before its data landed.
            zeros = not any(view[offset:])
            return records, _stop(origin, offset, TORN if zeros else CHECKSUM, zeros)
        if body_start + length > size:
            return records, _stop(origin, offset, TORN, True)
        payload = view[body_start : body_start + length]
        if zlib.crc32(payload) != crc:
            # A bad last record may be a write that a power cut left half on disk.
            at_end = body_start + length == size
            return records, _stop(origin, offset, CHECKSUM, at_end)
        records.append(RawRecord(origin + offset, payload[0], bytes(payload[1:])))
        offset = body_start + length
    return records, Scan(origin + offset, None)


def _stop(origin: int, offset: int, kind: str, at_end: bool) -> Scan:
    return Scan(origin + offset, Damage(origin + offset, kind, at_end))
