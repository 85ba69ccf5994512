"""A split brain: the sentinels name a new primary while the old one still calls itself one.

Real processes: a Redis primary with its replica, three sentinels, and a third
Redis server that becomes the new primary with a copy of the log as it was
before the last (unacknowledged) write. The sentinels are then told to watch
the new primary only, so the old one never learns it was replaced: it keeps
accepting connections, reads and writes, as an old primary does for many
seconds after a failover it did not see. A replica connected to it before
must not go on serving from it: it moves to the primary the sentinels name,
finds the entry it applied last gone, and serves exactly what that log holds.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from suppression.changelog.streaminfo import meta_key
from suppression.redisconn import PrimaryWatch, connect
from suppression.v1 import suppression_pb2 as pb
from tests.conftest import wait_for
from tests.integration.redis_ha import (  # noqa: F401 - a fixture
    MASTER,
    RedisGroup,
    RedisNode,
    SentinelReplica,
    redis_sentinels_fixture,
    replica_through_sentinels,
)

pytestmark = pytest.mark.integration

STREAM = "suppression:deltas"
A, B = 8613800138000, 8613800138001
SERVING = health_pb2.HealthCheckResponse.SERVING


def _copy_log(source: redis.Redis, target: redis.Redis) -> None:
    """The stream and its meta hash, byte for byte (DUMP and RESTORE)."""
    for key in (STREAM, meta_key(STREAM)):
        dumped = source.dump(key)
        assert dumped is not None, key
        target.restore(key, 0, dumped, replace=True)


def _watch_only(group: RedisGroup, node: RedisNode) -> None:
    """Make every sentinel forget the old primary and watch ``node`` as the primary."""
    for sentinel in group.sentinels:
        client = redis.Redis(host="127.0.0.1", port=sentinel.port, socket_timeout=5)
        client.sentinel_remove(MASTER)
        client.sentinel_monitor(MASTER, "127.0.0.1", node.port, 2)
        client.sentinel_set(MASTER, "down-after-milliseconds", 1000)


def test_a_replica_leaves_an_old_primary_the_sentinels_replaced(
    redis_sentinels: RedisGroup, tmp_path: Path
) -> None:
    new_primary = RedisNode(tmp_path / "redis-new")
    try:
        with replica_through_sentinels(redis_sentinels, tmp_path / "data") as replica:
            _leave_the_old_primary(redis_sentinels, replica, new_primary)
    finally:
        new_primary.kill()


def _leave_the_old_primary(
    group: RedisGroup, replica: SentinelReplica, new_primary: RedisNode
) -> None:
    core, channel, stub = replica.core, replica.channel, replica.stub

    def verdicts() -> list[int]:
        """The answers for A and B; [] while the replica refuses (UNAVAILABLE)."""
        try:
            return list(stub.Check(pb.CheckRequest(e164=[A, B]), timeout=5).verdicts)
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc
            return []

    request = pb.SuppressRequest(e164=[A], list="internal", source="app", create_list=True)
    stub.Suppress(request, timeout=10)
    old = group.primary()
    new_primary.start()
    _copy_log(old.client(), new_primary.client())  # the log as the failover keeps it

    # B reaches the old primary only: its replica is cut off, so B is never acknowledged.
    redis_replica = next(n for n in group.nodes if n is not old)
    redis_replica.pause()
    old.client().client_kill_filter(_type="replica")
    with pytest.raises(grpc.RpcError, match="not acknowledged"):
        stub.Suppress(pb.SuppressRequest(e164=[B], list="internal", source="app"))
    wait_for(lambda: verdicts() == [pb.SUPPRESSED] * 2, 5, "the replica to apply B anyway")

    _watch_only(group, new_primary)
    assert old.client().info("replication")["role"] == "master", "the old primary lives on"

    def recovered() -> bool:
        request = health_pb2.HealthCheckRequest()
        health = health_pb2_grpc.HealthStub(channel).Check(request, timeout=5).status
        return health == SERVING and verdicts() == [pb.SUPPRESSED, pb.ALLOWED]

    wait_for(recovered, 20, "the replica to leave the old primary and drop B")
    assert B in _numbers_in(old.client()), "the old primary still holds B: a split brain"
    assert B not in _numbers_in(new_primary.client())
    state = core.follower_state()
    assert state is not None and state.losses["rewound"] >= 1


def _numbers_in(client: redis.Redis) -> set[int]:
    found: set[int] = set()
    for _, fields in client.xrange(STREAM):
        if fields.get(b"op") == b"add":
            found.update(int(n) for n in fields[b"numbers"].split(b","))
    return found


def test_a_watch_on_one_redis_server_does_nothing() -> None:
    client = connect("redis://127.0.0.1:1/0")
    assert PrimaryWatch(client).check() is False
