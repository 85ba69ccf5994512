"""Metrics of pre-forked workers, served as one replica from the parent's /metrics.

Two kinds of metric need two mechanisms:

- Counters and histograms (gRPC calls, checked numbers, batch sizes) use
  prometheus_client's multiprocess mode: each worker writes its values to
  memory-mapped files in a directory the parent created, and the parent's
  ``MultiProcessCollector`` sums them at scrape time.
- Values read at scrape time (list sizes, data version, readiness, the
  change-log follower's state) live only in each worker's memory. Every worker
  publishes them once a second as a small JSON file (:class:`StatePublisher`);
  the parent merges the fresh files (:class:`WorkerStateCollector`). Each worker
  holds a full copy of the data and follows the change log itself, so merging
  takes the worst worker for each gauge (highest lag, lowest version) and the
  highest value for counters, which every worker counts alike.

The parent adds what only it knows, read at scrape time: how many workers it
runs, how many are ready and how often it restarted one (from the
:class:`PoolView`, :class:`suppression.workers.WorkerPool`), and the memory of
each process, read from ``/proc`` (:class:`ProcessMemoryCollector`).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, values
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

__all__ = [
    "PUBLISH_INTERVAL",
    "PoolCollector",
    "PoolView",
    "ProcessMemoryCollector",
    "StatePublisher",
    "WorkerStateCollector",
    "parent_registry",
    "process_memory",
    "use_multiprocess_values",
]

logger = logging.getLogger(__name__)

PUBLISH_INTERVAL = 1.0
"""Seconds between a worker's state files; scraped state is at most this old."""

_EXPIRY_INTERVALS = 5
"""A state file this many intervals old belongs to a worker that stopped or hangs."""

_TAKE_LOWEST = frozenset(
    {
        "suppression_ready",
        "suppression_data_version_timestamp_seconds",
        "suppression_changelog_connected",
        "suppression_attempts_complete",
        # Any worker's snapshot is on the shared disk: the newest one is the replica's.
        "suppression_snapshot_age_seconds",
    }
)
"""Gauges where the replica's value is the lowest worker's; every other family takes the highest."""

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


class PoolView(Protocol):
    """What the parent's metrics read from the worker pool (``workers.WorkerPool``)."""

    @property
    def workers(self) -> int:
        """Workers the replica is configured to run."""

    @property
    def restarts(self) -> int:
        """Workers restarted since the pool started."""

    def pids(self) -> Mapping[int, int]:
        """Running workers' process IDs, by slot."""

    def ready(self) -> int:
        """Workers whose health is SERVING."""


def use_multiprocess_values(directory: Path) -> None:
    """Make every metric created from now on in this process write to ``directory``.

    Call it in a freshly forked worker, before any metric exists there. The
    parent imported prometheus_client before the directory existed, so the
    value class that the ``PROMETHEUS_MULTIPROC_DIR`` variable selects at import
    is chosen here instead; the variable is still set, because the value files
    are opened under it.
    """
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]


def _state_path(directory: Path, pid: int) -> Path:
    return directory / f"state_{pid}.json"


