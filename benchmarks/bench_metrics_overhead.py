"""What Prometheus metrics cost: Check throughput over real gRPC, with and without them.

Three servers run side by side, each in its own forked process on its own port,
over the same registry-shaped list:

- ``no metrics``: the servicer with a do-nothing metrics object and no interceptor;
- ``metrics``: the server exactly as ``suppression serve`` builds it (the gRPC
  interceptor, the service's counters and histograms, the scrape-time collectors);
- ``metrics, multiprocess``: the same, with values in prometheus_client's
  multiprocess files, as each worker of ``--workers N`` writes them.

One client thread sends batches of ``--batch`` E.164 integers, one call at a
time, and interleaves the servers call by call in a rotating order: each
"turn" times one call on every server within a few tens of milliseconds, so
load from other work on the machine hits all three alike. A sequential
client's throughput is the batch size over the call time, so the cost of
metrics is the median over turns of each server's call time against the
baseline's in the same turn. The target is at most 5% lower throughput.

Two cross-checks: each server's CPU time per call (from /proc, Linux only),
and the metric work of one call (the interceptor's three updates and the
service's per-batch counters) timed in-process against the call time.

Usage: ``python benchmarks/bench_metrics_overhead.py [--turns 600]``, about a minute.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from concurrent import futures
from pathlib import Path

import numpy as np
from _common import (
    append_results,
    free_port,
    load_average,
    machine_description,
    markdown_table,
    print_table,
    served,
)
from prometheus_client import CollectorRegistry
from pyroaring import BitMap64

from suppression.checker import check_batch
from suppression.demo import registry_shaped
from suppression.e164 import Normalizer
from suppression.lists import ListInfo, ListKind, SuppressionLists
from suppression.metrics import GrpcServerMetrics, ServiceMetrics
from suppression.server import ServerOptions, create_server, grpc_message_limit, server_options
from suppression.service import SuppressionServicer
from suppression.workermetrics import use_multiprocess_values

VARIANTS = ("no metrics", "metrics", "metrics, multiprocess")
BASELINE = VARIANTS[0]


class _NoMetrics(ServiceMetrics):
    """Counts nothing: the baseline."""

    def __init__(self) -> None:
        pass

    def record_check(self, outcome: object) -> None:
        pass


def _serve(variant: str, port: int, lists: SuppressionLists, settings: ServerOptions) -> None:
    """Run one server until SIGTERM (in a forked child, before any gRPC object exists)."""
    import grpc

    from suppression.v1 import suppression_pb2_grpc as pb_grpc

    if variant == BASELINE:
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=settings.threads),
            options=server_options(settings, reuse_port=False),
        )
        servicer = SuppressionServicer(served(lists), _NoMetrics(), max_batch=settings.max_batch)
        pb_grpc.add_SuppressionServicer_to_server(servicer, server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        server.start()
    else:
        if variant == "metrics, multiprocess":
            use_multiprocess_values(Path(tempfile.mkdtemp(prefix="bench-metrics-")))
        create_server(served(lists), settings, CollectorRegistry(), f"127.0.0.1:{port}")
    signal.sigwait({signal.SIGTERM})
    os._exit(0)


def _cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time of a process so far, or None without /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _metric_work_us(lists: SuppressionLists, batch: list[int], calls: int = 5_000) -> float:
    """Microseconds of metric updates per Check call: what the interceptor and servicer add."""
    registry = CollectorRegistry()
    service, grpc_metrics = ServiceMetrics(registry), GrpcServerMetrics(registry)
    labels = ("unary", "suppression.v1.Suppression", "Check")
    started = grpc_metrics.started.labels(*labels)
    seconds = grpc_metrics.handling_seconds.labels(*labels)
    handled = grpc_metrics.handled.labels(*labels, "OK")
    outcome = check_batch(lists.view, batch, (), "", (), Normalizer())
    begin = time.perf_counter()
    for _ in range(calls):
        started.inc()
        at = time.perf_counter()
        service.record_check(outcome)
        seconds.observe(time.perf_counter() - at)
        handled.inc()
    return (time.perf_counter() - begin) / calls * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=10_000, help="numbers per Check")
    parser.add_argument("--list-size", type=int, default=1_000_000, help="numbers on the list")
    parser.add_argument("--turns", type=int, default=600, help="calls per server")
    parser.add_argument("--no-append", action="store_true", help="do not write RESULTS.md")
    args = parser.parse_args()

    listed = registry_shaped(args.list_size, seed=1)
    lists = SuppressionLists(
        {"national": BitMap64(listed)}, infos=[ListInfo("national", ListKind.REGISTRY)]
    )
    rng = np.random.default_rng(2)
    # Half the batch on the list, half random numbers in the same area codes.
    hits = rng.choice(listed, args.batch // 2, replace=False)
    misses = rng.choice(listed, args.batch - len(hits)) + np.uint64(1)
    batch = [int(n) for n in np.concatenate([hits, misses])]
    settings = ServerOptions(max_batch=max(args.batch, 100_000), threads=4)

    # Fork every server before this process creates any gRPC object, as gRPC requires.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    servers: dict[str, tuple[int, int]] = {}
    for variant in VARIANTS:
        port = free_port()
        pid = os.fork()
        if pid == 0:
            _serve(variant, port, lists, settings)
        servers[variant] = (pid, port)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})

    import grpc

    from suppression.v1 import suppression_pb2 as pb
    from suppression.v1 import suppression_pb2_grpc as pb_grpc

    request = pb.CheckRequest(e164=batch)
    limit = grpc_message_limit(settings.max_batch)
    options = [("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)]
    channels = {
        v: grpc.insecure_channel(f"127.0.0.1:{p}", options=options) for v, (_, p) in servers.items()
    }
    seconds: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    cpu_start: dict[str, float | None] = {}
    cpu_end: dict[str, float | None] = {}
    load_before = load_average()
    try:
        for channel in channels.values():
            grpc.channel_ready_future(channel).result(timeout=30)
        checks = {v: pb_grpc.SuppressionStub(c).Check for v, c in channels.items()}
        for variant in VARIANTS:  # warm up
            for _ in range(5):
                checks[variant](request)
            cpu_start[variant] = _cpu_seconds(servers[variant][0])
        perf_counter = time.perf_counter
        for turn in range(args.turns):
            shift = turn % len(VARIANTS)
            for variant in VARIANTS[shift:] + VARIANTS[:shift]:
                check = checks[variant]
                began = perf_counter()
                check(request)
                seconds[variant].append(perf_counter() - began)
        for variant in VARIANTS:
            cpu_end[variant] = _cpu_seconds(servers[variant][0])
    finally:
        for channel in channels.values():
            channel.close()
        for pid, _ in servers.values():
            os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)
    load_after = load_average()

    work_us = _metric_work_us(lists, batch)
    use_multiprocess_values(Path(tempfile.mkdtemp(prefix="bench-metrics-")))
    work_multiprocess_us = _metric_work_us(lists, batch)

    headers = [
        "Server",
        "Numbers/s (batch / mean call)",
        "Call p50",
        "Call p90",
        "Throughput vs no metrics (median of turns)",
        "Server CPU per call",
        "CPU vs no metrics",
    ]
    cpu_us: dict[str, float] = {}
    for variant in VARIANTS:
        start, end = cpu_start.get(variant), cpu_end.get(variant)
        cpu_us[variant] = (
            (end - start) / args.turns * 1e6 if start is not None and end is not None else 0.0
        )
    costs: dict[str, float] = {}
    rows = []
    for variant in VARIANTS:
        times = seconds[variant]
        ratios = [base / own for base, own in zip(seconds[BASELINE], times, strict=True)]
        costs[variant] = 1 - statistics.median(ratios)
        cpu_change = cpu_us[variant] / cpu_us[BASELINE] - 1 if cpu_us[BASELINE] else 0.0
        quantiles = statistics.quantiles(times, n=10)
        rows.append(
            [
                variant,
                f"{args.batch / statistics.fmean(times):,.0f}",
                f"{statistics.median(times) * 1e3:.2f} ms",
                f"{quantiles[8] * 1e3:.2f} ms",
                f"{-costs[variant] * 100:+.1f}%",
                f"{cpu_us[variant]:,.0f} µs",
                f"{cpu_change * 100:+.1f}%",
            ]
        )
    call_us = statistics.median(seconds[BASELINE]) * 1e6
    note = (
        f"Metric updates per Check call, timed in-process: {work_us:.1f} µs with values in "
        f"memory, {work_multiprocess_us:.1f} µs with multiprocess files; at most "
        f"{max(work_us, work_multiprocess_us) / call_us * 100:.2f}% of a {call_us:,.0f} µs call."
    )
    title = (
        f"bench_metrics_overhead.py: Check, batches of {args.batch:,} over loopback gRPC, "
        f"{args.turns} interleaved calls per server"
    )
    print_table(title, headers, rows)
    print(note)
    print(f"load average before: {load_before}; after: {load_after}")
    if not args.no_append:
        worst = max(costs[v] for v in VARIANTS[1:])
        body = (
            markdown_table(headers, rows)
            + f"\n\nList of {args.list_size:,} registry-shaped numbers; half of each batch "
            f"listed. Load average before the run: {load_before}; after: {load_after}. "
            f"Largest cost of metrics: {worst * 100:.1f}% of throughput, "
            f"{'within' if worst <= 0.05 else 'OVER'} the 5% target (a negative cost is "
            f"noise). {note}"
        )
        append_results(
            title, machine_description(["grpcio", "prometheus-client", "pyroaring"]), body
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
