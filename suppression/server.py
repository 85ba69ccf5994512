"""Assembles a serving process: settings, data, gRPC server, health, reflection, metrics."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import REGISTRY, CollectorRegistry, start_http_server

from suppression.e164 import Normalizer
from suppression.errors import ConfigError
from suppression.interceptor import MetricsInterceptor
from suppression.lists import ListView, SuppressionLists
from suppression.live import LiveChanges, initial_lists, start_live_changes
from suppression.metrics import (
    BuildInfoCollector,
    FollowerCollector,
    FollowerStateView,
    GrpcServerMetrics,
    ListsCollector,
    ServiceMetrics,
)
from suppression.service import SuppressionServicer
from suppression.settings import Settings
from suppression.v1 import suppression_pb2 as pb
from suppression.v1 import suppression_pb2_grpc as pb_grpc
from suppression.workermetrics import StatePublisher, parent_registry, use_multiprocess_values

__all__ = ["ServingProcess", "create_server", "grpc_message_limit", "serve"]

logger = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Suppression"].full_name
_BYTES_PER_NUMBER_ON_WIRE = 64
"""Generous: a text number plus its share of every parallel response array."""


def grpc_message_limit(max_batch: int) -> int:
    """A message size limit that fits the largest batch, request or response."""
    return max_batch * _BYTES_PER_NUMBER_ON_WIRE + (1 << 20)


def server_options(settings: Settings, reuse_port: bool) -> list[tuple[str, int]]:
    """Server options derived from the settings."""
    limit = grpc_message_limit(settings.max_batch)
    return [
        ("grpc.max_receive_message_length", limit),
        ("grpc.max_send_message_length", limit),
        ("grpc.max_connection_age_ms", int(settings.max_connection_age * 1000)),
        ("grpc.max_connection_age_grace_ms", int(settings.grace * 1000)),
        ("grpc.so_reuseport", 1 if reuse_port else 0),
    ]


def _no_follower() -> FollowerStateView | None:
    return None


@dataclass
class ServingProcess:
    """The parts of one serving process, for start-up, tests and shutdown.

    ``follower_state`` is read by /metrics at scrape time: set it to the
    change-log follower's ``state`` method once the follower exists.
    """

    server: grpc.Server
    port: int
    servicer: SuppressionServicer
    health: health.HealthServicer
    follower_state: Callable[[], FollowerStateView | None] = field(default=_no_follower)

    def mark_serving(self, lists: SuppressionLists) -> None:
        """Serve ``lists`` and report SERVING."""
        self.servicer.set_lists(lists)
        for name in ("", SERVICE_NAME):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    def stop(self, grace: float) -> None:
        """Report NOT_SERVING, then let in-flight calls finish for up to ``grace`` seconds."""
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()


def create_server(
    settings: Settings,
    registry: CollectorRegistry,
    address: str | None = None,
    *,
    reuse_port: bool = False,
    state_registry: CollectorRegistry | None = None,
) -> ServingProcess:
    """Build and start a gRPC server that reports NOT_SERVING until data is given.

    Args:
        settings: the process settings.
        registry: where metrics are registered.
        address: ``host:port`` to bind; port 0 picks a free port.
        reuse_port: share the port with sibling worker processes.
        state_registry: where the metrics read at scrape time (lists, version,
            readiness, follower, build) are registered; ``registry`` when None.

    Raises:
        ConfigError: the address cannot be bound.
    """
    metrics = ServiceMetrics(registry)
    servicer = SuppressionServicer(
        None,
        metrics,
        normalizer=Normalizer(settings.parse_cache_size),
        max_batch=settings.max_batch,
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.threads, thread_name_prefix="grpc"),
        interceptors=[MetricsInterceptor(GrpcServerMetrics(registry))],
        options=server_options(settings, reuse_port),
    )
    pb_grpc.add_SuppressionServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    reflection.enable_server_reflection(
        (
            SERVICE_NAME,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    bind = address or f"{settings.host}:{settings.port}"
    try:
        port = server.add_insecure_port(bind)
    except RuntimeError as exc:
        raise ConfigError(f"cannot listen on {bind}: {exc}") from exc
    server.start()
    logger.info("gRPC server listening on %s (port %d)", bind, port)
    process = ServingProcess(server, port, servicer, health_servicer)
    scraped = registry if state_registry is None else state_registry
    scraped.register(ListsCollector(lambda: _view_of(servicer), lambda: _serving(health_servicer)))
    scraped.register(FollowerCollector(lambda: process.follower_state()))
    scraped.register(BuildInfoCollector())
    return process


def _view_of(servicer: SuppressionServicer) -> ListView | None:
    lists = servicer.lists
    return lists.view if lists is not None else None


_SERVICE_HEALTH_REQUEST = health_pb2.HealthCheckRequest(service=SERVICE_NAME)


def _serving(health_servicer: health.HealthServicer) -> bool:
    """What the health check answers, so the readiness metric agrees with the probes."""
    # The service's status is always set, so Check never touches the (absent) context.
    answer = health_servicer.Check(_SERVICE_HEALTH_REQUEST, None)
    return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)


class _StopSignal:
    """Turns SIGTERM and SIGINT into an event the main thread waits on."""

    def __init__(self) -> None:
        self.event = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: object) -> None:
        logger.info("received %s; shutting down gracefully", signal.Signals(signum).name)
        self.event.set()


def _stop_when_orphaned(parent: int, stop: threading.Event) -> None:
    """A worker whose parent died stops gracefully, rather than serve on unmonitored.

    Without the parent, nothing serves the worker's metrics or forwards SIGTERM.
    """

    def watch() -> None:
        while not stop.wait(1.0):
            if os.getppid() != parent:
                logger.warning("parent process %d is gone; stopping this worker", parent)
                stop.set()

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host.strip("[]"), 0))
        return int(probe.getsockname()[1])


def serve(settings: Settings) -> int:
    """Run the server until SIGTERM; returns the process exit code."""
    if settings.workers < 1:
        raise ConfigError(f"--workers must be at least 1, not {settings.workers}")
    if settings.workers == 1:
        return _serve_one(settings, preloaded=None, reuse_port=False)
    return _serve_workers(settings)


def _serve_one(
    settings: Settings,
    preloaded: SuppressionLists | None,
    reuse_port: bool,
    metrics_dir: Path | None = None,
) -> int:
    """Serve in this process; a worker (``metrics_dir`` given) publishes its metrics there."""
    stop = _StopSignal()
    if metrics_dir is not None:
        _stop_when_orphaned(os.getppid(), stop.event)
    if settings.metrics_port and metrics_dir is None:
        start_http_server(settings.metrics_port, registry=REGISTRY)
    state_registry = CollectorRegistry() if metrics_dir is not None else None
    process = create_server(
        settings, REGISTRY, reuse_port=reuse_port, state_registry=state_registry
    )
    lists = preloaded
    snapshot_created_at: float | None = None
    if lists is None:
        lists, report = initial_lists(settings)
        snapshot_created_at = report.snapshot.created_at if report.snapshot else None
        logger.info(
            "loaded %s numbers in %.2f s at version %s",
            f"{report.numbers:,}",  # separators: the log filter masks 7+ digit runs
            report.seconds,
            lists.version,
        )
    live: LiveChanges | None = None
    if settings.redis_url:
        live = start_live_changes(process, settings, lists, snapshot_created_at)
    else:
        process.mark_serving(lists)
    logger.info("serving %d lists at version %s", len(lists.view.bitmaps), lists.version)
    publisher = None
    if state_registry is not None and metrics_dir is not None:
        publisher = StatePublisher(state_registry, metrics_dir)
        publisher.start()
    stop.event.wait()
    process.stop(settings.grace)
    if live is not None:
        live.stop()
    if publisher is not None:
        publisher.stop()
    logger.info("stopped")
    return 0


def _serve_workers(settings: Settings) -> int:
    """Load once, then fork workers that share the port and, copy-on-write, the bitmaps.

    Forking happens before any gRPC object exists in this process, as gRPC requires.
    Workers write their metrics into a fresh directory, and this process serves
    them, aggregated, on the metrics port (see :mod:`suppression.workermetrics`).
    """
    if settings.port == 0:
        settings = settings.replace(port=_free_port(settings.host))
    lists, report = initial_lists(settings)
    logger.info(
        "loaded %s numbers in %.2f s; forking %d workers",
        f"{report.numbers:,}",
        report.seconds,
        settings.workers,
    )
    metrics_dir = Path(tempfile.mkdtemp(prefix="suppression-metrics-"))
    children: list[int] = []
    for _ in range(settings.workers):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                use_multiprocess_values(metrics_dir)
                code = _serve_one(settings, lists, reuse_port=True, metrics_dir=metrics_dir)
            finally:
                os._exit(code)
        children.append(pid)
    if settings.metrics_port:
        start_http_server(settings.metrics_port, registry=parent_registry(metrics_dir, children))

    def forward(signum: int, _frame: object) -> None:
        for pid in children:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    exit_code = 0
    for pid in children:
        _, status = os.waitpid(pid, 0)
        exit_code = exit_code or os.waitstatus_to_exitcode(status)
    shutil.rmtree(metrics_dir, ignore_errors=True)
    return exit_code


if __name__ == "__main__":
    sys.exit(serve(Settings.from_env()))
