"""Hedging and deadlines, against a real server whose Check a real interceptor holds back."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from prometheus_client import CollectorRegistry
from pyroaring import BitMap64

from suppression.client import (
    ClientConfig,
    DeadlineExceededError,
    RetryPolicy,
    SuppressionClient,
    Verdict,
)
from suppression.lists import SuppressionLists, Version
from suppression.metrics import ServiceMetrics
from suppression.replica import Replica
from suppression.service import SuppressionServicer
from suppression.v1 import suppression_pb2_grpc as pb_grpc
from tests.conftest import InProcessServer, free_port, replica_data

US = 12125550123


def lists() -> SuppressionLists:
    return SuppressionLists({"national": BitMap64([US])}, version=Version(1700000000000, 7))


class Gate(grpc.ServerInterceptor):
    """Holds every Check until released; records that one arrived, and that it ended."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.ended = threading.Event()
        self.release = threading.Event()

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(details)
        if handler is None or not details.method.endswith("/Check"):
            return handler
        inner = handler.unary_unary

        def gated(request: Any, context: grpc.ServicerContext) -> Any:
            context.add_callback(self.ended.set)  # runs when the call ends, cancelled or not
            self.entered.set()
            self.release.wait(30)
            return inner(request, context)

        return grpc.unary_unary_rpc_method_handler(
            gated,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


class Slow:
    """A real server of the real servicer, behind a :class:`Gate`."""

    def __init__(self) -> None:
        replica = Replica(replica_data(lists()))
        replica.start()
        self.gate = Gate()
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=4), interceptors=[self.gate]
        )
        pb_grpc.add_SuppressionServicer_to_server(  # type: ignore[no-untyped-call]
            SuppressionServicer(replica, ServiceMetrics(CollectorRegistry())), self.server
        )
        self.target = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"
        self.server.start()

    def stop(self) -> None:
        self.gate.release.set()
        self.server.stop(None)


@pytest.fixture
def slow() -> Iterator[Slow]:
    server = Slow()
    try:
        yield server
    finally:
        server.stop()


def checks(server: InProcessServer) -> float:
    return sum(
        sample.value
        for metric in server.registry.collect()
        for sample in metric.samples
        if sample.name == "grpc_server_started_total" and sample.labels["grpc_method"] == "Check"
    )


def test_a_hedge_answers_when_the_first_target_is_slow_and_the_first_is_cancelled(
    slow: Slow, start_server: Callable[..., InProcessServer]
) -> None:
    fast = start_server(lists())
    config = ClientConfig(targets=(slow.target, fast.target), hedge_delay=0.02, timeout=20)
    with SuppressionClient(config) as suppression:
        result = suppression.check_one(US)
    assert result[0].verdict is Verdict.SUPPRESSED
    assert result.target == fast.target
    assert slow.gate.entered.is_set()
    assert slow.gate.ended.wait(10), "the slow call was not cancelled"
    assert checks(fast) == 1


def test_no_hedge_is_sent_when_the_first_target_answers_in_time(
    slow: Slow, start_server: Callable[..., InProcessServer]
) -> None:
    fast = start_server(lists())
    config = ClientConfig(targets=(fast.target, slow.target), hedge_delay=10.0)
    with SuppressionClient(config) as suppression:
        assert suppression.check_one(f"+{US}").target == fast.target
    assert not slow.gate.entered.is_set()


def test_a_hedge_goes_out_at_once_when_the_first_target_is_down(
    start_server: Callable[..., InProcessServer],
) -> None:
    fast = start_server(lists())
    down = f"127.0.0.1:{free_port()}"
    config = ClientConfig(targets=(down, fast.target), hedge_delay=10.0, timeout=5)
    with SuppressionClient(config) as suppression:
        assert suppression.check_one(US).target == fast.target


def test_an_attempt_that_times_out_is_retried_on_the_next_target(
    slow: Slow, start_server: Callable[..., InProcessServer]
) -> None:
    fast = start_server(lists())
    config = ClientConfig(
        targets=(slow.target, fast.target),
        timeout=20,
        retry=RetryPolicy(attempt_timeout=0.2, initial_backoff=0.001),
    )
    with SuppressionClient(config) as suppression:
        assert suppression.check(e164=[US, 1]).target == fast.target


def test_the_deadline_bounds_a_call(slow: Slow) -> None:
    with SuppressionClient(ClientConfig(targets=(slow.target,), max_batch=10)) as suppression:
        with pytest.raises(DeadlineExceededError) as caught:
            suppression.check(e164=[US], timeout=0.2)
    assert caught.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "raise the timeout" in str(caught.value)
