"""Shared pieces of the benchmark scripts: machine facts, timing, redis-server, tables, RESULTS.md.

Every benchmark in this folder prints a table and appends a dated section to
``RESULTS.md`` that names the machine it ran on, so figures from different
runs and machines can be told apart. Import this module from a script in
``benchmarks/`` as ``from _common import ...`` (the script's folder is on
``sys.path`` when it runs, and in processes it spawns).
"""

from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TypeVar

import grpc
import numpy as np
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rich.console import Console
from rich.table import Table

from suppression.datasource import LoadedData
from suppression.lists import SuppressionLists
from suppression.replica import Replica

__all__ = [
    "served",
    "RESULTS_PATH",
    "RedisServer",
    "Timing",
    "append_results",
    "free_port",
    "load_average",
    "machine_description",
    "markdown_table",
    "percentiles_us",
    "print_table",
    "redis_server",
    "redis_server_version",
    "run_for",
    "start_serve",
    "time_alternating_ns",
    "time_each_ns",
    "wait_serving",
]

T = TypeVar("T")

RESULTS_PATH = Path(__file__).with_name("RESULTS.md")
REPO = Path(__file__).resolve().parent.parent
_RESULTS_HEADER = (
    "# Benchmark results\n\n"
    "Appended by the scripts in this folder, newest last. Each section names the machine\n"
    "and the command; compare figures within a section, since absolute times drift\n"
    "between machines and runs. See README.md for what each script measures.\n"
)


# -- the machine ------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def _package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def redis_server_version(executable: str = "redis-server") -> str:
    """The version of ``redis-server`` on the PATH, or "not installed"."""
    path = shutil.which(executable)
    if path is None:
        return "not installed"
    output = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
    for word in output.stdout.split():
        if word.startswith("v="):
            return word[2:]
    return output.stdout.strip() or "unknown"


