"""Every Prometheus metric of the service, defined in one place.

Hot-path cost rules: counters are bumped once per batch with ``inc(n)``,
never once per number, and label children are bound once. List sizes, memory
and the data version are read at scrape time by :class:`ListsCollector`, so
serving pays nothing for them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from suppression.checker import CheckOutcome, Verdict
from suppression.lists import ListView

__all__ = ["LATENCY_BUCKETS", "ListsCollector", "ServiceMetrics"]

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

    def record_check(self, outcome: CheckOutcome) -> None:
        """Count one answered batch: one inc per verdict and matched list."""
        for verdict, count in outcome.verdict_counts.items():
            if count:
                self._by_verdict[verdict].inc(count)
        self.batch_size.observe(len(outcome.verdicts))
        for name, hits in zip(outcome.list_names, outcome.hits_per_list, strict=True):
            if hits:
                self.suppressed_by_list.labels(name).inc(hits)


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
            "suppression_data_version_ms",
            "Milliseconds part of the data version (the change-log entry ID).",
        )
        version.add_metric([], view.version.ms if view is not None else 0)
        yield version
        ready = GaugeMetricFamily("suppression_ready", "1 when the replica serves checks.")
        ready.add_metric([], 1 if self._ready() else 0)
        yield ready
