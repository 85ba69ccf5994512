"""A real WorkerPool over tiny workers, for the tests: ``python -m tests.integration.pool_program``.

Modes of the workers:

- ``wait``: ready at once, then wait for SIGTERM or SIGINT and exit 0;
- ``crash``: exit 3 at once;
- ``stubborn``: ready at once, and ignore SIGTERM and SIGINT;
- ``health``: a real gRPC server with a :class:`PoolHealthServicer` on a free
  port, written with its pid to ``DIR/port-SLOT``; it reports SERVING once ``DIR/hold-SLOT``
  does not exist.

The parent serves its /metrics (``parent_registry``) when given a port, as
``suppression serve --workers`` does.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from concurrent import futures
from pathlib import Path

from suppression.workermetrics import parent_registry
from suppression.workers import PoolHealthServicer, WorkerCensus, WorkerPool

_STOP = {signal.SIGTERM, signal.SIGINT}


def _wait_for_stop() -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP)
    signal.sigwait(_STOP)


def _waiting_worker(census: WorkerCensus, slot: int) -> int:
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP)
    census.mark(slot, True)
    _wait_for_stop()
    return 0


def _stubborn_worker(census: WorkerCensus, slot: int) -> int:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    census.mark(slot, True)
    while True:
        signal.pause()


def _health_worker(census: WorkerCensus, slot: int, directory: Path) -> int:
    # gRPC is imported and created only here, in the worker, after the fork.
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    servicer = PoolHealthServicer(census, slot)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    temp = directory / f".port-{slot}-{os.getpid()}"
    temp.write_text(f"{port} {os.getpid()}")
    temp.replace(directory / f"port-{slot}")
    hold = directory / f"hold-{slot}"
    while hold.exists():
        time.sleep(0.01)
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    _wait_for_stop()
    servicer.enter_graceful_shutdown()
    server.stop(0).wait()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the pool until it stops; returns its exit code."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--mode", choices=["wait", "crash", "stubborn", "health"], default="wait")
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--max-restarts", type=int, default=5)
    parser.add_argument("--restart-window", type=float, default=60.0)
    parser.add_argument("--stop-timeout", type=float, default=30.0)
    parser.add_argument("--metrics-port", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s"
    )
    census = WorkerCensus(args.workers)

    def run_worker(slot: int) -> int:
        if args.mode == "crash":
            return 3
        if args.mode == "stubborn":
            return _stubborn_worker(census, slot)
        if args.mode == "health":
            return _health_worker(census, slot, args.dir)
        return _waiting_worker(census, slot)

    pool = WorkerPool(
        args.workers,
        run_worker,
        census=census,
        max_restarts=args.max_restarts,
        restart_window=args.restart_window,
        stop_timeout=args.stop_timeout,
    )
    pool.start()
    if args.metrics_port:
        from prometheus_client import start_http_server

        args.dir.joinpath("metrics").mkdir(exist_ok=True)
        start_http_server(args.metrics_port, registry=parent_registry(args.dir / "metrics", pool))
    return pool.supervise()


if __name__ == "__main__":
    sys.exit(main())
