"""Metrics: the gRPC interceptor over a real in-process server, and the scrape-time collectors."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry
from pyroaring import BitMap64

from suppression.interceptor import code_label, initialize_metrics
from suppression.lists import ListInfo, ListKind, SuppressionLists, Version
from suppression.metrics import (
    BuildInfoCollector,
    FollowerCollector,
    GrpcServerMetrics,
    ListsCollector,
)
from suppression.v1 import suppression_pb2 as pb
from suppression.workermetrics import (
    ProcessMemoryCollector,
    StatePublisher,
    WorkerStateCollector,
    parent_registry,
)
from tests.conftest import InProcessServer
from tests.samples import State

CN = 8613800138000
US = 12125550123
SERVICE = "suppression.v1.Suppression"


def lists() -> SuppressionLists:
    return SuppressionLists(
        {"internal": BitMap64([CN]), "national": BitMap64([US, CN])},
        infos=[ListInfo("national", ListKind.REGISTRY)],
        version=Version(1700000000000, 7),
    )


def grpc_sample(
    registry: CollectorRegistry, name: str, method: str, grpc_type: str = "unary", **labels: str
) -> float | None:
    return registry.get_sample_value(
        name, {"grpc_type": grpc_type, "grpc_service": SERVICE, "grpc_method": method, **labels}
    )


def test_interceptor_counts_codes_and_times_every_call(
    start_server: Callable[..., InProcessServer],
) -> None:
    server = start_server(lists(), max_batch=3)
    for _ in range(3):
        server.stub.Check(pb.CheckRequest(e164=[US, CN, 12025550147]))
    with pytest.raises(grpc.RpcError):
        server.stub.Check(pb.CheckRequest(e164=[US], lists=["no-such-list"]))
    with pytest.raises(grpc.RpcError):
        server.stub.Check(pb.CheckRequest(e164=[US, US, US, US]))
    answers = list(server.stub.CheckStream(iter([pb.CheckRequest(e164=[US])] * 4)))
    assert len(answers) == 4
    server.stub.GetStatus(pb.GetStatusRequest())
    health_pb2_grpc.HealthStub(server.channel).Check(health_pb2.HealthCheckRequest())

    registry = server.registry
    assert grpc_sample(registry, "grpc_server_started_total", "Check") == 5
    assert grpc_sample(registry, "grpc_server_handled_total", "Check", grpc_code="OK") == 3
    assert (
        grpc_sample(registry, "grpc_server_handled_total", "Check", grpc_code="InvalidArgument")
        == 2
    )
    assert grpc_sample(registry, "grpc_server_handling_seconds_count", "Check") == 5
    # Sub-millisecond buckets exist, and a small batch lands under 100 ms.
    assert grpc_sample(registry, "grpc_server_handling_seconds_bucket", "Check", le="0.00025")
    assert grpc_sample(registry, "grpc_server_handling_seconds_bucket", "Check", le="0.1") == 5
    assert (
        grpc_sample(
            registry, "grpc_server_handled_total", "CheckStream", "bidi_stream", grpc_code="OK"
        )
        == 1
    )
    assert grpc_sample(registry, "grpc_server_handled_total", "GetStatus", grpc_code="OK") == 1
    assert (
        registry.get_sample_value(
            "grpc_server_handled_total",
            {
                "grpc_type": "unary",
                "grpc_service": "grpc.health.v1.Health",
                "grpc_method": "Check",
                "grpc_code": "OK",
            },
        )
        == 1
    )
    # The servicer's own counters: 3 good batches of 3 plus 4 stream batches of 1.
    assert registry.get_sample_value("suppression_batch_size_numbers_count") == 7
    assert registry.get_sample_value(
        "suppression_checked_numbers_total", {"verdict": "suppressed"}
    ) == (3 * 2 + 4)
    assert registry.get_sample_value(
        "suppression_suppressed_by_list_total", {"list": "national"}
    ) == (3 * 2 + 4)


def test_unavailable_while_loading_is_counted(start_server: Callable[..., InProcessServer]) -> None:
    server = start_server(None)
    with pytest.raises(grpc.RpcError) as caught:
        server.stub.Check(pb.CheckRequest(e164=[US]))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert (
        grpc_sample(server.registry, "grpc_server_handled_total", "Check", grpc_code="Unavailable")
        == 1
    )
    assert server.registry.get_sample_value("suppression_ready") == 0


SERVICES = (
    pb.DESCRIPTOR.services_by_name["Suppression"],
    health_pb2.DESCRIPTOR.services_by_name["Health"],
)


def grpc_series(registry: CollectorRegistry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in registry.collect()
        if family.name.startswith("grpc_server_")
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def test_grpc_series_exist_at_zero_before_the_first_call() -> None:
    registry = CollectorRegistry()
    initialize_metrics(GrpcServerMetrics(registry), SERVICES)
    for method in ("Check", "GetStatus", "Suppress", "Release"):
        assert grpc_sample(registry, "grpc_server_started_total", method) == 0
        assert grpc_sample(registry, "grpc_server_handling_seconds_count", method) == 0
        for code in grpc.StatusCode:
            labels = {"grpc_code": code_label(code)}
            assert grpc_sample(registry, "grpc_server_handled_total", method, **labels) == 0
    stream = ("CheckStream", "bidi_stream")
    assert grpc_sample(registry, "grpc_server_started_total", *stream) == 0
    assert grpc_sample(registry, "grpc_server_handled_total", *stream, grpc_code="Internal") == 0
    health = {"grpc_service": "grpc.health.v1.Health", "grpc_code": "Unavailable"}
    assert (
        registry.get_sample_value(
            "grpc_server_handled_total", {"grpc_type": "unary", "grpc_method": "Check", **health}
        )
        == 0
    )
    assert (
        registry.get_sample_value(
            "grpc_server_handled_total",
            {"grpc_type": "server_stream", "grpc_method": "Watch", **health},
        )
        == 0
    )


def test_initialized_series_are_the_ones_calls_feed(
    start_server: Callable[..., InProcessServer],
) -> None:
    """Pre-created labels equal the interceptor's: no second series for the same calls."""
    server = start_server(lists())
    server.stub.Check(pb.CheckRequest(e164=[US]))
    list(server.stub.CheckStream(iter([pb.CheckRequest(e164=[US])])))
    server.stub.GetStatus(pb.GetStatusRequest())
    health_pb2_grpc.HealthStub(server.channel).Check(health_pb2.HealthCheckRequest())
    initialized = CollectorRegistry()
    initialize_metrics(GrpcServerMetrics(initialized), SERVICES)
    fed = grpc_series(server.registry)
    assert fed
    assert fed.keys() <= grpc_series(initialized).keys()


