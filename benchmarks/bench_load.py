"""Load benchmark: concurrent clients, mixed checks and writes, with authentication on and off.

Each run starts a throwaway redis-server and a real ``suppression serve`` process
following it, over a registry-shaped snapshot, all on loopback. ``--clients``
client processes (each its own channel, one call in flight) then run for
``--duration`` seconds: mostly ``Check`` of ``--batch`` numbers (half of them on
the list), and a ``--write-share`` of single-number ``Suppress`` calls. Runs
alternate between two servers:

- **auth off**: plaintext, ``--host 127.0.0.1``, no trust file;
- **auth on**: TLS (a throwaway CA and certificate made with ``openssl``) and a
  trust file; every call carries a bearer token, is authenticated, scope-checked
  and charged to a (large) quota, as ``tests/integration/test_trust_serve.py``
  starts it.

Reported per run: calls/s, numbers checked/s, latency percentiles of checks and
writes, and errors (any call that did not succeed; the target is zero). The
verdict compares throughput: authentication may cost at most 10%.

On a shared machine the load of other work drifts over a minute by more than the
cost measured, so runs one after another disagree by about as much as auth costs.
``--interleave S`` runs every mode's server at once instead and moves all clients
from one to the next every S seconds, so each mode gets ``--duration`` seconds in
slices spread over the same window and the drift falls on all modes alike.

Usage: ``python benchmarks/bench_load.py [--duration 60] [--clients 8] [--repeat 1] [--record]``.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from _common import (
    append_results,
    load_average,
    machine_description,
    markdown_table,
    print_table,
    redis_server,
    redis_server_version,
    start_serve,
    wait_serving,
)
from pyroaring import BitMap64

from suppression.auth import hash_token, new_token
from suppression.demo import registry_shaped
from suppression.lists import ListInfo, ListKind, SuppressionLists, Version
from suppression.server import grpc_message_limit
from suppression.snapshot import write_snapshot
from suppression.v1 import suppression_pb2 as pb
from suppression.v1 import suppression_pb2_grpc as pb_grpc

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("grpcio", "protobuf", "redis", "pyroaring", "numpy")
TARGET_AUTH_COST = 0.10
IDENTITY = "load"
MODES = {"off": "auth off", "on": "auth on", "tls": "tls only", "trust": "trust only"}
"""--modes names: the two the verdict compares, and two that split the cost between
TLS and the trust file (token check, scopes, quota charge, per-identity metrics)."""
LISTS = ("national", "internal")


# -- set-up -------------------------------------------------------------------------------


def make_data(directory: Path, size: int, seed: int) -> np.ndarray:
    """Write a snapshot with a registry-shaped ``national`` list; return a query pool."""
    numbers = registry_shaped(size, seed)
    lists = SuppressionLists(
        {"national": BitMap64(numbers), "internal": BitMap64()},
        infos=[ListInfo("national", ListKind.REGISTRY), ListInfo("internal", ListKind.OPT_OUT)],
        version=Version(1, 0),
    )
    write_snapshot(directory, lists.view)
    rng = np.random.default_rng(seed + 1)
    pool = min(200_000, 2 * size)
    hits = rng.choice(numbers, pool // 2)
    misses = 10**10 + rng.integers(200, 1000, pool - pool // 2, dtype=np.uint64) * 10**7
    misses += rng.integers(2_000_000, 10_000_000, len(misses), dtype=np.uint64)
    queries = np.concatenate([hits, misses]).astype(np.uint64)
    rng.shuffle(queries)
    return queries


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for localhost and 127.0.0.1."""
    ca_key, ca_cert = directory / "ca.key", directory / "ca.crt"
    key, request, cert = (
        directory / "server.key",
        directory / "server.csr",
        directory / "server.crt",
    )
    extensions = directory / "server.ext"
    extensions.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    openssl("req", "-x509", *ec, "-days", "2", "-subj", "/CN=bench-ca",
            "-keyout", str(ca_key), "-out", str(ca_cert))  # fmt: skip
    openssl("req", *ec, "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(request))
    openssl("x509", "-req", "-in", str(request), "-CA", str(ca_cert), "-CAkey", str(ca_key),
            "-CAcreateserial", "-days", "2", "-extfile", str(extensions),
            "-out", str(cert))  # fmt: skip
    return ca_cert, cert, key


def write_trust_file(path: Path) -> str:
    """A trust file with one identity that may check and write every list; its token."""
    token = new_token(IDENTITY)
    path.write_text(
        "[tenants.ops]\nall_lists = true\n\n"
        f"[identities.{IDENTITY}]\n"
        'tenant = "ops"\nscopes = ["check", "write"]\n'
        f'token_hashes = ["{hash_token(token)}"]\n'
        # Large enough never to refuse, so every call still pays the quota charge.
        "quota = { numbers_per_minute = 1000000000, numbers_per_day = 1000000000000, "
        "burst = 1000000 }\n"
    )
    return token


@dataclass(frozen=True)
class Endpoint:
    """What a client needs to call a server (picklable, for spawned clients)."""

    target: str
    ca: bytes | None
    token: str | None


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    endpoint: Endpoint


def start_server(
    mode: str, directory: Path, redis_url: str, data_dir: Path, args: argparse.Namespace
) -> Server:
    arguments = [
        "--data-dir", str(data_dir), "--redis-url", redis_url, "--snapshot-interval", "0",
        "--log-level", "WARNING", "--workers", str(args.workers),
        "--max-batch", str(max(args.batch, 1000)),
    ]  # fmt: skip
    ca = token = None
    if mode in ("auth on", "tls only"):
        ca_cert, cert, key = make_certificates(directory)
        ca = ca_cert.read_bytes()
        arguments += ["--tls-cert", str(cert), "--tls-key", str(key)]
    if mode in ("auth on", "trust only"):
        token = write_trust_file(directory / "trust.toml")
        arguments += ["--trust-file", str(directory / "trust.toml")]
        arguments += ["--quota-dir", str(directory)]
    process, port = start_serve(arguments, log=directory / "server.log")
    server = Server(process, Endpoint(f"127.0.0.1:{port}", ca, token))
    with channel_to(server.endpoint) as channel:
        wait_serving(process, channel)
    return server


def channel_to(server: Endpoint) -> grpc.Channel:
    limit = grpc_message_limit(100_000)
    options: list[tuple[str, object]] = [
        ("grpc.max_receive_message_length", limit),
        ("grpc.max_send_message_length", limit),
        ("grpc.use_local_subchannel_pool", 1),  # each client its own connection
    ]
    if server.ca is None:
        return grpc.insecure_channel(server.target, options=options)
    credentials = grpc.ssl_channel_credentials(root_certificates=server.ca)
    options.append(("grpc.ssl_target_name_override", "localhost"))
    return grpc.secure_channel(server.target, credentials, options=options)


def stop_server(server: Server) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(30)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


# -- clients ------------------------------------------------------------------------------


@dataclass
class ClientResult:
    checks_ns: list[int]
    writes_ns: list[int]
    numbers: int
    errors: dict[str, int]


def client(
    index: int,
    servers: Sequence[Endpoint],
    pool_path: str,
    batch: int,
    write_share: float,
    ready: Any,
    window: Any,
    seconds: float,
    interleave: float,
) -> list[ClientResult]:
    """One client process: connect, say ``ready``, warm up until the window opens, measure.

    ``window`` is a shared dict; the parent puts ``start`` (a ``time.time()``) in it
    once every client is ready, so all clients measure the same ``seconds``. With
    several ``servers``, the client calls the ``k``-th one in the ``interleave``-second
    slices ``k``, ``k + len(servers)``, ...: one result per server.
    """
    pool = np.load(pool_path)
    rng = random.Random(index)
    batches = [
        pb.CheckRequest(e164=pool[i : i + batch].tolist(), lists=LISTS)
        for i in range(0, len(pool) - batch + 1, batch)
    ][:2000]
    results = [ClientResult([], [], 0, {}) for _ in servers]
    clock = time.perf_counter_ns
    channels = [channel_to(server) for server in servers]
    try:
        stubs = [pb_grpc.SuppressionStub(channel) for channel in channels]  # type: ignore[no-untyped-call]
        metadata = [
            (("authorization", f"Bearer {server.token}"),) if server.token else ()
            for server in servers
        ]
        for stub, header in zip(stubs, metadata, strict=True):
            stub.Check(batches[0], metadata=header, timeout=30)  # connected, token verified
        ready.put(index)
        sequence = 0
        start_at = None
        while start_at is None or time.time() < start_at:  # warm-up, on every server
            slot = sequence % len(servers)
            stubs[slot].Check(batches[sequence % len(batches)], metadata=metadata[slot], timeout=30)
            sequence += 1
            if start_at is None:
                start_at = window.get("start")
        end = start_at + seconds
        while (now := time.time()) < end:
            slot = int((now - start_at) / interleave) % len(servers) if interleave else 0
            stub, header, result = stubs[slot], metadata[slot], results[slot]
            sequence += 1
            if rng.random() < write_share:
                # A fresh valid US number per write: 1 + NPA 200-999 + NXX 200-999 + 4 digits.
                number = 10**10 + rng.randrange(200, 1000) * 10**7 + rng.randrange(2_000_000, 10**7)
                request: object = pb.SuppressRequest(
                    e164=[number], list="internal", source="app", actor=f"client-{index}"
                )
                call, samples, numbers = stub.Suppress, result.writes_ns, 0
            else:
                request = batches[sequence % len(batches)]
                call, samples, numbers = stub.Check, result.checks_ns, batch
            start = clock()
            try:
                call(request, metadata=header, timeout=30)
            except grpc.RpcError as error:
                name = error.code().name
                result.errors[name] = result.errors.get(name, 0) + 1
                continue
            samples.append(clock() - start)
            result.numbers += numbers
    finally:
        for channel in channels:
            channel.close()
    return results


@dataclass
class RunResult:
    mode: str
    seconds: float
    checks: list[int]
    writes: list[int]
    numbers: int
    errors: dict[str, int]
    server_cpu_s: float
    """CPU seconds the server process used in the measured window (user + system)."""

    @property
    def calls_per_second(self) -> float:
        return (len(self.checks) + len(self.writes)) / self.seconds

    @property
    def server_cpu_us_per_call(self) -> float:
        """Server CPU per call: what authentication adds, apart from the clients' share."""
        return self.server_cpu_s / max(1, len(self.checks) + len(self.writes)) * 1e6


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of ``pid`` and its reaped children, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    ticks = sum(int(value) for value in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def run_once(
    modes: Sequence[str], pool_path: Path, data_dir: Path, args: argparse.Namespace
) -> list[RunResult]:
    """One window with one server per mode (interleaved when there are several)."""
    with contextlib.ExitStack() as stack:
        servers = []
        for mode in modes:
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-load-")))
            redis = stack.enter_context(redis_server())
            url = f"redis://127.0.0.1:{redis.port}/0"
            server = start_server(mode, scratch, url, data_dir, args)
            stack.callback(stop_server, server)
            servers.append(server)
        window_seconds = args.duration * len(modes)
        context = multiprocessing.get_context("spawn")
        with context.Manager() as manager, context.Pool(args.clients) as workers:
            ready, window = manager.Queue(), manager.dict()
            endpoints = [server.endpoint for server in servers]
            arguments = (
                args.batch, args.write_share, ready, window, window_seconds, args.interleave
            )  # fmt: skip
            jobs = [
                workers.apply_async(client, (i, endpoints, str(pool_path), *arguments))
                for i in range(args.clients)
            ]
            # Spawned clients take a while to import grpc and numpy; the window
            # opens once all of them are connected, after a shared warm-up.
            for _client in range(args.clients):
                ready.get(timeout=300)
            start = time.time() + args.warmup
            window["start"] = start
            time.sleep(max(0.0, start - time.time()))
            cpu_before = [process_cpu_seconds(server.process.pid) for server in servers]
            time.sleep(window_seconds)
            cpu = [
                process_cpu_seconds(server.process.pid) - before
                for server, before in zip(servers, cpu_before, strict=True)
            ]
            results = [job.get(timeout=window_seconds + 600) for job in jobs]
    runs = []
    for slot, mode in enumerate(modes):
        mine = [per_server[slot] for per_server in results]
        errors: dict[str, int] = {}
        for result in mine:
            for code, count in result.errors.items():
                errors[code] = errors.get(code, 0) + count
        runs.append(
            RunResult(
                mode,
                args.duration,
                [ns for result in mine for ns in result.checks_ns],
                [ns for result in mine for ns in result.writes_ns],
                sum(result.numbers for result in mine),
                errors,
                cpu[slot],
            )
        )
    return runs


# -- report -------------------------------------------------------------------------------


def percentiles_ms(samples: Sequence[int]) -> list[str]:
    if not samples:
        return ["-"] * 4
    values = np.percentile(np.asarray(samples, dtype=np.float64), (50, 90, 99, 99.9)) / 1e6
    return [f"{value:.2f}" for value in values]


def rows_of(runs: Sequence[RunResult]) -> list[list[str]]:
    rows = []
    for number, run in enumerate(runs, 1):
        errors = sum(run.errors.values())
        error_text = str(errors) + (f" ({run.errors})" if errors else "")
        rows.append(
            [
                f"{number}. {run.mode}",
                f"{run.calls_per_second:,.0f}",
                f"{run.numbers / run.seconds:,.0f}",
                f"{len(run.writes) / run.seconds:,.1f}",
                f"{run.server_cpu_us_per_call:,.0f}",
                *percentiles_ms(run.checks),
                *percentiles_ms(run.writes)[:3],
                error_text,
            ]
        )
    return rows


HEADERS = [
    "run",
    "calls/s",
    "numbers/s",
    "writes/s",
    "server CPU µs/call",
    "check p50 ms",
    "p90",
    "p99",
    "p99.9",
    "write p50 ms",
    "p90",
    "p99",
    "errors",
]


def verdict(runs: Sequence[RunResult]) -> tuple[str, list[float]]:
    """Pairs each auth-on run with the auth-off run next to it; the cost of each pair."""
    off = [run for run in runs if run.mode == "auth off"]
    on = [run for run in runs if run.mode == "auth on"]
    pairs = list(zip(off, on, strict=False))
    costs = [1 - b.calls_per_second / a.calls_per_second for a, b in pairs]
    if not costs:
        return "- No pair of auth-off and auth-on runs to compare.", costs
    worst, best = max(costs), min(costs)
    cpu_costs = [b.server_cpu_us_per_call / a.server_cpu_us_per_call - 1 for a, b in pairs]
    errors = sum(sum(run.errors.values()) for run in runs)
    met = "met" if worst <= TARGET_AUTH_COST else "MISSED"
    spread = (
        f"{best:.1%}"
        if len(costs) == 1
        else f"{best:.1%} to {worst:.1%} (median {statistics.median(costs):.1%})"
    )
    cpu_spread = (
        f"{min(cpu_costs):+.1%} to {max(cpu_costs):+.1%} "
        f"(median {statistics.median(cpu_costs):+.1%})"
    )
    lines = [
        f"- Authentication (TLS + trust file + quota) costs {spread} of throughput "
        f"(calls/s, auth on against the auth-off run beside it); target at most "
        f"{TARGET_AUTH_COST:.0%}: **{met}**"
        + ("" if met == "met" else f" by {worst - TARGET_AUTH_COST:.1%}")
        + ".",
        f"- Server CPU per call, auth on against the auth-off run beside it: {cpu_spread}. "
        "This is the server's own cost, apart from the clients' TLS work on the same cores.",
        f"- Errors: {errors} (target 0): **{'met' if errors == 0 else 'MISSED'}**.",
    ]
    return "\n".join(lines), costs


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8, help="client processes (default 8)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds measured per run")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up per run")
    parser.add_argument("--batch", type=int, default=100, help="numbers per Check (default 100)")
    parser.add_argument(
        "--write-share", type=float, default=0.05, help="share of calls that are Suppress"
    )
    parser.add_argument("--size", type=int, default=1_000_000, help="numbers on the list")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument(
        "--repeat", type=int, default=1, help="rounds of --modes, in alternating order"
    )
    parser.add_argument(
        "--modes",
        type=lambda text: [MODES[name.strip()] for name in text.split(",")],
        default=[MODES["off"], MODES["on"]],
        help="servers to compare, in order: off, on (the default), and to split the cost, "
        "tls (TLS without a trust file) and trust (a trust file over plaintext)",
    )
    parser.add_argument(
        "--interleave",
        type=float,
        default=0.0,
        help="run every mode's server at once and move the clients from one to the next "
        "every this many seconds (each mode still gets --duration seconds); 0 (the "
        "default): one run after another",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--record", action="store_true", help="append to RESULTS.md")
    parser.add_argument("--results", type=Path, default=None, help="where to append")
    args = parser.parse_args(argv)
    if args.interleave < 0 or (
        args.interleave
        and abs(round(args.duration / args.interleave) * args.interleave - args.duration) > 1e-6
    ):
        parser.error("--interleave must be 0 or divide --duration into whole slices")

    machine = machine_description(PACKAGES)
    machine["redis-server"] = redis_server_version()
    load_before = load_average()
    runs: list[RunResult] = []
    with tempfile.TemporaryDirectory(prefix="bench-load-data-") as scratch:
        data_dir = Path(scratch) / "data"
        pool_path = Path(scratch) / "pool.npy"
        np.save(pool_path, make_data(data_dir, args.size, args.seed))
        for pair in range(args.repeat):
            order = args.modes if pair % 2 == 0 else args.modes[::-1]
            if args.interleave:
                print(
                    f"round {pair + 1}: {', '.join(order)} interleaved every "
                    f"{args.interleave:g} s, {args.duration:g} s each ...",
                    flush=True,
                )
                runs.extend(run_once(order, pool_path, data_dir, args))
                continue
            for mode in order:
                print(f"run {len(runs) + 1}: {mode}, {args.duration:g} s ...", flush=True)
                runs.extend(run_once([mode], pool_path, data_dir, args))
    load_after = load_average()
    rows = rows_of(runs)
    interleaved = f", interleaved every {args.interleave:g} s" if args.interleave else ""
    title = (
        f"Load: {args.clients} clients, {args.duration:g} s per run{interleaved}, "
        f"batches of {args.batch:,}, "
        f"{args.write_share:.0%} writes, {args.size:,} numbers, {args.workers} server worker(s)"
    )
    print_table(title, HEADERS, rows)
    summary, _costs = verdict(runs)
    print(summary)
    if args.record:
        body = (
            f"{markdown_table(HEADERS, rows)}\n\n{summary}\n\n"
            f"Load average before: {load_before}; after: {load_after}. Clients, server and "
            "redis-server share the machine's cores, so client work is in these figures too."
        )
        kwargs = {"path": args.results} if args.results is not None else {}
        append_results(f"bench_load.py, {title}", machine, body, **kwargs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
