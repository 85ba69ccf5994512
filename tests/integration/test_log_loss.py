"""Redis losing the change log: no replica answers from data it knows is incomplete.

Each case is a way Redis can lose or rewind a stream without saying so. Every
replica must notice, refuse to answer (UNAVAILABLE) instead of saying ALLOWED,
refuse writes it could not make durable, and serve again, converged, once an
operator reseeds the log from the newest snapshot.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2

from loader.cli import main as loader_main
from suppression.changelog.epoch import reseed
from suppression.changelog.streaminfo import meta_key
from suppression.entries import Entry, encode_entry
from suppression.errors import ChangeLogResetError
from suppression.lists import ListKind, Op, Version
from suppression.v1 import suppression_pb2 as pb
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
CN, US = 8613800138000, 12125550123
SERVING = health_pb2.HealthCheckResponse.SERVING


def suppress(replica: Replica, numbers: list[int]) -> pb.WriteResponse:
    request = pb.SuppressRequest(
        e164=numbers, list="internal", source="in_call", actor="t", create_list=True
    )
    return replica.stub.Suppress(request, timeout=10)


def refuses_to_answer(replica: Replica) -> bool:
    try:
        replica.check([CN, US])
    except grpc.RpcError as exc:
        return exc.code() == grpc.StatusCode.UNAVAILABLE
    return False


def health(replica: Replica) -> int:
    from grpc_health.v1 import health_pb2_grpc

    answer = health_pb2_grpc.HealthStub(replica.channel).Check(health_pb2.HealthCheckRequest())
    return int(answer.status)


def restart_empty(server: RedisServer) -> None:
    """Redis restarted with no data: as without persistence, or on a fresh disk."""
    server.kill()
    for path in server.directory.iterdir():
        if path.name != "redis.log":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    server.start()


def wait_lost(replicas: list[Replica], kind: str) -> None:
    for replica in replicas:
        wait_for(lambda r=replica: r.follower_state().needs_resync, 10, f"the {kind} noticed")
        assert replica.follower_state().losses[kind] == 1
        wait_for(lambda r=replica: health(r) != SERVING, 5, "NOT_SERVING")
        assert refuses_to_answer(replica)


def test_redis_restarted_empty_is_refused_until_reseeded(
    start_replica: ReplicaFactory, redis_server: RedisServer, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    first = start_replica(data, snapshot_interval=3600)
    second = start_replica(data, snapshot_interval=3600)
    suppress(first, [CN])
    written = suppress(first, [US])
    wait_for(lambda: second.lists.version == Version.parse(written.version), 5, "both replicas")
    restart_empty(redis_server)
    wait_lost([first, second], "reset")
    # A write cannot be made durable: refused, never acknowledged.
    with pytest.raises(grpc.RpcError) as caught:
        suppress(second, [12125550199])
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    # No other writer may start a fresh log over the loss either.
    fresh = ChangeLogWriter(redis_client(redis_server), STREAM, "test")
    with pytest.raises(ChangeLogResetError, match="reseed"):
        fresh.write([Entry(Op.ADD, "internal", ListKind.OPT_OUT, "app", (12125550198,))])
    # Each replica saved what it held; the operator reseeds from the newest snapshot.
    epoch, path = reseed(redis_client(redis_server), STREAM, data)
    assert path.exists()
    for replica in (first, second):
        wait_for(lambda r=replica: health(r) == SERVING, 10, "the replica to resync")
        assert list(replica.check([CN, US]).verdicts) == [pb.SUPPRESSED, pb.SUPPRESSED]
        assert replica.lists.view.position.epoch == epoch
    after = suppress(first, [12125550197])
    wait_for(lambda: second.lists.version == Version.parse(after.version), 5, "the new write")
    assert second.suppressed(12125550197)


def test_flushall_under_writes_loses_no_acknowledged_write(
    start_replica: ReplicaFactory, redis_server: RedisServer, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    replicas = [start_replica(data, snapshot_interval=3600) for _ in range(2)]
    acknowledged: list[int] = []
    refused = 0
    stop = threading.Event()

    def write() -> None:
        nonlocal refused
        number = 12125551000
        while not stop.is_set() and number < 12125551400:
            number += 1
            try:
                suppress(replicas[number % 2], [number])
                acknowledged.append(number)
            except grpc.RpcError:
                refused += 1

    writer = threading.Thread(target=write)
    writer.start()
    wait_for(lambda: len(acknowledged) >= 20, 20, "some acknowledged writes")
    redis_client(redis_server).flushall()
    wait_lost(replicas, "reset")
    stop.set()
    writer.join(30)
    assert refused > 0, "writes after the loss must be refused"
    reseed(redis_client(redis_server), STREAM, data)
    for replica in replicas:
        wait_for(lambda r=replica: health(r) == SERVING, 10, "the replica to resync")
        verdicts = replica.check(acknowledged).verdicts
        assert set(verdicts) == {pb.SUPPRESSED}, "an acknowledged opt-out was lost"


def test_a_future_dated_entry_then_a_reset_acknowledges_nothing(
    start_replica: ReplicaFactory, redis_server: RedisServer, tmp_path: Path
) -> None:
    """The old stream's last ID was ahead of the clock; a new stream's IDs are behind it."""
    data = tmp_path / "data"
    replica = start_replica(data, snapshot_interval=3600)
    suppress(replica, [CN])
    client = redis_client(redis_server)
    future = "99999999999999-0"
    client.xadd(STREAM, encode_entry(Entry(Op.ADD, "internal", ListKind.OPT_OUT, "app", (US,))),
                id=future)  # fmt: skip
    wait_for(lambda: replica.lists.version == Version.parse(future), 5, "the future entry")
    client.flushall()
    wait_lost([replica], "reset")
    with pytest.raises(grpc.RpcError):
        suppress(replica, [12125550190])
    # The loader, from the replicas' snapshots, refuses too: exit 2, nothing written.
    code = loader_main(
        ["publish", "add", "+12125550191", "--list-name", "internal", "--source", "app",
         "--redis-url", redis_server.url, "--data-dir", str(data)]
    )  # fmt: skip
    assert code == 2
    assert client.xlen(STREAM) == 0
    reseed(client, STREAM, data)
    wait_for(lambda: health(replica) == SERVING, 10, "resync")
    written = suppress(replica, [12125550192])
    assert Version.parse(written.version) > Version.parse(future)
    assert replica.suppressed(12125550192) and replica.suppressed(CN)


def test_a_stream_trimmed_to_nothing_is_noticed(
    start_replica: ReplicaFactory, redis_server: RedisServer, tmp_path: Path
) -> None:
    first = start_replica(tmp_path / "first")
    suppress(first, [CN])
    suppress(first, [US])
    client = redis_client(redis_server)
    client.xtrim(STREAM, maxlen=0, approximate=False)
    assert client.xlen(STREAM) == 0
    # A replica with no snapshot would read an empty log and say ALLOWED for both.
    again = start_replica(tmp_path / "late", max_staleness=0.5)
    wait_for(lambda: again.follower_state().needs_resync, 10, "the gap noticed")
    assert again.follower_state().losses["trimmed"] == 1
    assert refuses_to_answer(again)


def test_a_rewound_log_is_noticed(
    start_replica: ReplicaFactory, redis_server: RedisServer, tmp_path: Path
) -> None:
    """A failover to a Redis replica that lacked the last entries: the counter goes back."""
    data = tmp_path / "data"
    replica = start_replica(data, snapshot_interval=3600)
    suppress(replica, [CN])
    last = suppress(replica, [US])
    client = redis_client(redis_server)
    client.xdel(STREAM, last.version)
    client.hincrby(meta_key(STREAM), "seq", -1)
    wait_lost([replica], "rewound")
    # It does not resync onto the shorter log by itself: its data holds a change the
    # log lost. Reseeding (forced: the log still has an epoch) keeps that change.
    with pytest.raises(ChangeLogResetError, match="--force"):
        reseed(client, STREAM, data)
    reseed(client, STREAM, data, force=True)
    wait_for(lambda: health(replica) == SERVING, 10, "resync")
    assert list(replica.check([CN, US]).verdicts) == [pb.SUPPRESSED, pb.SUPPRESSED]
