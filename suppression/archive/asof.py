"""The lists as they were at an earlier version: a snapshot at or before it, plus the archive.

The newest snapshot or checkpoint between the archive's base for that version
and the version itself is loaded, and the archived changes after it are
applied exactly as the follower applied them (the same planning, in batches).
Used by Check's ``as_of_version`` for audits: "would last Tuesday's campaign
have been clean?" It costs a snapshot load plus the replay, seconds rather
than microseconds (docs/evidence.md has figures).
"""

from __future__ import annotations

import re
from pathlib import Path

from suppression.archive.reader import ArchiveReader
from suppression.changelog.planning import RawEntry, plan_batch
from suppression.errors import ArchiveError
from suppression.lists import ListView, SuppressionLists, Version
from suppression.snapshot import read_snapshot
from suppression.snapshotkey import SnapshotKey

__all__ = ["view_as_of"]

_NAME = re.compile(r"^snapshot-(\d{20})-(\d{20})\.snap$")
_BATCH = 2_000
"""Changes applied per batch: one bitmap copy per touched list per batch."""


def view_as_of(
    reader: ArchiveReader,
    at: Version,
    *,
    snapshots: Path | None = None,
    key: SnapshotKey | None = None,
    known_until: Version | None = None,
) -> ListView:
    """Rebuild every list as it stood at ``at``.

    Args:
        reader: the change archive.
        at: the version asked about.
        snapshots: a directory of regular snapshots that may start the replay
            closer to ``at`` than the archive's own checkpoint.
        key: snapshots must be signed with it, if given.
        known_until: see :meth:`ArchiveReader.base_for`.

    Returns:
        The view; its version is the last change at or before ``at``.

    Raises:
        ArchiveCoverageError: the archive cannot answer for ``at``.
        ArchiveError: the checkpoint is missing.
        SnapshotError: the snapshot chosen is corrupt.
    """
    base, _ = reader.base_for(at, known_until)
    start = _newest_start(reader, base.version, base.checkpoint, at, snapshots)
    if start is None:
        lists = SuppressionLists(version=base.version)
        after = base.version
    else:
        snapshot = read_snapshot(start, key)
        lists = SuppressionLists(
            snapshot.bitmaps,
            snapshot.infos.values(),
            snapshot.version,
            None,
            snapshot.position,
            days=snapshot.days,
        )
        after = snapshot.version
    changes, _ = reader.changes(after, at)
    for first in range(0, len(changes), _BATCH):
        chunk = changes[first : first + _BATCH]
        raw: list[RawEntry] = [
            (str(c.version), {k.encode(): v.encode() for k, v in c.fields.items()}) for c in chunk
        ]
        plan = plan_batch(raw, lists.view.infos)
        lists.apply(plan.changes, version=chunk[-1].version)
    return lists.view


def _newest_start(
    reader: ArchiveReader,
    floor: Version,
    checkpoint: str,
    at: Version,
    snapshots: Path | None,
) -> Path | None:
    """The newest snapshot file with ``floor <= version <= at``; the base's own checkpoint else."""
    candidates: list[tuple[Version, Path]] = []
    for directory in (snapshots, reader.checkpoints):
        if directory is None or not directory.is_dir():
            continue
        for path in directory.iterdir():
            match = _NAME.match(path.name)
            if match:
                version = Version(int(match.group(1)), int(match.group(2)))
                if floor <= version <= at:
                    candidates.append((version, path))
    if candidates:
        return max(candidates)[1]
    if not checkpoint:
        return None
    path = reader.checkpoints / checkpoint
    if not path.is_file():
        raise ArchiveError(f"checkpoint {path} is missing: restore it from a backup of the archive")
    return path
