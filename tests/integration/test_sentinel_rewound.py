"""A failover that loses an unacknowledged write: the replica that applied it drops it.

Real processes: a Redis primary, its replica (paused with SIGSTOP so that it
misses a write) and three sentinels. The replica follows with
``--min-replicas 1``, so what the failover loses was never acknowledged: it
reports NOT_SERVING, reloads the newest snapshot the log agrees with, replays,
and serves exactly what the log holds.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from suppression.changelog.planning import applied_entry_gone
from suppression.entries import Entry
from suppression.errors import ChangeLogError
from suppression.lists import ListKind, LogPosition, Op, Version
from suppression.redisconn import connect
from suppression.snapshot import find_newest, read_snapshot
from suppression.v1 import suppression_pb2 as pb
from suppression.writer import ChangeLogWriter
from tests.conftest import wait_for
from tests.integration.redis_ha import (  # noqa: F401 - a fixture
    MASTER,
    RedisGroup,
    SentinelReplica,
    redis_sentinels_fixture,
    replica_through_sentinels,
)

pytestmark = pytest.mark.integration

STREAM = "suppression:deltas"
A, B, C = 8613800138000, 8613800138001, 8613800138002
SERVING = health_pb2.HealthCheckResponse.SERVING


def test_applied_entry_gone_compares_the_entry_at_the_version() -> None:
    data = LogPosition("e1", 7)
    assert not applied_entry_gone(data, True, LogPosition("e1", 7))
    assert applied_entry_gone(data, False, LogPosition())
    assert applied_entry_gone(data, True, LogPosition("e1", 6)), "another entry took the ID"
    assert applied_entry_gone(data, True, LogPosition("e2", 7))
    assert not applied_entry_gone(LogPosition("e1", 0), False, LogPosition()), "epoch start"
    assert not applied_entry_gone(LogPosition(), False, LogPosition()), "an unsequenced log"
    assert not applied_entry_gone(data, True, LogPosition()), "a dead letter cannot tell"


def test_a_replica_drops_a_write_the_failover_lost(
    redis_sentinels: RedisGroup, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    with replica_through_sentinels(redis_sentinels, data) as replica:
        _drop_a_lost_write(redis_sentinels, replica, data)


def _drop_a_lost_write(group: RedisGroup, replica: SentinelReplica, data: Path) -> None:
    core, registry, channel, stub = replica.core, replica.registry, replica.channel, replica.stub

    def verdicts() -> list[int]:
        """The answers for A, B and C; [] while the replica refuses (UNAVAILABLE)."""
        try:
            return list(stub.Check(pb.CheckRequest(e164=[A, B, C]), timeout=5).verdicts)
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc
            return []

    def health() -> int:
        request = health_pb2.HealthCheckRequest()
        return int(health_pb2_grpc.HealthStub(channel).Check(request, timeout=5).status)

    request = pb.SuppressRequest(e164=[A], list="internal", source="app", create_list=True)
    acknowledged = stub.Suppress(request, timeout=10)
    wait_for(
        lambda: (
            (newest := find_newest(data)) is not None
            and read_snapshot(newest).version >= Version.parse(acknowledged.version)
        ),
        10,
        "a snapshot of the acknowledged write",
    )
    primary = group.master_port()
    redis_replica = next(n for n in group.nodes if n.port != primary)
    redis_replica.pause()
    # Close its link too: bytes already in its socket buffer would still reach it.
    group.node(primary).client().client_kill_filter(_type="replica")
    with pytest.raises(grpc.RpcError, match="not acknowledged"):
        stub.Suppress(pb.SuppressRequest(e164=[B], list="internal", source="app"))
    wait_for(lambda: verdicts()[1:2] == [pb.SUPPRESSED], 5, "the replica to apply B anyway")
    wait_for(
        lambda: B in read_snapshot(find_newest(data)).bitmaps["internal"],  # type: ignore[arg-type]
        10,
        "a snapshot that holds B, which the log is about to lose",
    )
    old = group.primary()
    old.kill()
    redis_replica.resume()
    group.wait_failover(old.port)
    # A write after the failover takes B's sequence number under another ID.
    writer = ChangeLogWriter(
        connect(f"redis://{MASTER}/0", sentinels=group.sentinel_addresses, master=MASTER),
        STREAM,
        "test",
        epoch=core.view().position.epoch,
    )
    entry = Entry(Op.ADD, "internal", ListKind.OPT_OUT, "app", (C,))
    wait_for(lambda: _written(writer, entry), 10, "the write to reach the new primary")

    def recovered() -> bool:
        # Health is polled, so it may still say SERVING for a moment after the
        # replica found the loss; Check then answers UNAVAILABLE, as it must.
        try:
            return health() == SERVING and verdicts() == [
                pb.SUPPRESSED,
                pb.ALLOWED,
                pb.SUPPRESSED,
            ]
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE:  # type: ignore[attr-defined]
                raise
            return False

    wait_for(recovered, 20, "the replica to drop B and serve what the log holds")
    state = core.follower_state()
    assert state is not None and state.losses["rewound"] >= 1
    assert list(data.glob("*.diverged")), "the snapshot holding B is set aside"
    assert (
        registry.get_sample_value("suppression_changelog_losses_total", {"kind": "rewound"})
        == state.losses["rewound"]
    )


def _written(writer: ChangeLogWriter, entry: Entry) -> bool:
    """One attempt, as a client retries: the sentinels may not name the new primary yet."""
    try:
        writer.write([entry])
    except ChangeLogError:
        return False
    return True
