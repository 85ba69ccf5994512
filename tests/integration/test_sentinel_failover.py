"""Redis Sentinel: replicas and writers follow a failover of the change log without a restart.

Real processes: a Redis primary, its replica and three redis-sentinel
processes on free loopback ports; the primary is killed with SIGKILL.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import grpc
import pytest
from prometheus_client import CollectorRegistry

from loader.cli import main
from suppression.datasource import DataSource
from suppression.errors import ConfigError
from suppression.replica import ChangeLogOptions, Replica
from suppression.server import ServerOptions, ServingProcess, create_server
from suppression.settings import Settings
from suppression.v1 import suppression_pb2 as pb
from suppression.v1 import suppression_pb2_grpc as pb_grpc
from tests.conftest import client_channel, wait_for
from tests.integration.redis_ha import (  # noqa: F401 - a fixture
    MASTER,
    RedisGroup,
    redis_sentinels_fixture,
)

pytestmark = pytest.mark.integration

CN = 8613800138000


class Served:
    """An in-process server whose replica follows the change log through the sentinels."""

    def __init__(self, group: RedisGroup) -> None:
        options = ChangeLogOptions(
            redis_url=f"redis://{MASTER}/0",
            sentinels=group.sentinel_addresses,
            sentinel_master=MASTER,
            max_staleness=5.0,
            min_replicas=1,
            replica_timeout=1.0,
        )
        self.core = Replica(DataSource(), options)
        self.process: ServingProcess = create_server(
            self.core, ServerOptions(port=0), CollectorRegistry(), "127.0.0.1:0"
        )
        self.core.start()
        self.process.sync_health()
        self.channel = client_channel(f"127.0.0.1:{self.process.port}")
        self.stub = pb_grpc.SuppressionStub(self.channel)

    def suppressed(self, number: int) -> bool:
        answer = self.stub.Check(pb.CheckRequest(e164=[number]), timeout=5)
        return bool(answer.verdicts[0] == pb.SUPPRESSED)

    def suppress(self, number: int, create: bool = False) -> pb.WriteResponse:
        request = pb.SuppressRequest(
            e164=[number], list="internal", source="in_call", create_list=create
        )
        return self.stub.Suppress(request, timeout=10)

    def stop(self) -> None:
        self.channel.close()
        self.process.stop(0)
        self.core.stop()


@pytest.fixture
def serve(redis_sentinels: RedisGroup) -> Iterator[Callable[[], Served]]:
    started: list[Served] = []

    def start() -> Served:
        served = Served(redis_sentinels)
        started.append(served)
        return served

    yield start
    for served in started:
        served.stop()


def retry_until_written(write: Callable[[], object], timeout: float = 30.0) -> int:
    """Retry a write as a client would, until it succeeds; how many attempts failed."""
    deadline = time.monotonic() + timeout
    failed = 0
    while True:
        try:
            write()
            return failed
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc.details()
            failed += 1
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_replicas_and_writers_follow_a_failover_without_a_restart(
    redis_sentinels: RedisGroup, serve: Callable[[], Served]
) -> None:
    writer, reader = serve(), serve()
    writer.suppress(CN, create=True)
    wait_for(lambda: reader.suppressed(CN), 5, "the second replica to apply the first write")
    old = redis_sentinels.primary()
    old.kill()
    redis_sentinels.wait_failover(old.port)
    # The killed primary comes back as a replica, so that WAIT for one replica can succeed.
    redis_sentinels.restart_as_replica(old)
    retry_until_written(lambda: writer.suppress(CN + 1))
    assert writer.suppressed(CN + 1), "the writer applies its write from the new primary"
    wait_for(lambda: reader.suppressed(CN + 1), 10, "the reader to follow the new primary")
    assert writer.suppressed(CN) and reader.suppressed(CN), "the acknowledged write survived"
    retry_until_written(lambda: reader.suppress(CN + 2))
    wait_for(lambda: writer.suppressed(CN + 2), 10, "the writer to see the reader's write")


def test_the_loader_publishes_through_the_sentinels(
    redis_sentinels: RedisGroup, serve: Callable[[], Served]
) -> None:
    served = serve()
    common = ["--redis-url", f"redis://{MASTER}/0", "--list-name", "internal"]
    common += ["--sentinel", ",".join(redis_sentinels.sentinel_addresses)]
    common += ["--sentinel-master", MASTER, "--source", "app", "--min-replicas", "1"]
    assert main(["publish", "add", "+8613800138000", *common, "--create-list"]) == 0
    wait_for(lambda: served.suppressed(CN), 5, "the replica to apply the loader's write")
    old = redis_sentinels.primary()
    old.kill()
    redis_sentinels.wait_failover(old.port)
    redis_sentinels.restart_as_replica(old)
    deadline = time.monotonic() + 20
    while main(["publish", "add", "+8613800138001", *common]) != 0:
        assert time.monotonic() < deadline, "the loader never reached the new primary"
        time.sleep(0.5)
    wait_for(lambda: served.suppressed(CN + 1), 10, "the replica to follow the new primary")


def test_sentinel_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="--sentinel-master"):
        Settings(redis_url="redis://m/0", sentinel=("127.0.0.1:26379",))
    with pytest.raises(ConfigError, match="HOST:PORT"):
        Settings(redis_url="redis://m/0", sentinel=("127.0.0.1",), sentinel_master="m")
    with pytest.raises(ConfigError, match="--redis-url too"):
        Settings(sentinel=("127.0.0.1:26379",), sentinel_master="m")
    settings = Settings.from_env(
        {"SUPPRESSION_SENTINEL": "a:26379,b:26379", "SUPPRESSION_SENTINEL_MASTER": "m"},
        redis_url="redis://m/0",
    )
    assert settings.sentinel == ("a:26379", "b:26379")
