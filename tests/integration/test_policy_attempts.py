"""RecordAttempts through the change log: two replicas fed the same attempts answer the same."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from suppression.policy.store import PolicyStore
from suppression.snapshot import find_newest, read_snapshot
from suppression.v1 import suppression_pb2 as pb
from tests.conftest import RedisServer, wait_for
from tests.integration.live_replicas import Replica, ReplicaFactory, start_replica_fixture
from tests.samples import CAPPED_POLICIES

__all__ = ["start_replica_fixture"]  # the fixture, used by name

pytestmark = pytest.mark.integration

CALLED_TWICE = 12125550100
CALLED_ONCE = 12125550101
NEVER_CALLED = 8613800138000
ON_REGISTRY = 12125550199

T = 1_780_000_000  # seconds


def answers(replica: Replica, line: str = "") -> list[tuple[int, int, int]]:
    response = replica.stub.Check(
        pb.CheckRequest(
            e164=[CALLED_TWICE, CALLED_ONCE, NEVER_CALLED, ON_REGISTRY],
            decide_at_ms=T * 1000,
            calling_line=line,
        ),
        timeout=10,
    )
    assert response.rule_names[-2:] == ["cap.number.2_per_3600s", "cap.line.3_per_3600s"]
    return list(zip(response.verdicts, response.rules, response.earliest_ms, strict=True))


def test_two_replicas_fed_the_same_attempts_give_the_same_answers(
    tmp_path: Path, start_replica: ReplicaFactory
) -> None:
    policy_file = tmp_path / "policies.toml"
    policy_file.write_text(CAPPED_POLICIES)
    first = start_replica(policies=PolicyStore(policy_file))
    second = start_replica(policies=PolicyStore(policy_file))
    first.stub.Suppress(
        pb.SuppressRequest(
            e164=[ON_REGISTRY], list="registry", source="registry", create_list=True
        ),
        timeout=10,
    )
    recorded = first.stub.RecordAttempts(
        pb.RecordAttemptsRequest(
            e164=[CALLED_TWICE, CALLED_TWICE, CALLED_ONCE],
            times_ms=[(T - 1800) * 1000, (T - 600) * 1000, (T - 60) * 1000 + 999],
            calling_lines=["sim-1"],
        ),
        timeout=10,
    )
    assert recorded.applied == 3
    wait_for(lambda: second.lists.version == first.lists.version, 10, "the second replica")

    want = [
        (pb.DEFERRED, 1 << 9, (T - 1800 + 3600) * 1000),  # the older attempt ages out
        (pb.ALLOWED, 0, 0),
        (pb.ALLOWED, 0, 0),
        (pb.SUPPRESSED, 1, 0),
    ]
    assert answers(first) == answers(second) == want

    # The line's third attempt, through the other replica: the line cap holds every number.
    second.stub.RecordAttempts(
        pb.RecordAttemptsRequest(
            e164=[NEVER_CALLED], times_ms=[(T - 5) * 1000], calling_lines=["sim-1"]
        ),
        timeout=10,
    )
    wait_for(lambda: first.lists.version == second.lists.version, 10, "the first replica")
    line_free = (T - 600 + 3600) * 1000  # four attempts in the hour: the second must age out
    held = answers(first, "sim-1")
    assert held == answers(second, "sim-1")
    assert held[:3] == [
        (pb.DEFERRED, (1 << 9) | (1 << 10), line_free),
        (pb.DEFERRED, 1 << 10, line_free),
        (pb.DEFERRED, 1 << 10, line_free),
    ]
    assert held[3] == (pb.SUPPRESSED, 1, 0)
    assert answers(first, "sim-2") == answers(second, "sim-2") == want


def test_record_attempts_refuses_bad_input_and_writes_nothing(
    tmp_path: Path, start_replica: ReplicaFactory
) -> None:
    policy_file = tmp_path / "policies.toml"
    policy_file.write_text(CAPPED_POLICIES)
    replica = start_replica(policies=PolicyStore(policy_file))
    before = replica.lists.version
    for request, reason in [
        (pb.RecordAttemptsRequest(e164=[CALLED_ONCE], times_ms=[]), "1 numbers but 0 times_ms"),
        (pb.RecordAttemptsRequest(e164=[123], times_ms=[T * 1000]), "not a valid E.164 number"),
        (
            pb.RecordAttemptsRequest(
                e164=[CALLED_ONCE, CALLED_TWICE, NEVER_CALLED],
                times_ms=[T * 1000] * 3,
                calling_lines=["a", "b"],
            ),
            "2 calling_lines for 3 attempts",
        ),
        (
            pb.RecordAttemptsRequest(
                e164=[CALLED_ONCE], times_ms=[T * 1000], calling_lines=["x" * 65]
            ),
            "at most 64 printable characters",
        ),
    ]:
        with pytest.raises(grpc.RpcError) as refused:
            replica.stub.RecordAttempts(request, timeout=10)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert reason in str(refused.value.details())
    assert replica.lists.version == before


def _attempts_in_a_snapshot(
    tmp_path: Path, start_replica: ReplicaFactory
) -> tuple[Replica, Path, Path]:
    """A replica that records three attempts and snapshots them: it, its data, the policies."""
    policy_file = tmp_path / "policies.toml"
    policy_file.write_text(CAPPED_POLICIES)
    data = tmp_path / "data"
    first = start_replica(data, snapshot_interval=0.2, policies=PolicyStore(policy_file))
    first.stub.Suppress(
        pb.SuppressRequest(
            e164=[ON_REGISTRY], list="registry", source="registry", create_list=True
        ),
        timeout=10,
    )
    first.stub.RecordAttempts(
        pb.RecordAttemptsRequest(
            e164=[CALLED_TWICE, CALLED_TWICE, CALLED_ONCE],
            times_ms=[(T - 1800) * 1000, (T - 600) * 1000, (T - 60) * 1000],
            calling_lines=["sim-1"],
        ),
        timeout=10,
    )
    version = first.lists.version

    def snapshot_at_version() -> bool:
        newest = find_newest(data)
        return newest is not None and read_snapshot(newest).version == version

    wait_for(snapshot_at_version, 10, "a snapshot after the attempts")
    return first, data, policy_file


def test_a_replica_started_from_a_snapshot_reads_back_the_attempts_it_lacks(
    tmp_path: Path, start_replica: ReplicaFactory
) -> None:
    first, data, policy_file = _attempts_in_a_snapshot(tmp_path, start_replica)
    second = start_replica(data, policies=PolicyStore(policy_file))
    # None of them came after its snapshot: all three are read back from the log.
    wait_for(lambda: len(second.lists.view.attempts) == 3, 10, "the attempts read back")
    assert answers(second) == answers(first)
    assert answers(second, "sim-1") == answers(first, "sim-1")


def test_a_replica_with_caps_serves_only_once_the_attempts_are_read_back(
    tmp_path: Path, start_replica: ReplicaFactory, redis_server: RedisServer
) -> None:
    first, data, policy_file = _attempts_in_a_snapshot(tmp_path, start_replica)
    expected = answers(first)
    redis_server.stop()  # the attempts before the snapshot cannot be read back for now

    second = start_replica(data, policies=PolicyStore(policy_file), max_staleness=1.0)
    assert not second.core.serving, "caps would count none of the three attempts"
    with pytest.raises(grpc.RpcError) as refused:
        answers(second)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "reading back the dial attempts" in str(refused.value.details())
    assert second.registry.get_sample_value("suppression_attempts_complete") == 0

    redis_server.start()
    wait_for(lambda: second.core.serving, 15, "the attempts read back")
    assert len(second.lists.view.attempts) == 3
    assert answers(second) == expected
    assert second.registry.get_sample_value("suppression_attempts_complete") == 1
