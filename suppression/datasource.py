"""Where a process's lists come from at start-up: the newest snapshot and plain number files."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from pyroaring import BitMap64

from suppression.e164 import Normalizer, validate_region
from suppression.errors import ConfigError, SnapshotError
from suppression.lists import ListInfo, ListKind, SuppressionLists, Version
from suppression.numberfile import read_number_file
from suppression.settings import Settings
from suppression.snapshot import Snapshot, find_newest, read_snapshot

__all__ = ["ListFileSpec", "LoadReport", "load_lists", "parse_list_spec"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ListFileSpec:
    """A ``--list NAME[:KIND]=FILE`` option."""

    name: str
    kind: ListKind
    path: Path


@dataclass(frozen=True, slots=True)
class LoadReport:
    """What was loaded, for logs and metrics."""

    snapshot: Snapshot | None
    seconds: float
    numbers: int


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


def load_lists(settings: Settings) -> tuple[SuppressionLists, LoadReport]:
    """Build the lists from ``--data-dir`` and ``--list`` options.

    Raises:
        ConfigError: nothing to load, or a file is missing.
        SnapshotError: the newest snapshot is corrupt.
        NumberFileError: a number file has invalid lines (without --skip-invalid).
    """
    started = time.perf_counter()
    specs = [parse_list_spec(item) for item in settings.list]
    if settings.data_dir is None and not specs:
        raise ConfigError("nothing to serve: give --data-dir DIR and/or --list NAME=FILE")
    region = _region(settings.region)
    bitmaps: dict[str, BitMap64] = {}
    infos: dict[str, ListInfo] = {}
    version = Version()
    snapshot: Snapshot | None = None
    if settings.data_dir is not None:
        newest = find_newest(settings.data_dir)
        if newest is None:
            if not specs:
                raise SnapshotError(
                    f"no snapshot in {settings.data_dir}; create one with suppression-loader "
                    "import, or give --list NAME=FILE"
                )
        else:
            snapshot = read_snapshot(newest)
            bitmaps.update(snapshot.bitmaps)
            infos.update(snapshot.infos)
            version = snapshot.version
            logger.info("loaded snapshot %s at version %s", newest, version)
    normalizer = Normalizer(settings.parse_cache_size)
    for spec in specs:
        if not spec.path.is_file():
            raise ConfigError(f"--list {spec.name}={spec.path}: no such file")
        loaded = read_number_file(
            spec.path, region, skip_invalid=settings.skip_invalid, normalizer=normalizer
        )
        bitmap = loaded.to_bitmap()
        if spec.name in bitmaps:
            bitmap |= bitmaps[spec.name]
        bitmaps[spec.name] = bitmap
        infos[spec.name] = ListInfo(spec.name, spec.kind)
        # Separators keep the count from looking like a phone number to the log mask.
        logger.info("loaded list %s from %s: %s numbers", spec.name, spec.path, f"{len(bitmap):,}")
    defaults = settings.default_lists or None
    lists = SuppressionLists(bitmaps, infos.values(), version, defaults)
    total = sum(len(b) for b in bitmaps.values())
    return lists, LoadReport(snapshot, time.perf_counter() - started, total)


def _region(region: str) -> str:
    try:
        return validate_region(region)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
