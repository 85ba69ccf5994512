"""Shared fixtures: real redis-server processes, in-process and subprocess gRPC servers.

Nothing here mocks a part: Redis is a real redis-server on a free port in a
temporary directory, and servers are called over real sockets.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, settings
from prometheus_client import CollectorRegistry

from suppression.datasource import LoadedData
from suppression.lists import SuppressionLists
from suppression.replica import Replica
from suppression.server import ServerOptions, ServingProcess, create_server, grpc_message_limit
from suppression.v1 import suppression_pb2_grpc as pb_grpc

settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=20, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

REPO = Path(__file__).resolve().parent.parent


_RECENT_PORTS: deque[int] = deque(maxlen=1024)
"""Ports :func:`free_port` handed out lately, which it does not hand out again."""


def free_port() -> int:
    """A TCP port that nothing listens on right now, and not one handed out lately.

    Two binds to port 0 in a row may get the same port once the first socket is
    closed (about 1 in 20,000 here): a server then got one port for both gRPC and
    its metrics, and exited with "Address already in use".
    """
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port not in _RECENT_PORTS:
            _RECENT_PORTS.append(port)
            return port


def replica_data(lists: SuppressionLists) -> LoadedData:
    """Lists built in a test, as a replica's already-loaded data."""
    total = sum(len(bitmap) for bitmap in lists.view.bitmaps.values())
    return LoadedData(lists, None, None, 0.0, total)


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll until ``predicate`` holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@dataclass
class RedisServer:
    """A real redis-server on a free port, in its own directory."""

    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed; run `make test`, which installs it")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--logfile",
                str(self.directory / "redis.log"),
                *self.extra_arguments(),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self._accepts, 10.0, f"redis-server on port {self.port}")

    def extra_arguments(self) -> list[str]:
        """More command-line settings, for subclasses (a replica names its primary)."""
        return []

    def _accepts(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server with append-only persistence, stopped after the test."""
    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisServer(directory)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@dataclass
class InProcessServer:
    """A real gRPC server in this process, bound to a free port."""

    process: ServingProcess
    channel: grpc.Channel
    stub: pb_grpc.SuppressionStub
    registry: CollectorRegistry

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.process.port}"


def client_channel(target: str, max_batch: int = 100_000) -> grpc.Channel:
    limit = grpc_message_limit(max_batch)
    return grpc.insecure_channel(
        target,
        options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
        ],
    )


@pytest.fixture
def start_server() -> Iterator[Callable[..., InProcessServer]]:
    """Factory: start an in-process server over given lists; everything stops after the test."""
    started: list[InProcessServer] = []

    def start(
        lists: SuppressionLists | None, *, loaded: bool | None = None, **overrides: object
    ) -> InProcessServer:
        """Serve ``lists``; the replica is started unless ``loaded`` is False or lists is None."""
        config = ServerOptions(port=0, **overrides)  # type: ignore[arg-type]
        registry = CollectorRegistry()
        replica = Replica(replica_data(lists if lists is not None else SuppressionLists()))
        if loaded if loaded is not None else lists is not None:
            replica.start()
        process = create_server(replica, config, registry, "127.0.0.1:0")
        channel = client_channel(f"127.0.0.1:{process.port}", config.max_batch)
        server = InProcessServer(process, channel, pb_grpc.SuppressionStub(channel), registry)
        started.append(server)
        return server

    yield start
    for server in started:
        server.channel.close()
        server.process.stop(0)


@dataclass
class ServerSubprocess:
    """`suppression serve` as a real child process."""

    port: int
    metrics_port: int
    process: subprocess.Popen[str]
    log_path: Path

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def health(self, service: str = "") -> int:
        with grpc.insecure_channel(self.target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            try:
                answer = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1)
            except grpc.RpcError:
                return -1
            return int(answer.status)

    def wait_serving(self, timeout: float = 30.0) -> None:
        def serving() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited early:\n{self.log()}")
            return self.health() == health_pb2.HealthCheckResponse.SERVING

        wait_for(serving, timeout, "the server to report SERVING")

    def terminate(self, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            return self.process.wait(timeout)
        return int(self.process.returncode)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def serve_subprocess(tmp_path: Path) -> Iterator[Callable[..., ServerSubprocess]]:
    """Factory: run `suppression serve ARGS...` on free ports; killed after the test."""
    started: list[ServerSubprocess] = []

    def start(*args: str, env: dict[str, str] | None = None) -> ServerSubprocess:
        port, metrics_port = free_port(), free_port()
        log_path = tmp_path / f"server-{port}.log"
        command = [
            sys.executable,
            "-m",
            "suppression.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--metrics-port",
            str(metrics_port),
            *args,
        ]
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("SUPPRESSION_")}
        child_env.update(env or {})
        with log_path.open("w") as log:
            process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, text=True, env=child_env, cwd=REPO
            )
        server = ServerSubprocess(port, metrics_port, process, log_path)
        started.append(server)
        return server

    yield start
    for server in started:
        server.kill()
