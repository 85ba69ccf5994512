"""The worker pool as real processes: restarts, its budget, shutdown, census-gated health."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REPO, free_port, wait_for

pytestmark = pytest.mark.integration

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def children(pid: int) -> list[int]:
    """The live child processes of ``pid``."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split() if not exited(int(child))]


def exited(pid: int) -> bool:
    """Whether ``pid`` is gone or a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


@dataclass
class Pool:
    """``tests.integration.pool_program`` as a real process."""

    process: subprocess.Popen[str]
    directory: Path
    log_path: Path
    metrics_port: int

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def workers(self) -> list[int]:
        return children(self.pid)

    def metric(self, name: str, **labels: str) -> float | None:
        """A sample of the parent's /metrics; None also while the endpoint is not up yet."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=10) as answer:
                text = answer.read().decode()
        except urllib.error.URLError:
            return None
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return float(sample.value)
        return None

    def wait_exit(self, timeout: float = 30.0) -> int:
        return self.process.wait(timeout)


@pytest.fixture
def start_pool(tmp_path: Path) -> Iterator[Callable[..., Pool]]:
    """Factory: run the pool program with ARGS; killed (with its workers) after the test."""
    started: list[Pool] = []

    def start(*args: str) -> Pool:
        log_path = tmp_path / f"pool-{len(started)}.log"
        metrics_port = free_port()
        command = [
            sys.executable, "-m", "tests.integration.pool_program",
            "--dir", str(tmp_path), "--metrics-port", str(metrics_port), *args,
        ]  # fmt: skip
        with log_path.open("w") as log:
            process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, text=True, cwd=REPO
            )
        pool = Pool(process, tmp_path, log_path, metrics_port)
        started.append(pool)
        return pool

    yield start
    for pool in started:
        workers = pool.workers()
        if pool.process.poll() is None:
            pool.process.kill()
            pool.process.wait(10)
        for pid in workers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_a_killed_worker_is_restarted_logged_and_counted(
    start_pool: Callable[..., Pool],
) -> None:
    pool = start_pool("--workers", "2")
    wait_for(lambda: pool.metric("suppression_workers_ready") == 2, 20, "both workers ready")
    assert pool.metric("suppression_workers") == 2
    assert pool.metric("suppression_worker_restarts_total") == 0
    first = pool.workers()
    assert len(first) == 2

    os.kill(first[0], signal.SIGKILL)

    def restarted() -> bool:
        now = pool.workers()
        return len(now) == 2 and first[0] not in now and first[1] in now

    wait_for(restarted, 20, "the killed worker to be replaced")
    wait_for(lambda: pool.metric("suppression_workers_ready") == 2, 20, "the pool to be whole")
    assert pool.metric("suppression_worker_restarts_total") == 1
    assert f"(pid {first[0]}) died (killed by SIGKILL); restarted it as pid" in pool.log()
    assert "WARNING suppression.workers worker" in pool.log()

    # Memory of every process, read by the parent; PSS sums to less than RSS.
    for process in ("parent", "worker-0", "worker-1"):
        resident = pool.metric("suppression_resident_memory_bytes", process=process)
        proportional = pool.metric("suppression_proportional_memory_bytes", process=process)
        assert resident is not None and resident > 1 << 20, process
        assert proportional is not None and 0 < proportional <= resident, process

    # SIGTERM stops every worker, and none is restarted.
    workers = pool.workers()
    pool.process.send_signal(signal.SIGTERM)
    assert pool.wait_exit() == 0
    assert all(exited(pid) for pid in workers)
    assert pool.log().count("restarted it") == 1


def test_a_crash_loop_stops_the_replica_with_an_error(start_pool: Callable[..., Pool]) -> None:
    pool = start_pool("--workers", "2", "--mode", "crash", "--max-restarts", "3")
    assert pool.wait_exit() == 1
    log = pool.log()
    assert log.count("restarted it") == 3
    assert "after 3 restarts within 60 s; stopping the replica (exit code 1)" in log


def test_a_worker_stopped_cleanly_stops_the_replica(start_pool: Callable[..., Pool]) -> None:
    pool = start_pool("--workers", "2")
    wait_for(lambda: len(pool.workers()) == 2, 20, "both workers")
    wait_for(lambda: pool.metric("suppression_workers_ready") == 2, 20, "both workers ready")
    os.kill(pool.workers()[1], signal.SIGTERM)
    assert pool.wait_exit() == 0
    assert "restarted it" not in pool.log()
    assert "stopped on its own (exit code 0); stopping the replica" in pool.log()


def test_workers_that_ignore_sigterm_are_killed_after_the_stop_timeout(
    start_pool: Callable[..., Pool],
) -> None:
    pool = start_pool("--workers", "2", "--mode", "stubborn", "--stop-timeout", "0.5")
    wait_for(lambda: pool.metric("suppression_workers_ready") == 2, 20, "both workers ready")
    workers = pool.workers()
    pool.process.send_signal(signal.SIGINT)
    assert pool.wait_exit() == 1
    assert all(exited(pid) for pid in workers)
    assert pool.log().count("did not stop within 0.5 s of being asked to; killing it") == 2
    assert "restarted it" not in pool.log()


def port_and_pid(directory: Path, slot: int) -> tuple[int, int]:
    port, pid = (directory / f"port-{slot}").read_text().split()
    return int(port), int(pid)


def health_stub(directory: Path, slot: int) -> health_pb2_grpc.HealthStub:
    port, _ = port_and_pid(directory, slot)
    return health_pb2_grpc.HealthStub(grpc.insecure_channel(f"127.0.0.1:{port}"))


def check(stub: health_pb2_grpc.HealthStub) -> int:
    return int(stub.Check(health_pb2.HealthCheckRequest(), timeout=5).status)


def test_health_is_not_serving_while_the_pool_is_short(start_pool: Callable[..., Pool]) -> None:
    pool = start_pool("--workers", "2", "--mode", "health")
    directory = pool.directory
    wait_for(lambda: (directory / "port-1").exists(), 20, "both workers to listen")
    wait_for(lambda: (directory / "port-0").exists(), 20, "both workers to listen")
    stub = health_stub(directory, 0)
    wait_for(lambda: check(stub) == SERVING, 20, "worker 0 to be SERVING")
    watch = stub.Watch(health_pb2.HealthCheckRequest(), timeout=60)
    assert next(watch).status == SERVING

    # Worker 1 dies; its replacement is held back from becoming ready.
    (directory / "hold-1").touch()
    _, dead = port_and_pid(directory, 1)
    os.kill(dead, signal.SIGKILL)
    # Worker 0 still runs and is fine by itself, but the replica is short.
    assert next(watch).status == NOT_SERVING
    assert check(stub) == NOT_SERVING
    wait_for(lambda: port_and_pid(directory, 1)[1] != dead, 20, "the replacement to listen")
    assert check(stub) == NOT_SERVING
    assert pool.metric("suppression_workers_ready") == 1
    assert pool.metric("suppression_worker_restarts_total") == 1
    replacement = health_stub(directory, 1)
    assert check(replacement) == NOT_SERVING

    (directory / "hold-1").unlink()
    assert next(watch).status == SERVING
    assert check(stub) == SERVING
    assert check(replacement) == SERVING
    watch.cancel()

    pool.process.send_signal(signal.SIGTERM)
    assert pool.wait_exit() == 0
