"""What the archive's records hold: applied changes, and bases (checkpoints) to start from.

A CHANGE record keeps one change-log entry exactly as the stream carried it
(its ID and every field: op, list, numbers, source, actor, evidence, time,
epoch, sequence). A BASE record says "from here on, the data is the
checkpoint file F at version V, plus the changes that follow": the archive
begins with one, and gets another whenever the archiver's data jumped (a
resync from a snapshot) or the archive lost records (damage), so that
versions after it can be answered again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from suppression.entries import Entry, decode_entry, field_text
from suppression.lists import Op, Version

__all__ = [
    "BASE",
    "CHANGE",
    "ArchivedChange",
    "Base",
    "decode_base",
    "decode_change",
    "encode_base",
    "encode_change",
    "touched_numbers",
]

CHANGE = 1
BASE = 2
_RANGE_OPS = (str(Op.ADD_RANGE), str(Op.REMOVE_RANGE))


@dataclass(frozen=True, slots=True)
class ArchivedChange:
    """One applied change-log entry, as archived."""

    version: Version
    """The stream entry ID."""
    fields: Mapping[str, str]
    """The entry's stream fields, as text."""

    def entry(self) -> Entry:
        """The decoded entry (validated as the follower validated it)."""
        return decode_entry(self.fields)

    def covers(self, number: int) -> bool:
        """Whether this change concerns ``number``."""
        fields = self.fields
        if fields.get("op") in _RANGE_OPS:
            return int(fields["first"]) <= number <= int(fields["last"])
        # Exact and in C: the numbers field is digits and single commas.
        return f",{number}," in f",{fields.get('numbers', '')},"


@dataclass(frozen=True, slots=True)
class Base:
    """A point the archive can be replayed from: a checkpoint file and its version."""

    version: Version
    checkpoint: str
    """The checkpoint's file name under ``checkpoints/``; empty for empty lists."""
    sha256: str
    """The checkpoint file's SHA-256 (empty with no file)."""
    reason: str
    """Why the base was written: start, resync, damage, gap."""
    created_ms: int

    def to_dict(self) -> dict[str, str | int]:
        """The base as JSON-ready values."""
        return {
            "version": str(self.version),
            "checkpoint": self.checkpoint,
            "sha256": self.sha256,
            "reason": self.reason,
            "created_ms": self.created_ms,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, str | int]) -> Base:
        """The base from :meth:`to_dict`'s values."""
        return cls(
            Version.parse(str(data["version"])),
            str(data["checkpoint"]),
            str(data["sha256"]),
            str(data["reason"]),
            int(data["created_ms"]),
        )


def encode_change(entry_id: str, fields: Mapping[bytes, bytes] | Mapping[str, str]) -> bytes:
    """A CHANGE record's body."""
    text = {field_text(k): field_text(v) for k, v in fields.items()}
    return json.dumps({"id": entry_id, "f": text}, separators=(",", ":")).encode()


def decode_change(body: bytes) -> ArchivedChange:
    """Parse a CHANGE record's body (already checksummed)."""
    data = json.loads(body)
    return ArchivedChange(Version.parse(data["id"]), data["f"])


def encode_base(base: Base) -> bytes:
    """A BASE record's body."""
    return json.dumps(base.to_dict(), separators=(",", ":")).encode()


def decode_base(body: bytes) -> Base:
    """Parse a BASE record's body."""
    return Base.from_dict(json.loads(body))


def touched_numbers(fields: Mapping[str, str]) -> list[int]:
    """The numbers of a plain ADD or REMOVE entry (none for a range)."""
    text = fields.get("numbers", "")
    return [int(part) for part in text.split(",")] if text else []
