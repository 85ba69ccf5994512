"""Pre-dial suppression: do-not-call lists in memory as Roaring bitmaps, answered over gRPC.

The public API; everything else lives in modules that may change. Names are
imported on first use, so ``import suppression.e164`` loads neither Redis nor
gRPC nor the change-log follower.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from suppression.checker import CheckOutcome, Verdict, check_batch
    from suppression.datasource import DataSource, ListFileSpec, LoadedData
    from suppression.e164 import (
        InvalidReason,
        Normalizer,
        NumberBlock,
        mask_number,
        parse_block,
    )
    from suppression.embedded import EmbeddedReplica
    from suppression.entries import Entry
    from suppression.errors import (
        ChangeLogError,
        ConfigError,
        ConsentRequiredError,
        InvalidEntryError,
        InvalidInputError,
        InvalidRequestError,
        NotReadyError,
        NumberFileError,
        SnapshotError,
        SuppressionError,
        UnknownListError,
        VersionError,
    )
    from suppression.freshness import Freshness
    from suppression.lists import (
        Change,
        ListInfo,
        ListKind,
        ListView,
        Op,
        SuppressionLists,
        Version,
    )
    from suppression.replica import ChangeLogOptions, Replica, SnapshotOptions
    from suppression.settings import Settings
    from suppression.snapshot import Snapshot, read_snapshot, write_snapshot

_HOMES = {
    "Change": "lists",
    "ChangeLogError": "errors",
    "ChangeLogOptions": "replica",
    "CheckOutcome": "checker",
    "ConfigError": "errors",
    "ConsentRequiredError": "errors",
    "DataSource": "datasource",
    "EmbeddedReplica": "embedded",
    "Entry": "entries",
    "Freshness": "freshness",
    "InvalidEntryError": "errors",
    "InvalidInputError": "errors",
    "InvalidReason": "e164",
    "InvalidRequestError": "errors",
    "ListFileSpec": "datasource",
    "ListInfo": "lists",
    "ListKind": "lists",
    "ListView": "lists",
    "LoadedData": "datasource",
    "Normalizer": "e164",
    "NotReadyError": "errors",
    "NumberBlock": "e164",
    "NumberFileError": "errors",
    "Op": "lists",
    "Replica": "replica",
    "Settings": "settings",
    "Snapshot": "snapshot",
    "SnapshotError": "errors",
    "SnapshotOptions": "replica",
    "SuppressionError": "errors",
    "SuppressionLists": "lists",
    "UnknownListError": "errors",
    "Verdict": "checker",
    "Version": "lists",
    "VersionError": "errors",
    "check_batch": "checker",
    "mask_number": "e164",
    "parse_block": "e164",
    "read_snapshot": "snapshot",
    "write_snapshot": "snapshot",
}
"""Each public name and the module that defines it."""

__all__ = [
    "Change",
    "ChangeLogError",
    "ChangeLogOptions",
    "CheckOutcome",
    "ConfigError",
    "ConsentRequiredError",
    "DataSource",
    "EmbeddedReplica",
    "Entry",
    "Freshness",
    "InvalidEntryError",
    "InvalidInputError",
    "InvalidReason",
    "InvalidRequestError",
    "ListFileSpec",
    "ListInfo",
    "ListKind",
    "ListView",
    "LoadedData",
    "Normalizer",
    "NotReadyError",
    "NumberBlock",
    "NumberFileError",
    "Op",
    "Replica",
    "Settings",
    "Snapshot",
    "SnapshotError",
    "SnapshotOptions",
    "SuppressionError",
    "SuppressionLists",
    "UnknownListError",
    "Verdict",
    "Version",
    "VersionError",
    "check_batch",
    "mask_number",
    "parse_block",
    "read_snapshot",
    "write_snapshot",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'suppression' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"suppression.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
