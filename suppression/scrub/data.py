"""Where a local scrub's data comes from: the one seam between the scrub and the loaded lists."""

from __future__ import annotations

import logging

from suppression.datasource import DataSource, parse_list_spec, snapshot_key
from suppression.errors import ConfigError
from suppression.lists import ListView, Version
from suppression.replica import Replica
from suppression.scrub.options import ScrubOptions

__all__ = ["local_view", "past_view"]

logger = logging.getLogger(__name__)


def local_view(options: ScrubOptions) -> ListView:
    """Load ``--data-dir`` and ``--list`` files as ``suppression serve`` does, and return the view.

    With ``--as-of``, the lists as they stood then instead (:func:`past_view`).

    Raises:
        ConfigError: nothing to load, or a file is missing.
        SnapshotError: the newest snapshot is corrupt.
        NumberFileError: a number file has invalid lines.
        ArchiveCoverageError: the archive cannot answer for ``--as-of``.
    """
    if options.as_of:
        return past_view(options)
    source = DataSource(
        data_dir=options.data_dir,
        list_files=tuple(parse_list_spec(item) for item in options.list_files),
        region=options.region,
        parse_cache_size=options.parse_cache_size,
        snapshot_key=snapshot_key(options.snapshot_key_file),
    )
    replica = Replica(source)
    loaded = replica.start()
    # Counts are written with separators: the log filter masks long digit runs as numbers.
    logger.debug("loaded %s numbers in %.2f s", f"{loaded.numbers:,}", loaded.seconds)
    return replica.view()


def past_view(options: ScrubOptions) -> ListView:
    """The lists as of ``--as-of``: the newest snapshot before it plus the change archive.

    The same rebuild as ``Check`` with ``as_of_version`` and ``suppression explain``
    (:func:`~suppression.archive.asof.view_as_of`): a point the archive cannot answer
    for is refused, never guessed.

    Raises:
        ConfigError: ``--list`` files (they have no history), no archive, or a bad point.
        ArchiveCoverageError: the archive cannot answer for that point.
    """
    from suppression.archive import ArchiveReader
    from suppression.archive.asof import view_as_of
    from suppression.explain.model import version_at_time
    from suppression.explain.request import parse_time

    if options.list_files:
        raise ConfigError("--as-of rebuilds lists from the change archive: --list files have none")
    directory = options.archive_dir
    if directory is None and options.data_dir is not None:
        directory = options.data_dir / "archive"
    if directory is None or not directory.is_dir():
        raise ConfigError(
            f"--as-of needs the change archive: no archive in {directory or '(none given)'}; "
            "give --data-dir holding archive/, or --archive-dir"
        )
    text = options.as_of.strip()
    try:
        at = Version.parse(text) if "-" in text and text.replace("-", "").isdigit() else None
    except ValueError:
        at = None
    if at is None:
        at = version_at_time(parse_time(text))
    view = view_as_of(
        ArchiveReader(directory),
        at,
        snapshots=options.data_dir,
        key=snapshot_key(options.snapshot_key_file),
    )
    logger.info(
        "scrubbing as of version %s (asked: %s), rebuilt from %s", view.version, at, directory
    )
    return view
