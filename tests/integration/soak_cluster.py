"""A soak of the whole system on loopback: replicas, Redis with Sentinel, writes, checks, kill -9.

Used by ``tests/integration/test_soak.py`` (about a minute) and by
``benchmarks/soak.py`` (longer, with figures for RESULTS.md).

Three ``suppression serve`` processes follow a Redis primary and its replica
through three sentinels, with ``--min-replicas 1``. While one thread writes
new opt-outs through random replicas and another checks acknowledged and
never-written numbers, a chaos thread kills replicas (restarted, sometimes
with an empty data directory so that they fetch a snapshot from a peer) and
the Redis primary (restarted as a replica after the failover) with SIGKILL.
A model holds every number: acknowledged (the write returned), uncertain
(the write failed; it may or may not be in the log) and never written. At the
end every replica must answer every number as the model and the log say.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from suppression.lists import Version
from suppression.v1 import suppression_pb2 as pb
from suppression.v1 import suppression_pb2_grpc as pb_grpc
from tests.conftest import REPO, free_port
from tests.integration.redis_ha import MASTER, RedisGroup, start_group

STREAM = "suppression:deltas"
LIST = "soak"
BASE = 8613900000000
"""Written numbers count up from here; never-written ones come from another range."""
NEVER = 8613700000000
SERVING = health_pb2.HealthCheckResponse.SERVING
MAX_STALENESS = 5.0


@dataclass
class SoakReport:
    """What a soak saw; every list of problems must be empty for a pass."""

    seconds: float = 0.0
    acknowledged: int = 0
    uncertain: int = 0
    checks: int = 0
    numbers_checked: int = 0
    write_errors: int = 0
    check_errors: int = 0
    lagging_answers: int = 0
    """ALLOWED for an acknowledged number from data older than its write: replication lag."""
    replica_kills: int = 0
    peer_starts: int = 0
    redis_kills: int = 0
    failover_seconds: list[float] = field(default_factory=list)
    """Per Redis kill: until the next acknowledged write."""
    longest_staleness_ms: int = 0
    """Largest staleness a serving replica reported in GetStatus."""
    longest_lag_seconds: float = 0.0
    """Longest an acknowledged write was seen missing from a replica's answer."""
    longest_lag: str = ""
    """Who answered that, from which version, and whether it said the data was stale."""
    unflagged_lags: list[str] = field(default_factory=list)
    """Answers that missed a write acknowledged longer ago than the staleness bound
    (plus a second) without saying the data was stale: freshness that lied."""
    wrong_answers: list[str] = field(default_factory=list)
    """Answers that contradict the model from data that should include the write."""
    final_mismatches: list[str] = field(default_factory=list)
    missing_acknowledged: list[str] = field(default_factory=list)
    harness_errors: list[str] = field(default_factory=list)
    """Faults the chaos thread could not inject as planned (a failover that never came)."""


class ReplicaProcess:
    """One ``suppression serve`` child on fixed ports, restartable after SIGKILL."""

    def __init__(self, index: int, directory: Path, group: RedisGroup) -> None:
        self.index = index
        self.port = free_port()
        self.data = directory / f"replica-{index}" / "data"
        self.log_path = directory / f"replica-{index}" / "server.log"
        self.group = group
        self.peers: list[str] = []
        self.process: subprocess.Popen[bytes] | None = None
        self.channel: grpc.Channel | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, *, fetch: bool = True) -> None:
        """Start serving; with ``fetch``, an empty data directory is filled from a peer."""
        self.data.parent.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, "-m", "suppression.cli", "serve",
            "--host", "127.0.0.1", "--port", str(self.port), "--metrics-port", "0",
            "--data-dir", str(self.data),
            "--redis-url", f"redis://{MASTER}/0",
            "--sentinel", ",".join(self.group.sentinel_addresses),
            "--sentinel-master", MASTER,
            "--min-replicas", "1", "--replica-timeout", "1",
            "--max-staleness", str(MAX_STALENESS), "--write-timeout", "5",
            "--snapshot-interval", "2", "--snapshot-keep", "3",
            "--threads", "8",
        ]  # fmt: skip
        if self.peers and fetch:
            command += ["--peer", ",".join(self.peers)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SUPPRESSION_")}
        with self.log_path.open("a") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO
            )
        self.channel = grpc.insecure_channel(self.target)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        if self.channel is not None:
            self.channel.close()
        self.process = None
        self.channel = None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stub(self) -> pb_grpc.SuppressionStub:
        assert self.channel is not None
        return pb_grpc.SuppressionStub(self.channel)

    def serving(self) -> bool:
        if self.channel is None:
            return False
        try:
            stub = health_pb2_grpc.HealthStub(self.channel)
            answer = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
        except grpc.RpcError:
            return False
        return bool(answer.status == SERVING)