def machine_description(packages: Sequence[str] = ()) -> dict[str, str]:
    """Facts that decide how comparable two runs are.

    Args:
        packages: Python distributions whose versions to report.

    Returns:
        Ordered label -> value pairs: CPU, cores, memory, OS, Python, packages.
    """
    memory = _memory_gib()
    facts = {
        "CPU": _cpu_model(),
        "cores": str(os.cpu_count() or "unknown"),
        "memory": f"{memory:.1f} GiB" if memory is not None else "unknown",
        "OS": f"{platform.system()} {platform.release()}",
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
    }
    for name in packages:
        facts[name] = _package_version(name)
    return facts


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: other work on the machine skews figures."""
    try:
        return ", ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


# -- timing -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Timing:
    """How many times a call ran, and for how long."""

    calls: int
    seconds: float

    def per_second(self, items_per_call: int = 1) -> float:
        """Items (numbers, calls) per second."""
        return self.calls * items_per_call / self.seconds

    def ns_per_item(self, items_per_call: int = 1) -> float:
        """Nanoseconds per item."""
        return self.seconds * 1e9 / (self.calls * items_per_call)


def run_for(
    call: Callable[[T], object],
    inputs: Sequence[T],
    seconds: float,
    rounds: int = 3,
    min_calls: int = 3,
    warmup: int = 2,
) -> Timing:
    """Call ``call`` on ``inputs`` round-robin for ``seconds``; the fastest round wins.

    The time is split into ``rounds`` equal rounds and the best round's rate
    is returned, as ``timeit`` takes the minimum: interference from other
    processes only ever slows a round down, so the best round is the closest
    to what the code can do. Build inputs (requests, batches) before timing,
    so only the call is measured. The clock is read once per call, so keep
    calls longer than a microsecond or two. ``warmup`` untimed calls come first.
    """
    count = len(inputs)
    for index in range(warmup):
        call(inputs[index % count])
    clock = time.perf_counter
    best: Timing | None = None
    calls = 0
    for _round in range(max(1, rounds)):
        start = clock()
        deadline = start + seconds / max(1, rounds)
        done = 0
        now = start
        while done < min_calls or now < deadline:
            call(inputs[calls % count])
            calls += 1
            done += 1
            now = clock()
        timing = Timing(done, now - start)
        if best is None or timing.seconds / timing.calls < best.seconds / best.calls:
            best = timing
    assert best is not None
    return best


def time_each_ns(
    call: Callable[[T], object], inputs: Sequence[T], calls: int, warmup: int = 100
) -> list[int]:
    """Time ``calls`` sequential calls on ``inputs`` round-robin, each on its own, in ns."""
    count = len(inputs)
    for index in range(warmup):
        call(inputs[index % count])
    clock = time.perf_counter_ns
    samples = [0] * calls
    for index in range(calls):
        argument = inputs[index % count]
        start = clock()
        call(argument)
        samples[index] = clock() - start
    return samples


def time_alternating_ns(
    first: Callable[[T], object],
    first_inputs: Sequence[T],
    second: Callable[[T], object],
    second_inputs: Sequence[T],
    calls: int,
    warmup: int = 100,
) -> tuple[list[int], list[int]]:
    """Time ``calls`` calls of each of two functions, alternating call by call, in ns.

    For a ratio of two latencies on a machine whose load drifts: both see the
    same moments, where two blocks one after the other each see their own.
    """
    for index in range(warmup):
        first(first_inputs[index % len(first_inputs)])
        second(second_inputs[index % len(second_inputs)])
    clock = time.perf_counter_ns
    firsts, seconds = [0] * calls, [0] * calls
    for index in range(calls):
        argument = first_inputs[index % len(first_inputs)]
        start = clock()
        first(argument)
        firsts[index] = clock() - start
        argument = second_inputs[index % len(second_inputs)]
        start = clock()
        second(argument)
        seconds[index] = clock() - start
    return firsts, seconds


def percentiles_us(samples_ns: Sequence[int], points: Sequence[float] = (50, 99)) -> list[float]:
    """Percentiles of nanosecond samples, in microseconds."""
    values = np.percentile(np.asarray(samples_ns, dtype=np.float64), points)
    return [float(value) / 1000 for value in values]


# -- processes --------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the caller must still handle a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def start_serve(
    arguments: Sequence[str], *, log: Path | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``suppression serve`` on a free loopback port; the process and the port.

    The command is ``serve --host 127.0.0.1 --port P --metrics-port 0`` plus
    ``arguments``, run from the repository with no ``SUPPRESSION_*`` variable of
    this shell, so only the benchmark's settings count. Output goes to ``log``
    (or is inherited). Wait for it with :func:`wait_serving`.
    """
    port = free_port()
    command = [
        sys.executable, "-m", "suppression.cli", "serve", "--host", "127.0.0.1",
        "--port", str(port), "--metrics-port", "0", *arguments,
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPPRESSION_")}
    env["PYTHONPATH"] = str(REPO)
    if log is None:
        return subprocess.Popen(command, env=env, cwd=REPO), port
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    return process, port


def wait_serving(
    process: subprocess.Popen[bytes],
    channel: grpc.Channel | str,
    *,
    timeout: float = 120.0,
    poll: float = 0.05,
) -> float:
    """Seconds until the server's health check answers SERVING.

    Args:
        process: the server, to notice it exiting.
        channel: a channel to it, or its ``HOST:PORT`` for a plaintext one.
        timeout: seconds to wait at most.
        poll: seconds between health checks.

    Raises:
        RuntimeError: the process exited, or it was not SERVING in time.
    """
    started = time.perf_counter()
    owned = grpc.insecure_channel(channel) if isinstance(channel, str) else None
    stub = health_pb2_grpc.HealthStub(owned or channel)
    try:
        while time.perf_counter() - started < timeout:
            if process.poll() is not None:
                raise RuntimeError(f"suppression serve exited with {process.returncode}")
            try:
                answer = stub.Check(health_pb2.HealthCheckRequest(), timeout=max(poll, 0.5))
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return time.perf_counter() - started
            except grpc.RpcError:
                pass
            time.sleep(poll)
    finally:
        if owned is not None:
            owned.close()
    raise RuntimeError(f"suppression serve was not SERVING after {timeout:g} s")


@dataclass(frozen=True, slots=True)
class RedisServer:
    """A running redis-server that :func:`redis_server` started."""

    host: str
    port: int
    directory: Path
    process: subprocess.Popen[bytes]

    def client(self, **options: object) -> redis.Redis:
        """A redis-py client for this server."""
        return redis.Redis(host=self.host, port=self.port, **options)  # type: ignore[arg-type]


@contextmanager
def redis_server(
    executable: str = "redis-server", host: str = "127.0.0.1", timeout: float = 10.0
) -> Iterator[RedisServer]:
    """Run a throwaway redis-server on a free port in a temporary directory.

    Persistence is off, the default port is never used, and the server is
    stopped (by its process id) and its directory removed on exit.

    Raises:
        RuntimeError: redis-server is missing or does not come up.
    """
    path = shutil.which(executable)
    if path is None:
        raise RuntimeError(f"{executable} not found; install it (make redis) or put it on PATH")
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as directory:
        for _attempt in range(3):
            port = free_port(host)
            process = subprocess.Popen(
                [path, "--bind", host, "--port", str(port), "--save", "", "--appendonly", "no"]
                + ["--dir", directory],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            server = RedisServer(host, port, Path(directory), process)
            try:
                if _wait_for_redis(server, timeout):
                    break
            except BaseException:
                _stop(process)
                raise
            _stop(process)  # most likely lost a race for the port; try another
        else:
            raise RuntimeError(f"redis-server did not start within {timeout} s (3 attempts)")
        try:
            yield server
        finally:
            _stop(process)


def _wait_for_redis(server: RedisServer, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    client = server.client(socket_connect_timeout=0.5)
    try:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                return False
            try:
                if client.ping():
                    return True
            except redis.ConnectionError:
                time.sleep(0.05)
        return False
    finally:
        client.close()


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- output -----------------------------------------------------------------


def print_table(
    title: str,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    console: Console | None = None,
) -> None:
    """Print a table; the first column left-aligned, the rest right.

    Output that is not a terminal (a log file, a pipe) gets 140 columns
    rather than rich's default 80, so rows stay on one line.
    """
    if console is None:
        console = Console() if sys.stdout.isatty() else Console(width=140)
    table = Table(title=title, title_justify="left")
    for index, header in enumerate(headers):
        table.add_column(header, justify="left" if index == 0 else "right")
    for row in rows:
        table.add_row(*row)
    console.print(table)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured markdown table; the first column left-aligned, the rest right."""

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    rule = ["---"] + ["---:"] * (len(headers) - 1)
    return "\n".join([line(headers), line(rule), *(line(row) for row in rows)])


def append_results(
    title: str,
    machine: Mapping[str, str],
    body: str,
    path: Path = RESULTS_PATH,
    command: Sequence[str] | None = None,
) -> None:
    """Append a dated section to RESULTS.md (created with a header if missing).

    Args:
        title: what was run, e.g. "bench_check.py, 10,000,000 numbers".
        machine: from :func:`machine_description`.
        body: markdown: the figures, targets and notes.
        path: the results file.
        command: the command line; defaults to this process's.
    """
    argv = list(command) if command is not None else [Path(sys.argv[0]).name, *sys.argv[1:]]
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    facts = "; ".join(f"{label} {value}" for label, value in machine.items())
    section = (
        f"\n## {stamp}: {title}\n\n"
        f"Machine: {facts}.\n\n"
        f"Command: `{' '.join(argv)}`\n\n"
        f"{body.strip()}\n"
    )
    if not path.exists():
        path.write_text(_RESULTS_HEADER)
    # One append, not read-modify-write: two benchmarks may finish at once.
    with path.open("a") as out:
        out.write(section)


def served(lists: SuppressionLists) -> Replica:
    """A started replica over lists built in memory, as the server and servicer take them."""
    total = sum(len(bitmap) for bitmap in lists.view.bitmaps.values())
    replica = Replica(LoadedData(lists, None, None, 0.0, total))
    replica.start()
    return replica