def test_code_labels_match_grpc_prometheus() -> None:
    assert code_label(grpc.StatusCode.OK) == "OK"
    assert code_label(grpc.StatusCode.CANCELLED) == "Canceled"
    assert code_label(grpc.StatusCode.DEADLINE_EXCEEDED) == "DeadlineExceeded"
    assert code_label(grpc.StatusCode.FAILED_PRECONDITION) == "FailedPrecondition"


def test_follower_collector_exports_state_and_cumulative_counters() -> None:
    current: list[State | None] = [None]
    registry = CollectorRegistry()
    registry.register(FollowerCollector(lambda: current[0]))
    assert list(registry.collect()) == []

    current[0] = State(
        connected=False,
        lag_entries=12,
        lag_seconds=3.5,
        staleness_seconds=42.0,
        stale=True,
        needs_resync=True,
        applied_by_op={"add": 100, "remove": 3, "add_range": 1},
        dead_letters=2,
        snapshot_age_seconds=60.0,
    )
    value = registry.get_sample_value
    assert value("suppression_changelog_connected") == 0
    assert value("suppression_changelog_lag_entries") == 12
    assert value("suppression_changelog_lag_seconds") == 3.5
    assert value("suppression_staleness_seconds") == 42
    assert value("suppression_stale") == 1
    assert value("suppression_changelog_needs_resync") == 1
    assert value("suppression_changelog_applied_total", {"op": "add"}) == 100
    assert value("suppression_changelog_applied_total", {"op": "remove"}) == 3
    assert value("suppression_changelog_dead_letters_total") == 2
    assert value("suppression_snapshot_age_seconds") == 60
    types = {family.name: family.type for family in registry.collect()}
    assert types["suppression_changelog_applied"] == "counter"
    assert types["suppression_changelog_dead_letters"] == "counter"
    assert types["suppression_stale"] == "gauge"

    current[0] = State()
    assert value("suppression_snapshot_age_seconds") is None
    assert value("suppression_stale") == 0


