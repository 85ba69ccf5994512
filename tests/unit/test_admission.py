"""Admission: idle streams never starve unary calls; undecodable requests are refused.

Every test talks to a real in-process gRPC server over a real socket.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator

import grpc
import pytest

from suppression.admission import RateLimitedLog, short_quote
from suppression.v1 import suppression_pb2 as pb
from tests.conftest import InProcessServer, wait_for
from tests.samples import make_lists

CHECK = "/suppression.v1.Suppression/Check"
CHECK_STREAM = "/suppression.v1.Suppression/CheckStream"
GARBAGE = b"\xff\xff\xff\xff\xff"


def _streams_started(server) -> float:  # type: ignore[no-untyped-def]
    labels = {
        "grpc_type": "bidi_stream",
        "grpc_service": "suppression.v1.Suppression",
        "grpc_method": "CheckStream",
    }
    return server.registry.get_sample_value("grpc_server_started_total", labels) or 0.0


def _idle(stop: threading.Event) -> Iterator[pb.CheckRequest]:
    """A request stream that sends nothing until ``stop`` is set."""
    stop.wait()
    return
    yield  # a generator


def test_idle_streams_do_not_starve_unary_calls(
    start_server: Callable[..., InProcessServer],
) -> None:
    server = start_server(make_lists())  # the default 16 threads
    stop = threading.Event()
    streams = [server.stub.CheckStream(_idle(stop)) for _ in range(20)]
    try:
        # Every worker thread that a stream can take has taken one.
        wait_for(lambda: _streams_started(server) >= 16, 10, "the streams to reach the server")
        answer = server.stub.Check(pb.CheckRequest(e164=[12125550000]), timeout=5)
        assert list(answer.verdicts) == [pb.SUPPRESSED]
        status = server.stub.GetStatus(pb.GetStatusRequest(), timeout=5)
        assert status.ready
    finally:
        stop.set()
        for stream in streams:
            stream.cancel()


def test_streams_beyond_the_limit_are_refused(
    start_server: Callable[..., InProcessServer],
) -> None:
    server = start_server(make_lists(), threads=4, max_streams=2)
    stop = threading.Event()

    def one_then_idle() -> Iterator[pb.CheckRequest]:
        yield pb.CheckRequest(e164=[12125550000])
        stop.wait()

    held = [server.stub.CheckStream(one_then_idle()) for _ in range(2)]
    # Each held stream has answered once: both are admitted and running on the server.
    for stream in held:
        assert list(next(stream).verdicts) == [pb.SUPPRESSED]
    try:
        # A stream started after the held ones is refused at once, not queued.
        def third_refused() -> bool:
            refused = server.stub.CheckStream(iter([pb.CheckRequest(e164=[12125550000])]))
            try:
                list(refused)
            except grpc.RpcError as exc:
                assert exc.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
                assert "--max-streams" in (exc.details() or "")
                return True
            return False

        wait_for(third_refused, 10, "a stream beyond the limit to be refused")
    finally:
        stop.set()
        for stream in held:
            stream.cancel()

    # Streams that end give their slot back (as soon as the server has seen them end).
    def admitted() -> bool:
        stream = server.stub.CheckStream(iter([pb.CheckRequest(e164=[12125550000])]), timeout=5)
        try:
            answers = [list(answer.verdicts) for answer in stream]
        except grpc.RpcError as exc:
            assert exc.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            return False
        assert answers == [[pb.SUPPRESSED]]
        return True

    wait_for(admitted, 10, "a stream to be admitted once the held ones ended")


def _raw(channel: grpc.Channel, method: str) -> grpc.UnaryUnaryMultiCallable:
    return channel.unary_unary(method, request_serializer=None, response_deserializer=None)


def test_undecodable_requests_are_invalid_argument_and_logged_rarely(
    start_server: Callable[..., InProcessServer], caplog: pytest.LogCaptureFixture
) -> None:
    server = start_server(make_lists())
    call = _raw(server.channel, CHECK)
    with caplog.at_level(logging.INFO):
        for _ in range(30):
            with pytest.raises(grpc.RpcError) as raised:
                call(GARBAGE, timeout=5)
            assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
            assert "could not be decoded" in (raised.value.details() or "")
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    undecodable = [r for r in caplog.records if "not a valid protobuf" in r.getMessage()]
    assert errors == []
    assert len(undecodable) == 1
    # The server still answers well-formed calls.
    answer = server.stub.Check(pb.CheckRequest(e164=[12125550000]), timeout=5)
    assert list(answer.verdicts) == [pb.SUPPRESSED]


def test_undecodable_stream_messages_are_invalid_argument(
    start_server: Callable[..., InProcessServer],
) -> None:
    server = start_server(make_lists())
    call = server.channel.stream_stream(
        CHECK_STREAM, request_serializer=None, response_deserializer=None
    )
    with pytest.raises(grpc.RpcError) as raised:
        list(call(iter([GARBAGE]), timeout=5))
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT


def test_undecodable_logs_count_what_they_held_back() -> None:

    clock = [100.0]
    logger = logging.getLogger("tests.bounds.ratelimit")
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    handler = Keep()
    logger.addHandler(handler)
    try:
        log = RateLimitedLog(logger, 60.0, clock=lambda: clock[0])
        for _ in range(5):
            log.warning("bad request from %s", "peer")
        clock[0] += 61
        log.warning("bad request from %s", "peer")
    finally:
        logger.removeHandler(handler)
    assert lines == ["bad request from peer", "bad request from peer (4 more held back)"]


def test_short_quote_cuts_long_values() -> None:
    assert short_quote("national") == "'national'"
    quoted = short_quote("n" * 100_000)
    assert quoted.startswith("'nnnn") and quoted.endswith("…' (100,000 characters)")
    assert len(quoted) < 100
