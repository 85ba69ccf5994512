"""The gRPC shell around a :class:`~suppression.replica.Replica`: server, health, metrics.

:func:`create_server` wraps a replica in a listening gRPC server whose health
follows the replica; :func:`serve` is the ``suppression serve`` command: one
process, or a parent that loads once and forks workers.
"""

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
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import REGISTRY, CollectorRegistry

from suppression import membership
from suppression.admission import AdmissionInterceptor
from suppression.datasource import DataSource, load_lists
from suppression.e164 import Normalizer
from suppression.errors import ConfigError, SnapshotError
from suppression.exposition import serve_metrics
from suppression.interceptor import MetricsInterceptor, initialize_metrics
from suppression.lanes import Lanes
from suppression.lists import ListView
from suppression.metrics import (
    BuildInfoCollector,
    FollowerCollector,
    GrpcServerMetrics,
    ListsCollector,
    ServiceMetrics,
)
from suppression.policy.store import PolicyStore, open_store
from suppression.replica import ChangeLogOptions, Replica, SnapshotOptions
from suppression.security import (
    SecurityOptions,
    ServerSecurity,
    create_quota,
    refuse_exposure,
)
from suppression.service import SuppressionServicer
from suppression.settings import Settings
from suppression.v1 import suppression_pb2 as pb
from suppression.v1 import suppression_pb2_grpc as pb_grpc
from suppression.wire import grpc_message_limit
from suppression.workermetrics import StatePublisher, parent_registry, use_multiprocess_values
from suppression.workers import PoolHealthServicer, WorkerCensus, WorkerPool

__all__ = ["ServerOptions", "ServingProcess", "create_server", "grpc_message_limit", "serve"]

logger = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Suppression"].full_name

_HEALTH_DESCRIPTOR = health_pb2.DESCRIPTOR.services_by_name["Health"]

_HEALTH_POLL = 0.1
"""Seconds between readings of the replica's state by the health reporter."""


