"""The change archive: every applied change kept in append-only, checksummed segments.

See docs/evidence.md for the format and for which process archives.
"""

from __future__ import annotations

from suppression.archive.reader import ArchiveReader, Catalog, Gap, SegmentRef
from suppression.archive.records import ArchivedChange, Base
from suppression.archive.writer import ArchiveOptions, ChangeArchive, OpenReport

__all__ = [
    "ArchiveOptions",
    "ArchiveReader",
    "ArchivedChange",
    "Base",
    "Catalog",
    "ChangeArchive",
    "Gap",
    "OpenReport",
    "SegmentRef",
]