def test_lists_and_build_info_collectors() -> None:
    data = lists()
    registry = CollectorRegistry()
    registry.register(ListsCollector(lambda: data.view, lambda: True))
    registry.register(BuildInfoCollector("9.9.9"))
    value = registry.get_sample_value
    assert value("suppression_list_numbers", {"list": "national", "kind": "registry"}) == 2
    assert value("suppression_list_numbers", {"list": "internal", "kind": "opt_out"}) == 1
    assert value("suppression_list_bytes", {"list": "internal"}) == data.view.list_bytes("internal")
    assert value("suppression_data_version_timestamp_seconds") == 1700000000
    assert value("suppression_ready") == 1
    (info,) = [f for f in registry.collect() if f.name == "suppression_build_info"]
    assert info.samples[0].labels["version"] == "9.9.9"
    assert info.samples[0].labels["membership"] == "compiled"
    assert info.samples[0].value == 1


def _worker_registry(state: State, ready: bool, version_ms: int) -> CollectorRegistry:
    data = SuppressionLists({"internal": BitMap64([CN])}, version=Version(version_ms, 0))
    registry = CollectorRegistry()
    registry.register(ListsCollector(lambda: data.view, lambda: ready))
    registry.register(FollowerCollector(lambda: state))
    return registry


def test_worker_state_merges_to_the_worst_worker(tmp_path: Path) -> None:
    ahead = State(lag_entries=1, lag_seconds=0.1, applied_by_op={"add": 10}, dead_letters=1)
    behind = State(lag_entries=50, lag_seconds=9.0, stale=True, applied_by_op={"add": 7})
    StatePublisher(_worker_registry(ahead, True, 2000), tmp_path, pid=101).publish()
    StatePublisher(_worker_registry(behind, True, 1000), tmp_path, pid=102).publish()

    registry = CollectorRegistry()
    registry.register(WorkerStateCollector(tmp_path, [101, 102]))
    value = registry.get_sample_value
    assert value("suppression_changelog_lag_entries") == 50
    assert value("suppression_changelog_lag_seconds") == 9.0
    assert value("suppression_stale") == 1
    assert value("suppression_data_version_timestamp_seconds") == 1
    assert value("suppression_changelog_applied_total", {"op": "add"}) == 10
    assert value("suppression_changelog_dead_letters_total") == 1
    assert value("suppression_list_numbers", {"list": "internal", "kind": "opt_out"}) == 1
    assert value("suppression_ready") == 1

    # A third worker that never published (it died or hangs) makes the replica not ready.
    missing = CollectorRegistry()
    missing.register(WorkerStateCollector(tmp_path, [101, 102, 103]))
    assert missing.get_sample_value("suppression_ready") == 0
    assert missing.get_sample_value("suppression_changelog_lag_entries") == 50

    # A worker that is not ready makes the replica not ready.
    StatePublisher(_worker_registry(ahead, False, 2000), tmp_path, pid=101).publish()
    assert value("suppression_ready") == 0


