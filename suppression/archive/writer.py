"""Writing the archive: append applied changes, cut a torn tail, start from checkpoints.

One process writes an archive (it holds ``archive.lock``); any number read
it. :meth:`ChangeArchive.append` runs on the change-log follower's thread
before the batch is applied, so a change a replica has acknowledged (its
version was returned to a writer) is in the archive file already: a
``kill -9`` cannot lose it. With ``fsync`` set, it is on disk as well.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from suppression.archive.index import sha256_of
from suppression.archive.names import CHECKPOINTS, LOCK, segment_name, segment_number
from suppression.archive.reader import ArchiveReader, Catalog
from suppression.archive.records import BASE, CHANGE, Base, encode_base, encode_change
from suppression.archive.segment import HEADER, encode_record
from suppression.entries import field_text
from suppression.errors import ArchiveError
from suppression.lists import ListView, Version
from suppression.snapshot import find_newest, read_snapshot, snapshot_name, write_snapshot
from suppression.snapshotkey import SnapshotKey

__all__ = ["ArchiveOptions", "ChangeArchive", "OpenReport"]

logger = logging.getLogger(__name__)

RawEntry = tuple[bytes | str, Mapping[bytes, bytes]]
_DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class ArchiveOptions:
    """Where and how a process archives the changes it applies."""

    directory: Path
    """The archive directory (by default ``archive/`` in --data-dir)."""
    segment_bytes: int = 64 * 1024 * 1024
    """A segment is closed, and a new one started, once it holds this many bytes."""
    retention_days: float = 0.0
    """Segments whose changes are all older than this are deleted; 0 keeps everything."""
    fsync: bool = True
    """fsync every appended batch (else a kill -9 still loses nothing; a power cut may)."""
    snapshots: Path | None = None
    """The directory of regular snapshots, linked as checkpoints when a segment closes."""


@dataclass(frozen=True, slots=True)
class OpenReport:
    """What opening the archive found."""

    cut: str | None = None
    """A torn tail that was cut: segment, position and bytes."""
    damage: tuple[str, ...] = field(default_factory=tuple)
    """Damaged segments: name and byte offset."""
    end: Version | None = None


class ChangeArchive:
    """The writer of one archive directory."""

    def __init__(self, options: ArchiveOptions, key: SnapshotKey | None = None) -> None:
        """Describe the archive; :meth:`open` takes the lock and reads it."""
        self.options = options
        self._key = key
        self._reader = ArchiveReader(options.directory)
        self._lock_fd: int | None = None
        self._fd: int | None = None
        self._number = 0
        self._size = 0
        self._end: Version | None = None
        self._position: tuple[str, int] | None = None
        self._needs_base = True
        self.appended = 0
        """Changes appended since open (for metrics and benchmarks)."""
        self.bytes_appended = 0

    @property
    def end(self) -> Version | None:
        """The newest version the archive holds."""
        return self._end

    @property
    def reader(self) -> ArchiveReader:
        """A reader of the same directory."""
        return self._reader

    # -- life cycle ---------------------------------------------------------

    def open(self) -> OpenReport:
        """Lock the archive, cut a torn tail, and find where it ends.

        Raises:
            ArchiveError: another process writes this archive, or it cannot be created.
        """
        directory = self.options.directory
        try:
            (directory / CHECKPOINTS).mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(directory / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ArchiveError(f"cannot open the change archive in {directory}: {exc}") from exc
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise ArchiveError(
                f"another process writes the change archive in {directory}; one archiver "
                "per directory (a worker pool archives from its first worker only)"
            ) from exc
        cut = self._cut_torn_tail()
        catalog = self._reader.catalog()
        self._end = catalog.end
        self._position = next(
            (s.last_position for s in reversed(catalog.segments) if s.last is not None), None
        )
        last = catalog.segments[-1] if catalog.segments else None
        self._number = segment_number(last.name) or 0 if last is not None else 0
        # A damaged last segment is left as it is, as evidence; appends go to a new one.
        damaged_tail = last is not None and last.damage is not None
        self._needs_base = not catalog.bases or _lost_at_end(catalog)
        if last is not None and not damaged_tail:
            self._fd = os.open(directory / last.name, os.O_WRONLY | os.O_APPEND)
            self._size = last.end
        for report in catalog.damage:
            logger.error("change archive damaged: %s; the rest of the archive is used", report)
        return OpenReport(cut, catalog.damage, self._end)

    def _cut_torn_tail(self) -> str | None:
        catalog = self._reader.catalog()
        if not catalog.segments:
            return None
        last = catalog.segments[-1]
        if last.damage is None or not last.damage.at_end:
            return None
        path = self.options.directory / last.name
        size = path.stat().st_size
        with path.open("r+b") as handle:
            handle.truncate(last.end if last.end else len(HEADER) if size >= len(HEADER) else 0)
            if last.end == 0:
                handle.seek(0)
                handle.write(HEADER)
            handle.flush()
            os.fsync(handle.fileno())
        message = (
            f"{last.name}: cut a torn tail of {size - max(last.end, len(HEADER)):,} bytes at "
            f"byte {last.damage.offset:,} (a write cut short; that change was never "
            "acknowledged and is archived again as the log is replayed)"
        )
        logger.warning("change archive: %s", message)
        self._reader = ArchiveReader(self.options.directory)
        return message

    def start(self, view: ListView) -> None:
        """Make sure the archive can answer from ``view`` on: write a base if it needs one.

        Called once, with the data the archiver starts from, after :meth:`open`.
        A base is written when the archive is empty, lost records at its end,
        or ends before ``view`` (changes in between were never archived).
        """
        if self._needs_base or self._end is None or view.version > self._end:
            reason = "start" if self._end is None else "gap"
            self.rebase(view, reason)

    def rebase(self, view: ListView, reason: str) -> None:
        """Write ``view`` as a checkpoint and a BASE record: answers resume from it.

        The follower calls this after replacing its data with a snapshot (a
        resync), so the archive says where its data jumped.
        """
        checkpoint, digest = "", ""
        if view.bitmaps:
            path = write_snapshot(self.options.directory / CHECKPOINTS, view, self._key)
            checkpoint, digest = path.name, sha256_of(path, path.stat().st_size)
        base = Base(view.version, checkpoint, digest, reason, int(time.time() * 1000))
        self._write(encode_record(BASE, encode_base(base)), roll=self._fd is None)
        self._needs_base = False
        self._position = (view.position.epoch, view.position.seq) if view.position.epoch else None
        if self._end is None or view.version > self._end:
            self._end = view.version

    def close(self) -> None:
        """Close the segment and release the lock."""
        for fd in (self._fd, self._lock_fd):
            if fd is not None:
                os.close(fd)
        self._fd = self._lock_fd = None

    # -- appending ----------------------------------------------------------

    def append(self, entries: Sequence[RawEntry], before: ListView) -> None:
        """Append change-log entries about to be applied; those archived already are skipped.

        Args:
            entries: the entries, in stream order.
            before: the data they are applied to. When the archive cannot follow
                on (it needs a base, or the first new entry's sequence number
                skips some), ``before`` is written as a base first.

        Raises:
            ArchiveError: the write failed (disk full...): the caller must not apply
                the batch, so that no answer rests on a change the archive lacks.
        """
        end = self._end
        position = self._position
        parts: list[bytes] = []
        for raw_id, fields in entries:
            entry_id = field_text(raw_id)
            version = Version.parse(entry_id)
            if end is not None and version <= end:
                continue
            stamp = _position_of(fields)
            if not parts and self._skips(stamp):
                self.rebase(before, "gap")
            parts.append(encode_record(CHANGE, encode_change(entry_id, fields)))
            end = version
            position = stamp or position
        if not parts:
            return
        roll = self._fd is None or self._size >= self.options.segment_bytes
        self._write(b"".join(parts), roll=roll)
        self._end = end
        self._position = position
        self.appended += len(parts)

    def _skips(self, stamp: tuple[str, int] | None) -> bool:
        """Whether an entry stamped ``stamp`` does not follow on from the archive's last."""
        if self._needs_base:
            return True
        last = self._position
        if stamp is None or last is None:
            return False
        return stamp[0] != last[0] or stamp[1] != last[1] + 1

    def _write(self, data: bytes, *, roll: bool) -> None:
        try:
            if roll:
                self._roll()
            assert self._fd is not None
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            if self.options.fsync:
                os.fdatasync(self._fd)
        except OSError as exc:
            raise ArchiveError(
                f"cannot append to the change archive in {self.options.directory}: {exc}; "
                "changes are not applied until it can"
            ) from exc
        self._size += len(data)
        self.bytes_appended += len(data)

    def _roll(self) -> None:
        """Close the current segment and start the next."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._number += 1
        path = self.options.directory / segment_name(self._number)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        os.write(fd, HEADER)
        if self.options.fsync:
            os.fsync(fd)
            dir_fd = os.open(self.options.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        self._fd = fd
        self._size = len(HEADER)
        if self._number > 1 and not self._needs_base:
            self._link_checkpoint()
            self._prune()

    def _link_checkpoint(self) -> None:
        """Start the new segment with a base from the newest regular snapshot (a hard link).

        Costs no copy, and lets answers resume after damage in an older
        segment, and retention delete old segments.
        """
        snapshots = self.options.snapshots
        newest = find_newest(snapshots) if snapshots is not None else None
        if newest is None:
            return
        try:
            snapshot = read_snapshot(newest, self._key)
        except Exception as exc:  # a bad regular snapshot only costs this checkpoint
            logger.warning("not linking %s as an archive checkpoint: %s", newest, exc)
            return
        if self._end is not None and snapshot.version > self._end:
            return  # data the archive never saw: not a base for it
        target = self.options.directory / CHECKPOINTS / snapshot_name(snapshot.version)
        if not target.exists():
            try:
                os.link(newest, target)
            except OSError as exc:
                logger.warning("cannot link %s into the archive: %s", newest, exc)
                return
        base = Base(
            snapshot.version,
            target.name,
            sha256_of(target, target.stat().st_size),
            "segment",
            int(time.time() * 1000),
        )
        data = encode_record(BASE, encode_base(base))
        assert self._fd is not None
        os.write(self._fd, data)
        self._size += len(data)

    def _prune(self) -> None:
        """Delete the oldest closed segments past the retention, keeping every answer after them.

        A segment goes only when all its changes are older than the retention
        and a later segment holds a base at or after its last change, so the
        archive still answers every version from that base on. The archive
        then begins later; checkpoints no base names any more go too.
        """
        days = self.options.retention_days
        if days <= 0:
            return
        cutoff = Version(int(time.time() * 1000 - days * _DAY_MS), 0)
        closed = list(self._reader.catalog().segments[:-1])
        deleted = 0
        for position, summary in enumerate(closed):
            last = summary.last or Version()
            later = [b for s in closed[position + 1 :] for b in s.bases]
            if last >= cutoff or not any(b.version >= last for b in later):
                break
            directory = self.options.directory
            (directory / summary.name).unlink(missing_ok=True)
            (directory / summary.name.replace(".seg", ".idx")).unlink(missing_ok=True)
            deleted += 1
            logger.info("change archive: deleted %s (older than %g days)", summary.name, days)
        if deleted:
            self._reader = ArchiveReader(self.options.directory)
            named = {b.checkpoint for b in self._reader.catalog().bases}
            for path in (self.options.directory / CHECKPOINTS).glob("*.snap"):
                if path.name not in named:
                    path.unlink(missing_ok=True)


def _position_of(fields: Mapping[bytes, bytes]) -> tuple[str, int] | None:
    seq = fields.get(b"seq")
    if not seq or not seq.isdigit():
        return None
    return field_text(fields.get(b"epoch", b"")), int(seq)


def _lost_at_end(catalog: Catalog) -> bool:
    """Whether the archive lost records with no base after the loss."""
    if not catalog.gaps:
        return False
    newest_base = max(b.version for b in catalog.bases)
    return any(g.after >= newest_base for g in catalog.gaps)