@dataclass(frozen=True, slots=True)
class ServerOptions:
    """What the gRPC shell needs to know; the replica has its own options."""

    host: str = "[::]"
    """Address to bind."""
    port: int = 50051
    """Port to bind; 0 picks a free port."""
    max_batch: int = 100_000
    """Largest batch of numbers one request may carry."""
    threads: int = 16
    """gRPC worker threads."""
    parse_cache_size: int = 200_000
    """Loose-format parse results kept (LRU)."""
    max_connection_age: float = 300.0
    """Seconds before a client connection is asked to reconnect."""
    grace: float = 10.0
    """Seconds in-flight calls get to finish on stop."""
    min_client_ping_interval: float = 10.0
    """Clients may send keepalive pings this often. gRPC's server default is 5 minutes,
    and a client that pings more often gets its connection closed with ``too_many_pings``."""
    max_streams: int = 0
    """Streaming calls run at once (each holds a thread throughout); 0: half of ``threads``."""
    bulk_threshold: int = 1_000
    """Batches of at least this many numbers are bulk work (see :mod:`suppression.lanes`)."""
    bulk_elsewhere: int = 0
    """The replica's bulk port, where this server sends bulk batches (refusing them); 0
    serves them here."""

    @property
    def stream_limit(self) -> int:
        """Streams admitted at once: ``max_streams``, or half the threads (at least 1)."""
        return self.max_streams or max(1, self.threads // 2)

    @classmethod
    def from_settings(cls, settings: Settings) -> ServerOptions:
        """The ``serve`` options of the gRPC shell."""
        return cls(
            host=settings.host,
            port=settings.port,
            max_batch=settings.max_batch,
            threads=settings.threads,
            parse_cache_size=settings.parse_cache_size,
            max_connection_age=settings.max_connection_age,
            grace=settings.grace,
            max_streams=settings.max_streams,
            bulk_threshold=settings.bulk_threshold,
            bulk_elsewhere=settings.bulk_port,
        )


def server_options(options: ServerOptions, reuse_port: bool) -> list[tuple[str, int]]:
    """The gRPC channel arguments of the server."""
    limit = grpc_message_limit(options.max_batch)
    return [
        ("grpc.max_receive_message_length", limit),
        ("grpc.max_send_message_length", limit),
        ("grpc.max_connection_age_ms", int(options.max_connection_age * 1000)),
        ("grpc.max_connection_age_grace_ms", int(options.grace * 1000)),
        (
            "grpc.http2.min_ping_interval_without_data_ms",
            int(options.min_client_ping_interval * 1000),
        ),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.so_reuseport", 1 if reuse_port else 0),
    ]


class _HealthReporter:
    """Keeps the health service in step with the replica (and the worker pool, if any).

    Polling keeps the replica free of any knowledge of gRPC health; a change
    shows within :data:`_HEALTH_POLL` seconds, while answers themselves never
    wait for it (the replica refuses to answer from data it knows is incomplete).
    """

    def __init__(self, servicer: health.HealthServicer, serving: Callable[[], bool]) -> None:
        self._servicer = servicer
        self._serving = serving
        self._last: bool | None = None
        self._stop = threading.Event()
        self.sync()
        self._thread = threading.Thread(target=self._run, name="health", daemon=True)
        self._thread.start()

    def sync(self, force: bool = False) -> None:
        """Set the health status from the replica's state, if it changed (or ``force``)."""
        serving = self._serving()
        if self._stop.is_set() or (serving == self._last and not force):
            return
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", SERVICE_NAME):
            self._servicer.set(name, status)
        self._last = serving

    def stop(self) -> None:
        """Stop following the replica (shutdown sets its own status)."""
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(_HEALTH_POLL):
            self.sync()


@dataclass
class ServingProcess:
    """The parts of one serving process, for start-up, tests and shutdown."""

    server: grpc.Server
    port: int
    servicer: SuppressionServicer
    health: health.HealthServicer
    replica: Replica
    _reporter: _HealthReporter

    def sync_health(self) -> None:
        """Report the replica's state in the health service now, not at the next poll."""
        self._reporter.sync(force=True)

    def stop(self, grace: float) -> None:
        """Report NOT_SERVING, then let in-flight calls finish for up to ``grace`` seconds."""
        self._reporter.stop()
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()


def create_server(
    replica: Replica,
    options: ServerOptions,
    registry: CollectorRegistry,
    address: str | None = None,
    *,
    reuse_port: bool = False,
    state_registry: CollectorRegistry | None = None,
    health_servicer: health.HealthServicer | None = None,
    security: SecurityOptions | None = None,
) -> ServingProcess:
    """Start a gRPC server over ``replica``; health is SERVING while the replica is.

    The replica need not be started: the server reports NOT_SERVING and
    answers UNAVAILABLE until it is.

    Args:
        replica: the data, change log and snapshots to serve.
        options: the gRPC shell's options.
        registry: where metrics are registered.
        address: ``host:port`` to bind, overriding the options; port 0 picks a free port.
        reuse_port: share the port with sibling worker processes.
        state_registry: where the metrics read at scrape time (lists, version,
            readiness, follower, build) are registered; ``registry`` when None.
        health_servicer: the health service to report through; a pre-forked
            worker passes one that also reports NOT_SERVING while a sibling is down.
        security: TLS, authentication and quotas; None serves plaintext to anyone
            (the caller has checked that the address allows it).

    Raises:
        ConfigError: the address cannot be bound, or a trust or certificate file is invalid.
    """
    trust = ServerSecurity(security or SecurityOptions(), registry)
    metrics = ServiceMetrics(registry)
    grpc_metrics = GrpcServerMetrics(registry)
    initialize_metrics(
        grpc_metrics, (pb.DESCRIPTOR.services_by_name["Suppression"], _HEALTH_DESCRIPTOR)
    )
    servicer = SuppressionServicer(
        replica,
        metrics,
        normalizer=Normalizer(options.parse_cache_size),
        max_batch=options.max_batch,
        identity_metrics=trust.identity_metrics,
        lanes=Lanes(bulk_threshold=options.bulk_threshold),
        bulk_elsewhere=options.bulk_elsewhere,
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=options.threads, thread_name_prefix="grpc"),
        interceptors=[
            MetricsInterceptor(grpc_metrics),
            AdmissionInterceptor(options.stream_limit),
            *trust.interceptors(),
        ],
        options=server_options(options, reuse_port),
    )
    pb_grpc.add_SuppressionServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    if health_servicer is None:
        health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (
            SERVICE_NAME,
            _HEALTH_DESCRIPTOR.full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    bind = address or f"{options.host}:{options.port}"
    _check_bindable(bind, reuse_port)
    try:
        port = trust.add_port(server, bind)
    except RuntimeError as exc:
        raise ConfigError(f"cannot listen on {bind}: {exc}") from exc
    reporter = _HealthReporter(health_servicer, lambda: replica.serving)
    server.start()
    logger.info(
        "gRPC server listening on %s (port %d); batch lookups: %s",
        bind,
        port,
        "compiled loop" if membership.COMPILED else "pyroaring's call per number (no C loop built)",
    )
    scraped = registry if state_registry is None else state_registry
    scraped.register(ListsCollector(lambda: _view_of(replica), lambda: _serving(health_servicer)))
    scraped.register(FollowerCollector(replica.follower_state))
    scraped.register(BuildInfoCollector())
    return ServingProcess(server, port, servicer, health_servicer, replica, reporter)


def _check_bindable(bind: str, reuse_port: bool) -> None:
    """Refuse a busy port with one line, before gRPC's core logs its own error to stderr.

    Raises:
        ConfigError: the address cannot be bound.
    """
    host, _, port_text = bind.rpartition(":")
    host = host.strip("[]")
    if not port_text.isdigit() or int(port_text) == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            probe.bind((host or "::", int(port_text)))
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {bind}: {exc.strerror or exc}; choose another --port "
                "or stop what holds it"
            ) from exc