def test_the_replicas_snapshot_age_is_its_newest_snapshot(tmp_path: Path) -> None:
    """Any worker's snapshot is on the shared disk, so the youngest counts."""
    StatePublisher(
        _worker_registry(State(snapshot_age_seconds=30.0), True, 5), tmp_path, pid=1
    ).publish()
    StatePublisher(
        _worker_registry(State(snapshot_age_seconds=900.0), True, 5), tmp_path, pid=2
    ).publish()
    registry = CollectorRegistry()
    registry.register(WorkerStateCollector(tmp_path, [1, 2]))
    assert registry.get_sample_value("suppression_snapshot_age_seconds") == 30


@dataclass
class FakePool:
    """The pool's view, as WorkerPool answers it, with values the test sets."""

    workers: int
    restarts: int = 0
    running: dict[int, int] = field(default_factory=dict)
    ready_count: int = 0

    def pids(self) -> Mapping[int, int]:
        return dict(self.running)

    def ready(self) -> int:
        return self.ready_count


def test_the_parent_registry_reports_the_pool(tmp_path: Path) -> None:
    pool = FakePool(workers=2, running={0: 11, 1: 12}, ready_count=2)
    for pid in (11, 12):
        StatePublisher(_worker_registry(State(), True, 5), tmp_path, pid=pid).publish()
    registry = parent_registry(tmp_path, pool)
    value = registry.get_sample_value
    assert value("suppression_workers") == 2
    assert value("suppression_workers_ready") == 2
    assert value("suppression_worker_restarts_total") == 0
    assert value("suppression_ready") == 1
    # A worker dies: the census knows at once, before its state file expires.
    pool.ready_count = 1
    assert value("suppression_ready") == 0
    assert value("suppression_workers_ready") == 1
    # Its replacement has a new pid, whose state file counts from now on.
    pool.running[0], pool.restarts, pool.ready_count = 13, 1, 2
    assert value("suppression_ready") == 0  # pid 13 has published nothing yet
    StatePublisher(_worker_registry(State(), True, 5), tmp_path, pid=13).publish()
    assert value("suppression_ready") == 1
    assert value("suppression_worker_restarts_total") == 1


def test_memory_of_the_parent_and_of_each_worker() -> None:
    registry = CollectorRegistry()
    # This process stands for worker 0; a pid that does not exist yields no sample.
    registry.register(ProcessMemoryCollector(lambda: {0: os.getpid(), 1: 2**22 + 1}))
    value = registry.get_sample_value
    for process in ("parent", "worker-0"):
        resident = value("suppression_resident_memory_bytes", {"process": process})
        proportional = value("suppression_proportional_memory_bytes", {"process": process})
        assert resident is not None and resident > 1 << 20
        assert proportional is not None and 0 < proportional <= resident
    assert value("suppression_resident_memory_bytes", {"process": "worker-1"}) is None


def test_worker_state_ignores_files_of_workers_that_stopped(tmp_path: Path) -> None:
    publisher = StatePublisher(_worker_registry(State(), True, 5), tmp_path, pid=7)
    publisher.start()
    publisher.stop()
    registry = CollectorRegistry()
    registry.register(WorkerStateCollector(tmp_path, [7]))
    assert registry.get_sample_value("suppression_ready") == 0
    assert registry.get_sample_value("suppression_data_version_timestamp_seconds") is None


def test_readiness_follows_the_health_check(start_server: Callable[..., InProcessServer]) -> None:
    server = start_server(lists())
    assert server.registry.get_sample_value("suppression_ready") == 1
    server.process.health.set(SERVICE, health_pb2.HealthCheckResponse.NOT_SERVING)
    assert server.registry.get_sample_value("suppression_ready") == 0
    server.process.sync_health()
    assert server.registry.get_sample_value("suppression_ready") == 1
    server.process.health.enter_graceful_shutdown()
    assert server.registry.get_sample_value("suppression_ready") == 0
