"""Live changes end to end: real redis-server, real gRPC servers following the stream."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from suppression.entries import Entry, encode_entry
from suppression.lists import ListInfo, ListKind, Op, SuppressionLists, Version
from suppression.snapshot import write_snapshot
from suppression.snapshotter import Snapshotter
from suppression.v1 import suppression_pb2 as pb
from suppression.writer import ChangeLogWriter
from tests.conftest import RedisServer, free_port, wait_for
from tests.integration.live_replicas import (  # noqa: F401 - a fixture
    Replica,
    ReplicaFactory,
    append_raw,
    redis_client,
    start_replica_fixture,
)

pytestmark = pytest.mark.integration

CN = 8613800138000
US = 12125550123
STREAM = "suppression:deltas"
DEAD = "suppression:deltas:dead"


def suppress(
    replica: Replica,
    numbers: list[int],
    list_name: str = "internal",
    source: str = "in_call",
    **extra: str,
) -> pb.WriteResponse:
    request = pb.SuppressRequest(
        e164=numbers, list=list_name, source=source, create_list=True, **extra
    )
    return replica.stub.Suppress(request, timeout=10)


def release(
    replica: Replica,
    numbers: list[int],
    list_name: str = "internal",
    source: str = "consent",
    evidence: str = "",
) -> pb.WriteResponse:
    request = pb.ReleaseRequest(e164=numbers, list=list_name, source=source, evidence=evidence)
    return replica.stub.Release(request, timeout=10)


def health(replica: Replica) -> int:
    stub = health_pb2_grpc.HealthStub(replica.channel)
    return int(stub.Check(health_pb2.HealthCheckRequest(), timeout=5).status)


def test_a_write_is_visible_on_return_here_and_soon_on_every_replica(
    start_replica: ReplicaFactory,
) -> None:
    first, second = start_replica(), start_replica()
    answer = suppress(first, [CN], evidence="rec-981", actor="agent-7")
    assert answer.applied == 1
    assert first.suppressed(CN), "the writing replica must see its write on return"
    check = first.check([CN, US])
    assert list(check.verdicts) == [pb.SUPPRESSED, pb.ALLOWED]
    assert Version.parse(check.version) >= Version.parse(answer.version)
    wait_for(lambda: second.suppressed(CN), 5, "the second replica to apply the change")
    assert second.check([CN]).version == check.version
    status = second.stub.GetStatus(pb.GetStatusRequest(), timeout=5)
    assert [(s.name, s.count, s.is_opt_out) for s in status.lists] == [("internal", 1, True)]


def test_writes_report_invalid_numbers_and_refuse_empty_ones(start_replica: ReplicaFactory) -> None:
    replica = start_replica()
    request = pb.SuppressRequest(
        e164=[US, 999],
        numbers=["(212) 555-0124", "+1900xxxxxxx", "nonsense"],
        default_region="US",
        list="campaign-1",
        source="complaint",
        create_list=True,
    )
    answer = replica.stub.Suppress(request, timeout=10)
    assert dict(answer.invalid_reasons) == {1: pb.UNKNOWN_COUNTRY_CODE, 4: pb.UNPARSEABLE}
    assert answer.applied == 2 + 10_000_000
    assert replica.suppressed(19005550199) and replica.suppressed(12125550124)
    with pytest.raises(grpc.RpcError) as caught:
        replica.stub.Suppress(
            pb.SuppressRequest(e164=[999], list="x", source="app", create_list=True), timeout=10
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as caught:
        replica.stub.Suppress(
            pb.SuppressRequest(e164=[US], list="x", source="Bad Source", create_list=True),
            timeout=10,
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "source" in (caught.value.details() or "")


def test_lists_are_never_created_by_accident(
    start_replica: ReplicaFactory, redis_server: RedisServer
) -> None:
    replica = start_replica()
    before = redis_client(redis_server).xlen(STREAM)
    for request in (
        pb.SuppressRequest(e164=[US], list="typo", source="in_call"),
        pb.ReleaseRequest(e164=[US], list="typo", source="consent", evidence="form-1"),
    ):
        with pytest.raises(grpc.RpcError) as caught:
            call = replica.stub.Suppress if isinstance(request, pb.SuppressRequest) else None
            (call or replica.stub.Release)(request, timeout=10)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "create_list" in (caught.value.details() or "")
    assert redis_client(redis_server).xlen(STREAM) == before, "nothing was written"
    # Past 64 lists a check naming none could not cover them all: refused.
    for index in range(64):
        suppress(replica, [US], list_name=f"list-{index}")
    with pytest.raises(grpc.RpcError) as caught:
        suppress(replica, [US], list_name="one-too-many")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "64 lists" in (caught.value.details() or "")
    assert replica.check([US]).verdicts[0] == pb.SUPPRESSED


def test_opt_outs_leave_only_with_consent_evidence(
    start_replica: ReplicaFactory, redis_server: RedisServer
) -> None:
    replica = start_replica()
    suppress(replica, [CN, US])
    for source, evidence in (("app", "ticket-1"), ("consent", ""), ("customer_service", "")):
        with pytest.raises(grpc.RpcError) as caught:
            release(replica, [CN], source=source, evidence=evidence)
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "consent" in (caught.value.details() or "")
    assert replica.suppressed(CN)
    answer = release(replica, [CN], evidence="signed-form-17")
    assert not replica.suppressed(CN) and replica.suppressed(US)
    assert Version.parse(answer.version) == replica.lists.version
    # A list that Suppress creates is an opt-out list; campaign lists come from the
    # loader (publish --kind campaign) and have no consent rule.
    writer = ChangeLogWriter(redis_client(redis_server), STREAM, "test")
    writer.write([Entry(Op.ADD, "campaign-1", ListKind.CAMPAIGN, "app", (US,))])
    suppress(replica, [CN], list_name="campaign-1")
    release(replica, [US], list_name="campaign-1", source="app")
    assert not replica.suppressed(US, ["campaign-1"]) and replica.suppressed(CN, ["campaign-1"])


def test_malformed_entries_go_to_the_dead_letter_stream_once(
    start_replica: ReplicaFactory, redis_server: RedisServer
) -> None:
    first, second = start_replica(), start_replica()
    client = redis_client(redis_server)
    suppress(first, [CN])
    good = encode_entry(Entry(Op.ADD, "internal", ListKind.OPT_OUT, "app", (US,)))
    no_consent = encode_entry(Entry(Op.REMOVE, "internal", ListKind.CAMPAIGN, "app", (CN,)))
    append_raw(client, STREAM, {"hello": "world"})
    append_raw(client, STREAM, {**good, "numbers": "12125550123,abc"})
    append_raw(client, STREAM, no_consent)
    append_raw(client, STREAM, {**good, "v": "99"})
    client.xadd(STREAM, good)  # valid, but not numbered by the change-log writer
    last = append_raw(client, STREAM, good)
    for replica in (first, second):
        wait_for(lambda r=replica: r.lists.version >= Version.parse(last), 5, "the last entry")
        assert replica.suppressed(US) and replica.suppressed(CN)
        assert replica.follower_state().dead_letters == 5
        assert health(replica) == health_pb2.HealthCheckResponse.SERVING
    dead = client.xrange(DEAD)
    assert len(dead) == 5, "every replica writes the same dead letter under the same ID"
    reasons = [fields[b"dl_reason"].decode() for _, fields in dead]
    assert "format version" in reasons[0]
    assert "malformed number" in reasons[1]
    assert "consent" in reasons[2]
    assert "'99'" in reasons[3]
    assert "no epoch and sequence number" in reasons[4]
    assert dead[1][1][b"numbers"] == b"12125550123,abc"


def test_several_writers_at_once(start_replica: ReplicaFactory, redis_server: RedisServer) -> None:
    replicas = [start_replica(), start_replica()]
    writer = ChangeLogWriter(redis_client(redis_server), STREAM, "test")
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            for index in range(40):
                number = 12120000000 + worker * 1000 + index
                if worker < 4:
                    suppress(replicas[worker % 2], [number], list_name="shared")
                else:
                    writer.write([Entry(Op.ADD, "shared", ListKind.OPT_OUT, "app", (number,))])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(worker,)) for worker in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    expected = [12120000000 + w * 1000 + i for w in range(6) for i in range(40)]
    head = Version.parse(redis_client(redis_server).xrevrange(STREAM, count=1)[0][0].decode())
    for replica in replicas:
        wait_for(lambda r=replica: r.lists.version == head, 5, "replicas to reach the head")
        answer = replica.check(expected)
        assert set(answer.verdicts) == {pb.SUPPRESSED}
        assert answer.version == str(head)
    assert redis_client(redis_server).xlen(STREAM) == len(expected)


def test_redis_restarted_mid_stream(
    start_replica: ReplicaFactory, redis_server: RedisServer
) -> None:
    replica = start_replica(max_staleness=0.5)
    closed = start_replica(max_staleness=0.5, fail_closed=True)
    suppress(replica, [CN])
    wait_for(lambda: closed.suppressed(CN), 5, "the second replica")
    redis_server.kill()
    # Still answering from the data held; stale once --max-staleness passes.
    assert replica.suppressed(CN) and not replica.suppressed(US)
    wait_for(lambda: replica.check([US]).stale, 5, "answers to be marked stale")
    state = replica.follower_state()
    assert not state.connected and state.stale and state.staleness_seconds > 0.5
    # Each replica counts its own staleness from its own last confirmation: the second
    # one may be a few milliseconds younger, and until it is stale it rightly answers.
    wait_for(lambda: closed.check([US]).stale, 5, "the fail-closed replica to turn stale")
    fail_closed = closed.check([US])
    assert fail_closed.failed_closed and list(fail_closed.verdicts) == [pb.SUPPRESSED]
    with pytest.raises(grpc.RpcError) as caught:
        suppress(replica, [US])
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    redis_server.start()  # same port, same append-only file
    wait_for(lambda: replica.follower_state().connected, 10, "a reconnect")
    suppress(replica, [US])
    assert replica.suppressed(CN) and replica.suppressed(US)
    wait_for(lambda: not closed.check([12025550147]).failed_closed, 5, "fresh data again")
    assert closed.suppressed(US) and not closed.suppressed(12025550147)
    assert not replica.check([US]).stale


def test_a_trimmed_stream_means_not_serving_until_a_snapshot_arrives(
    start_replica: ReplicaFactory, redis_server: RedisServer, tmp_path: Path
) -> None:
    first = start_replica(tmp_path / "first")
    suppress(first, [CN])
    suppress(first, [US])
    # A snapshot at the head, then a trim that keeps only the entry it holds.
    Snapshotter(first.lists, tmp_path / "first", 3600).snapshot_now()
    client = redis_client(redis_server)
    client.xtrim(STREAM, minid=str(first.lists.version), approximate=False)
    assert client.xlen(STREAM) == 1
    late = start_replica(tmp_path / "late", max_staleness=0.5)
    wait_for(lambda: late.follower_state().needs_resync, 5, "the gap to be noticed")
    assert health(late) == health_pb2.HealthCheckResponse.NOT_SERVING
    # It knows it misses changes: it refuses to answer rather than say ALLOWED.
    for ask in (lambda: late.check([CN]), lambda: late.check([US, CN, 12125550124] * 20)):
        with pytest.raises(grpc.RpcError) as refused:
            ask()
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "another replica" in (refused.value.details() or "")
    with pytest.raises(grpc.RpcError) as caught:
        suppress(late, [US])
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "another replica" in (caught.value.details() or "")
    # The replica already past the trim point keeps serving.
    suppress(first, [12125550124])
    assert health(first) == health_pb2.HealthCheckResponse.SERVING
    snapshot = next((tmp_path / "first").glob("snapshot-*.snap"))
    (tmp_path / "late" / snapshot.name).write_bytes(snapshot.read_bytes())
    wait_for(lambda: health(late) == health_pb2.HealthCheckResponse.SERVING, 5, "resync")
    wait_for(lambda: late.lists.version == first.lists.version, 5, "catch-up after resync")
    assert list(late.check([CN, US, 12125550124]).verdicts) == [pb.SUPPRESSED] * 3
    assert not late.follower_state().needs_resync


def test_a_replica_missing_changes_fails_closed_where_configured(
    start_replica: ReplicaFactory, redis_server: RedisServer, tmp_path: Path
) -> None:
    first = start_replica(tmp_path / "first")
    suppress(first, [CN])
    suppress(first, [US])
    redis_client(redis_server).xtrim(STREAM, minid=str(first.lists.version), approximate=False)
    late = start_replica(tmp_path / "late", max_staleness=0.5, fail_closed=True)
    wait_for(lambda: late.follower_state().needs_resync, 5, "the gap to be noticed")
    answer = late.check([CN, 12125550199])
    assert answer.failed_closed and answer.stale
    assert list(answer.verdicts) == [pb.SUPPRESSED, pb.SUPPRESSED]


def test_follower_state_for_metrics(start_replica: ReplicaFactory, tmp_path: Path) -> None:
    replica = start_replica(tmp_path / "data", snapshot_interval=0.2)
    suppress(replica, [CN, US])
    release(replica, [CN], evidence="form-1")
    replica.stub.Suppress(
        pb.SuppressRequest(
            numbers=["+1900555xxxx"], list="blocks", source="complaint", create_list=True
        ),
        timeout=10,
    )
    wait_for(
        lambda: replica.follower_state().snapshot_age_seconds is not None,
        5,
        "a periodic snapshot",
    )
    state = replica.follower_state()
    assert state.connected and not state.stale and not state.needs_resync
    assert state.last_applied_id == str(replica.lists.version)
    assert state.lag_entries == 0 and state.lag_seconds == 0.0
    assert state.applied_by_op == {
        "add": 2,
        "remove": 1,
        "add_range": 10_000,
        "remove_range": 0,
        "attempts": 0,
    }
    assert state.dead_letters == 0
    # /metrics reads the same follower at scrape time.
    sample = replica.registry.get_sample_value
    assert sample("suppression_changelog_connected") == 1
    assert sample("suppression_changelog_needs_resync") == 0
    assert sample("suppression_changelog_lag_entries") == 0
    assert sample("suppression_changelog_applied_total", {"op": "add_range"}) == 10_000


def test_start_without_redis_serves_the_snapshot_marked_stale(
    start_replica: ReplicaFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lists = SuppressionLists(infos=[ListInfo("internal")], version=Version(6, 0))
    write_snapshot(tmp_path / "data", lists.view)
    dead_url = f"redis://127.0.0.1:{free_port()}/0"
    with caplog.at_level(logging.WARNING, logger="suppression.changelog.follower"):
        replica = start_replica(tmp_path / "data", redis_url=dead_url, max_staleness=0.3)
        assert health(replica) == health_pb2.HealthCheckResponse.SERVING
        answer = replica.check([CN])
        assert answer.stale and answer.version == "6-0"
        assert not replica.follower_state().connected
    # Unreachable from the very start is said, once, not only a lost connection.
    unreachable = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(unreachable) == 1
