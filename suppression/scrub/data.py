"""Where a local scrub's data comes from: the one seam between the scrub and the loaded lists."""

from __future__ import annotations

import logging

from suppression.datasource import DataSource, parse_list_spec, snapshot_key
from suppression.lists import ListView
from suppression.replica import Replica
from suppression.scrub.options import ScrubOptions

__all__ = ["local_view"]

logger = logging.getLogger(__name__)


def local_view(options: ScrubOptions) -> ListView:
    """Load ``--data-dir`` and ``--list`` files as ``suppression serve`` does, and return the view.

    Raises:
        ConfigError: nothing to load, or a file is missing.
        SnapshotError: the newest snapshot is corrupt.
        NumberFileError: a number file has invalid lines.
    """
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
