"""`suppression serve --redis-url` as a real process: kill -9, restart, catch up, lose nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from suppression.entries import Entry
from suppression.lists import ListKind, Op, Version
from suppression.snapshot import find_newest, read_snapshot
from suppression.v1 import suppression_pb2 as pb
from suppression.v1 import suppression_pb2_grpc as pb_grpc
from suppression.writer import ChangeLogWriter
from tests.conftest import RedisServer, ServerSubprocess, client_channel, wait_for
from tests.integration.live_replicas import redis_client

pytestmark = pytest.mark.integration

STREAM = "suppression:deltas"


def test_kill_9_then_restart_catches_up_from_the_periodic_snapshot(
    serve_subprocess: Callable[..., ServerSubprocess], redis_server: RedisServer, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    args = ("--data-dir", str(data), "--redis-url", redis_server.url, "--snapshot-interval", "0.2")
    server = serve_subprocess(*args)
    server.wait_serving()
    before = [12125550000 + index for index in range(20)]
    with client_channel(server.target) as channel:
        stub = pb_grpc.SuppressionStub(channel)
        for number in before:
            request = pb.SuppressRequest(
                e164=[number], list="internal", source="in_call", create_list=True
            )
            written = stub.Suppress(request, timeout=10)
    wait_for(
        lambda: (
            (newest := find_newest(data)) is not None
            and read_snapshot(newest).version == Version.parse(written.version)
        ),
        10,
        "a periodic snapshot at the last write",
    )
    server.kill()  # SIGKILL: no shutdown code runs
    writer = ChangeLogWriter(redis_client(redis_server), STREAM, "test")
    after = [8613800138000 + index for index in range(10)]
    ids = writer.write([Entry(Op.ADD, "internal", ListKind.OPT_OUT, "app", (n,)) for n in after])
    restarted = serve_subprocess(*args)
    restarted.wait_serving()
    assert "loaded snapshot" in restarted.log()
    with client_channel(restarted.target) as channel:
        answer = pb_grpc.SuppressionStub(channel).Check(
            pb.CheckRequest(e164=[*before, *after, 12025550147]), timeout=10
        )
    assert list(answer.verdicts) == [pb.SUPPRESSED] * 30 + [pb.ALLOWED]
    assert answer.version == str(ids[-1])
    assert not answer.stale
    # A graceful stop writes a last snapshot at the head.
    assert restarted.terminate() == 0
    newest = find_newest(data)
    assert newest is not None and read_snapshot(newest).version == ids[-1]
