"""Where a process's lists come from at start-up: the newest snapshot and plain number files."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pyroaring import BitMap64

from suppression.e164 import Normalizer, validate_region
from suppression.errors import ConfigError, InvalidInputError, SnapshotError
from suppression.lists import (
    ListInfo,
    ListKind,
    LogPosition,
    SuppressionLists,
    Version,
    check_kind_change,
)
from suppression.numberfile import read_number_file
from suppression.policy.dated import DatedList, carry_days
from suppression.snapshot import Snapshot, find_newest, read_snapshot
from suppression.snapshotkey import SnapshotKey

if TYPE_CHECKING:
    from suppression.settings import Settings

__all__ = [
    "DataSource",
    "ListFileSpec",
    "LoadedData",
    "load_lists",
    "parse_list_spec",
    "snapshot_key",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ListFileSpec:
    """A ``--list NAME[:KIND]=FILE`` option."""

    name: str
    kind: ListKind
    path: Path


@dataclass(frozen=True, slots=True)
class DataSource:
    """Where a replica's lists come from at start-up: a snapshot directory and number files."""

    data_dir: Path | None = None
    """Directory of snapshot files; the newest is loaded."""
    list_files: tuple[ListFileSpec, ...] = ()
    """Plain number files loaded as lists, over the snapshot's."""
    region: str = ""
    """Default region for national number forms in the files."""
    skip_invalid: bool = False
    """Load number files even if some lines are not numbers."""
    default_lists: tuple[str, ...] = ()
    """Lists checked when a request names none; empty means all lists."""
    parse_cache_size: int = 200_000
    """Loose-format parse results kept while reading number files."""
    snapshot_key: SnapshotKey | None = None
    """Every snapshot read must be signed with it, and every snapshot written is."""

    @classmethod
    def from_settings(cls, settings: Settings) -> DataSource:
        """The data source the ``serve``, ``check`` and ``scrub`` options describe.

        Raises:
            ConfigError: a ``--list`` option or the region is malformed, or the
                ``--snapshot-key-file`` cannot be used.
        """
        return cls(
            data_dir=settings.data_dir,
            list_files=tuple(parse_list_spec(item) for item in settings.list),
            region=_region(settings.region),
            skip_invalid=settings.skip_invalid,
            default_lists=settings.default_lists,
            parse_cache_size=settings.parse_cache_size,
            snapshot_key=snapshot_key(settings.snapshot_key_file),
        )


@dataclass(frozen=True, slots=True)
class LoadedData:
    """Lists as loaded, with what logs and freshness need to know about them."""

    lists: SuppressionLists
    data_dir: Path | None
    """The snapshot directory they were loaded from, where newer snapshots appear."""
    snapshot_created_at: float | None
    """When the snapshot they came from was written; None without a snapshot."""
    seconds: float
    numbers: int
    snapshot_key: SnapshotKey | None = None
    """The key snapshots are signed and verified with (see :class:`DataSource`)."""


def snapshot_key(path: Path | None) -> SnapshotKey | None:
    """The ``--snapshot-key-file`` key, or None when the option is not given.

    Raises:
        ConfigError: the file cannot be read, others may read it, or it holds
            no key or a short one.
    """
    return SnapshotKey.from_file(path) if path is not None else None


def parse_list_spec(text: str) -> ListFileSpec:
    """Parse ``NAME=FILE`` or ``NAME:KIND=FILE``.

    Raises:
        ConfigError: the option is malformed or names an unknown kind.
    """
    label, sep, path = text.partition("=")
    if not sep or not label or not path:
        raise ConfigError(f"--list {text!r}: expected NAME=FILE or NAME:KIND=FILE")
    name, _, kind_text = label.partition(":")
    try:
        kind = ListKind(kind_text) if kind_text else ListKind.OPT_OUT
    except ValueError:
        kinds = ", ".join(k.value for k in ListKind)
        raise ConfigError(
            f"--list {text!r}: unknown kind {kind_text!r}; use one of {kinds}"
        ) from None
    return ListFileSpec(name.strip(), kind, Path(path))


def load_lists(source: DataSource, *, allow_empty: bool = False) -> LoadedData:
    """Build the lists from the newest snapshot and the number files.

    Args:
        source: where to read.
        allow_empty: with nothing to read, start from empty lists (a replica
            that replays the change log from its start) instead of failing.

    Raises:
        ConfigError: nothing to load, or a file is missing.
        SnapshotError: the newest snapshot is corrupt, or not signed with the key.
        NumberFileError: a number file has invalid lines (without skip_invalid).
    """
    started = time.perf_counter()
    if source.data_dir is None and not source.list_files and not allow_empty:
        raise ConfigError("nothing to serve: give --data-dir DIR and/or --list NAME=FILE")
    bitmaps: dict[str, BitMap64] = {}
    infos: dict[str, ListInfo] = {}
    version = Version()
    position = LogPosition()
    days: dict[str, DatedList] = {}
    snapshot: Snapshot | None = None
    newest = find_newest(source.data_dir) if source.data_dir is not None else None
    if newest is not None:
        snapshot = read_snapshot(newest, source.snapshot_key)
        bitmaps.update(snapshot.bitmaps)
        infos.update(snapshot.infos)
        days.update(snapshot.days)
        version = snapshot.version
        position = snapshot.position
        logger.info("loaded snapshot %s at version %s (%s)", newest, version, position)
    elif source.data_dir is not None and not source.list_files and not allow_empty:
        raise SnapshotError(
            f"no snapshot in {source.data_dir}; create one with suppression-loader "
            "import, or give --list NAME=FILE"
        )
    normalizer = Normalizer(source.parse_cache_size)
    for spec in source.list_files:
        if not spec.path.is_file():
            raise ConfigError(f"--list {spec.name}={spec.path}: no such file")
        known = infos.get(spec.name)
        check_kind_change(spec.name, known.kind if known is not None else None, spec.kind)
        loaded = read_number_file(
            spec.path, source.region, skip_invalid=source.skip_invalid, normalizer=normalizer
        )
        bitmap = loaded.to_bitmap()
        if spec.name in bitmaps:
            bitmap |= bitmaps[spec.name]
        bitmaps[spec.name] = bitmap
        if spec.name in days:  # the file's numbers get no day; the snapshot's keep theirs
            carried = carry_days(bitmap, days.pop(spec.name), BitMap64(), ())
            if carried is not None:
                days[spec.name] = carried
        infos[spec.name] = ListInfo(spec.name, spec.kind)
        # Separators keep the count from looking like a phone number to the log mask.
        logger.info("loaded list %s from %s: %s numbers", spec.name, spec.path, f"{len(bitmap):,}")
    lists = SuppressionLists(
        bitmaps, infos.values(), version, source.default_lists or None, position, days
    )
    total = sum(len(b) for b in bitmaps.values())
    created = snapshot.created_at if snapshot is not None else None
    seconds = time.perf_counter() - started
    return LoadedData(lists, source.data_dir, created, seconds, total, source.snapshot_key)


def _region(region: str) -> str:
    try:
        return validate_region(region)
    except InvalidInputError as exc:
        raise ConfigError(f"--region: {exc}") from exc
