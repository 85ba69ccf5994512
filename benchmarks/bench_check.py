"""Serving-core benchmark: lookups in process, Check over real gRPC, and Redis on the same numbers.

One run measures, side by side on one registry-shaped data set:

- in-process ``check_batch``, ``ListView.lookup`` and the servicer without transport;
- ``Check`` over gRPC (server in this process, client in a spawned process) for
  batches of 1, 100, 1,000 and 10,000, as E.164 integers and as "+1..." strings,
  and single-number latency;
- the same list in a real redis-server SET: SMISMEMBER throughput, SISMEMBER latency;
- memory per number (ours in memory and on disk, Redis ``used_memory``);
- snapshot write and load time.

It prints tables and appends a dated section to RESULTS.md, with a verdict for
each target of issue 2. Usage and options: see README.md, or ``--help``.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, cast

import grpc
import numpy as np
import numpy.typing as npt
import redis
import redis.utils as redis_utils
from _common import (
    RESULTS_PATH,
    RedisServer,
    append_results,
    load_average,
    machine_description,
    markdown_table,
    percentiles_us,
    print_table,
    redis_server,
    redis_server_version,
    run_for,
    served,
    time_alternating_ns,
    time_each_ns,
)
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry
from pyroaring import BitMap64

from suppression.checker import check_batch
from suppression.client import ClientConfig, SuppressionClient
from suppression.demo import registry_shaped
from suppression.embedded import EmbeddedReplica
from suppression.lists import ListInfo, ListKind, ListView, SuppressionLists
from suppression.metrics import ServiceMetrics
from suppression.server import ServerOptions, create_server
from suppression.service import SuppressionServicer
from suppression.snapshot import read_snapshot, write_snapshot
from suppression.v1 import suppression_pb2 as pb
from suppression.v1.suppression_pb2_grpc import SuppressionStub
from suppression.wire import grpc_message_limit

SECTIONS = ("inprocess", "grpc", "redis", "memory", "snapshot")
BATCHES = (1, 100, 1_000, 10_000)
DEFAULT_SIZE = 10_000_000
FULL_SIZE = 260_000_000
QUICK_SIZE = 1_000_000
REDIS_AUTO_LIMIT = 50_000_000
"""Above this size Redis is left out unless named in --only: about 70 bytes per number."""
LIST_NAME = "national"
REDIS_KEY = "bench:national"
MAX_DISTINCT_REQUESTS = 65_536
"""Requests are built before timing and reused round-robin; this caps their number."""
PACKAGES = ("grpcio", "protobuf", "pyroaring", "numpy", "redis", "hiredis")

# The targets of issue 2, for a 2-core machine.
TARGET_BATCH = 10_000
TARGET_RATE = 2_000_000.0
TARGET_REDIS_FACTOR = 5.0
TARGET_P50_FACTOR = 2.0
TARGET_P99_US = 1_000.0
TARGET_BYTES = 1.5
TARGET_LOAD_SIZE = 260_000_000
TARGET_LOAD_S = 3.0
TARGET_EMBEDDED_ONE_NS = 5_000
TARGET_EMBEDDED_BATCH_NS = 200
TARGET_FLOOR_FACTOR = 1.15

Numbers = npt.NDArray[np.uint64]
S = TypeVar("S", list[int], list[str], Numbers)


@dataclass(frozen=True, slots=True)
class Config:
    """What to run, from the command line."""

    size: int
    seed: int
    queries: int
    seconds: float
    latency_calls: int
    inflight: int
    snapshot_reads: int
    batches: tuple[int, ...]
    sections: frozenset[str]
    record: bool
    results: Path


@dataclass(slots=True)
class Results:
    """Every figure of a run; None or empty where a section was skipped."""

    size: int
    generate_s: float = 0.0
    build_s: float = 0.0
    hit_rate: float = 0.0
    inprocess_ns: dict[str, float] = field(default_factory=dict)
    embedded_batch_ns: dict[int, float] = field(default_factory=dict)
    """EmbeddedReplica.check, ns per number, by batch size."""
    embedded_one_ns: tuple[float, float] | None = None
    """EmbeddedReplica.check_one latency p50 and p99, ns."""
    grpc_rate: dict[tuple[str, int], float] = field(default_factory=dict)
    grpc_inflight: tuple[int, float] | None = None
    """Calls in flight and e164 numbers/s for the largest batch (``--inflight``)."""
    grpc_latency_us: tuple[float, float] | None = None
    grpc_floor_us: tuple[float, float] | None = None
    """Latency of the server's gRPC health Check: the transport's share."""
    redis_rate: dict[int, float] = field(default_factory=dict)
    interleaved: dict[str, float] = field(default_factory=dict)
    """Largest batch, numbers/s, best of rounds that alternate the gRPC forms with
    SMISMEMBER from one client process: "e164", "packed", "client" and "redis"."""
    redis_latency_us: tuple[float, float] | None = None
    redis_load_s: float | None = None
    redis_bytes: int | None = None
    list_bytes: int | None = None
    snapshot_bytes: int | None = None
    snapshot_write_s: float | None = None
    snapshot_load_s: float | None = None
    notes: list[str] = field(default_factory=list)


# -- data -------------------------------------------------------------------


def dialer_mix(values: Numbers, count: int, seed: int) -> Numbers:
    """Queries as a dialer sends them: half from the list, half random valid US numbers."""
    rng = np.random.default_rng(seed + 1)
    hits = values[rng.integers(0, len(values), count // 2)]
    others = count - len(hits)
    npa = rng.integers(200, 1000, others, dtype=np.uint64)
    nxx = rng.integers(200, 1000, others, dtype=np.uint64)
    line = rng.integers(0, 10_000, others, dtype=np.uint64)
    random_us = np.uint64(10**10) + npa * np.uint64(10**7) + nxx * np.uint64(10**4) + line
    mix = np.concatenate([hits, random_us])
    rng.shuffle(mix)
    return mix


def batches_of(numbers: S, size: int) -> list[S]:
    """Consecutive batches of ``size`` numbers, at most MAX_DISTINCT_REQUESTS of them."""
    count = max(1, min(len(numbers) // size, MAX_DISTINCT_REQUESTS))
    return [numbers[index * size : (index + 1) * size] for index in range(count)]


def make_request(numbers: list[int] | list[str], packed: bool = False) -> pb.CheckRequest:
    """A Check request: integers go in ``e164``, text in ``numbers``.

    ``packed``: integers in ``e164_packed`` and the answer in ``verdicts_packed`` and
    ``matched_packed`` (the packed wire).
    """
    if numbers and isinstance(numbers[0], str):
        return pb.CheckRequest(numbers=numbers)
    if packed:
        as_bytes = np.asarray(numbers, dtype="<u8").tobytes()
        return pb.CheckRequest(e164_packed=as_bytes, packed_answer=True)
    return pb.CheckRequest(e164=cast(list[int], numbers))


def answered_verdicts(response: pb.CheckResponse) -> list[int]:
    """The verdicts of an answer, packed or not."""
    if getattr(response, "matched_width", 0):
        return list(response.verdicts_packed)
    return list(response.verdicts)


# -- in process -------------------------------------------------------------


def measure_embedded(
    lists: SuppressionLists, queries: Numbers, config: Config, results: Results
) -> None:
    """The embedded replica over a snapshot of ``lists``: batches, and one number at a time."""
    as_ints = queries.tolist()
    with tempfile.TemporaryDirectory(prefix="bench-embedded-") as scratch:
        write_snapshot(Path(scratch), lists.view)
        with EmbeddedReplica(scratch) as embedded:
            for batch in config.batches:
                timing = run_for(embedded.check, batches_of(as_ints, batch), config.seconds)
                results.embedded_batch_ns[batch] = timing.ns_per_item(batch)
            samples = time_each_ns(embedded.check_one, as_ints, config.latency_calls)
    p50, p99 = np.percentile(np.asarray(samples, dtype=np.float64), (50, 99))
    results.embedded_one_ns = (float(p50), float(p99))


def measure_inprocess(
    lists: SuppressionLists, queries: Numbers, config: Config
) -> dict[str, float]:
    """Nanoseconds per number for each in-process layer, from the bitmap up to the servicer."""
    view = lists.view
    figures: dict[str, float] = {}
    as_ints = queries.tolist()
    for batch in config.batches:
        timing = run_for(partial(check_batch, view), batches_of(as_ints, batch), config.seconds)
        figures[f"check_batch, batch {batch:,}"] = timing.ns_per_item(batch)

    batch = max(config.batches)
    timing = run_for(view.lookup, batches_of(queries, batch), config.seconds)
    figures[f"ListView.lookup, batch {batch:,} (numpy in, masks out)"] = timing.ns_per_item(batch)

    contains = view.bitmaps[LIST_NAME].__contains__
    chunks = batches_of(as_ints, batch)
    timing = run_for(lambda chunk: sum(map(contains, chunk)), chunks, config.seconds)
    figures[f"BitMap64.__contains__ over map(), batch {batch:,}"] = timing.ns_per_item(batch)

    # The whole server-side path except the transport: parse, check, build, serialize.
    servicer = SuppressionServicer(served(lists), ServiceMetrics(CollectorRegistry()))
    context = cast(grpc.ServicerContext, None)  # only used on errors, which do not happen here
    texts = [f"+{value}" for value in as_ints]
    for form, numbers in (*((form, as_ints) for form in WIRE_FORMS), ("text", texts)):
        payloads = [
            make_request(chunk, form == "packed").SerializeToString()
            for chunk in batches_of(numbers, batch)
        ]

        def serve_one(payload: bytes) -> bytes:
            request = pb.CheckRequest.FromString(payload)
            return servicer.Check(request, context).SerializeToString()

        timing = run_for(serve_one, payloads, config.seconds)
        figures[f"servicer Check, bytes to bytes, batch {batch:,} ({_LABEL[form]})"] = (
            timing.ns_per_item(batch)
        )
    return figures


_LABEL = {
    "e164": "e164 integers",
    "packed": "e164 integers, packed wire",
    "client": "e164 integers, SuppressionClient",
    "text": '"+1..." strings',
}
FORMS = ("e164", "packed", "client", "text")
PACKED_WIRE = "e164_packed" in pb.CheckRequest.DESCRIPTOR.fields_by_name
"""False when run over an older checkout (PYTHONPATH) for an A/B: its forms are measured."""
WIRE_FORMS = ("e164", "packed") if PACKED_WIRE else ("e164",)


# -- gRPC -------------------------------------------------------------------


class InFlight:
    """Keeps up to ``depth`` calls in flight: each call starts one, then waits for the oldest."""

    def __init__(self, start: Callable[[pb.CheckRequest], grpc.Future], depth: int) -> None:
        self._start = start
        self._depth = depth
        self._pending: deque[grpc.Future] = deque()

    def __call__(self, request: pb.CheckRequest) -> None:
        self._pending.append(self._start(request))
        if len(self._pending) >= self._depth:
            self._pending.popleft().result()

    def drain(self) -> None:
        """Wait for every call still in flight."""
        while self._pending:
            self._pending.popleft().result()


def grpc_client(
    port: int,
    queries: Numbers,
    batches: Sequence[int],
    seconds: float,
    latency_calls: int,
    inflight: int,
    redis_port: int | None = None,
) -> dict[str, Any]:
    """Run in a spawned process: Check throughput per form and batch, then latency.

    Requests are built before the clock starts, so the figures are the
    server's, the transport's and the client's serialization, not the
    client's request building. The exception is the client library
    (``SuppressionClient.check`` from a list of ints to a ``CheckResult``),
    timed for the largest batch as a dialer calls it. Throughput is one call
    at a time, then, for the largest batch, with ``inflight`` calls in flight
    (packed wire).

    With ``redis_port``, the largest batch is measured once more in rounds that
    alternate each gRPC form with SMISMEMBER on that server, from this one
    process: on a busy machine, load that comes and goes then hits both sides
    alike, where the sections measured minutes apart can see different loads.
    """
    limit = grpc_message_limit(max(batches))
    options = [
        ("grpc.max_receive_message_length", limit),
        ("grpc.max_send_message_length", limit),
    ]
    as_ints = queries.tolist()
    rates: dict[tuple[str, int], float] = {}
    suppressed = 0
    answered = 0
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        check = SuppressionStub(channel).Check  # type: ignore[no-untyped-call]
        texts = [f"+{value}" for value in as_ints]
        for form, numbers in (*((form, as_ints) for form in WIRE_FORMS), ("text", texts)):
            for batch in batches:
                chunks = batches_of(numbers, batch)
                requests = [make_request(chunk, form == "packed") for chunk in chunks]
                verdicts = answered_verdicts(check(requests[0]))
                if len(verdicts) != len(chunks[0]):
                    raise RuntimeError(f"{form} batch {batch}: wrong number of verdicts")
                suppressed += sum(1 for verdict in verdicts if verdict == pb.SUPPRESSED)
                answered += len(verdicts)
                timing = run_for(check, requests, seconds)
                rates[(form, batch)] = timing.per_second(batch)
        batch = max(batches)
        config = ClientConfig(targets=(f"127.0.0.1:{port}",), max_batch=batch, timeout=60.0)
        interleaved: dict[str, float] = {}
        with SuppressionClient(config) as client:
            chunks = batches_of(as_ints, batch)
            if len(client.check(chunks[0]).verdicts) != len(chunks[0]):
                raise RuntimeError("the client library answered a wrong number of verdicts")
            rates[("client", batch)] = run_for(client.check, chunks, seconds).per_second(batch)
            if redis_port is not None:
                interleaved = _interleaved(check, client, redis_port, chunks, seconds)
        pipelined = None
        if inflight > 1:
            requests = [make_request(chunk, PACKED_WIRE) for chunk in batches_of(as_ints, batch)]
            window = InFlight(check.future, inflight)
            pipelined = run_for(window, requests, seconds).per_second(batch)
            window.drain()
        singles = [pb.CheckRequest(e164=[value]) for value in as_ints[:latency_calls]]
        # The floor: an empty-handed unary call on the same server and channel, alternated
        # call by call with the single Checks so that both see the same load.
        health = health_pb2_grpc.HealthStub(channel).Check
        samples, floor = time_alternating_ns(
            check, singles, health, [health_pb2.HealthCheckRequest()], latency_calls
        )
    return {
        "rates": rates,
        "interleaved": interleaved,
        "inflight_rate": pipelined,
        "latency_us": tuple(percentiles_us(samples)),
        "floor_us": tuple(percentiles_us(floor)),
        "suppressed": suppressed / answered,
    }


INTERLEAVED_ROUNDS = 5


def _interleaved(
    check: Callable[[pb.CheckRequest], pb.CheckResponse],
    client: SuppressionClient,
    redis_port: int,
    chunks: list[list[int]],
    seconds: float,
) -> dict[str, float]:
    """Numbers/s of each form and of SMISMEMBER, best of rounds that alternate them."""
    batch = len(chunks[0])
    redis_client = redis.Redis(host="127.0.0.1", port=redis_port)
    calls: dict[str, tuple[Callable[[Any], object], Sequence[Any]]] = {
        form: (check, [make_request(chunk, form == "packed") for chunk in chunks])
        for form in WIRE_FORMS
    }
    calls["client"] = (client.check, chunks)
    calls["redis"] = (partial(redis_client.smismember, REDIS_KEY), chunks)
    best = dict.fromkeys(calls, 0.0)
    for _round in range(INTERLEAVED_ROUNDS):
        for name, (call, inputs) in calls.items():
            timing = run_for(call, inputs, seconds / INTERLEAVED_ROUNDS, rounds=1)
            best[name] = max(best[name], timing.per_second(batch))
    redis_client.close()
    return best


def measure_grpc(
    lists: SuppressionLists,
    queries: Numbers,
    config: Config,
    results: Results,
    redis_port: int | None = None,
) -> None:
    """Serve ``lists`` from this process; measure from a spawned client process.

    With ``redis_port`` (a server holding the same numbers), the client also
    alternates the largest batch with SMISMEMBER (:func:`_interleaved`).
    """
    options = ServerOptions(port=0, max_batch=max(100_000, max(config.batches)))
    process = create_server(served(lists), options, CollectorRegistry(), "127.0.0.1:0")
    try:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            figures = pool.submit(
                grpc_client,
                process.port,
                queries,
                config.batches,
                config.seconds,
                config.latency_calls,
                config.inflight,
                redis_port,
            ).result()
    finally:
        process.stop(0)
    results.grpc_rate = figures["rates"]
    results.interleaved = figures["interleaved"]
    results.grpc_latency_us = figures["latency_us"]
    if figures["inflight_rate"] is not None:
        results.grpc_inflight = (config.inflight, figures["inflight_rate"])
    results.grpc_floor_us = figures["floor_us"]
    results.notes.append(
        f"gRPC answers said SUPPRESSED for {figures['suppressed']:.1%} of sampled numbers "
        f"(in process: {results.hit_rate:.1%})."
    )


# -- Redis ------------------------------------------------------------------


def load_redis(server: RedisServer, values: Numbers, results: Results) -> None:
    """Load the same numbers into a SET of ``server``; time it and its memory."""
    client = server.client()
    before = int(client.info("memory")["used_memory"])
    start = time.perf_counter()
    pipe = client.pipeline(transaction=False)
    chunk = 10_000
    for offset in range(0, len(values), chunk):
        pipe.sadd(REDIS_KEY, *values[offset : offset + chunk].tolist())
        if len(pipe) >= 20:
            pipe.execute()
    pipe.execute()
    results.redis_load_s = time.perf_counter() - start
    loaded = int(client.scard(REDIS_KEY))
    if loaded != len(values):
        raise RuntimeError(f"Redis holds {loaded:,} numbers, expected {len(values):,}")
    results.redis_bytes = int(client.info("memory")["used_memory"]) - before
    client.close()


def measure_redis(server: RedisServer, queries: Numbers, config: Config, results: Results) -> None:
    """Query the loaded SET through redis-py: SMISMEMBER per batch size, SISMEMBER latency."""
    client = server.client()
    as_ints = queries.tolist()
    for batch in config.batches:
        chunks = batches_of(as_ints, batch)
        timing = run_for(partial(client.smismember, REDIS_KEY), chunks, config.seconds)
        results.redis_rate[batch] = timing.per_second(batch)
    samples = time_each_ns(partial(client.sismember, REDIS_KEY), as_ints, config.latency_calls)
    p50, p99 = percentiles_us(samples)
    results.redis_latency_us = (p50, p99)
    client.close()
    parser = "hiredis" if redis_utils.HIREDIS_AVAILABLE else "pure Python (install hiredis: faster)"
    results.notes.append(f"redis-py reply parser: {parser}.")


# -- snapshot ---------------------------------------------------------------


def measure_snapshot(view: ListView, config: Config, results: Results) -> None:
    """Write one snapshot, then time ``read_snapshot`` (median of a few reads)."""
    with tempfile.TemporaryDirectory(prefix="bench-snapshot-") as directory:
        start = time.perf_counter()
        path = write_snapshot(Path(directory), view)
        results.snapshot_write_s = time.perf_counter() - start
        results.snapshot_bytes = path.stat().st_size
        times = []
        for _ in range(config.snapshot_reads):
            start = time.perf_counter()
            snapshot = read_snapshot(path)
            times.append(time.perf_counter() - start)
            if len(snapshot.bitmaps[LIST_NAME]) != results.size:
                raise RuntimeError("the snapshot read back a different number of numbers")
            del snapshot
        results.snapshot_load_s = statistics.median(times)


# -- the run ----------------------------------------------------------------


def run(config: Config) -> Results:
    """Generate the data, then run each selected section once."""
    results = Results(config.size)
    load_before = load_average()
    say = _progress
    say(f"generating {config.size:,} registry-shaped numbers")
    start = time.perf_counter()
    values = registry_shaped(config.size, config.seed)
    results.generate_s = time.perf_counter() - start
    start = time.perf_counter()
    lists = SuppressionLists(
        {LIST_NAME: BitMap64(values)}, infos=[ListInfo(LIST_NAME, ListKind.REGISTRY)]
    )
    results.build_s = time.perf_counter() - start
    view = lists.view
    queries = dialer_mix(values, config.queries, config.seed)
    contains = view.bitmaps[LIST_NAME].__contains__
    results.hit_rate = sum(map(contains, queries.tolist())) / len(queries)
    if "redis" not in config.sections:
        del values  # the bitmap holds them; at full size the array is 2 GB

    if "memory" in config.sections:
        results.list_bytes = view.list_bytes(LIST_NAME)
    if "snapshot" in config.sections:
        say("snapshot: write, then read back")
        measure_snapshot(view, config, results)
    if "inprocess" in config.sections:
        say("in-process lookups")
        results.inprocess_ns = measure_inprocess(lists, queries, config)
        measure_embedded(lists, queries, config, results)
    with contextlib.ExitStack() as stack:
        server = None
        if "redis" in config.sections:
            say("Redis: load the same numbers")
            server = stack.enter_context(redis_server())
            load_redis(server, values, results)
        if "grpc" in config.sections:
            say("Check over gRPC (client in a spawned process), then alternating with SMISMEMBER")
            measure_grpc(lists, queries, config, results, server.port if server else None)
        if server is not None:
            say("Redis: SMISMEMBER and SISMEMBER")
            measure_redis(server, queries, config, results)
    results.notes.append(
        f"Load average (1, 5, 15 min) before the run: {load_before}; after: {load_average()}. "
        "Other work on this machine slows the figures; compare within one run."
    )
    return results


def _progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- reporting --------------------------------------------------------------


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}/s"


def _ratio(ours: float | None, theirs: float | None) -> str:
    if ours is None or theirs is None or theirs == 0:
        return "-"
    return f"{ours / theirs:.2f}x"


def side_by_side_rows(results: Results, batches: Sequence[int]) -> list[list[str]]:
    """Ours against Redis on the same numbers."""
    rows: list[list[str]] = []
    for form in FORMS:
        for batch in batches:
            ours = results.grpc_rate.get((form, batch))
            redis_rate = results.redis_rate.get(batch)
            if ours is None and (redis_rate is None or form != "e164"):
                continue  # Redis alone is shown once, beside the plain e164 form
            rows.append(
                [
                    f"numbers/s, batch {batch:,}: Check ({_LABEL[form]}) / SMISMEMBER",
                    _rate(ours),
                    _rate(redis_rate),
                    _ratio(ours, redis_rate),
                ]
            )
    redis_alternating = results.interleaved.get("redis")
    for form in ("e164", "packed", "client"):
        ours = results.interleaved.get(form)
        if ours is None:
            continue
        rows.append(
            [
                f"numbers/s, batch {max(batches):,}, alternating rounds: Check ({_LABEL[form]}) "
                "/ SMISMEMBER",
                _rate(ours),
                _rate(redis_alternating),
                _ratio(ours, redis_alternating),
            ]
        )
    if results.grpc_inflight is not None:
        depth, rate = results.grpc_inflight
        rows.append(
            [
                f"numbers/s, batch {max(batches):,}: Check ({_LABEL[WIRE_FORMS[-1]]}), "
                f"{depth} calls in flight",
                _rate(rate),
                "-",
                "-",
            ]
        )
    for index, label in enumerate(("p50", "p99")):
        ours_us = results.grpc_latency_us[index] if results.grpc_latency_us else None
        redis_us = results.redis_latency_us[index] if results.redis_latency_us else None
        if ours_us is None and redis_us is None:
            continue
        rows.append(
            [
                f"single-number latency {label}: Check / SISMEMBER",
                "-" if ours_us is None else f"{ours_us:,.0f} µs",
                "-" if redis_us is None else f"{redis_us:,.0f} µs",
                _ratio(ours_us, redis_us),
            ]
        )
    if results.grpc_floor_us is not None:
        for index, label in enumerate(("p50", "p99")):
            rows.append(
                [
                    f"single-call latency {label}: gRPC health Check (transport floor)",
                    f"{results.grpc_floor_us[index]:,.0f} µs",
                    "-",
                    "-",
                ]
            )
    size = results.size
    ours_bytes = results.list_bytes / size if results.list_bytes is not None else None
    redis_bytes = results.redis_bytes / size if results.redis_bytes is not None else None
    if ours_bytes is not None or redis_bytes is not None:
        rows.append(
            [
                "bytes per number in memory: list_bytes / Redis used_memory delta",
                "-" if ours_bytes is None else f"{ours_bytes:.2f}",
                "-" if redis_bytes is None else f"{redis_bytes:.1f}",
                _ratio(ours_bytes, redis_bytes),
            ]
        )
    if results.snapshot_bytes is not None:
        rows.append(
            [
                "bytes per number in the snapshot file",
                f"{results.snapshot_bytes / size:.2f} ({results.snapshot_bytes / 2**20:,.1f} MiB)",
                "-",
                "-",
            ]
        )
    if results.snapshot_load_s is not None:
        rows.append(
            ["snapshot load (read_snapshot, median)", f"{results.snapshot_load_s:.3f} s", "-", "-"]
        )
        rows.append(["snapshot write", f"{results.snapshot_write_s:.3f} s", "-", "-"])
    redis_load = "-" if results.redis_load_s is None else f"{results.redis_load_s:.1f} s"
    rows.append(
        [
            "build from the number array: BitMap64 / pipelined SADD",
            f"{results.build_s:.2f} s",
            redis_load,
            _ratio(results.build_s, results.redis_load_s),
        ]
    )
    return rows


def inprocess_rows(results: Results) -> list[list[str]]:
    """In-process cost per number of each layer, and of the embedded replica."""
    rows = [
        [label, f"{ns:,.0f}", f"{1e9 / ns:,.0f}/s"] for label, ns in results.inprocess_ns.items()
    ]
    for batch, ns in results.embedded_batch_ns.items():
        rows.append([f"EmbeddedReplica.check, batch {batch:,}", f"{ns:,.0f}", f"{1e9 / ns:,.0f}/s"])
    if results.embedded_one_ns is not None:
        p50, p99 = results.embedded_one_ns
        rows.append(
            [f"EmbeddedReplica.check_one, one number: p50 (p99 {p99:,.0f})", f"{p50:,.0f}", "-"]
        )
    return rows


def _at_least(measured: float, floor: float) -> str:
    ratio = measured / floor
    if ratio >= 1:
        return f"met: {ratio:.2f}x the target ({ratio - 1:.0%} margin)"
    return f"MISSED: {1 - ratio:.0%} short ({ratio:.2f}x the target)"


def _at_most(measured: float, ceiling: float) -> str:
    ratio = measured / ceiling
    if ratio <= 1:
        return f"met: {1 - ratio:.0%} under the limit ({ratio:.2f}x)"
    return f"MISSED: {ratio - 1:.0%} over the limit ({ratio:.2f}x)"


def target_rows(results: Results) -> list[list[str]]:
    """Each target of issue 2: the figure it is judged on, and met or missed by how much."""
    rows: list[list[str]] = []
    redis_rate = results.redis_rate.get(TARGET_BATCH)
    for form in FORMS:
        ours = results.grpc_rate.get((form, TARGET_BATCH))
        if ours is None:
            continue
        rows.append(
            [
                f"Check, batches of {TARGET_BATCH:,} ({_LABEL[form]}) >= {TARGET_RATE:,.0f}/s",
                _rate(ours),
                _at_least(ours, TARGET_RATE),
            ]
        )
        if redis_rate is not None:
            rows.append(
                [
                    f"... and >= {TARGET_REDIS_FACTOR:g}x Redis SMISMEMBER ({_rate(redis_rate)})",
                    f"{ours / redis_rate:.2f}x",
                    _at_least(ours / redis_rate, TARGET_REDIS_FACTOR),
                ]
            )
    redis_alternating = results.interleaved.get("redis")
    for form in ("e164", "packed", "client"):
        ours = results.interleaved.get(form)
        if ours is None or not redis_alternating:
            continue
        rows.append(
            [
                f"Check ({_LABEL[form]}) >= {TARGET_REDIS_FACTOR:g}x SMISMEMBER, batches of "
                f"{TARGET_BATCH:,}, alternating rounds "
                f"({_rate(ours)} / {_rate(redis_alternating)})",
                f"{ours / redis_alternating:.2f}x",
                _at_least(ours / redis_alternating, TARGET_REDIS_FACTOR),
            ]
        )
    if results.grpc_latency_us is not None:
        p50, p99 = results.grpc_latency_us
        if results.redis_latency_us is not None:
            redis_p50 = results.redis_latency_us[0]
            rows.append(
                [
                    f"Check p50 <= {TARGET_P50_FACTOR:g}x SISMEMBER p50 ({redis_p50:,.0f} µs)",
                    f"{p50:,.0f} µs ({p50 / redis_p50:.2f}x)",
                    _at_most(p50 / redis_p50, TARGET_P50_FACTOR),
                ]
            )
        rows.append(
            [f"Check p99 < {TARGET_P99_US:,.0f} µs", f"{p99:,.0f} µs", _at_most(p99, TARGET_P99_US)]
        )
    if results.embedded_one_ns is not None:
        p50 = results.embedded_one_ns[0]
        rows.append(
            [
                f"embedded check_one p50 <= {TARGET_EMBEDDED_ONE_NS:,} ns (issue 13)",
                f"{p50:,.0f} ns",
                _at_most(p50, TARGET_EMBEDDED_ONE_NS),
            ]
        )
    embedded_batch = results.embedded_batch_ns.get(TARGET_BATCH)
    if embedded_batch is not None:
        rows.append(
            [
                f"embedded check, batches of {TARGET_BATCH:,} <= {TARGET_EMBEDDED_BATCH_NS} ns "
                "per number (issue 13)",
                f"{embedded_batch:,.0f} ns",
                _at_most(embedded_batch, TARGET_EMBEDDED_BATCH_NS),
            ]
        )
    if results.grpc_latency_us is not None and results.grpc_floor_us is not None:
        p50, floor = results.grpc_latency_us[0], results.grpc_floor_us[0]
        rows.append(
            [
                f"single Check p50 <= {TARGET_FLOOR_FACTOR:g}x a do-nothing call's p50 "
                f"({floor:,.0f} µs; issue 13)",
                f"{p50:,.0f} µs ({p50 / floor:.2f}x)",
                _at_most(p50 / floor, TARGET_FLOOR_FACTOR),
            ]
        )
    if results.list_bytes is not None:
        per_number = results.list_bytes / results.size
        rows.append(
            [
                f"memory <= {TARGET_BYTES:g} bytes per number (in memory)",
                f"{per_number:.2f}",
                _at_most(per_number, TARGET_BYTES),
            ]
        )
    if results.snapshot_load_s is not None:
        seconds = results.snapshot_load_s
        if results.size == TARGET_LOAD_SIZE:
            measured = f"{seconds:.2f} s"
        else:
            seconds *= TARGET_LOAD_SIZE / results.size
            measured = f"{seconds:.2f} s (extrapolated linearly from {results.size:,})"
        rows.append(
            [
                f"{TARGET_LOAD_SIZE:,}-number snapshot loads in < {TARGET_LOAD_S:g} s",
                measured,
                _at_most(seconds, TARGET_LOAD_S),
            ]
        )
    return rows


SIDE_HEADERS = ("Measurement", "Ours", "Redis", "Ours / Redis")
INPROCESS_HEADERS = ("In process (no transport)", "ns per number", "numbers/s")
TARGET_HEADERS = ("Target (issues 2 and 13, 2-core machine)", "Measured", "Verdict")


def report(results: Results, config: Config) -> None:
    """Print the tables, and append them to RESULTS.md when recording."""
    side = side_by_side_rows(results, config.batches)
    inprocess = inprocess_rows(results)
    targets = target_rows(results)
    summary = f"{results.size:,} registry-shaped numbers (generated in {results.generate_s:.1f} s)"
    if config.sections & {"inprocess", "grpc", "redis"}:
        summary += (
            f"; {config.queries:,} queries, half from the list, half random US numbers, "
            f"{results.hit_rate:.1%} on the list; throughput: best of 3 rounds in "
            f"{config.seconds:g} s, one call in flight unless stated; latency: "
            f"{config.latency_calls:,} sequential calls (over gRPC, each Check alternated "
            "with a do-nothing health call)"
        )
    summary += f". Sections: {', '.join(name for name in SECTIONS if name in config.sections)}."
    print(summary)
    print_table("Ours against Redis, same numbers", SIDE_HEADERS, side)
    if inprocess:
        print_table("In process", INPROCESS_HEADERS, inprocess)
    print_table("Targets", TARGET_HEADERS, targets)
    for note in results.notes:
        print(note)
    if not config.record:
        return
    parts = [summary, markdown_table(SIDE_HEADERS, side)]
    if inprocess:
        parts.append(markdown_table(INPROCESS_HEADERS, inprocess))
    parts.append(markdown_table(TARGET_HEADERS, targets))
    parts.extend(results.notes)
    machine = machine_description(PACKAGES)
    machine["redis-server"] = redis_server_version()
    append_results(
        f"bench_check.py, {results.size:,} numbers", machine, "\n\n".join(parts), config.results
    )
    print(f"appended to {config.results}")


# -- command line -----------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> Config:
    """Turn the command line into a :class:`Config`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--size", type=int, help=f"numbers on the list (default {DEFAULT_SIZE:,})")
    sizes.add_argument(
        "--full", action="store_true", help=f"{FULL_SIZE:,} numbers, the US registry's size"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: {QUICK_SIZE:,} numbers, short timings, not recorded",
    )
    parser.add_argument("--seed", type=int, default=1, help="data and query seed (default 1)")
    parser.add_argument(
        "--queries", type=int, help="distinct query numbers (default 1,000,000; quick 200,000)"
    )
    parser.add_argument(
        "--seconds", type=float, help="seconds per throughput figure (default 3; quick 0.3)"
    )
    parser.add_argument(
        "--latency-calls",
        type=int,
        help="sequential single-number calls per latency figure (default 10,000; quick 1,000)",
    )
    parser.add_argument(
        "--inflight",
        type=int,
        default=2,
        help="calls in flight for the extra largest-batch throughput figure; 1 skips it "
        "(default 2)",
    )
    parser.add_argument(
        "--snapshot-reads", type=int, default=3, help="snapshot loads timed (median; default 3)"
    )
    parser.add_argument(
        "--batches",
        default=",".join(str(batch) for batch in BATCHES),
        help="comma-separated batch sizes (default 1,100,1000,10000)",
    )
    parser.add_argument(
        "--only",
        help=f"comma-separated sections to run, of {','.join(SECTIONS)} (default: all; "
        f"above {REDIS_AUTO_LIMIT:,} numbers all but redis)",
    )
    recording = parser.add_mutually_exclusive_group()
    recording.add_argument(
        "--record", dest="record", action="store_true", default=None, help="append to RESULTS.md"
    )
    recording.add_argument(
        "--no-record", dest="record", action="store_false", help="do not append to RESULTS.md"
    )
    parser.add_argument("--results", type=Path, default=RESULTS_PATH, help="the results file")
    args = parser.parse_args(argv)

    quick = bool(args.quick)
    size = args.size or (FULL_SIZE if args.full else QUICK_SIZE if quick else DEFAULT_SIZE)
    if args.only:
        sections = frozenset(name.strip() for name in args.only.split(",") if name.strip())
        unknown = sorted(sections - set(SECTIONS))
        if unknown:
            parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {SECTIONS}")
    else:
        sections = frozenset(SECTIONS)
        if size > REDIS_AUTO_LIMIT:
            sections -= {"redis"}
            _progress(
                f"leaving Redis out at {size:,} numbers (about 70 bytes each); "
                "name it in --only to insist"
            )
    try:
        batches = tuple(sorted({int(text) for text in args.batches.split(",")}))
    except ValueError:
        parser.error(f"--batches takes comma-separated integers, not {args.batches!r}")
    queries = args.queries or (200_000 if quick else 1_000_000)
    if size < 2 or queries < max(batches) or min(batches) < 1:
        parser.error("need --size >= 2, batches >= 1, and --queries >= the largest batch")
    return Config(
        size=size,
        seed=args.seed,
        queries=queries,
        seconds=args.seconds or (0.3 if quick else 3.0),
        latency_calls=args.latency_calls or (1_000 if quick else 10_000),
        inflight=max(1, args.inflight),
        snapshot_reads=max(1, args.snapshot_reads if not quick else 1),
        batches=batches,
        sections=sections,
        record=(not quick) if args.record is None else args.record,
        results=args.results,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and report."""
    config = parse_args(argv)
    report(run(config), config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
