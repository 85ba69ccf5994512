"""Client keepalive: a dialer that pings an idle connection is not cut off with too_many_pings."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import grpc
import pytest

from suppression.lists import SuppressionLists
from suppression.v1 import suppression_pb2 as pb
from suppression.v1 import suppression_pb2_grpc as pb_grpc
from tests.conftest import InProcessServer

CLIENT_KEEPALIVE = [
    ("grpc.keepalive_time_ms", 1_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]


def _idle_stream(target: str, idle: float) -> int:
    """A CheckStream that idles ``idle`` seconds between two requests; answers received."""

    def requests() -> Iterator[pb.CheckRequest]:
        yield pb.CheckRequest(e164=[8613800138000])
        time.sleep(idle)
        yield pb.CheckRequest(e164=[8613800138000])

    with grpc.insecure_channel(target, options=CLIENT_KEEPALIVE) as channel:
        return len(list(pb_grpc.SuppressionStub(channel).CheckStream(requests())))


def test_pings_at_the_documented_interval_keep_the_connection(
    start_server: Callable[..., InProcessServer],
) -> None:
    server = start_server(SuppressionLists(), min_client_ping_interval=1.0)
    assert _idle_stream(server.target, 6.0) == 2


def test_pings_faster_than_allowed_are_refused(
    start_server: Callable[..., InProcessServer],
) -> None:
    """The control: with gRPC's default policy (5 minutes) the same client is cut off."""
    server = start_server(SuppressionLists(), min_client_ping_interval=300.0)
    with pytest.raises(grpc.RpcError) as caught:
        _idle_stream(server.target, 6.0)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
