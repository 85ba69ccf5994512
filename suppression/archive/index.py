"""A segment's index: which numbers and blocks it touches, its bases, its checksum.

Finding one number's history must not mean parsing every record of every
segment. Each sealed segment gets an index file beside it
(``segment-....idx``): the numbers its changes touch as a Roaring bitmap, its
blocks as ranges, the first change that created each list, its BASE records,
where good records end (and any damage), and the SHA-256 of those bytes. A
reader opens only the segments whose index holds the number. The index is
derived data: a missing or stale one is rebuilt from the segment.

Index file layout: magic b"SUPPAIDX", uint32 JSON length, the JSON, the
bitmap's portable serialization, then a CRC-32 of every byte before it.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pyroaring import BitMap64

from suppression.archive.records import (
    BASE,
    CHANGE,
    ArchivedChange,
    Base,
    decode_base,
    decode_change,
)
from suppression.archive.segment import Damage, RawRecord, Scan
from suppression.lists import Op, Version

__all__ = ["SegmentSummary", "read_index", "write_index"]

_MAGIC = b"SUPPAIDX"
_PREFIX = struct.Struct("<8sI")
_CRC = struct.Struct("<I")
_CREATING = (str(Op.ADD), str(Op.ADD_RANGE))
_RANGES = (str(Op.ADD_RANGE), str(Op.REMOVE_RANGE))


@dataclass(slots=True)
class SegmentSummary:
    """What one segment holds, without its records."""

    name: str
    file_size: int = 0
    """The file's size when summarized (an index for another size is stale)."""
    end: int = 0
    """Offset just past the last good record."""
    sha256: str = ""
    """SHA-256 of bytes [0, end)."""
    changes: int = 0
    first: Version | None = None
    """ID of the first CHANGE record."""
    last: Version | None = None
    """ID of the last CHANGE record."""
    bases: list[Base] = field(default_factory=list)
    base_after: list[Version | None] = field(default_factory=list)
    """Per base: the last change before it in this segment (None: none yet)."""
    damage: Damage | None = None
    numbers: BitMap64 = field(default_factory=BitMap64)
    ranges: list[tuple[int, int]] = field(default_factory=list)
    created: dict[str, tuple[Version, str]] = field(default_factory=dict)
    """Each list's first creating change (ADD or ADD_RANGE) in this segment, and its kind."""
    last_position: tuple[str, int] | None = None
    """The change log's epoch and sequence number of the last change, if it had them."""

    def add(self, records: list[RawRecord]) -> None:
        """Take in records read in file order."""
        for record in records:
            if record.kind == CHANGE:
                self._add_change(decode_change(record.body))
            elif record.kind == BASE:
                self.bases.append(decode_base(record.body))
                self.base_after.append(self.last)

    def _add_change(self, change: ArchivedChange) -> None:
        fields = change.fields
        op = fields.get("op", "")
        if op in _RANGES:
            self.ranges.append((int(fields["first"]), int(fields["last"])))
        else:
            text = fields.get("numbers", "")
            if text:
                values = np.array(text.split(","), dtype=np.uint64)
                self.numbers.update(values)
        if op in _CREATING:
            created = (change.version, fields.get("kind", ""))
            self.created.setdefault(fields.get("list", ""), created)
        seq = fields.get("seq", "")
        if seq.isdigit():
            self.last_position = (fields.get("epoch", ""), int(seq))
        if self.first is None:
            self.first = change.version
        self.last = change.version
        self.changes += 1

    def finish(self, scan: Scan, sha256: str) -> None:
        """Record where good records end, the damage found, and the checksum."""
        self.end = scan.end
        self.damage = scan.damage
        self.sha256 = sha256

    def may_touch(self, number: int) -> bool:
        """Whether a change in this segment may concern ``number`` (no false negatives)."""
        if number in self.numbers:
            return True
        return any(first <= number <= last for first, last in self.ranges)


def sha256_of(path: Path, end: int) -> str:
    """SHA-256 of a file's first ``end`` bytes."""
    digest = hashlib.sha256()
    remaining = end
    with path.open("rb") as handle:
        while remaining > 0:
            chunk = handle.read(min(remaining, 1 << 20))
            if not chunk:
                break
            digest.update(chunk)
            remaining -= len(chunk)
    return digest.hexdigest()


def write_index(path: Path, summary: SegmentSummary) -> None:
    """Write an index file atomically; a failure (read-only directory) is not an error."""
    meta = {
        "name": summary.name,
        "file_size": summary.file_size,
        "end": summary.end,
        "sha256": summary.sha256,
        "changes": summary.changes,
        "first": str(summary.first) if summary.first else "",
        "last": str(summary.last) if summary.last else "",
        "bases": [b.to_dict() for b in summary.bases],
        "base_after": [str(v) if v else "" for v in summary.base_after],
        "damage": (
            None
            if summary.damage is None
            else {
                "offset": summary.damage.offset,
                "kind": summary.damage.kind,
                "at_end": summary.damage.at_end,
            }
        ),
        "ranges": summary.ranges,
        "created": {name: [str(v), kind] for name, (v, kind) in summary.created.items()},
        "last_position": list(summary.last_position) if summary.last_position else None,
    }
    encoded = json.dumps(meta, separators=(",", ":")).encode()
    data = _PREFIX.pack(_MAGIC, len(encoded)) + encoded + summary.numbers.serialize()
    data += _CRC.pack(zlib.crc32(data))
    temp = path.with_name(path.name + f".tmp{os.getpid()}")
    try:
        with temp.open("wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except OSError:
        temp.unlink(missing_ok=True)


def read_index(path: Path, file_size: int) -> SegmentSummary | None:
    """Read an index; None when missing, damaged, or made for another file size."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if len(data) < _PREFIX.size + _CRC.size:
        return None
    (crc,) = _CRC.unpack_from(data, len(data) - _CRC.size)
    if zlib.crc32(data[: -_CRC.size]) != crc:
        return None
    magic, length = _PREFIX.unpack_from(data)
    if magic != _MAGIC:
        return None
    meta = json.loads(data[_PREFIX.size : _PREFIX.size + length])
    if meta["file_size"] != file_size:
        return None
    numbers = BitMap64.deserialize(data[_PREFIX.size + length : -_CRC.size])
    damage = meta["damage"]
    position = meta.get("last_position")
    return SegmentSummary(
        name=meta["name"],
        file_size=meta["file_size"],
        end=meta["end"],
        sha256=meta["sha256"],
        changes=meta["changes"],
        first=Version.parse(meta["first"]) if meta["first"] else None,
        last=Version.parse(meta["last"]) if meta["last"] else None,
        bases=[Base.from_dict(b) for b in meta["bases"]],
        base_after=[Version.parse(v) if v else None for v in meta["base_after"]],
        damage=None
        if damage is None
        else Damage(damage["offset"], damage["kind"], damage["at_end"]),
        numbers=numbers,
        ranges=[(int(a), int(b)) for a, b in meta["ranges"]],
        created={name: (Version.parse(v), kind) for name, (v, kind) in meta["created"].items()},
        last_position=(str(position[0]), int(position[1])) if position else None,
    )
