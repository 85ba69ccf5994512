"""Interactive checks under bulk load: single-number Check latency with and without bulk streams.

Each layout is a real ``suppression serve`` child process over the same
registry-shaped snapshot:

- ``one-process``: one process; bulk batches share it with single-number
  checks, sliced and admitted one at a time (``suppression.lanes``);
- ``bulk-port``: ``serve --bulk-port``: bulk streams go to the bulk port, served
  by another process, and single-number checks to the main port.

A spawned client process measures the latency of sequential single-number
``Check`` calls, first alone ("unloaded"), then while another spawned process
keeps ``--bulk-streams`` ``CheckStream`` calls busy with ``--batch``-number TEXT
batches ("loaded"). The layouts alternate within each of ``--rounds`` rounds,
and the verdict compares p99 loaded with p99 unloaded within each round, since
absolute times drift on a shared machine. Target (issue 9, item 6): loaded p99
at most 5 times unloaded p99.

Usage: ``.venv/bin/python benchmarks/bench_interactive.py [--size N] [--samples N]
[--rounds N] [--bulk-streams N] [--batch N] [--threads N] [--layouts L,...] [--record]``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from _common import (
    append_results,
    free_port,
    load_average,
    machine_description,
    markdown_table,
    percentiles_us,
    print_table,
    start_serve,
    wait_serving,
)

from suppression.demo import registry_shaped
from suppression.lists import ListInfo, ListKind, SuppressionLists, Version
from suppression.snapshot import write_snapshot
from suppression.v1 import suppression_pb2 as pb
from suppression.v1 import suppression_pb2_grpc as pb_grpc
from suppression.wire import grpc_message_limit

TARGET_RATIO = 5.0


def _channel(target: str, max_batch: int) -> grpc.Channel:
    limit = grpc_message_limit(max_batch)
    return grpc.insecure_channel(
        target,
        options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
        ],
    )


_CLIENT: dict[str, Any] = {}


def measure_interactive(target: str, numbers: Sequence[int], samples: int) -> list[int]:
    """Sequential single-number Check calls; latency of each in ns (client process)."""
    stub = _CLIENT.get(target)
    if stub is None:
        stub = pb_grpc.SuppressionStub(_channel(target, 1))
        _CLIENT[target] = stub
    requests = [pb.CheckRequest(e164=[number]) for number in numbers]
    latencies = []
    clock = time.perf_counter_ns
    for index in range(samples):
        request = requests[index % len(requests)]
        started = clock()
        stub.Check(request, timeout=30)
        latencies.append(clock() - started)
    return latencies


def run_bulk(
    target: str,
    texts: Sequence[str],
    streams: int,
    batch: int,
    go: EventType,
    stop: EventType,
    batches: Synchronized,  # type: ignore[type-arg]
) -> None:
    """Keep ``streams`` CheckStream calls busy with TEXT batches until ``stop`` (bulk process)."""
    channel = _channel(target, batch)
    stub = pb_grpc.SuppressionStub(channel)
    requests = [
        pb.CheckRequest(numbers=texts[start : start + batch], request_id=start)
        for start in range(0, len(texts) - batch + 1, batch)
    ]

    def one_stream(offset: int) -> None:
        answered = threading.Semaphore(1)

        def source() -> Iterator[pb.CheckRequest]:
            index = offset
            while not stop.is_set():
                answered.acquire()  # one batch in flight per stream, like a scrub job
                if stop.is_set():
                    return
                yield requests[index % len(requests)]
                index += 1

        for _ in stub.CheckStream(source()):
            with batches.get_lock():
                batches.value += 1
            answered.release()

    while not go.wait(0.05):
        if stop.is_set():
            return
    threads = [threading.Thread(target=one_stream, args=(k,)) for k in range(streams)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    channel.close()


@dataclass(frozen=True, slots=True)
class Round:
    """One unloaded phase and one loaded phase."""

    unloaded_us: tuple[float, float]
    loaded_us: tuple[float, float]
    bulk_numbers_per_s: float

    @property
    def ratio(self) -> float:
        """p99 loaded over p99 unloaded."""
        return self.loaded_us[1] / self.unloaded_us[1]


LAYOUTS = ("one-process", "bulk-port")


@dataclass
class Served:
    """One ``suppression serve`` child process: where to send interactive and bulk work."""

    process: subprocess.Popen[bytes]
    target: str
    bulk_target: str

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def serve(data_dir: Path, layout: str, threads: int, max_batch: int, bulk_threshold: int) -> Served:
    """Start ``suppression serve`` on ``data_dir`` in ``layout``; returns once it is SERVING."""
    bulk_port = free_port() if layout == "bulk-port" else 0
    arguments = [
        "--data-dir", str(data_dir), "--snapshot-interval", "0",
        "--threads", str(threads), "--max-batch", str(max_batch),
        "--bulk-threshold", str(bulk_threshold), "--log-level", "WARNING",
    ]  # fmt: skip
    if bulk_port:
        arguments += ["--bulk-port", str(bulk_port)]
    process, port = start_serve(arguments)
    target = f"127.0.0.1:{port}"
    served = Served(process, target, f"127.0.0.1:{bulk_port}" if bulk_port else target)
    try:
        wait_serving(process, target, timeout=120, poll=0.1)
    except RuntimeError as exc:
        served.stop()
        raise SystemExit(f"suppression serve ({layout}): {exc}") from exc
    return served


def measure_round(
    served: Served,
    texts: list[str],
    interactive_numbers: list[int],
    args: argparse.Namespace,
    submit: Callable[..., Any],
) -> Round:
    """One unloaded phase, then one phase beside ``--bulk-streams`` bulk streams."""
    spawn = multiprocessing.get_context("spawn")
    unloaded = submit(
        measure_interactive, served.target, interactive_numbers, args.samples
    ).result()
    go, stop = spawn.Event(), spawn.Event()
    batches = spawn.Value("q", 0)
    bulk = spawn.Process(
        target=run_bulk,
        args=(served.bulk_target, texts, args.bulk_streams, args.batch, go, stop, batches),
    )
    bulk.start()
    go.set()
    while batches.value < 2 * args.bulk_streams:  # streams warm and busy
        time.sleep(0.05)
    first, started = batches.value, time.perf_counter()
    loaded = submit(measure_interactive, served.target, interactive_numbers, args.samples).result()
    done, seconds = batches.value - first, time.perf_counter() - started
    stop.set()
    bulk.join(30)
    if bulk.is_alive():
        bulk.kill()
    return Round(
        tuple(percentiles_us(unloaded)),  # type: ignore[arg-type]
        tuple(percentiles_us(loaded)),  # type: ignore[arg-type]
        done * args.batch / seconds,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=2_000_000, help="numbers on the list")
    parser.add_argument("--samples", type=int, default=2_000, help="Check calls per phase")
    parser.add_argument("--rounds", type=int, default=3, help="unloaded/loaded pairs per layout")
    parser.add_argument("--bulk-streams", type=int, default=4, help="concurrent bulk streams")
    parser.add_argument("--batch", type=int, default=10_000, help="numbers per bulk batch")
    parser.add_argument("--threads", type=int, default=16, help="server worker threads")
    parser.add_argument(
        "--layouts",
        default=",".join(LAYOUTS),
        help="comma-separated: one-process (bulk and interactive on one port, one process), "
        "bulk-port (serve --bulk-port: bulk streams to their own process)",
    )
    parser.add_argument("--label", default="", help="a note for the results, e.g. the branch")
    parser.add_argument("--record", action="store_true", help="append to RESULTS.md")
    args = parser.parse_args(argv)
    layouts = [layout.strip() for layout in args.layouts.split(",") if layout.strip()]
    unknown = set(layouts) - set(LAYOUTS)
    if unknown or not layouts:
        parser.error(f"--layouts takes {', '.join(LAYOUTS)}; not {', '.join(sorted(unknown))}")

    rng = np.random.default_rng(7)
    listed = registry_shaped(args.size, seed=7)
    lists = SuppressionLists(
        {"national": _bitmap(listed)},
        infos=[ListInfo("national", ListKind.REGISTRY)],
        version=Version(1700000000000, 1),
    )
    hits = rng.choice(listed, 50_000).tolist()
    misses = (12000000000 + rng.integers(2002000000, 9999999999, 50_000)).tolist()
    pool = hits + misses
    rng.shuffle(pool)
    texts = [f"+{number}" for number in pool]
    interactive_numbers = pool[:1000]

    load_before = load_average()
    rounds: dict[str, list[Round]] = {layout: [] for layout in layouts}
    with tempfile.TemporaryDirectory(prefix="bench-interactive-") as scratch:
        data_dir = Path(scratch) / "data"
        write_snapshot(data_dir, lists.view)
        servers: dict[str, Served] = {}
        try:
            for layout in layouts:
                servers[layout] = serve(
                    data_dir, layout, args.threads, max(args.batch, 100_000), 1_000
                )
            spawn = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(1, mp_context=spawn) as interactive:
                for layout in layouts:  # warm each client channel
                    interactive.submit(
                        measure_interactive, servers[layout].target, interactive_numbers, 300
                    ).result()
                for _ in range(args.rounds):  # the layouts alternate within each round
                    for layout in layouts:
                        rounds[layout].append(
                            measure_round(
                                servers[layout],
                                texts,
                                interactive_numbers,
                                args,
                                interactive.submit,
                            )  # fmt: skip
                        )
        finally:
            for server in servers.values():
                server.stop()

    headers = [
        "Round",
        "Layout",
        "p50 alone µs",
        "p99 alone µs",
        "p50 loaded µs",
        "p99 loaded µs",
        "p99 ratio",
        "bulk numbers/s",
    ]
    rows = [
        [
            str(k + 1),
            layout,
            f"{r.unloaded_us[0]:,.0f}",
            f"{r.unloaded_us[1]:,.0f}",
            f"{r.loaded_us[0]:,.0f}",
            f"{r.loaded_us[1]:,.0f}",
            f"{r.ratio:.1f}x",
            f"{r.bulk_numbers_per_s:,.0f}",
        ]
        for k in range(args.rounds)
        for layout in layouts
        for r in [rounds[layout][k]]
    ]
    title = (
        f"Single-number Check with {args.bulk_streams} bulk streams of "
        f"{args.batch:,}-number TEXT batches"
    )
    print_table(title, headers, rows)
    summaries = []
    for layout in layouts:
        ratios = [r.ratio for r in rounds[layout]]
        worst, best = max(ratios), min(ratios)
        verdict = "met" if worst <= TARGET_RATIO else "missed"
        summaries.append(
            f"{layout}: p99 loaded/unloaded over {len(ratios)} rounds: {best:.1f}x to "
            f"{worst:.1f}x (median {statistics.median(ratios):.1f}x); target at most "
            f"{TARGET_RATIO:.0f}x: {verdict} (least favourable round)."
        )
    summary = "\n".join(f"- {line}" for line in summaries)
    print(summary)
    if args.record:
        body = (
            (f"{args.label}\n\n" if args.label else "")
            + f"`bench_interactive.py {' '.join(argv if argv is not None else sys.argv[1:])}`; "
            f"{args.size:,} numbers; server threads {args.threads}; load average before "
            f"{load_before}, after {load_average()}.\n\n"
            f"{markdown_table(headers, rows)}\n\n{summary}\n"
        )
        append_results(
            f"bench_interactive.py{', ' + args.label if args.label else ''}",
            machine_description(["grpcio", "protobuf", "pyroaring"]),
            body,
        )
    return 0


def _bitmap(values: Any) -> Any:
    from pyroaring import BitMap64

    return BitMap64(values)


if __name__ == "__main__":
    sys.exit(main())
