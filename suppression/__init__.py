"""Pre-dial suppression: do-not-call lists in memory as Roaring bitmaps, answered over gRPC.

The public API; everything else lives in modules that may change.
"""

from suppression.changelog import ChangeLogFollower, FollowerState
from suppression.checker import CheckOutcome, Verdict, check_batch
from suppression.e164 import InvalidReason, Normalizer, NumberBlock, mask_number, parse_block
from suppression.entries import Entry, InvalidEntryError
from suppression.errors import (
    ChangeLogError,
    ConfigError,
    ConsentRequiredError,
    InvalidRequestError,
    NotReadyError,
    NumberFileError,
    SnapshotError,
    SuppressionError,
    UnknownListError,
    VersionError,
)
from suppression.lists import Change, ListInfo, ListKind, ListView, Op, SuppressionLists, Version
from suppression.settings import Settings
from suppression.snapshot import Snapshot, read_snapshot, write_snapshot

__all__ = [
    "Change",
    "ChangeLogError",
    "ChangeLogFollower",
    "CheckOutcome",
    "ConfigError",
    "ConsentRequiredError",
    "Entry",
    "FollowerState",
    "InvalidEntryError",
    "InvalidReason",
    "InvalidRequestError",
    "ListInfo",
    "ListKind",
    "ListView",
    "Normalizer",
    "NotReadyError",
    "NumberBlock",
    "NumberFileError",
    "Op",
    "Settings",
    "Snapshot",
    "SnapshotError",
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
