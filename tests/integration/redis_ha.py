"""Helpers for failover tests: a real Redis primary, its replica and three real sentinels.

Every process runs on a free loopback port in its own temporary directory,
and every fixture kills what it started. Failover timings are short
(``down-after-milliseconds`` 1000) so that a test sees one in a few seconds.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
import redis
from prometheus_client import CollectorRegistry

from suppression.datasource import DataSource
from suppression.replica import ChangeLogOptions, Replica, SnapshotOptions
from suppression.server import ServerOptions, ServingProcess, create_server
from suppression.v1 import suppression_pb2_grpc as pb_grpc
from tests.conftest import RedisServer, client_channel, free_port, wait_for

MASTER = "suppression"
"""The master name the sentinels monitor."""
DOWN_AFTER_MS = 1000


def _binary(name: str, package: str) -> str:
    binary = shutil.which(name)
    if binary is None:
        pytest.fail(f"{name} is not installed; run `make test`, which installs {package}")
    return binary


def _pings(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class RedisNode(RedisServer):
    """One redis-server with append-only persistence, optionally a replica of another."""

    replica_of: int | None = None

    def extra_arguments(self) -> list[str]:
        # A replica syncs at once instead of after the default 5 s wait for others.
        arguments = ["--repl-diskless-sync-delay", "0"]
        if self.replica_of is not None:
            arguments += ["--replicaof", "127.0.0.1", str(self.replica_of)]
        return arguments

    def client(self, timeout: float = 5.0) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=timeout)

    def wait_in_sync(self, timeout: float = 15.0) -> None:
        """Wait until this replica reports a live link to its primary."""

        def linked() -> bool:
            try:
                info = self.client().info("replication")
            except redis.RedisError:
                return False
            return info.get("master_link_status") == "up"

        wait_for(linked, timeout, f"replica {self.port} to sync with its primary")

    def pause(self) -> None:
        """SIGSTOP: the process holds its port but answers nothing."""
        if self.process is not None:
            self.process.send_signal(19)

    def resume(self) -> None:
        if self.process is not None:
            self.process.send_signal(18)


@dataclass
class SentinelNode:
    """One redis-sentinel watching ``MASTER``."""

    directory: Path
    master_port: int
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "sentinel.conf"
        if not config.exists():  # a restarted sentinel keeps what it learned
            config.write_text(
                f"port {self.port}\n"
                "bind 127.0.0.1\n"
                f"dir {self.directory}\n"
                f"logfile {self.directory / 'sentinel.log'}\n"
                f"sentinel monitor {MASTER} 127.0.0.1 {self.master_port} 2\n"
                f"sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {MASTER} 4000\n"
                f"sentinel parallel-syncs {MASTER} 1\n"
            )
        self.process = subprocess.Popen(
            [_binary("redis-sentinel", "redis-sentinel"), str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: _pings(self.port), 10.0, f"redis-sentinel on port {self.port}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None


@dataclass
class RedisGroup:
    """A primary, its replica and (optionally) three sentinels: a small Redis HA set-up."""

    nodes: list[RedisNode]
    sentinels: list[SentinelNode]

    @property
    def sentinel_addresses(self) -> tuple[str, ...]:
        return tuple(s.address for s in self.sentinels)

    def master_port(self) -> int:
        """The primary's port, as the sentinels report it (or the first node without them)."""
        if not self.sentinels:
            return self.nodes[0].port
        for sentinel in self.sentinels:
            try:
                client = redis.Redis(host="127.0.0.1", port=sentinel.port, socket_timeout=1)
                host_port = client.sentinel_get_master_addr_by_name(MASTER)
            except redis.RedisError:
                continue
            if host_port:
                return int(host_port[1])
        raise AssertionError("no sentinel answers for the master")

    def node(self, port: int) -> RedisNode:
        return next(n for n in self.nodes if n.port == port)

    def primary(self) -> RedisNode:
        return self.node(self.master_port())

    def wait_failover(self, old_port: int, timeout: float = 30.0) -> float:
        """Wait until the sentinels name a new primary that accepts writes; seconds it took."""
        started = time.monotonic()

        def promoted() -> bool:
            try:
                port = self.master_port()
            except AssertionError:
                return False
            if port == old_port:
                return False
            try:
                return self.node(port).client(1).info("replication")["role"] == "master"
            except redis.RedisError:
                return False

        wait_for(promoted, timeout, "the sentinels to promote the replica")
        return time.monotonic() - started

    def restart_as_replica(self, node: RedisNode) -> None:
        """Start a killed node again; the sentinels turn it into a replica of the new primary."""
        node.replica_of = self.master_port()
        node.start()

    def wait_sentinels_know_replicas(self, count: int, timeout: float = 20.0) -> None:
        def known() -> bool:
            for sentinel in self.sentinels:
                client = redis.Redis(host="127.0.0.1", port=sentinel.port, socket_timeout=1)
                try:
                    if len(client.sentinel_slaves(MASTER)) < count:
                        return False
                    if len(client.sentinel_sentinels(MASTER)) < len(self.sentinels) - 1:
                        return False
                except redis.RedisError:
                    return False
            return True

        wait_for(known, timeout, "every sentinel to know the replicas and the other sentinels")

    def stop(self) -> None:
        for process in [*self.sentinels, *self.nodes]:
            process.kill()


