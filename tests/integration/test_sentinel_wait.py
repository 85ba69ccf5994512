"""No acknowledged write lost: a write returns only once Redis replicas hold it (WAIT).

A real Redis primary with one real replica; the replica is paused (SIGSTOP)
to make it miss a write, which must then fail with a clear error.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest
from prometheus_client import CollectorRegistry

from loader.cli import main
from suppression.datasource import DataSource
from suppression.entries import Entry
from suppression.errors import ChangeLogError
from suppression.lists import ListKind, Op
from suppression.redisconn import connect
from suppression.replica import ChangeLogOptions, Replica
from suppression.server import ServerOptions, create_server
from suppression.v1 import suppression_pb2 as pb
from suppression.v1 import suppression_pb2_grpc as pb_grpc
from suppression.writer import ChangeLogWriter
from tests.conftest import client_channel
from tests.integration.redis_ha import (  # noqa: F401 - a fixture
    RedisGroup,
    RedisNode,
    redis_pair_fixture,
)

pytestmark = pytest.mark.integration

STREAM = "suppression:deltas"
CN = 8613800138000


def entry(number: int) -> Entry:
    return Entry(Op.ADD, "internal", ListKind.OPT_OUT, "in_call", (number,))


@pytest.fixture
def paused(redis_pair: RedisGroup) -> Iterator[RedisNode]:
    """The pair's replica, paused while the test runs (resumed afterwards)."""
    replica = redis_pair.nodes[1]
    try:
        yield replica
    finally:
        replica.resume()


def test_a_write_returns_only_once_the_redis_replica_holds_it(redis_pair: RedisGroup) -> None:
    primary, replica = redis_pair.nodes
    writer = ChangeLogWriter(
        connect(primary.url), STREAM, "test", min_replicas=1, replica_timeout=2.0
    )
    versions = writer.write([entry(CN)])
    # No wait here: WAIT returned, so the replica holds the entry already.
    held = replica.client().xrange(STREAM)
    assert [v.decode() for v, _ in held] == [str(versions[0])]


def test_a_write_the_redis_replica_misses_fails_clearly(
    redis_pair: RedisGroup, paused: RedisNode
) -> None:
    primary = redis_pair.nodes[0]
    writer = ChangeLogWriter(
        connect(primary.url), STREAM, "test", min_replicas=1, replica_timeout=0.5
    )
    # Writes around the pause may wait longer: a replica acknowledges on its own schedule,
    # and on a busy machine 0.5 s is not always enough for a healthy one.
    patient = ChangeLogWriter(
        connect(primary.url), STREAM, "test", min_replicas=1, replica_timeout=10.0
    )
    patient.write([entry(CN)])
    paused.pause()
    started = time.monotonic()
    with pytest.raises(ChangeLogError, match=r"not acknowledged.*only 0 of the 1 Redis replica"):
        writer.write([entry(CN + 1)])
    assert time.monotonic() - started < 5, "the write waits about --replica-timeout, not forever"
    paused.resume()
    redis_pair.nodes[1].wait_in_sync()
    assert len(patient.write([entry(CN + 2)])) == 1, "writes go through again once it is back"


def test_more_replicas_than_exist_refuses_every_write(redis_pair: RedisGroup) -> None:
    writer = ChangeLogWriter(
        connect(redis_pair.nodes[0].url), STREAM, "test", min_replicas=2, replica_timeout=0.2
    )
    with pytest.raises(ChangeLogError, match=r"only [01] of the 2 Redis replica"):
        writer.write([entry(CN)])


def test_suppress_fails_unavailable_when_the_redis_replica_misses_it(
    redis_pair: RedisGroup, paused: RedisNode
) -> None:
    options = ChangeLogOptions(
        # 2 s: long enough for a healthy replica on a busy machine, short for the test.
        redis_url=redis_pair.nodes[0].url,
        max_staleness=5.0,
        min_replicas=1,
        replica_timeout=2.0,
    )
    core = Replica(DataSource(), options)
    process = create_server(core, ServerOptions(port=0), CollectorRegistry(), "127.0.0.1:0")
    core.start()
    process.sync_health()
    channel = client_channel(f"127.0.0.1:{process.port}")
    stub = pb_grpc.SuppressionStub(channel)
    try:
        request = pb.SuppressRequest(e164=[CN], list="internal", source="in_call", create_list=True)
        assert stub.Suppress(request, timeout=10).applied == 1
        paused.pause()
        with pytest.raises(grpc.RpcError) as failure:
            stub.Suppress(pb.SuppressRequest(e164=[CN + 1], list="internal", source="app"))
        assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "not acknowledged" in str(failure.value.details())
    finally:
        channel.close()
        process.stop(0)
        core.stop()


def test_the_loader_exits_non_zero_when_replicas_miss_its_write(
    redis_pair: RedisGroup, paused: RedisNode, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--redis-url", redis_pair.nodes[0].url, "--list-name", "internal"]
    common += ["--source", "app", "--min-replicas", "1"]
    # The first write may wait longer: a healthy replica acknowledges on its own schedule.
    setup = ["--replica-timeout", "10"]
    assert main(["publish", "add", "+8613800138000", *common, *setup, "--create-list"]) == 0
    paused.pause()
    assert main(["publish", "add", "+8613800138001", *common, "--replica-timeout", "0.3"]) == 2
    assert "not acknowledged" in capsys.readouterr().err
