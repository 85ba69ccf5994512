"""Helpers for live-change tests: in-process replicas that follow a real redis-server."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import redis
from prometheus_client import CollectorRegistry

from suppression.lists import SuppressionLists
from suppression.live import LiveChanges, initial_lists, start_live_changes
from suppression.server import ServingProcess, create_server
from suppression.settings import Settings
from suppression.v1 import suppression_pb2 as pb
from suppression.v1 import suppression_pb2_grpc as pb_grpc
from tests.conftest import RedisServer, client_channel


@dataclass
class Replica:
    """One serving process that follows the change log, called over gRPC."""

    process: ServingProcess
    live: LiveChanges
    lists: SuppressionLists
    channel: grpc.Channel
    stub: pb_grpc.SuppressionStub

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.process.port}"

    def check(self, numbers: Sequence[int], lists: Sequence[str] = ()) -> pb.CheckResponse:
        return self.stub.Check(pb.CheckRequest(e164=numbers, lists=lists), timeout=10)

    def suppressed(self, number: int, lists: Sequence[str] = ()) -> bool:
        return bool(self.check([number], lists).verdicts[0] == pb.SUPPRESSED)

    def stop(self) -> None:
        self.channel.close()
        self.process.stop(0)
        self.live.stop()


ReplicaFactory = Callable[..., Replica]


@pytest.fixture(name="start_replica")
def start_replica_fixture(redis_server: RedisServer) -> Iterator[ReplicaFactory]:
    """Factory: an in-process replica on a free port following ``redis_server``."""
    started: list[Replica] = []

    def start(data_dir: Path | None = None, **overrides: object) -> Replica:
        values: dict[str, object] = {
            "port": 0,
            "metrics_port": 0,
            "redis_url": redis_server.url,
            "data_dir": data_dir,
            "snapshot_interval": 0.0,
            "max_staleness": 5.0,
        }
        values.update(overrides)
        settings = Settings(**values)  # type: ignore[arg-type]
        process = create_server(settings, CollectorRegistry(), "127.0.0.1:0")
        lists, report = initial_lists(settings)
        created = report.snapshot.created_at if report.snapshot else None
        live = start_live_changes(process, settings, lists, created)
        channel = client_channel(f"127.0.0.1:{process.port}")
        replica = Replica(process, live, lists, channel, pb_grpc.SuppressionStub(channel))
        started.append(replica)
        return replica

    yield start
    for replica in started:
        replica.stop()


def redis_client(server: RedisServer) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=5)