class Soak:
    """Runs the soak; :meth:`run` returns the report."""

    def __init__(
        self,
        directory: Path,
        *,
        seconds: float,
        seed: int = 1,
        replicas: int = 3,
        kill_every: tuple[float, float] = (4.0, 8.0),
    ) -> None:
        self.directory = directory
        self.seconds = seconds
        self.random = random.Random(seed)
        self.kill_every = kill_every
        self.group = start_group(directory / "redis")
        self.replicas = [ReplicaProcess(i, directory, self.group) for i in range(replicas)]
        for replica in self.replicas:
            replica.peers = [r.target for r in self.replicas if r is not replica]
        self.report = SoakReport()
        self.lock = threading.Lock()
        self.acknowledged: dict[int, tuple[Version, float]] = {}
        self.uncertain: set[int] = set()
        self.next_number = BASE
        self.stop = threading.Event()
        self.redis_killed_at: float | None = None

    # -- the run ---------------------------------------------------------------

    def run(self) -> SoakReport:
        started = time.monotonic()
        try:
            for replica in self.replicas:
                replica.start(fetch=False)  # no peer is up yet: replay the (empty) log
            self._wait(lambda: all(r.serving() for r in self.replicas), 60, "replicas serving")
            self._first_write()
            threads = [
                threading.Thread(target=self._writer, name="soak-writer", daemon=True),
                threading.Thread(target=self._checker, name="soak-checker", daemon=True),
                threading.Thread(target=self._monitor, name="soak-monitor", daemon=True),
                threading.Thread(target=self._chaos, name="soak-chaos", daemon=True),
            ]
            for thread in threads:
                thread.start()
            self.stop.wait(self.seconds)
            self.stop.set()
            for thread in threads:
                thread.join(60)
            self._converge()
            self._verify()
        finally:
            self.report.seconds = time.monotonic() - started
            self.close()
        return self.report

    def close(self) -> None:
        """Kill everything; the data and logs stay in the directory."""
        for replica in self.replicas:
            replica.kill()
        self.group.stop()

    def _wait(self, predicate: object, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():  # type: ignore[operator]
                return
            time.sleep(0.1)
        logs = "\n".join(
            f"--- replica {r.index}:\n{r.log_path.read_text(errors='replace')[-3000:]}"
            for r in self.replicas
        )
        raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{logs}")

    def _first_write(self) -> None:
        request = pb.SuppressRequest(e164=[BASE - 1], list=LIST, source="app", create_list=True)
        answer = self.replicas[0].stub().Suppress(request, timeout=15)
        self.acknowledged[BASE - 1] = (Version.parse(answer.version), time.monotonic())

    # -- writes, checks, staleness, chaos ----------------------------------------

    def _writer(self) -> None:
        while not self.stop.is_set():
            with self.lock:
                number = self.next_number
                self.next_number += 1
            replica = self.random.choice(self.replicas)
            request = pb.SuppressRequest(e164=[number], list=LIST, source="app")
            try:
                answer = replica.stub().Suppress(request, timeout=10)
            except (grpc.RpcError, AssertionError, ValueError):  # ValueError: channel closed
                with self.lock:
                    self.uncertain.add(number)
                    self.report.write_errors += 1
                self.stop.wait(0.05)
                continue
            now = time.monotonic()
            with self.lock:
                self.acknowledged[number] = (Version.parse(answer.version), now)
                if self.redis_killed_at is not None:
                    self.report.failover_seconds.append(now - self.redis_killed_at)
                    self.redis_killed_at = None
            self.stop.wait(0.02)

    def _checker(self) -> None:
        while not self.stop.is_set():
            with self.lock:
                known = list(self.acknowledged.items())
            sample = self.random.sample(known, min(200, len(known)))
            never = [NEVER + self.random.randrange(1_000_000) for _ in range(20)]
            replica = self.random.choice(self.replicas)
            numbers = [n for n, _ in sample] + never
            try:
                answer = replica.stub().Check(pb.CheckRequest(e164=numbers), timeout=5)
            except (grpc.RpcError, AssertionError, ValueError):  # ValueError: channel closed
                with self.lock:
                    self.report.check_errors += 1
                self.stop.wait(0.05)
                continue
            version = Version.parse(answer.version)
            now = time.monotonic()
            with self.lock:
                self.report.checks += 1
                self.report.numbers_checked += len(numbers)
                for (_, (written, at)), verdict in zip(sample, answer.verdicts, strict=False):
                    if verdict == pb.SUPPRESSED:
                        continue
                    if version >= written:
                        self.report.wrong_answers.append(
                            f"replica {replica.index} said {pb.Verdict.Name(verdict)} for an "
                            f"acknowledged number written at {written} from data at {version}"
                        )
                    else:
                        self.report.lagging_answers += 1
                        lag = now - at
                        described = (
                            f"replica {replica.index} answered {pb.Verdict.Name(verdict)} "
                            f"{lag:.1f} s after the write at {written} from data at {version} "
                            f"({'stale' if answer.stale else 'not marked stale'})"
                        )
                        if lag > self.report.longest_lag_seconds:
                            self.report.longest_lag_seconds = lag
                            self.report.longest_lag = described
                        if not answer.stale and lag > MAX_STALENESS + 1.0:
                            self.report.unflagged_lags.append(described)
                for number, verdict in zip(never, answer.verdicts[len(sample) :], strict=True):
                    if verdict != pb.ALLOWED and not answer.failed_closed:
                        self.report.wrong_answers.append(
                            f"replica {replica.index} said {pb.Verdict.Name(verdict)} for "
                            f"a number never written ({number % 10_000})"
                        )
            self.stop.wait(0.02)

    def _monitor(self) -> None:
        while not self.stop.is_set():
            for replica in self.replicas:
                if not replica.alive():
                    continue
                try:
                    status = replica.stub().GetStatus(pb.GetStatusRequest(), timeout=1)
                except (grpc.RpcError, AssertionError, ValueError):  # ValueError: channel closed
                    continue
                if status.ready:
                    with self.lock:
                        self.report.longest_staleness_ms = max(
                            self.report.longest_staleness_ms, status.staleness_ms
                        )
            self.stop.wait(0.25)

    def _chaos(self) -> None:
        """Every few seconds one SIGKILL: the Redis primary every third time, else a replica."""
        event = 0
        while not self.stop.wait(self.random.uniform(*self.kill_every)):
            event += 1
            try:
                if event % 3 == 1 and self.redis_killed_at is None:
                    self._kill_redis_primary()
                else:
                    self._kill_replica()
            except Exception as exc:  # noqa: BLE001 - reported, and the run fails on it
                with self.lock:
                    self.report.harness_errors.append(f"{type(exc).__name__}: {exc}"[:2000])

    def _kill_replica(self) -> None:
        replica = self.random.choice(self.replicas)
        replica.kill()
        with self.lock:
            self.report.replica_kills += 1
        self.stop.wait(self.random.uniform(0.2, 1.5))
        if self.random.random() < 0.4:
            shutil.rmtree(replica.data, ignore_errors=True)  # a new pod: fetch from a peer
            with self.lock:
                self.report.peer_starts += 1
        replica.start()

    def _kill_redis_primary(self) -> None:
        try:
            old = self.group.primary()
        except AssertionError:
            return
        with self.lock:
            self.redis_killed_at = time.monotonic()
            self.report.redis_kills += 1
        old.kill()
        try:
            self.group.wait_failover(old.port, timeout=30)
        finally:
            # Back as a replica of the new primary, so that writes can reach one again.
            self.group.restart_as_replica(old)

    # -- the end -------------------------------------------------------------------

    def _converge(self) -> None:
        for replica in self.replicas:
            if not replica.alive():
                replica.start()
        self._wait(lambda: all(r.serving() for r in self.replicas), 90, "every replica serving")
        head = self._head()
        self._wait(
            lambda: all(self._version(r) >= head for r in self.replicas),
            60,
            f"every replica at the log's head {head}",
        )

    def _head(self) -> Version:
        client = self.group.primary().client()
        last = client.xrevrange(STREAM, count=1)
        return Version.parse(last[0][0].decode()) if last else Version()

    def _version(self, replica: ReplicaProcess) -> Version:
        try:
            status = replica.stub().GetStatus(pb.GetStatusRequest(), timeout=2)
        except grpc.RpcError:
            return Version()
        return Version.parse(status.version)

    def _in_log(self) -> set[int]:
        """Every number the log holds for the soak's list (the log is the truth)."""
        client: redis.Redis = self.group.primary().client()
        found: set[int] = set()
        for _, fields in client.xrange(STREAM):
            if fields.get(b"list") == LIST.encode() and fields.get(b"op") == b"add":
                found.update(int(n) for n in fields[b"numbers"].split(b","))
        return found

    def _verify(self) -> None:
        in_log = self._in_log()
        report = self.report
        report.acknowledged = len(self.acknowledged)
        report.uncertain = len(self.uncertain)
        for number in self.acknowledged:
            if number not in in_log:
                report.missing_acknowledged.append(f"...{number % 10_000:04d}")
        expected = {n: True for n in self.acknowledged}
        expected.update({n: n in in_log for n in self.uncertain})
        expected.update({NEVER + i: False for i in range(0, 1_000_000, 997)})
        numbers = sorted(expected)
        for replica in self.replicas:
            for start in range(0, len(numbers), 10_000):
                batch = numbers[start : start + 10_000]
                answer = replica.stub().Check(pb.CheckRequest(e164=batch), timeout=30)
                for number, verdict in zip(batch, answer.verdicts, strict=True):
                    if (verdict == pb.SUPPRESSED) != expected[number]:
                        report.final_mismatches.append(
                            f"replica {replica.index}: ...{number % 10_000:04d} is "
                            f"{pb.Verdict.Name(verdict)}, the log says "
                            f"{'suppressed' if expected[number] else 'allowed'}"
                        )
