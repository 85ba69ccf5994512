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
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, values
from prometheus_client.core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

__all__ = [
    "PUBLISH_INTERVAL",
    "StatePublisher",
    "WorkerStateCollector",
    "parent_registry",
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
    }
)
"""Gauges where the worst worker has the lowest value; every other family takes the highest."""


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
        self, directory: Path, workers: Sequence[int], interval: float = PUBLISH_INTERVAL
    ) -> None:
        """Create a collector over the state files of the worker processes ``workers``."""
        self._directory = directory
        self._workers = workers
        self._max_age = interval * _EXPIRY_INTERVALS

    def _read_fresh(self) -> list[list[dict[str, Any]]]:
        now = time.time()
        states: list[list[dict[str, Any]]] = []
        for pid in self._workers:
            try:
                state = json.loads(_state_path(self._directory, pid).read_text())
            except (OSError, ValueError):
                continue
            if now - float(state["time"]) <= self._max_age:
                states.append(state["families"])
        return states

    def collect(self) -> Iterator[Metric]:
        """Yield the merged families; ``suppression_ready`` is 0 unless every worker is."""
        states = self._read_fresh()
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
        if len(states) < len(self._workers):
            # A worker that publishes nothing fresh has stopped or hangs: not ready.
            merged.setdefault(
                "suppression_ready",
                Metric("suppression_ready", "1 when the replica serves checks.", "gauge"),
            )
            values_by_sample["suppression_ready", "suppression_ready", ()] = 0.0
        for (name, sample_name, labels), value in values_by_sample.items():
            merged[name].add_sample(sample_name, dict(labels), value)
        yield from merged.values()


def parent_registry(directory: Path, workers: Sequence[int]) -> CollectorRegistry:
    """The registry the parent serves: summed worker counters plus merged worker state."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    registry.register(WorkerStateCollector(directory, workers))
    return registry
