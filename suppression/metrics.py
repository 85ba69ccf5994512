"""Every Prometheus metric of the service, defined in one place.

Hot-path cost rules: counters are bumped once per batch with ``inc(n)``,
never once per number, and label children are bound once. List sizes, memory,
the data version and the change-log follower's state are read at scrape time
by custom collectors, so serving pays nothing for them.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterator, Mapping
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from suppression import membership
from suppression.checker import CheckOutcome, SingleOutcome, Verdict
from suppression.lists import ListView
from suppression.version import build_version, package_version

__all__ = [
    "LATENCY_BUCKETS",
    "BuildInfoCollector",
    "FollowerCollector",
    "FollowerStateView",
    "GrpcServerMetrics",
    "ListsCollector",
    "ServiceMetrics",
    "build_version",
]

LATENCY_BUCKETS = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
"""Seconds; starts at 50 µs because a single-number check takes well under 1 ms."""

BATCH_BUCKETS = (1, 10, 100, 1_000, 10_000, 100_000, 1_000_000)


class ServiceMetrics:
    """The service's own counters and histograms, registered on one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        """Create and register the metrics."""
        self.checked_numbers = Counter(
            "suppression_checked_numbers",
            "Numbers answered by Check and CheckStream, by verdict.",
            ["verdict"],
            registry=registry,
        )
        self.suppressed_by_list = Counter(
            "suppression_suppressed_by_list",
            "Suppressed numbers, by matched list (a number on two lists counts twice).",
            ["list"],
            registry=registry,
        )
        self.batch_size = Histogram(
            "suppression_batch_size_numbers",
            "Numbers per Check request.",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self._by_verdict = {
            verdict: self.checked_numbers.labels(verdict.name.lower()) for verdict in Verdict
        }
        self._by_list: dict[str, Counter] = {}
        """``suppressed_by_list`` children by list name: ``labels()`` costs a lock and a
        tuple per call, and a single-number Check has few µs to spare."""

    def record_check(self, outcome: CheckOutcome) -> None:
        """Count one answered batch: one inc per verdict and matched list."""
        for verdict, count in outcome.verdict_counts.items():
            if count:
                self._by_verdict[verdict].inc(count)
        self.batch_size.observe(len(outcome))
        for name, hits in zip(outcome.list_names, outcome.hits_per_list, strict=True):
            if hits:
                self._list_child(name).inc(hits)

    def record_one(self, outcome: SingleOutcome) -> None:
        """Count one answered single-number check, as :meth:`record_check` its batch of one."""
        self._by_verdict[outcome.verdict].inc()
        self.batch_size.observe(1)
        mask = outcome.mask
        if mask:
            for bit, name in enumerate(outcome.list_names):
                if mask >> bit & 1:
                    self._list_child(name).inc()

    def _list_child(self, name: str) -> Counter:
        child = self._by_list.get(name)
        if child is None:
            child = self._by_list[name] = self.suppressed_by_list.labels(name)
        return child


class GrpcServerMetrics:
    """The grpc-prometheus server metrics, under the names its users already chart.

    ``grpc_server_started_total`` and ``grpc_server_handled_total`` count calls;
    ``grpc_server_handling_seconds`` times them with :data:`LATENCY_BUCKETS`.
    The interceptor in :mod:`suppression.interceptor` feeds them.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        """Create and register the metrics."""
        labels = ["grpc_type", "grpc_service", "grpc_method"]
        self.started = Counter(
            "grpc_server_started",
            "Total number of RPCs started on the server.",
            labels,
            registry=registry,
        )
        self.handled = Counter(
            "grpc_server_handled",
            "Total number of RPCs completed on the server, regardless of success or failure.",
            [*labels, "grpc_code"],
            registry=registry,
        )
        self.handling_seconds = Histogram(
            "grpc_server_handling_seconds",
            "Histogram of response latency (seconds) of gRPC that had been application-level "
            "handled by the server.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )


class ListsCollector(Collector):
    """Reads list sizes, memory, version and readiness from the live view at scrape time."""

    def __init__(self, view: Callable[[], ListView | None], ready: Callable[[], bool]) -> None:
        """Create a collector over a view getter and a readiness getter."""
        self._view = view
        self._ready = ready

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Yield the gauges for the current view."""
        view = self._view()
        numbers = GaugeMetricFamily(
            "suppression_list_numbers", "Numbers on each list.", labels=["list", "kind"]
        )
        memory = GaugeMetricFamily(
            "suppression_list_bytes", "Bytes each list's bitmap takes in memory.", labels=["list"]
        )
        if view is not None:
            for name, bitmap in sorted(view.bitmaps.items()):
                numbers.add_metric([name, str(view.infos[name].kind)], len(bitmap))
                memory.add_metric([name], view.list_bytes(name))
        yield numbers
        yield memory
        version = GaugeMetricFamily(
            "suppression_data_version_timestamp_seconds",
            "Time part of the data version (the change-log entry ID of the last applied "
            "change), in seconds since the epoch.",
        )
        version.add_metric([], view.version.ms / 1000 if view is not None else 0)
        yield version
        ready = GaugeMetricFamily("suppression_ready", "1 when the replica serves checks.")
        ready.add_metric([], 1 if self._ready() else 0)
        yield ready


class FollowerStateView(Protocol):
    """What the metrics read from the change-log follower's state (``changelog.FollowerState``).

    A protocol, so that this module does not depend on the follower.
    """

    @property
    def connected(self) -> bool:
        """Whether the follower holds a working connection to Redis."""

    @property
    def lag_entries(self) -> int:
        """Stream entries written but not yet applied."""

    @property
    def lag_seconds(self) -> float:
        """Age of the oldest entry not yet applied."""

    @property
    def staleness_seconds(self) -> float:
        """Seconds since the data was last known to be current."""

    @property
    def stale(self) -> bool:
        """Whether answers are flagged stale."""

    @property
    def needs_resync(self) -> bool:
        """Whether the follower fell behind a trim and must reload a snapshot."""

    @property
    def applied_by_op(self) -> Mapping[str, int]:
        """Cumulative numbers applied, by operation."""

    @property
    def dead_letters(self) -> int:
        """Cumulative stream entries that could not be applied."""

    @property
    def snapshot_age_seconds(self) -> float | None:
        """Age of the newest snapshot the process started from or wrote, if any."""

    @property
    def losses(self) -> Mapping[str, int]:
        """Cumulative times changes were found missing, by kind (trimmed, reset, rewound)."""

    @property
    def attempts_complete(self) -> bool:
        """Whether attempt caps count every dial attempt of their window."""


class FollowerCollector(Collector):
    """Reads the change-log follower's state at scrape time; nothing when there is none.

    The follower keeps cumulative totals, which are exported as counters here,
    so applying changes costs no metric update at all.
    """

    def __init__(self, state: Callable[[], FollowerStateView | None]) -> None:
        """Create a collector over a state getter (returning None without a follower)."""
        self._state = state

    def collect(self) -> Iterator[Metric]:
        """Yield the follower's gauges and counters."""
        state = self._state()
        if state is None:
            return
        yield _gauge(
            "suppression_changelog_connected",
            "1 while the follower is connected to the change log (Redis).",
            state.connected,
        )
        yield _gauge(
            "suppression_changelog_lag_entries",
            "Change-log entries written but not yet applied by this replica.",
            state.lag_entries,
        )
        yield _gauge(
            "suppression_changelog_lag_seconds",
            "Age in seconds of the oldest change-log entry not yet applied (0 when caught up).",
            state.lag_seconds,
        )
        yield _gauge(
            "suppression_staleness_seconds",
            "Seconds since this replica last knew its data to be current.",
            state.staleness_seconds,
        )
        yield _gauge(
            "suppression_stale",
            "1 while answers are flagged stale (the change log is out of reach for too long).",
            state.stale,
        )
        yield _gauge(
            "suppression_changelog_needs_resync",
            "1 when the follower fell behind a stream trim and must reload from a snapshot.",
            state.needs_resync,
        )
        applied = CounterMetricFamily(
            "suppression_changelog_applied",
            "Numbers applied from the change log, by operation (add, remove, add_range, "
            "remove_range).",
            labels=["op"],
        )
        for op, count in sorted(state.applied_by_op.items()):
            applied.add_metric([op], count)
        yield applied
        dead = CounterMetricFamily(
            "suppression_changelog_dead_letters",
            "Change-log entries that could not be applied and were set aside.",
        )
        dead.add_metric([], state.dead_letters)
        yield dead
        losses = CounterMetricFamily(
            "suppression_changelog_losses",
            "Times this replica found changes missing from the change log, by kind: trimmed "
            "(entries removed before it read them), reset (Redis lost the log, or it was "
            "reseeded), rewound (a failover lost entries it had applied).",
            labels=["kind"],
        )
        for kind, count in sorted(state.losses.items()):
            losses.add_metric([kind], count)
        yield losses
        yield _gauge(
            "suppression_attempts_complete",
            "1 when attempt caps count every dial attempt of their window; 0 while the "
            "attempts a snapshot lacks are read back from the change log, or when the log no "
            "longer held them all (until the window has passed since the snapshot).",
            state.attempts_complete,
        )
        if state.snapshot_age_seconds is not None:
            yield _gauge(
                "suppression_snapshot_age_seconds",
                "Age in seconds of the newest snapshot this replica started from or wrote.",
                state.snapshot_age_seconds,
            )


class BuildInfoCollector(Collector):
    """``suppression_build_info``: always 1, with the version and runtime as labels.

    ``membership`` says how batches are looked up: ``compiled`` (the C loop of
    ``suppression.membership``) or ``pyroaring`` (its call per number, 2-3 times
    slower), so a build without the loop shows on a dashboard.
    """

    def __init__(self, version: str | None = None) -> None:
        """Create the collector; ``version`` defaults to the installed package's."""
        self._labels = {
            "version": version if version is not None else build_version(),
            "python_version": platform.python_version(),
            "grpc_version": package_version("grpcio"),
            "membership": "compiled" if membership.COMPILED else "pyroaring",
        }

    def collect(self) -> Iterator[Metric]:
        """Yield the one info gauge."""
        info = GaugeMetricFamily(
            "suppression_build_info",
            "Always 1; labels name the running build.",
            labels=sorted(self._labels),
        )
        info.add_metric([self._labels[key] for key in sorted(self._labels)], 1)
        yield info


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation)
    family.add_metric([], float(value))
    return family
