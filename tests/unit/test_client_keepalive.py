"""The client's keepalive pings are ones the server accepts: an idle stream survives them.

No fixed sleep: the idle time is measured by a control, the same pings towards a
server whose policy refuses them, which is cut off after a few pings. By then
the client has pinged its own server as often, and its stream must still work.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import grpc

from suppression.client import ClientConfig, KeepAlive, RetryPolicy, SuppressionClient
from suppression.lists import SuppressionLists
from suppression.server import ServerOptions
from suppression.v1 import suppression_pb2 as pb
from suppression.v1 import suppression_pb2_grpc as pb_grpc
from tests.conftest import InProcessServer

US = 12125550123
PINGS = KeepAlive(time=1.0, timeout=5.0)


def test_the_default_pings_no_faster_than_the_server_allows() -> None:
    assert KeepAlive().time >= ServerOptions().min_client_ping_interval


def _control(target: str, stop: threading.Event, outcome: list[object]) -> None:
    """An idle stream with the same pings; records how it ended."""

    def requests() -> Iterator[pb.CheckRequest]:
        yield pb.CheckRequest(e164=[US])
        stop.wait(60)

    try:
        with grpc.insecure_channel(target, options=PINGS.channel_options()) as channel:
            outcome.extend(pb_grpc.SuppressionStub(channel).CheckStream(requests()))
    except grpc.RpcError as exc:
        outcome.append(exc.code())


def test_an_idle_stream_with_the_clients_pings_survives(
    start_server: Callable[..., InProcessServer],
) -> None:
    allowing = start_server(SuppressionLists(), min_client_ping_interval=PINGS.time)
    refusing = start_server(SuppressionLists(), min_client_ping_interval=300.0)
    stop, resume = threading.Event(), threading.Event()
    outcome: list[object] = []
    control = threading.Thread(target=_control, args=(refusing.target, stop, outcome))
    control.start()

    def batches() -> Iterator[list[int]]:
        yield [US]
        resume.wait(60)
        yield [US]

    # One attempt: a stream cut off for its pings must fail here, not quietly reconnect.
    config = ClientConfig(
        targets=(allowing.target,),
        keepalive=PINGS,
        max_batch=10,
        retry=RetryPolicy(max_attempts=1),
    )
    try:
        with SuppressionClient(config) as suppression:
            stream = suppression.check_stream(batches())
            assert len(next(stream)) == 1
            control.join(60)  # the control is cut off for pinging: time enough has passed
            assert outcome[-1] == grpc.StatusCode.UNAVAILABLE, outcome
            resume.set()
            assert [len(result) for result in stream] == [1]
    finally:
        stop.set()
        resume.set()
        control.join(60)
