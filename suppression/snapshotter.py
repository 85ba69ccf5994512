"""Writes a snapshot of the live lists every so often, so a restart replays little."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from pathlib import Path

from suppression.errors import SnapshotError
from suppression.lists import SuppressionLists, Version
from suppression.snapshot import find_newest, write_snapshot
from suppression.snapshotkey import SnapshotKey

__all__ = ["Snapshotter", "prune_snapshots"]

logger = logging.getLogger(__name__)

_SNAPSHOT_NAME = re.compile(r"^snapshot-(\d{20})-(\d{20})\.snap$")
"""The names snapshot.snapshot_name gives; only these are pruned."""


def prune_snapshots(directory: Path, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest snapshots in ``directory``.

    Returns:
        The deleted paths.
    """
    candidates = sorted(p for p in directory.iterdir() if _SNAPSHOT_NAME.match(p.name))
    doomed = candidates[: max(0, len(candidates) - max(keep, 1))]
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed


class Snapshotter:
    """A thread that snapshots the lists every ``interval`` seconds when they changed."""

    def __init__(
        self,
        lists: SuppressionLists,
        directory: Path,
        interval: float,
        keep: int = 3,
        on_written: Callable[[float], None] | None = None,
        key: SnapshotKey | None = None,
    ) -> None:
        """Create a snapshotter; :meth:`start` starts it.

        Args:
            lists: the live lists; each snapshot is one immutable view.
            directory: where snapshots go (the server's --data-dir).
            interval: seconds between snapshots.
            keep: snapshots kept; older ones are deleted.
            on_written: called with the new snapshot's creation time.
            key: sign each snapshot with this key; None writes them unsigned.
        """
        self._lists = lists
        self._directory = directory
        self._interval = interval
        self._keep = keep
        self._on_written = on_written
        self._key = key
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        newest = find_newest(directory)
        self._written = _version_of(newest) if newest is not None else Version()

    def start(self) -> None:
        """Start the thread."""
        self._thread = threading.Thread(target=self._run, name="snapshotter", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread (a snapshot being written finishes first)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def snapshot_now(self) -> Path | None:
        """Write a snapshot if the data changed since the last one; returns its path."""
        view = self._lists.view
        if view.version <= self._written:
            return None
        path = write_snapshot(self._directory, view, self._key)
        self._written = view.version
        if self._on_written is not None:
            self._on_written(path.stat().st_mtime)
        prune_snapshots(self._directory, self._keep)
        return path

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.snapshot_now()
            except (OSError, SnapshotError) as exc:
                logger.error("cannot write a snapshot into %s: %s", self._directory, exc)


def _version_of(path: Path) -> Version:
    match = _SNAPSHOT_NAME.match(path.name)
    if match is None:
        return Version()
    return Version(int(match.group(1)), int(match.group(2)))