class StatePublisher:
    """Writes a registry's scrape-time metrics to a file, once now and then every interval."""

    def __init__(
        self,
        registry: CollectorRegistry,
        directory: Path,
        interval: float = PUBLISH_INTERVAL,
        *,
        pid: int | None = None,
    ) -> None:
        """Create a publisher; :meth:`start` begins publishing.

        Args:
            registry: the collectors to publish.
            directory: the parent's metrics directory.
            interval: seconds between files.
            pid: the worker the file belongs to; this process when None.
        """
        self._registry = registry
        self._path = _state_path(directory, os.getpid() if pid is None else pid)
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="metrics-state", daemon=True)

    def start(self) -> None:
        """Publish once, then keep publishing in a daemon thread."""
        self.publish()
        self._thread.start()

    def stop(self) -> None:
        """Stop publishing and remove the file, so the parent stops counting this worker."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self._interval * 2)
        self._path.unlink(missing_ok=True)

    def publish(self) -> None:
        """Write the current state atomically (the parent never reads half a file)."""
        families = [
            {
                "name": family.name,
                "documentation": family.documentation,
                "type": family.type,
                "samples": [[s.name, s.labels, s.value] for s in family.samples],
            }
            for family in self._registry.collect()
        ]
        body = json.dumps({"time": time.time(), "families": families})
        fd, temp = tempfile.mkstemp(prefix=".state-", dir=self._path.parent)
        with os.fdopen(fd, "w") as out:
            out.write(body)
        os.replace(temp, self._path)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.publish()
            except OSError:
                logger.exception("cannot write worker metrics to %s", self._path)


class WorkerStateCollector(Collector):
    """Merges the workers' state files into one replica's metrics, at scrape time."""

    def __init__(
        self,
        directory: Path,
        workers: Collection[int] | Callable[[], Collection[int]],
        interval: float = PUBLISH_INTERVAL,
        *,
        pool: PoolView | None = None,
    ) -> None:
        """Create a collector over the workers' state files.

        Args:
            directory: the parent's metrics directory.
            workers: the worker process IDs, or a getter of the current ones
                (a restarted worker has a new ID).
            interval: the workers' publishing interval.
            pool: when given, the replica is not ready while the pool's census
                counts fewer ready workers than configured; this is known the
                moment a worker dies, before its state file expires.
        """
        self._directory = directory
        self._workers = workers if callable(workers) else (lambda: workers)
        self._pool = pool
        self._max_age = interval * _EXPIRY_INTERVALS

    def _read_fresh(self, workers: Collection[int]) -> list[list[dict[str, Any]]]:
        now = time.time()
        states: list[list[dict[str, Any]]] = []
        for pid in workers:
            try:
                state = json.loads(_state_path(self._directory, pid).read_text())
            except (OSError, ValueError):
                continue
            if now - float(state["time"]) <= self._max_age:
                states.append(state["families"])
        return states

    def collect(self) -> Iterator[Metric]:
        """Yield the merged families; ``suppression_ready`` is 0 unless every worker is."""
        workers = self._workers()
        states = self._read_fresh(workers)
        merged: dict[str, Metric] = {}
        values_by_sample: dict[tuple[str, str, tuple[tuple[str, str], ...]], float] = {}
        for families in states:
            for family in families:
                name = family["name"]
                if name not in merged:
                    merged[name] = Metric(name, family["documentation"], family["type"])
                lowest = name in _TAKE_LOWEST
                for sample_name, labels, value in family["samples"]:
                    key = (name, sample_name, tuple(sorted(labels.items())))
                    known = values_by_sample.get(key)
                    if known is None:
                        values_by_sample[key] = value
                    else:
                        values_by_sample[key] = min(known, value) if lowest else max(known, value)
        short = self._pool is not None and self._pool.ready() < self._pool.workers
        if short or len(states) < len(workers):
            # A worker that publishes nothing fresh has stopped or hangs: not ready.
            merged.setdefault(
                "suppression_ready",
                Metric("suppression_ready", "1 when the replica serves checks.", "gauge"),
            )
            values_by_sample["suppression_ready", "suppression_ready", ()] = 0.0
        for (name, sample_name, labels), value in values_by_sample.items():
            merged[name].add_sample(sample_name, dict(labels), value)
        yield from merged.values()


class PoolCollector(Collector):
    """The pool's size, readiness and restarts, read from the parent's pool at scrape time."""

    def __init__(self, pool: PoolView) -> None:
        """Create a collector over ``pool``."""
        self._pool = pool

    def collect(self) -> Iterator[Metric]:
        """Yield the configured and ready worker counts, and the restart counter."""
        configured = GaugeMetricFamily(
            "suppression_workers", "Worker processes the replica is configured to run."
        )
        configured.add_metric([], self._pool.workers)
        yield configured
        ready = GaugeMetricFamily(
            "suppression_workers_ready",
            "Worker processes whose health is SERVING; while below suppression_workers, "
            "every worker reports NOT_SERVING.",
        )
        ready.add_metric([], self._pool.ready())
        yield ready
        restarts = CounterMetricFamily(
            "suppression_worker_restarts",
            "Worker processes that died (crashed, killed) and were restarted by the parent.",
        )
        restarts.add_metric([], self._pool.restarts)
        yield restarts


def process_memory(pid: int) -> tuple[int, int | None] | None:
    """Resident and proportional (PSS) bytes of process ``pid``, from ``/proc``.

    PSS divides each page shared copy-on-write between the parent and its
    workers among them, so summing it over a replica's processes gives the
    replica's real footprint, where summing resident memory counts the shared
    bitmaps once per process. PSS is None where ``smaps_rollup`` is missing
    (Linux before 4.14); the whole answer is None once the process is gone.
    """
    try:
        resident_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    proportional = None
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    proportional = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError):
        pass
    return resident_pages * _PAGE_SIZE, proportional


class ProcessMemoryCollector(Collector):
    """Memory of the parent and of each worker, labelled ``process="parent"`` or ``"worker-N"``."""

    def __init__(self, workers: Callable[[], Mapping[int, int]]) -> None:
        """Create a collector over a getter of the workers' process IDs by slot."""
        self._workers = workers

    def collect(self) -> Iterator[Metric]:
        """Yield resident and proportional memory per process."""
        resident = GaugeMetricFamily(
            "suppression_resident_memory_bytes",
            "Resident memory of each process of the replica (pages shared copy-on-write "
            "count in every process that maps them).",
            labels=["process"],
        )
        proportional = GaugeMetricFamily(
            "suppression_proportional_memory_bytes",
            "Proportional set size (PSS) of each process of the replica: shared pages are "
            "divided among the processes sharing them, so the sum is the replica's footprint.",
            labels=["process"],
        )
        processes = {"parent": os.getpid()}
        for slot, pid in sorted(self._workers().items()):
            processes[f"worker-{slot}"] = pid
        for label, pid in processes.items():
            memory = process_memory(pid)
            if memory is None:
                continue
            resident.add_metric([label], memory[0])
            if memory[1] is not None:
                proportional.add_metric([label], memory[1])
        yield resident
        yield proportional


def parent_registry(directory: Path, workers: Sequence[int] | PoolView) -> CollectorRegistry:
    """The registry the parent serves for the whole replica.

    Args:
        directory: the metrics directory the workers write to.
        workers: the worker pool; or, for a parent that does not restart
            workers, their fixed process IDs (no pool metrics then).

    Returns:
        Summed worker counters, merged worker state, per-process memory and,
        with a pool, its size, readiness and restarts.
    """
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    if isinstance(workers, Sequence):
        fixed = dict(enumerate(workers))
        registry.register(WorkerStateCollector(directory, workers))
        registry.register(ProcessMemoryCollector(lambda: fixed))
        return registry
    pool = workers
    registry.register(
        WorkerStateCollector(directory, lambda: list(pool.pids().values()), pool=pool)
    )
    registry.register(PoolCollector(pool))
    registry.register(ProcessMemoryCollector(pool.pids))
    return registry
