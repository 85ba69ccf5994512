"""Where things live in an archive directory, and how its files are named."""

from __future__ import annotations

import re
from pathlib import Path

__all__ = [
    "CHECKPOINTS",
    "LOCK",
    "index_path",
    "segment_name",
    "segment_number",
    "segment_paths",
]

CHECKPOINTS = "checkpoints"
"""The subdirectory of checkpoint files (snapshot format) that BASE records name."""
LOCK = "archive.lock"
"""Held (flock) by the one process that writes the archive."""
_SEGMENT = re.compile(r"^segment-(\d{6})\.seg$")


def segment_name(number: int) -> str:
    """The name of the segment with this ordinal; names sort in write order."""
    return f"segment-{number:06d}.seg"


def segment_number(name: str) -> int | None:
    """A segment's ordinal, or None for a name that is not a segment's."""
    match = _SEGMENT.match(name)
    return int(match.group(1)) if match else None


def segment_paths(directory: Path) -> list[Path]:
    """The archive's segments in write order."""
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if segment_number(p.name) is not None]
    return sorted(found, key=lambda p: p.name)


def index_path(segment: Path) -> Path:
    """The index file beside a segment."""
    return segment.with_suffix(".idx")
