"""The embedded replica: a snapshot, a real change log, a peer, and the server's answers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from prometheus_client import CollectorRegistry
from pyroaring import BitMap64

from suppression.checker import Verdict
from suppression.datasource import DataSource
from suppression.embedded import EmbeddedReplica
from suppression.errors import NotReadyError
from suppression.lists import ListInfo, ListKind, ListView, Version
from suppression.policy.batch import PolicyRequest
from suppression.replica import ChangeLogOptions, Replica, SnapshotOptions
from suppression.server import ServerOptions, create_server
from suppression.snapshot import write_snapshot
from suppression.v1 import suppression_pb2 as pb
from suppression.v1 import suppression_pb2_grpc as pb_grpc
from tests.conftest import RedisServer, client_channel, wait_for

pytestmark = pytest.mark.integration

US = 12125550123
CN = 8613800138000
ALLOWED_US = 12025550147
START = Version(1_700_000_000_000, 1)


def write_data(directory: Path) -> None:
    view = ListView(
        START,
        {"national": BitMap64([US]), "internal": BitMap64([CN])},
        {"national": ListInfo("national", ListKind.REGISTRY), "internal": ListInfo("internal")},
        (),
    )
    write_snapshot(directory, view)


@contextmanager
def server(
    data_dir: Path, redis_url: str = "", snapshots: bool = False
) -> Iterator[tuple[pb_grpc.SuppressionStub, str]]:
    change_log = ChangeLogOptions(redis_url=redis_url, max_staleness=5.0) if redis_url else None
    replica = Replica(
        DataSource(data_dir=data_dir),
        change_log,
        SnapshotOptions(interval=3600.0) if snapshots else None,
    )
    process = create_server(replica, ServerOptions(port=0), CollectorRegistry(), "127.0.0.1:0")
    replica.start()
    process.sync_health()
    target = f"127.0.0.1:{process.port}"
    channel = client_channel(target)
    try:
        yield pb_grpc.SuppressionStub(channel), target
    finally:
        channel.close()
        process.stop(0)
        replica.stop()


def test_it_answers_as_the_server_does_from_the_same_snapshot(tmp_path: Path) -> None:
    write_data(tmp_path)
    numbers = [US, CN, ALLOWED_US, 999, 12125550124]
    with server(tmp_path) as (stub, _), EmbeddedReplica(tmp_path) as embedded:
        remote = stub.Check(pb.CheckRequest(e164=numbers))
        local = embedded.check(numbers)
        assert local.verdicts == list(remote.verdicts)
        assert local.masks == list(remote.matched)
        assert [embedded.check_one(number) for number in numbers] == local.verdicts
        assert embedded.version == remote.version == str(START)
        assert embedded.is_allowed(ALLOWED_US) and not embedded.is_allowed(US)
        assert not embedded.freshness.stale and embedded.serving
        text = embedded.check(numbers=["(202) 555-0147", "+1 212 555 0123"], region="US")
        assert text.verdicts == [Verdict.ALLOWED, Verdict.SUPPRESSED]


def test_it_follows_the_change_log_and_fails_closed_when_stale(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    writer_dir, reader_dir = tmp_path / "writer", tmp_path / "reader"
    with server(writer_dir, redis_server.url) as (stub, _):
        first = stub.Suppress(
            pb.SuppressRequest(e164=[US], list="optout", source="app", create_list=True)
        )
        with EmbeddedReplica(
            reader_dir, redis_url=redis_server.url, max_staleness=1.0, fail_closed=True
        ) as embedded:
            wait_for(lambda: embedded.check_one(US) is Verdict.SUPPRESSED, 10, "the opt-out")
            assert Version.parse(embedded.version) >= Version.parse(first.version)
            assert embedded.check_one(ALLOWED_US) is Verdict.ALLOWED
            later = stub.Suppress(
                pb.SuppressRequest(e164=[ALLOWED_US], list="optout", source="app")
            )
            wait_for(lambda: embedded.version == later.version, 10, "the second write")
            assert embedded.check_one(ALLOWED_US) is Verdict.SUPPRESSED
            redis_server.stop()
            # Redis gone: past --max-staleness, every valid number is SUPPRESSED, none ALLOWED.
            wait_for(lambda: embedded.freshness.fail_closed, 10, "the data to turn stale")
            assert embedded.check_one(12125550199) is Verdict.SUPPRESSED
            assert embedded.check([12125550199]).failed_closed
            assert embedded.check_one(999) is Verdict.INVALID


def test_it_refuses_to_answer_while_it_knows_it_misses_changes(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    with server(tmp_path / "writer", redis_server.url) as (stub, _):
        for number in (CN, US):
            stub.Suppress(
                pb.SuppressRequest(e164=[number], list="optout", source="app", create_list=True)
            )
    client = redis.Redis.from_url(redis_server.url)
    client.xtrim("suppression:deltas", maxlen=0, approximate=False)
    # Started late on an empty directory, it would read an empty log and say ALLOWED.
    with EmbeddedReplica(tmp_path / "late", redis_url=redis_server.url) as embedded:
        wait_for(lambda: not embedded.serving, 10, "the gap noticed")
        assert embedded.freshness.stale
        with pytest.raises(NotReadyError, match="missing changes"):
            embedded.check_one(US)
        with pytest.raises(NotReadyError, match="missing changes"):
            embedded.check([US, ALLOWED_US])


def test_it_fetches_the_newest_snapshot_from_a_peer(tmp_path: Path) -> None:
    peer_dir, empty = tmp_path / "peer", tmp_path / "empty"
    write_data(peer_dir)
    with server(peer_dir) as (_, target), EmbeddedReplica(empty, peers=[target]) as embedded:
        assert embedded.version == str(START)
        assert embedded.check_one(US) is Verdict.SUPPRESSED
    assert list(empty.glob("*.snap")), "the fetched snapshot stays for the next start"


AFTERNOONS = """\
version = "p1"

[lists]
national = "registry"

[policies.afternoons]
suppress = ["national"]

[policies.afternoons.window]
start = "13:00"
end = "21:00"
"""
NOON_NEW_YORK_MS = 1_764_003_600_000  # 2025-11-24T17:00:00Z


def test_it_decides_under_the_same_policies(tmp_path: Path) -> None:
    write_data(tmp_path)
    policy_file = tmp_path / "policies.toml"
    policy_file.write_text(AFTERNOONS)
    with EmbeddedReplica(tmp_path, policy_file=policy_file) as embedded:
        noon = embedded.check([US, ALLOWED_US], policy=PolicyRequest(at_ms=NOON_NEW_YORK_MS))
        assert noon.verdicts == [Verdict.SUPPRESSED, Verdict.DEFERRED]
        assert noon.policy is not None and noon.policy.policy == "afternoons"
        assert noon.policy.earliest_ms[1] == NOON_NEW_YORK_MS + 3_600_000
        assert embedded.check_one(US) is Verdict.SUPPRESSED  # on the registry at any hour