def start_group(directory: Path, *, sentinels: int = 3, replicas: int = 1) -> RedisGroup:
    """Start a primary with ``replicas`` replicas and ``sentinels`` sentinels."""
    primary = RedisNode(directory / "redis-0")
    primary.start()
    nodes = [primary]
    for i in range(replicas):
        node = RedisNode(directory / f"redis-{i + 1}", replica_of=primary.port)
        node.start()
        node.wait_in_sync()
        nodes.append(node)
    watchers = [SentinelNode(directory / f"sentinel-{i}", primary.port) for i in range(sentinels)]
    group = RedisGroup(nodes, watchers)
    try:
        for sentinel in watchers:
            sentinel.start()
        if watchers:
            group.wait_sentinels_know_replicas(replicas)
    except BaseException:
        group.stop()
        raise
    return group


@pytest.fixture(name="redis_pair")
def redis_pair_fixture(tmp_path: Path) -> Iterator[RedisGroup]:
    """A Redis primary and one replica, no sentinels."""
    group = start_group(tmp_path / "redis", sentinels=0)
    try:
        yield group
    finally:
        group.stop()


@pytest.fixture(name="redis_sentinels")
def redis_sentinels_fixture(tmp_path: Path) -> Iterator[RedisGroup]:
    """A Redis primary, one replica and three sentinels."""
    group = start_group(tmp_path / "redis")
    try:
        yield group
    finally:
        group.stop()


@dataclass
class SentinelReplica:
    """An in-process replica that follows the log through the sentinels, and its client."""

    core: Replica
    process: ServingProcess
    registry: CollectorRegistry
    channel: grpc.Channel
    stub: pb_grpc.SuppressionStub


@contextmanager
def replica_through_sentinels(group: RedisGroup, data: Path) -> Iterator[SentinelReplica]:
    """A replica with ``--min-replicas 1`` and snapshots every 0.1 s into ``data``."""
    options = ChangeLogOptions(
        redis_url=f"redis://{MASTER}/0",
        sentinels=group.sentinel_addresses,
        sentinel_master=MASTER,
        max_staleness=5.0,
        min_replicas=1,
        replica_timeout=0.5,
    )
    core = Replica(DataSource(data_dir=data), options, SnapshotOptions(interval=0.1, keep=5))
    registry = CollectorRegistry()
    process = create_server(core, ServerOptions(port=0), registry, "127.0.0.1:0")
    core.start()
    process.sync_health()
    channel = client_channel(f"127.0.0.1:{process.port}")
    try:
        yield SentinelReplica(core, process, registry, channel, pb_grpc.SuppressionStub(channel))
    finally:
        channel.close()
        process.stop(0)
        core.stop()