def _view_of(replica: Replica) -> ListView | None:
    lists = replica.lists
    return lists.view if lists is not None else None


_SERVICE_HEALTH_REQUEST = health_pb2.HealthCheckRequest(service=SERVICE_NAME)


def _serving(health_servicer: health.HealthServicer) -> bool:
    """What the health check answers, so the readiness metric agrees with the probes."""
    # The service's status is always set, so Check never touches the (absent) context.
    answer = health_servicer.Check(_SERVICE_HEALTH_REQUEST, None)
    return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)


_SIGNAL_POLL = 0.25
"""Seconds the serving main thread sleeps at most before it runs pending signal handlers."""


class _StopSignal:
    """Turns SIGTERM and SIGINT into an event the main thread waits on."""

    def __init__(self) -> None:
        self.event = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: object) -> None:
        logger.info("received %s; shutting down gracefully", signal.Signals(signum).name)
        self.event.set()


def _reload_on_hangup(replica: Replica) -> None:
    """SIGHUP re-reads the policy file; a bad file keeps the old policies (and says why).

    Without a policy file SIGHUP is ignored: a pool forwards it to every worker.
    """
    if replica.policies is None:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        return

    def reload() -> None:
        replica.reload_policies()

    def handle(_signum: int, _frame: object) -> None:
        # Not in the handler itself: reading and logging there could meet a held lock.
        threading.Thread(target=reload, name="policy-reload", daemon=True).start()

    signal.signal(signal.SIGHUP, handle)


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
    if settings.bulk_port and settings.bulk_port == settings.port:
        raise ConfigError(f"--bulk-port {settings.bulk_port} must differ from --port")
    refuse_exposure(settings)
    source = DataSource.from_settings(settings)
    if settings.peer:
        _fetch_from_peers(settings)
    # Loaded before anything else starts: a bad policy file is refused with its line.
    policies = open_store(settings.policy_file, settings.dated_list, settings.region)
    quota = create_quota(settings)
    security = SecurityOptions.from_settings(settings, quota)
    try:
        if settings.workers == 1 and not settings.bulk_port:
            replica = Replica(source, *_live_options(settings), policies=policies)
            return _serve_one(settings, replica, security)
        return _serve_workers(settings, source, security, policies)
    finally:
        if quota is not None:
            quota.close(remove=True)


def _fetch_from_peers(settings: Settings) -> None:
    """Fetch the newest snapshot of a --peer into an empty --data-dir, before loading."""
    from suppression.peersnapshot import PeerFetcher, fetch_if_empty, read_token

    if settings.data_dir is None:
        raise ConfigError("--peer fetches a snapshot into --data-dir: give --data-dir too")
    token = read_token(settings.peer_token_file)
    try:
        fetched = fetch_if_empty(PeerFetcher(settings.peer, token=token), settings.data_dir)
    except SnapshotError as exc:
        if not settings.redis_url:
            raise
        # The first replica of a deployment has no peer; a trimmed log is still noticed.
        logger.warning(
            "%s. Starting empty: replaying the change log from its start (a log trimmed "
            "since makes this replica report NOT_SERVING instead of answering)",
            exc,
        )
        return
    if fetched is not None:
        logger.info("fetched %s from a peer in %.2f s", fetched.path.name, fetched.seconds)


def _live_options(settings: Settings) -> tuple[ChangeLogOptions | None, SnapshotOptions | None]:
    return ChangeLogOptions.from_settings(settings), SnapshotOptions.from_settings(settings)


