"""The consent rule holds in the loader: opt-out lists keep their kind and their numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pyroaring import BitMap64

from loader.cli import main
from loader.publish import entries, publish
from suppression.errors import InvalidEntryError
from suppression.lists import ListInfo, ListKind, Op, SuppressionLists, Version
from suppression.snapshot import find_newest, read_snapshot, write_snapshot
from suppression.writer import ChangeLogWriter
from tests.conftest import RedisServer, wait_for
from tests.integration.live_replicas import (  # noqa: F401 - a fixture
    Replica,
    ReplicaFactory,
    redis_client,
    start_replica_fixture,
)

pytestmark = pytest.mark.integration

STREAM = "suppression:deltas"
DEAD = "suppression:deltas:dead"
CN, US, UK = 8613800138000, 12125550123, 442079460000


def caught_up(replica: Replica, server: RedisServer) -> None:
    head = Version.parse(redis_client(server).xrevrange(STREAM, count=1)[0][0].decode())
    wait_for(lambda: replica.lists.version >= head, 5, "the replica to reach the head")


def numbers_file(path: Path, *numbers: int) -> Path:
    path.write_text("".join(f"+{n}\n" for n in numbers))
    return path


def test_a_snapshot_import_keeps_an_opt_out_list_and_its_numbers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    common = ["--list-name", "internal", "--data-dir", str(data)]
    first = numbers_file(tmp_path / "first.txt", CN, US)
    assert main(["import", str(first), *common, "--kind", "opt_out", "--create-list"]) == 0
    base = find_newest(data)
    later = numbers_file(tmp_path / "later.txt", UK)
    # The kind cannot change, whatever the flags.
    for flags in (["--kind", "campaign"], ["--kind", "registry", "--create-list"]):
        assert main(["import", str(later), *common, *flags]) == 2
        assert "is a opt_out list" in capsys.readouterr().err
        assert find_newest(data) == base, "nothing was written"
    # A file that lacks numbers adds its own and releases none.
    assert main(["import", str(later), *common]) == 0
    out = capsys.readouterr().out
    assert "kept 2 opt-out number(s) that the file(s) lack" in out
    assert "publish remove --source consent --evidence" in out
    snapshot = read_snapshot(find_newest(data))  # type: ignore[arg-type]
    assert set(snapshot.bitmaps["internal"]) == {CN, US, UK}
    assert snapshot.infos["internal"].kind is ListKind.OPT_OUT
    # Registry lists are still replaced by their full download.
    registry = ["--list-name", "national", "--data-dir", str(data)]
    assert main(["import", str(first), *registry, "--create-list"]) == 0
    assert main(["import", str(later), *registry]) == 0
    snapshot = read_snapshot(find_newest(data))  # type: ignore[arg-type]
    assert set(snapshot.bitmaps["national"]) == {UK}


def test_a_snapshot_import_refuses_data_that_follows_a_change_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    followed = SuppressionLists(
        {"internal": BitMap64([CN])}, [ListInfo("internal")], Version(1795424436538, 0)
    )
    written = write_snapshot(data, followed.view)
    spring = numbers_file(tmp_path / "spring.txt", US)
    argv = ["import", str(spring), "--list-name", "spring", "--kind", "campaign",
            "--create-list", "--data-dir", str(data)]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "follow a change log" in err and "--redis-url" in err
    assert find_newest(data) == written, "nothing was written"


def test_a_published_import_never_releases_an_opt_out(
    start_replica: ReplicaFactory, redis_server: RedisServer, tmp_path: Path
) -> None:
    replica = start_replica()
    url = ["--redis-url", redis_server.url, "--list-name", "internal"]
    for number in (CN, US):
        assert main(["publish", "add", f"+{number}", *url, "--source", "in_call",
                     "--create-list"]) == 0  # fmt: skip
    later = numbers_file(tmp_path / "later.txt", US, UK)
    # Not even with a consent source: a file that lacks a number is not that person's consent.
    for flags in ([], ["--source", "consent", "--evidence", "export-2026-11"]):
        assert main(["import", str(later), *url, *flags]) == 0
        caught_up(replica, redis_server)
        assert [replica.suppressed(n) for n in (CN, US, UK)] == [True, True, True]
    assert replica.follower_state().dead_letters == 0
    ops = [fields[b"op"] for _, fields in redis_client(redis_server).xrange(STREAM)]
    assert b"remove" not in ops


def test_the_loader_refuses_what_a_replica_would_dead_letter(
    start_replica: ReplicaFactory,
    redis_server: RedisServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A bootstrap snapshot written blind to the log calls an opt-out list 'campaign'."""
    replica = start_replica()  # follows the log from its start
    url = ["--redis-url", redis_server.url, "--list-name", "internal"]
    assert main(["publish", "add", f"+{CN}", *url, "--source", "in_call", "--create-list"]) == 0
    caught_up(replica, redis_server)
    data = tmp_path / "data"
    spring = numbers_file(tmp_path / "spring.txt", US)
    assert main(["import", str(spring), "--list-name", "internal", "--kind", "campaign",
                 "--create-list", "--data-dir", str(data)]) == 0  # fmt: skip
    client = redis_client(redis_server)
    length = client.xlen(STREAM)
    # The loader checks against the kind the replicas hold, not the snapshot's.
    argv = ["publish", "remove", f"+{CN}", *url, "--source", "app", "--data-dir", str(data)]
    assert main(argv) == 2
    assert "only through source 'consent'" in capsys.readouterr().err
    assert client.xlen(STREAM) == length, "nothing was written"
    consent = ["--source", "consent", "--evidence", "form-17", "--data-dir", str(data)]
    assert main(["publish", "remove", f"+{CN}", *url, *consent]) == 0
    caught_up(replica, redis_server)
    assert not replica.suppressed(CN)
    assert client.xlen(DEAD) == 0, "no replica dead-lettered anything the loader wrote"


def test_a_batch_is_checked_whole_before_any_entry_is_written(redis_server: RedisServer) -> None:
    """Nine entries, the last invalid: the first eight are not written either."""
    client = redis_client(redis_server)
    writer = ChangeLogWriter(client, STREAM, "test")
    numbers = np.arange(12_000_000_000, 12_000_800_000, dtype=np.uint64)
    provenance = {"source": "registry"}
    batch = entries(Op.ADD, "national", ListKind.REGISTRY, numbers, provenance=provenance)
    batch += entries(Op.ADD, "national", ListKind.REGISTRY, [12], provenance=provenance)
    assert len(batch) == 9
    with pytest.raises(InvalidEntryError, match="not valid E.164"):
        publish(writer, batch, {})
    assert client.xlen(STREAM) == 0
