"""Assembles a serving process: settings, data, gRPC server, health, reflection, metrics."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
from concurrent import futures
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import REGISTRY, CollectorRegistry, start_http_server

from suppression.datasource import load_lists
from suppression.e164 import Normalizer
from suppression.errors import ConfigError
from suppression.lists import ListView, SuppressionLists
from suppression.metrics import ListsCollector, ServiceMetrics
from suppression.service import SuppressionServicer
from suppression.settings import Settings
from suppression.v1 import suppression_pb2 as pb
from suppression.v1 import suppression_pb2_grpc as pb_grpc

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


@dataclass
class ServingProcess:
    """The parts of one serving process, for start-up, tests and shutdown."""

    server: grpc.Server
    port: int
    servicer: SuppressionServicer
    health: health.HealthServicer

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
) -> ServingProcess:
    """Build and start a gRPC server that reports NOT_SERVING until data is given.

    Args:
        settings: the process settings.
        registry: where metrics are registered.
        address: ``host:port`` to bind; port 0 picks a free port.
        reuse_port: share the port with sibling worker processes.

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
    registry.register(
        ListsCollector(lambda: _view_of(servicer), lambda: servicer.lists is not None)
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.threads, thread_name_prefix="grpc"),
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
    return ServingProcess(server, port, servicer, health_servicer)


def _view_of(servicer: SuppressionServicer) -> ListView | None:
    lists = servicer.lists
    return lists.view if lists is not None else None


class _StopSignal:
    """Turns SIGTERM and SIGINT into an event the main thread waits on."""

    def __init__(self) -> None:
        self.event = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: object) -> None:
        logger.info("received %s; shutting down gracefully", signal.Signals(signum).name)
        self.event.set()


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


def _serve_one(settings: Settings, preloaded: SuppressionLists | None, reuse_port: bool) -> int:
    stop = _StopSignal()
    if settings.metrics_port and preloaded is None:
        start_http_server(settings.metrics_port, registry=REGISTRY)
    process = create_server(settings, REGISTRY, reuse_port=reuse_port)
    lists = preloaded
    if lists is None:
        lists, report = load_lists(settings)
        logger.info(
            "loaded %d numbers in %.2f s at version %s",
            report.numbers,
            report.seconds,
            lists.version,
        )
    process.mark_serving(lists)
    logger.info("serving %d lists at version %s", len(lists.view.bitmaps), lists.version)
    stop.event.wait()
    process.stop(settings.grace)
    logger.info("stopped")
    return 0


def _serve_workers(settings: Settings) -> int:
    """Load once, then fork workers that share the port and, copy-on-write, the bitmaps.

    Forking happens before any gRPC object exists in this process, as gRPC requires.
    """
    if settings.port == 0:
        settings = settings.replace(port=_free_port(settings.host))
    lists, report = load_lists(settings)
    logger.info(
        "loaded %d numbers in %.2f s; forking %d workers",
        report.numbers,
        report.seconds,
        settings.workers,
    )
    children: list[int] = []
    for _ in range(settings.workers):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = _serve_one(settings, preloaded=lists, reuse_port=True)
            finally:
                os._exit(code)
        children.append(pid)
    if settings.metrics_port:
        start_http_server(settings.metrics_port, registry=_parent_registry(lists))

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
    return exit_code


def _parent_registry(lists: SuppressionLists) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(ListsCollector(lambda: lists.view, lambda: True))
    return registry


if __name__ == "__main__":
    sys.exit(serve(Settings.from_env()))
