"""record_attempts against replicas following a real redis-server: batches, caps, no blind retry."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from suppression.client import (
    ClientConfig,
    IncompleteWriteError,
    InvalidRequestError,
    RetryPolicy,
    SuppressionClient,
    Verdict,
)
from suppression.policy.store import PolicyStore
from suppression.v1 import suppression_pb2 as pb
from tests.conftest import free_port, wait_for
from tests.integration.live_replicas import Replica, ReplicaFactory, start_replica_fixture
from tests.samples import CAPPED_POLICIES

__all__ = ["start_replica_fixture"]  # the fixture, used by name

pytestmark = pytest.mark.integration

CALLED_TWICE = 12125550100
CALLED_ONCE = 12125550101
NEVER_CALLED = 8613800138000
ON_REGISTRY = 12125550199
T = 1_780_000_000_000
"""The moment decided for, ms."""
FAST_RETRY = RetryPolicy(max_attempts=3, initial_backoff=0.001, max_backoff=0.01)


@pytest.fixture
def policies(tmp_path: Path) -> PolicyStore:
    path = tmp_path / "policies.toml"
    path.write_text(CAPPED_POLICIES)
    return PolicyStore(path)


def with_registry(first: Replica, *others: Replica) -> None:
    """Create the policy's list through the change log, and wait until every replica has it."""
    first.stub.Suppress(
        pb.SuppressRequest(
            e164=[ON_REGISTRY], list="registry", source="registry", create_list=True
        ),
        timeout=10,
    )
    for other in others:
        wait_for(lambda o=other: o.suppressed(ON_REGISTRY), 10, "the list on every replica")


def client(*targets: str, max_batch: int = 2) -> SuppressionClient:
    return SuppressionClient(
        ClientConfig(targets=targets, timeout=10, max_batch=max_batch, retry=FAST_RETRY)
    )


def started(registry: CollectorRegistry, method: str) -> float:
    """Calls of ``method`` a server has started, from its own metrics."""
    return sum(
        sample.value
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name == "grpc_server_started_total" and sample.labels.get("grpc_method") == method
    )


def test_attempts_in_batches_reach_the_caps_with_their_earliest_time(
    start_replica: ReplicaFactory, policies: PolicyStore
) -> None:
    replica = start_replica(policies=policies)
    with_registry(replica)
    first = dt.datetime.fromtimestamp((T - 600_000) / 1000, dt.UTC)
    with client(replica.target) as c:
        recorded = c.record_attempts(
            [CALLED_TWICE, CALLED_TWICE, CALLED_ONCE], [first, T - 300_000, T - 100_000], "L1"
        )
        numbers = [CALLED_TWICE, CALLED_ONCE, NEVER_CALLED]
        unlined = c.check(e164=numbers, decide_at=T)
        lined = c.check(e164=numbers, decide_at=T, calling_line="L1")
    assert recorded.count == 3 and [(p.start, p.count) for p in recorded.parts] == [(0, 2), (2, 1)]
    assert recorded.version == recorded.parts[-1].version
    assert started(replica.registry, "RecordAttempts") == 2
    assert [r.verdict for r in unlined] == [Verdict.DEFERRED, Verdict.ALLOWED, Verdict.ALLOWED]
    assert unlined[0].rules == ("cap.number.2_per_3600s",)
    assert unlined[0].earliest == first + dt.timedelta(hours=1)
    assert [r.verdict for r in lined] == [Verdict.DEFERRED] * 3
    assert lined[2].rules == ("cap.line.3_per_3600s",)
    assert lined[2].earliest == first + dt.timedelta(hours=1)
    assert lined.policy_version == "caps-1"


def test_a_target_that_never_connected_is_skipped_and_the_attempt_counts_once(
    start_replica: ReplicaFactory, policies: PolicyStore
) -> None:
    replica = start_replica(policies=policies)
    with_registry(replica)
    dead = f"127.0.0.1:{free_port()}"
    with client(dead, replica.target) as c:
        recorded = c.record_attempts([CALLED_ONCE], [T - 1000])
        once = c.check_one(CALLED_ONCE, decide_at=T)
        c.record_attempts([CALLED_ONCE], [T - 500], ["L2"])
        twice = c.check_one(CALLED_ONCE, decide_at=T)
    assert recorded.parts[0].target == replica.target
    assert once[0].verdict is Verdict.ALLOWED  # one attempt of two allowed: not sent twice
    assert twice[0].verdict is Verdict.DEFERRED


def test_a_write_that_may_have_been_applied_is_not_sent_again(
    start_replica: ReplicaFactory, policies: PolicyStore
) -> None:
    # No Redis replica exists, so WAIT confirms nothing: the attempts are on the primary
    # but "not acknowledged", the very case a blind retry would count twice.
    doubtful = start_replica(policies=policies, min_replicas=1, replica_timeout=0.05)
    healthy = start_replica(policies=policies)
    with_registry(healthy, doubtful)
    with client(doubtful.target, healthy.target) as c:
        with pytest.raises(IncompleteWriteError) as stopped:
            c.record_attempts([CALLED_TWICE, CALLED_TWICE, CALLED_ONCE], [T - 2000, T - 1000, T])
    error = stopped.value
    assert (error.recorded, error.in_doubt, error.not_sent) == (0, range(0, 2), range(2, 3))
    assert "not acknowledged" in str(error) and "MAY have been recorded" in str(error)
    assert started(doubtful.registry, "RecordAttempts") == 1
    assert started(healthy.registry, "RecordAttempts") == 0
    # The doubtful batch did reach the log: the healthy replica counts both attempts, once.
    with client(healthy.target) as c:
        wait_for(
            lambda: c.check_one(CALLED_TWICE, decide_at=T)[0].verdict is Verdict.DEFERRED,
            10,
            "the doubtful attempts on the healthy replica",
        )
        assert c.check_one(CALLED_ONCE, decide_at=T)[0].verdict is Verdict.ALLOWED


def test_a_refused_batch_after_recorded_ones_says_which_were_recorded(
    start_replica: ReplicaFactory, policies: PolicyStore
) -> None:
    replica = start_replica(policies=policies)
    with_registry(replica)
    with client(replica.target) as c:
        with pytest.raises(InvalidRequestError, match="not a valid E.164 number"):
            c.record_attempts([123, CALLED_ONCE], [T, T])  # first batch: nothing recorded
        with pytest.raises(IncompleteWriteError) as stopped:
            c.record_attempts([CALLED_TWICE, CALLED_TWICE, 123, CALLED_ONCE], [T - 9, T - 8, T, T])
        with pytest.raises(InvalidRequestError, match="2 calling lines for 3 attempts"):
            c.record_attempts([CALLED_ONCE] * 3, [T] * 3, ["a", "b"])
        with pytest.raises(InvalidRequestError, match="no UTC offset"):
            c.record_attempts([CALLED_ONCE], [dt.datetime(2026, 6, 15, 13)])
        after = c.check(e164=[CALLED_TWICE, CALLED_ONCE], decide_at=T)
    error = stopped.value
    assert (error.recorded, error.in_doubt, error.not_sent) == (2, range(0), range(2, 4))
    assert isinstance(error.cause, InvalidRequestError)
    assert "attempts 0-1 were recorded" in str(error)
    assert len(error.versions) == 1
    assert [r.verdict for r in after] == [Verdict.DEFERRED, Verdict.ALLOWED]
