"""Sample values shared by several test modules."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pyroaring import BitMap64

from suppression.lists import ListInfo, ListKind, SuppressionLists, Version

DEFAULT_VERSION = Version(1700000000000, 3)


def make_lists(version: Version = DEFAULT_VERSION) -> SuppressionLists:
    national = BitMap64(range(12125550000, 12125560000, 3))
    national.add_range(19000000000, 19010000000)
    return SuppressionLists(
        {"national": national, "internal": BitMap64([8613800138000]), "empty": BitMap64()},
        infos=[ListInfo("national", ListKind.REGISTRY), ListInfo("empty", ListKind.CAMPAIGN)],
        version=version,
    )


@dataclass(frozen=True, slots=True)
class State:
    """A value shaped like changelog.FollowerState."""

    connected: bool = True
    last_applied_id: str = "1700000000000-7"
    lag_entries: int = 0
    lag_seconds: float = 0.0
    staleness_seconds: float = 0.5
    stale: bool = False
    needs_resync: bool = False
    applied_by_op: Mapping[str, int] = field(default_factory=dict)
    dead_letters: int = 0
    snapshot_age_seconds: float | None = None
    losses: Mapping[str, int] = field(default_factory=dict)
