"""Helpers for live-change tests: in-process replicas that follow a real redis-server."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import redis
from prometheus_client import CollectorRegistry

from suppression.changelog.epoch import APPEND_SCRIPT, new_epoch
from suppression.changelog.follower import FollowerState
from suppression.changelog.streaminfo import meta_key
from suppression.datasource import DataSource
from suppression.lists import SuppressionLists
from suppression.policy.store import PolicyStore
from suppression.replica import ChangeLogOptions, SnapshotOptions
from suppression.replica import Replica as ReplicaCore
from suppression.server import ServerOptions, ServingProcess, create_server
from suppression.snapshotkey import SnapshotKey
from suppression.v1 import suppression_pb2 as pb
from suppression.v1 import suppression_pb2_grpc as pb_grpc
from tests.conftest import RedisServer, client_channel


@dataclass
class Replica:
    """One serving process that follows the change log, called over gRPC."""

    process: ServingProcess
    core: ReplicaCore
    channel: grpc.Channel
    stub: pb_grpc.SuppressionStub
    registry: CollectorRegistry

    @property
    def lists(self) -> SuppressionLists:
        lists = self.core.lists
        assert lists is not None
        return lists

    def follower_state(self) -> FollowerState:
        state = self.core.follower_state()
        assert state is not None
        return state

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
        self.core.stop()


ReplicaFactory = Callable[..., Replica]


@pytest.fixture(name="start_replica")
def start_replica_fixture(redis_server: RedisServer) -> Iterator[ReplicaFactory]:
    """Factory: an in-process replica on a free port following ``redis_server``."""
    started: list[Replica] = []

    def start(
        data_dir: Path | None = None,
        *,
        snapshot_interval: float = 0.0,
        snapshot_keep: int = 3,
        snapshot_key: SnapshotKey | None = None,
        policies: PolicyStore | None = None,
        **overrides: object,
    ) -> Replica:
        options: dict[str, object] = {"redis_url": redis_server.url, "max_staleness": 5.0}
        options.update(overrides)
        change_log = ChangeLogOptions(**options)  # type: ignore[arg-type]
        snapshots = (
            SnapshotOptions(snapshot_interval, snapshot_keep)
            if data_dir is not None and snapshot_interval > 0
            else None
        )
        source = DataSource(data_dir=data_dir, snapshot_key=snapshot_key)
        core = ReplicaCore(source, change_log, snapshots, policies=policies)
        registry = CollectorRegistry()
        process = create_server(core, ServerOptions(port=0), registry, "127.0.0.1:0")
        core.start()
        process.sync_health()
        channel = client_channel(f"127.0.0.1:{process.port}")
        replica = Replica(process, core, channel, pb_grpc.SuppressionStub(channel), registry)
        started.append(replica)
        return replica

    yield start
    for replica in started:
        replica.stop()


def redis_client(server: RedisServer) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=5)


def append_raw(client: redis.Redis, stream: str, fields: Mapping[str, str]) -> str:
    """Append ``fields`` as a producer that skips validation but numbers its entries would.

    The consumers' own checks are what such tests exercise; an entry written
    without a sequence number at all is dead-lettered for that alone.
    """
    arguments = ["", new_epoch(), "", "1", str(2 * len(fields))]
    for name, value in fields.items():
        arguments += (name, value)
    reply = client.eval(APPEND_SCRIPT, 2, stream, meta_key(stream), *arguments)
    return str(reply[1].decode())