def _serve_one(
    settings: Settings,
    replica: Replica,
    security: SecurityOptions,
    *,
    reuse_port: bool = False,
    metrics_dir: Path | None = None,
    health_servicer: health.HealthServicer | None = None,
) -> int:
    """Serve ``replica`` in this process; a worker (``metrics_dir`` given) publishes its metrics."""
    stop = _StopSignal()
    _reload_on_hangup(replica)
    if metrics_dir is not None:
        _stop_when_orphaned(os.getppid(), stop.event)
    if settings.metrics_port and metrics_dir is None:
        serve_metrics(settings.host, settings.metrics_port, REGISTRY, settings.web_config_file)
    state_registry = CollectorRegistry() if metrics_dir is not None else None
    options = ServerOptions.from_settings(settings)

    def listen() -> ServingProcess:
        return create_server(
            replica,
            options,
            REGISTRY,
            reuse_port=reuse_port,
            state_registry=state_registry,
            health_servicer=health_servicer,
            security=security,
        )

    if reuse_port:
        # A sibling already serves this port: listen only once ready, or the kernel
        # would hand this worker connections it can only answer UNAVAILABLE.
        loaded = replica.start()
        process = listen()
    else:
        # Alone: listen at once, so probes see NOT_SERVING rather than a refused port.
        process = listen()
        loaded = replica.start()
    process.sync_health()
    logger.info(
        "serving %d lists on port %d at version %s; loaded %s numbers in %.2f s",
        len(loaded.lists.view.bitmaps),
        process.port,
        loaded.lists.version,
        f"{loaded.numbers:,}",  # separators: the log filter masks 7+ digit runs
        loaded.seconds,
    )
    publisher = None
    if state_registry is not None and metrics_dir is not None:
        publisher = StatePublisher(state_registry, metrics_dir)
        publisher.start()
    # Never an untimed wait: the kernel may deliver SIGTERM to any thread (gRPC's,
    # the metrics server's); Python runs the handler only when the main thread runs
    # bytecode, and a main thread blocked for good would never see the signal.
    while not stop.event.wait(_SIGNAL_POLL):
        pass
    process.stop(options.grace)
    replica.stop()
    if publisher is not None:
        publisher.stop()
    logger.info("stopped")
    return 0


def _serve_workers(
    settings: Settings,
    source: DataSource,
    security: SecurityOptions,
    policies: PolicyStore | None = None,
) -> int:
    """Load once, then fork workers that share the port and, copy-on-write, the bitmaps.

    With a bulk port, ``--bulk-workers`` more workers serve it, and only it: bulk
    batches then run in other processes, under other GILs, than the
    single-number checks of the main port, which refuses them (see
    :mod:`suppression.lanes` for what one process can do alone).

    Forking happens before any gRPC object exists in this process, as gRPC requires.
    Workers write their metrics into a fresh directory, and this process serves
    them, aggregated, on the metrics port (see :mod:`suppression.workermetrics`).
    Only the first worker writes snapshots: the others hold the same data.
    """
    if settings.port == 0:
        settings = settings.replace(port=_free_port(settings.host))
    _check_bindable(f"{settings.host}:{settings.port}", reuse_port=True)
    bulk_workers = settings.bulk_workers if settings.bulk_port else 0
    if bulk_workers:
        _check_bindable(f"{settings.host}:{settings.bulk_port}", reuse_port=True)
    change_log, snapshots = _live_options(settings)
    loaded = load_lists(source, allow_empty=change_log is not None)
    logger.info(
        "loaded %s numbers in %.2f s; forking %d workers for port %d%s",
        f"{loaded.numbers:,}",
        loaded.seconds,
        settings.workers,
        settings.port,
        f" and {bulk_workers} for bulk port {settings.bulk_port}" if bulk_workers else "",
    )
    metrics_dir = Path(tempfile.mkdtemp(prefix="suppression-metrics-"))
    slots = settings.workers + bulk_workers
    census = WorkerCensus(slots)
    # A bulk worker serves the bulk port, and every batch size there.
    bulk_settings = settings.replace(port=settings.bulk_port, bulk_port=0)

    def run_worker(slot: int) -> int:
        use_multiprocess_values(metrics_dir)
        replica = Replica(loaded, change_log, snapshots if slot == 0 else None, policies=policies)
        return _serve_one(
            bulk_settings if slot >= settings.workers else settings,
            replica,
            security,
            reuse_port=True,
            metrics_dir=metrics_dir,
            health_servicer=PoolHealthServicer(census, slot),
        )

    pool = WorkerPool(slots, run_worker, census=census, stop_timeout=settings.grace + 5)
    try:
        if settings.metrics_port:
            # Before forking, so that a busy port fails with no worker to clean up. The
            # HTTP thread holds no lock a worker needs, so forking beside it is safe.
            serve_metrics(
                settings.host,
                settings.metrics_port,
                parent_registry(metrics_dir, pool),
                settings.web_config_file,
            )
        pool.start()  # installs the signal handlers, then forks
        return pool.supervise()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(serve(Settings.from_env()))
