"""A replica that writes snapshots archives every change it applies, before applying it."""

from __future__ import annotations

from pathlib import Path

import pytest

from suppression.archive import ArchiveOptions, ArchiveReader
from suppression.datasource import DataSource
from suppression.e164 import NumberBlock
from suppression.lists import Op, Version
from suppression.replica import ChangeLogOptions, Replica, SnapshotOptions
from tests.conftest import RedisServer

pytestmark = pytest.mark.integration

CN = 8613800138000
US = 12125550123


def archiving_replica(redis_url: str, data_dir: Path) -> Replica:
    archive = ArchiveOptions(data_dir / "archive", fsync=True, snapshots=data_dir)
    replica = Replica(
        DataSource(data_dir=data_dir),
        ChangeLogOptions(redis_url=redis_url, max_staleness=5.0),
        SnapshotOptions(interval=3600.0, archive=archive),
    )
    replica.start()
    return replica


def test_every_acknowledged_change_is_in_the_archive_with_its_provenance(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    replica = archiving_replica(redis_server.url, tmp_path)
    try:
        first = replica.submit(
            Op.ADD, "optout", [CN, US], source="in_call", actor="agent-7",
            evidence="rec-981", create_list=True,
        )  # fmt: skip
        second = replica.submit(
            Op.REMOVE, "optout", [US], source="consent", actor="cs-2", evidence="form-17"
        )
        block = replica.submit(
            Op.ADD, "optout", [], [NumberBlock(19005550000, 19005559999)], source="registry"
        )
        assert replica.archive_dir == tmp_path / "archive"
    finally:
        replica.stop()
    reader = ArchiveReader(tmp_path / "archive")
    changes, _ = reader.changes(None, block, US)
    assert [c.version for c in changes] == [first, second]
    entries = [c.entry() for c in changes]
    assert [(e.op, e.source, e.actor, e.evidence) for e in entries] == [
        (Op.ADD, "in_call", "agent-7", "rec-981"),
        (Op.REMOVE, "consent", "cs-2", "form-17"),
    ]
    in_block, _ = reader.changes(None, block, 19005551234)
    assert [c.version for c in in_block] == [block]
    base, _ = reader.base_for(first)
    assert base.version == Version() and base.reason == "start"


def test_a_restarted_replica_archives_nothing_twice(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    replica = archiving_replica(redis_server.url, tmp_path)
    try:
        first = replica.submit(Op.ADD, "optout", [CN], source="in_call", create_list=True)
    finally:
        replica.stop()  # writes a snapshot at `first`
    replica = archiving_replica(redis_server.url, tmp_path)
    try:
        second = replica.submit(Op.ADD, "optout", [US], source="in_call")
    finally:
        replica.stop()
    reader = ArchiveReader(tmp_path / "archive")
    changes, _ = reader.changes(None, second)
    assert [c.version for c in changes] == [first, second]
    assert [b.reason for b in reader.catalog().bases] == ["start"]
