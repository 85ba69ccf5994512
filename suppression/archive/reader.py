"""Reading an archive: its catalog, what it can answer, and a number's changes.

Any process may read an archive while its writer appends: the last segment is
followed incrementally, and an incomplete record at its end is a write in
progress, not damage. Coverage is conservative: a version is answered only
from a base (checkpoint) with no lost records between it and the version.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from suppression.archive.index import SegmentSummary, read_index, write_index
from suppression.archive.names import CHECKPOINTS, index_path, segment_paths
from suppression.archive.records import CHANGE, ArchivedChange, Base, decode_change
from suppression.archive.segment import scan_records
from suppression.errors import ArchiveCoverageError
from suppression.lists import Version

__all__ = ["ArchiveReader", "Catalog", "Gap", "SegmentRef"]

_FAR = Version(2**64 - 1, 2**64 - 1)


@dataclass(frozen=True, slots=True)
class Gap:
    """Versions whose changes the archive lacks: strictly between ``after`` and ``before``."""

    after: Version
    before: Version | None
    """None: up to whatever comes next (nothing yet)."""
    why: str


@dataclass(frozen=True, slots=True)
class SegmentRef:
    """A segment an answer was read from: name, bytes covered and their SHA-256."""

    name: str
    bytes: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Catalog:
    """The archive as a whole: its segments, bases, gaps and span."""

    segments: tuple[SegmentSummary, ...]
    bases: tuple[Base, ...]
    gaps: tuple[Gap, ...]
    damage: tuple[str, ...]
    """Reports of damaged segments: name, byte offset, what is wrong."""
    begins: Version | None
    """The first version the archive can answer (its first base), None if empty."""
    end: Version | None
    """The newest version it knows of: its last change, or its last base."""


class ArchiveReader:
    """Reads one archive directory; cheap to refresh (only new bytes are read)."""

    def __init__(self, directory: Path) -> None:
        """Read the archive in ``directory`` (which may not exist yet)."""
        self.directory = directory
        self._sealed: dict[str, tuple[int, SegmentSummary]] = {}
        self._active: tuple[str, SegmentSummary, Any] | None = None

    @property
    def checkpoints(self) -> Path:
        """The directory of checkpoint files."""
        return self.directory / CHECKPOINTS

    def catalog(self) -> Catalog:
        """Read what is new and describe the archive."""
        summaries = self._summaries()
        bases: list[Base] = []
        gaps: list[Gap] = []
        damage: list[str] = []
        last: Version | None = None
        pending: tuple[Version, str] | None = None  # a gap waiting for the next change
        for index, summary in enumerate(summaries):
            is_last = index == len(summaries) - 1
            if pending is not None:
                # The loss ends at the next thing known: a base, or else the next change.
                opening = [
                    b for b, a in zip(summary.bases, summary.base_after, strict=True) if a is None
                ]
                closing = opening[0].version if opening else summary.first
                if closing is not None:
                    gaps.append(Gap(pending[0], closing, pending[1]))
                    pending = None
            for base, after in zip(summary.bases, summary.base_after, strict=True):
                # The last point known before this base: a change, or an earlier base.
                known = [v for v in (after or last, *(b.version for b in bases)) if v]
                before = max(known, default=None)
                if before is not None and base.version > before:
                    why = f"{base.reason} before base {base.version}"
                    gaps.append(Gap(before, base.version, why))
                bases.append(base)
            if summary.last is not None:
                last = summary.last
            if summary.damage is not None and not (is_last and summary.damage.at_end):
                report = summary.damage.describe(summary.name)
                damage.append(report)
                known = [v for v in (last, *(b.version for b in bases)) if v is not None]
                pending = (max(known, default=Version()), report)
        if pending is not None:
            gaps.append(Gap(pending[0], None, pending[1]))
        begins = min((b.version for b in bases), default=None)
        ends = [v for v in [last, *(b.version for b in bases)] if v is not None]
        return Catalog(
            tuple(summaries),
            tuple(bases),
            tuple(gaps),
            tuple(damage),
            begins,
            max(ends, default=None),
        )

    def base_for(self, at: Version, known_until: Version | None = None) -> tuple[Base, Catalog]:
        """The newest base the state at ``at`` can be rebuilt from.

        Args:
            at: the version asked about.
            known_until: the caller knows no change exists after the archive's
                end up to this version (a fresh replica that archives).

        Raises:
            ArchiveCoverageError: ``at`` is before the archive begins, after
                what it knows, or behind lost records; the message says which.
        """
        catalog = self.catalog()
        if catalog.begins is None or catalog.end is None:
            raise ArchiveCoverageError(
                f"the archive in {self.directory} is empty: it cannot say what the lists held "
                f"at {at}"
            )
        if at < catalog.begins:
            raise ArchiveCoverageError(
                f"version {at} is before the archive begins ({catalog.begins}): "
                "what the lists held then is not known here"
            )
        lost = [g for g in catalog.gaps if g.before is None and g.after < at]
        if lost:
            raise ArchiveCoverageError(
                f"the archive lost changes after {lost[0].after} ({lost[0].why}) and holds "
                f"nothing readable after them, so what the lists held at {at} is not known here"
            )
        if at > catalog.end and (known_until is None or at > known_until):
            raise ArchiveCoverageError(
                f"version {at} is after the archive's last change ({catalog.end}); "
                "changes after it, if any, are not archived yet: ask a replica that archives, "
                "or an earlier version"
            )
        usable = [
            base
            for base in catalog.bases
            if base.version <= at and not any(_cuts(gap, base.version, at) for gap in catalog.gaps)
        ]
        if not usable:
            gap = next(g for g in catalog.gaps if g.after < at)
            raise ArchiveCoverageError(
                f"the archive lost changes after {gap.after} ({gap.why}); no checkpoint after "
                f"the loss comes before {at}, so what the lists held then is not known here"
            )
        return max(usable, key=lambda b: b.version), catalog

    def changes(
        self, after: Version | None, upto: Version, number: int | None = None
    ) -> tuple[list[ArchivedChange], list[SegmentRef]]:
        """The archived changes with ``after < id <= upto``, touching ``number`` if given.

        Returns:
            The changes in order, and the segments read to find them.
        """
        found: list[ArchivedChange] = []
        used: list[SegmentRef] = []
        needle = str(number).encode() if number is not None else b""
        for summary in self._summaries():
            if summary.first is None or summary.first > upto:
                continue
            if after is not None and summary.last is not None and summary.last <= after:
                continue
            if number is not None and not summary.may_touch(number):
                continue
            used.append(SegmentRef(summary.name, summary.end, summary.sha256))
            for change in self._read(summary, needle, after, upto):
                if number is None or change.covers(number):
                    found.append(change)
        return found, used

    def checkpoint_path(self, base: Base) -> Path | None:
        """The checkpoint file of a base, None for empty lists."""
        return self.checkpoints / base.checkpoint if base.checkpoint else None

    # -- segments -----------------------------------------------------------

    def _read(
        self, summary: SegmentSummary, needle: bytes, after: Version | None, upto: Version
    ) -> Iterator[ArchivedChange]:
        """The segment's changes in ``(after, upto]`` whose text may hold ``needle``."""
        with (self.directory / summary.name).open("rb") as handle:
            data = handle.read(summary.end)
        records, _ = scan_records(data)
        for record in records:
            if record.kind != CHANGE:
                continue
            # The ID leads the body (encode_change writes it first): no JSON parse to skip.
            version = _leading_id(record.body)
            if version > upto:
                break  # IDs only grow along the archive
            if after is not None and version <= after:
                continue
            # A cheap filter before parsing: the number's digits, or a block's ends.
            if needle in record.body or b'"first"' in record.body:
                yield decode_change(record.body)

    def _summaries(self) -> list[SegmentSummary]:
        paths = segment_paths(self.directory)
        summaries = []
        for position, path in enumerate(paths):
            if position == len(paths) - 1:
                summaries.append(self._follow(path))
            else:
                summaries.append(self._sealed_summary(path))
        return summaries

    def _sealed_summary(self, path: Path) -> SegmentSummary:
        size = path.stat().st_size
        cached = self._sealed.get(path.name)
        if cached is not None and cached[0] == size:
            return cached[1]
        summary = read_index(index_path(path), size)
        if summary is None:
            summary = _summarize(path, size)
            write_index(index_path(path), summary)
        self._sealed[path.name] = (size, summary)
        return summary

    def _follow(self, path: Path) -> SegmentSummary:
        """The growing last segment: read only the bytes added since the last look."""
        active = self._active
        if active is None or active[0] != path.name:
            summary = SegmentSummary(path.name)
            digest = hashlib.sha256()
        else:
            summary, digest = active[1], active[2]
        with path.open("rb") as handle:
            handle.seek(summary.end)
            data = handle.read()
        records, scan = scan_records(data, summary.end)
        digest.update(data[: scan.end - summary.end])
        summary.add(records)
        summary.file_size = summary.end + len(data)
        summary.finish(scan, digest.hexdigest())
        self._active = (path.name, summary, digest)
        return summary


def _summarize(path: Path, size: int) -> SegmentSummary:
    data = path.read_bytes()[:size]
    records, scan = scan_records(data)
    summary = SegmentSummary(path.name, file_size=size)
    summary.add(records)
    summary.finish(scan, hashlib.sha256(data[: scan.end]).hexdigest())
    return summary


def _leading_id(body: bytes) -> Version:
    """The ID of a CHANGE body, which starts ``{"id":"<ms>-<seq>"``."""
    end = body.index(b'"', 7)
    return Version.parse(body[7:end].decode())


def _cuts(gap: Gap, base: Version, at: Version) -> bool:
    """Whether changes lost in ``gap`` would fall in (base, at]."""
    before = gap.before if gap.before is not None else _FAR
    return gap.after < at and before > base
