"""What Prometheus metrics cost: Check throughput over real gRPC, with and without them.

Three servers run side by side, each in its own forked process on its own port,
over the same registry-shaped list:

- ``no metrics``: the servicer with a do-nothing metrics object and no interceptor;
- ``metrics``: the server exactly as ``suppression serve`` builds it (the gRPC
  interceptor, the service's counters and histograms, the scrape-time collectors);
- ``metrics, multiprocess``: the same, with values in prometheus_client's
  multiprocess files, as each worker of ``--workers N`` writes them.

One client thread sends batches of ``--batch`` E.164 integers in a loop. Rounds
alternate between the servers in a rotating order, so drift in machine load hits
all of them alike; the cost is the median over rounds of each round's throughput
against the baseline's in the same round. The target is at most 5% lower
throughput with metrics. On a shared machine, wall-clock throughput (and even
CPU time per call) swings by more than that between rounds, so two cross-checks
are reported too: each server's CPU time per Check call (from /proc, Linux
only), and the metric work of one call (the interceptor's three updates and the
service's per-batch counters) timed in-process against the call time, which is
the figure least disturbed by other load.

Usage: ``python benchmarks/bench_metrics_overhead.py [--seconds 2] [--rounds 5]``.
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
)
from prometheus_client import CollectorRegistry
from pyroaring import BitMap64

from suppression.checker import check_batch
from suppression.demo import registry_shaped
from suppression.e164 import Normalizer
from suppression.lists import ListInfo, ListKind, SuppressionLists
from suppression.metrics import GrpcServerMetrics, ServiceMetrics
from suppression.server import create_server, grpc_message_limit, server_options
from suppression.service import SuppressionServicer
from suppression.settings import Settings
from suppression.workermetrics import use_multiprocess_values

VARIANTS = ("no metrics", "metrics", "metrics, multiprocess")


class _NoMetrics(ServiceMetrics):
    """Counts nothing: the baseline."""

    def __init__(self) -> None:
        pass

    def record_check(self, outcome: object) -> None:
        pass


def _serve(variant: str, port: int, lists: SuppressionLists, settings: Settings) -> None:
    """Run one server until SIGTERM (in a forked child, before any gRPC object exists)."""
    import grpc

    from suppression.v1 import suppression_pb2_grpc as pb_grpc

    if variant == "no metrics":
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=settings.threads),
            options=server_options(settings, reuse_port=False),
        )
        servicer = SuppressionServicer(lists, _NoMetrics(), max_batch=settings.max_batch)
        pb_grpc.add_SuppressionServicer_to_server(servicer, server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        server.start()
    else:
        if variant == "metrics, multiprocess":
            use_multiprocess_values(Path(tempfile.mkdtemp(prefix="bench-metrics-")))
        process = create_server(settings, CollectorRegistry(), f"127.0.0.1:{port}")
        process.mark_serving(lists)
    signal.sigwait({signal.SIGTERM})
    os._exit(0)


def _throughput(stub: object, request: object, batch: int, seconds: float) -> tuple[float, int]:
    """Numbers per second over ``seconds``, and the calls made (with the warm-up call)."""
    check = stub.Check  # type: ignore[attr-defined]
    check(request)
    calls = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        check(request)
        calls += 1
    return calls * batch / (time.perf_counter() - started), calls + 1


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
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per server")
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
    settings = Settings(max_batch=max(args.batch, 100_000), threads=4)

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
    figures: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    cpu: dict[str, float] = dict.fromkeys(VARIANTS, 0.0)
    calls: dict[str, int] = dict.fromkeys(VARIANTS, 0)
    load_before = load_average()
    try:
        for channel in channels.values():
            grpc.channel_ready_future(channel).result(timeout=30)
        stubs = {v: pb_grpc.SuppressionStub(c) for v, c in channels.items()}
        for round_number in range(args.rounds):
            # Rotate the order, so no server always runs right after another.
            shift = round_number % len(VARIANTS)
            for variant in VARIANTS[shift:] + VARIANTS[:shift]:
                pid = servers[variant][0]
                before = _cpu_seconds(pid)
                rate, made = _throughput(stubs[variant], request, args.batch, args.seconds)
                after = _cpu_seconds(pid)
                figures[variant].append(rate)
                if before is not None and after is not None:
                    cpu[variant] += after - before
                    calls[variant] += made
    finally:
        for channel in channels.values():
            channel.close()
        for pid, _ in servers.values():
            os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)

    work_us = _metric_work_us(lists, batch)
    use_multiprocess_values(Path(tempfile.mkdtemp(prefix="bench-metrics-")))
    work_multiprocess_us = _metric_work_us(lists, batch)
    cpu_us = {v: cpu[v] / calls[v] * 1e6 if calls[v] else float("nan") for v in VARIANTS}
    headers = [
        "Server",
        "Numbers/s (median)",
        "Min",
        "Max",
        "Check calls/s",
        "Throughput vs no metrics, paired rounds",
        "Server CPU per call",
        "CPU vs no metrics",
    ]
    rows = []
    costs: dict[str, float] = {}
    for variant in VARIANTS:
        median = statistics.median(figures[variant])
        ratios = [a / b for a, b in zip(figures[variant], figures["no metrics"], strict=True)]
        costs[variant] = 1 - statistics.median(ratios)
        rows.append(
            [
                variant,
                f"{median:,.0f}",
                f"{min(figures[variant]):,.0f}",
                f"{max(figures[variant]):,.0f}",
                f"{median / args.batch:,.0f}",
                f"{-costs[variant] * 100:+.1f}%",
                f"{cpu_us[variant]:,.0f} µs",
                f"{(cpu_us[variant] / cpu_us['no metrics'] - 1) * 100:+.1f}%",
            ]
        )
    call_us = 1e6 * args.batch / statistics.median(figures["no metrics"])
    note = (
        f"Metric updates per Check call, timed in-process: {work_us:.1f} µs with values in "
        f"memory, {work_multiprocess_us:.1f} µs with multiprocess files; "
        f"{work_multiprocess_us / call_us * 100:.2f}% at most of a {call_us:,.0f} µs call."
    )
    title = (
        f"bench_metrics_overhead.py: Check, batches of {args.batch:,} over loopback gRPC, "
        f"{args.rounds} rounds of {args.seconds:g} s"
    )
    print_table(title, headers, rows)
    print(note)
    print(f"load average before: {load_before}; after: {load_average()}")
    if not args.no_append:
        worst = max(costs[v] for v in VARIANTS[1:])
        worst_cpu = max(cpu_us[v] / cpu_us["no metrics"] - 1 for v in VARIANTS[1:])
        body = (
            markdown_table(headers, rows)
            + f"\n\nList of {args.list_size:,} registry-shaped numbers; half of each batch "
            f"listed. Load average before the run: {load_before}; after: {load_average()}. "
            f"Largest cost of metrics: {worst * 100:.1f}% of throughput "
            f"({'within' if worst <= 0.05 else 'OVER'} the 5% target), "
            f"{worst_cpu * 100:.1f}% of server CPU per call "
            f"({'within' if worst_cpu <= 0.05 else 'OVER'}); a negative cost is noise. {note}"
        )
        append_results(
            title, machine_description(["grpcio", "prometheus-client", "pyroaring"]), body
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
