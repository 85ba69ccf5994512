"""Live-change benchmark: an append until Check on every replica sees it, and ingest speed.

One run, against a throwaway redis-server and real ``suppression serve`` replica
processes following its stream:

- **propagation**: a fresh number is appended to the stream (the change-log
  writer's one EVAL: an XADD with the entry's epoch and sequence number), then every
  replica is polled with ``Check`` over gRPC, all at once in rounds, until each
  answers SUPPRESSED. Reported: time until the first and until the last replica sees it,
  p50/p99/max. A poll is itself a gRPC round trip, so figures include up to one
  round trip of polling resolution.
- **write**: the ``Suppress`` RPC, which appends and returns once that replica applied it.
- **ingest**: a US registry file (ten digits per line) read by the loader
  (numbers/s), published to the stream as entries of 100,000 numbers (numbers/s),
  and applied by both replicas (numbers/s from the first XADD until both replicas
  reach the last entry).

Usage: ``python benchmarks/bench_changes.py [--samples 1000] [--ingest 5000000] [--record]``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import grpc
import numpy as np
from _common import (
    append_results,
    load_average,
    machine_description,
    markdown_table,
    percentiles_us,
    print_table,
    redis_server,
    redis_server_version,
    start_serve,
    wait_serving,
)

from loader.publish import entries, publish
from loader.readers import read_numbers
from suppression.demo import registry_shaped
from suppression.entries import Entry
from suppression.lists import ListKind, Op, Version
from suppression.v1 import suppression_pb2 as pb
from suppression.v1 import suppression_pb2_grpc as pb_grpc
from suppression.writer import ChangeLogWriter

REPO = Path(__file__).resolve().parent.parent
STREAM = "suppression:deltas"
TARGET_P99_MS = 5.0
TARGET_INGEST = 5_000_000.0
PACKAGES = ("grpcio", "redis", "pyroaring", "numpy")


def start_replica(redis_url: str, data_dir: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    arguments = [
        "--redis-url", redis_url, "--data-dir", str(data_dir), "--snapshot-interval", "0",
        "--log-level", "WARNING",
    ]  # fmt: skip
    process, port = start_serve(arguments, log=log)
    return process, f"127.0.0.1:{port}"


def propagation(
    client: object, stubs: Sequence[pb_grpc.SuppressionStub], samples: int, poll_interval: float
) -> tuple[list[int], list[int]]:
    """Nanoseconds from the append until the first and until the last replica answers SUPPRESSED.

    Appended as every producer appends (the change-log writer's one EVAL, which
    numbers the entry in the log's epoch): a bare XADD is dead-lettered.
    """
    first_seen: list[int] = []
    all_seen: list[int] = []
    clock = time.perf_counter_ns
    writer = ChangeLogWriter(client, STREAM, "bench")  # type: ignore[arg-type]
    for index in range(samples + 20):
        number = 8613900000000 + index
        entry = Entry(Op.ADD, "internal", ListKind.OPT_OUT, "in_call", (number,))
        request = pb.CheckRequest(e164=[number])
        pending = list(range(len(stubs)))
        seen: list[int] = []
        start = clock()
        writer.write([entry])
        while pending:
            # One round asks every pending replica at once, so a round costs one round trip.
            calls = [
                (replica, stubs[replica].Check.future(request, timeout=5)) for replica in pending
            ]
            for replica, call in calls:
                if call.result().verdicts[0] == pb.SUPPRESSED:
                    seen.append(clock() - start)
                    pending.remove(replica)
            if pending and poll_interval:
                time.sleep(poll_interval)  # leave the CPU to the replicas between rounds
        if index >= 20:  # the first ones warm up connections and caches
            first_seen.append(min(seen))
            all_seen.append(max(seen))
    return first_seen, all_seen


def round_trips(stub: pb_grpc.SuppressionStub, samples: int) -> list[int]:
    """A plain Check of one number, for scale: the polling resolution on this machine."""
    request = pb.CheckRequest(e164=[8613800138000])
    samples_ns: list[int] = []
    for index in range(samples + 20):
        start = time.perf_counter_ns()
        stub.Check(request, timeout=5)
        if index >= 20:
            samples_ns.append(time.perf_counter_ns() - start)
    return samples_ns


def writes(stub: pb_grpc.SuppressionStub, samples: int) -> list[int]:
    samples_ns: list[int] = []
    for index in range(samples + 20):
        request = pb.SuppressRequest(
            e164=[8613700000000 + index], list="internal", source="app", create_list=True
        )
        start = time.perf_counter_ns()
        stub.Suppress(request, timeout=10)
        if index >= 20:
            samples_ns.append(time.perf_counter_ns() - start)
    return samples_ns


def ingest(
    client: object,
    stubs: Sequence[pb_grpc.SuppressionStub],
    size: int,
    directory: Path,
) -> dict[str, float]:
    numbers = registry_shaped(size, seed=3) - np.uint64(10_000_000_000)
    path = directory / "registry.txt"
    path.write_bytes(("\n".join(map(str, numbers.tolist())) + "\n").encode())
    start = time.perf_counter()
    imported = read_numbers(path, "ten_digit")
    read_seconds = time.perf_counter() - start
    writer = ChangeLogWriter(client, STREAM, "bench")  # type: ignore[arg-type]
    start = time.perf_counter()
    batch = entries(
        Op.ADD, "national", ListKind.REGISTRY, imported.numbers,
        provenance={"source": "registry", "actor": "bench"},
    )  # fmt: skip
    ids = publish(writer, batch, {})
    publish_seconds = time.perf_counter() - start
    last = ids[-1]
    probe = pb.CheckRequest(e164=[int(imported.numbers[-1])], lists=["national"])
    for stub in stubs:
        while True:
            try:
                answer = stub.Check(probe, timeout=30)
                reached = Version.parse(answer.version) >= last if answer.version else False
                if reached and answer.verdicts[0] == pb.SUPPRESSED:
                    break
            except grpc.RpcError:
                pass
            time.sleep(0.01)
    applied_seconds = time.perf_counter() - start
    return {
        "numbers": float(len(imported.numbers)),
        "read": len(imported.numbers) / read_seconds,
        "publish": len(imported.numbers) / publish_seconds,
        "applied": len(imported.numbers) / applied_seconds,
        "entries": float(len(ids)),
        "applied_seconds": applied_seconds,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000, help="changes timed (default 1000)")
    parser.add_argument("--replicas", type=int, default=2, help="replica processes (default 2)")
    parser.add_argument(
        "--ingest", type=int, default=5_000_000, help="numbers in the ingest file (default 5M)"
    )
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=0.0002,
        help="seconds between polling rounds (default 0.0002; 0 polls flat out)",
    )
    parser.add_argument("--record", action="store_true", help="append the figures to RESULTS.md")
    args = parser.parse_args(argv)
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="bench-changes-") as temp, redis_server() as redis:
        directory = Path(temp)
        url = f"redis://{redis.host}:{redis.port}/0"
        replicas = [
            start_replica(url, directory / f"data-{i}", directory / f"replica-{i}.log")
            for i in range(args.replicas)
        ]
        channels = [grpc.insecure_channel(target) for _, target in replicas]
        try:
            for process, target in replicas:
                wait_serving(process, target, timeout=60)
            stubs = [pb_grpc.SuppressionStub(channel) for channel in channels]
            client = redis.client()
            first, last = propagation(client, stubs, args.samples, args.poll_interval)
            write_ns = writes(stubs[0], max(args.samples // 2, 50))
            check_ns = round_trips(stubs[0], max(args.samples // 2, 50))
            ingested = ingest(client, stubs, args.ingest, directory)
        finally:
            for channel in channels:
                channel.close()
            for process, _ in replicas:
                process.terminate()
                process.wait(30)
    rows = []
    for label, samples in (
        ("append → first replica's Check sees it", first),
        (f"append → all {args.replicas} replicas' Check see it", last),
        ("Suppress RPC (append, wait until applied here)", write_ns),
        ("for scale: one Check round trip, no change", check_ns),
    ):
        p50, p99 = percentiles_us(samples)
        rows.append(
            [label, f"{p50 / 1000:.2f}", f"{p99 / 1000:.2f}", f"{max(samples) / 1e6:.2f}",
             f"{len(samples):,}"]
        )  # fmt: skip
    headers = ["Propagation", "p50 ms", "p99 ms", "max ms", "samples"]
    print_table("Time until a change is visible", headers, rows)
    ingest_rows = [
        ["read the registry file (ten digits per line)", f"{ingested['read']:,.0f}"],
        ["publish to the stream (entries of 100,000)", f"{ingested['publish']:,.0f}"],
        [f"published and applied on all {args.replicas} replicas", f"{ingested['applied']:,.0f}"],
    ]
    print_table(f"Ingest, {ingested['numbers']:,.0f} numbers", ["Step", "numbers/s"], ingest_rows)
    p99_all = percentiles_us(last)[1] / 1000
    verdicts = (
        f"Target p99 under {TARGET_P99_MS:g} ms until all replicas see a change: "
        f"{'met' if p99_all < TARGET_P99_MS else 'NOT met'} ({p99_all:.2f} ms). "
        f"Target reading at least {TARGET_INGEST / 1e6:g} million numbers/s: "
        f"{'met' if ingested['read'] >= TARGET_INGEST else 'NOT met'} "
        f"({ingested['read'] / 1e6:.1f} million/s)."
    )
    print(verdicts)
    if args.record:
        body = (
            f"{args.replicas} `suppression serve` replica processes following one stream on a "
            f"local redis-server {redis_server_version()}; each change is one append (EVAL of "
            "XADD) of one number, then every replica is polled with `Check` over gRPC "
            "(concurrently) until "
            f"it answers SUPPRESSED, {args.poll_interval * 1e6:.0f} µs between polling rounds "
            "(figures include up to one polling round). "
            f"Load average before the run: {load_before}.\n\n"
            + markdown_table(headers, rows)
            + "\n\n"
            + markdown_table(
                [f"Ingest, {ingested['numbers']:,.0f} registry-shaped numbers", "numbers/s"],
                ingest_rows,
            )
            + f"\n\n{verdicts}\n"
        )
        append_results(
            f"bench_changes.py, {args.samples:,} changes, {args.replicas} replicas",
            machine_description(PACKAGES),
            body,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
