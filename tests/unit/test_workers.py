"""The census and the census-gated health service, over a real in-process gRPC server."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from suppression.workers import PoolHealthServicer, WorkerCensus, describe_exit

SERVICE = "suppression.v1.Suppression"
Status = health_pb2.HealthCheckResponse


def test_the_census_is_shared_with_a_forked_child() -> None:
    census = WorkerCensus(3)
    assert (census.ready(), census.full()) == (0, False)
    census.mark(0, True)
    census.mark(2, True)
    with warnings.catch_warnings():
        # Python 3.12+ warns of forking a threaded process; this child only writes a byte.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child marks its own slot, as a worker does
        census.mark(1, True)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert describe_exit(status) == "exit code 0"
    assert (census.ready(), census.full()) == (3, True)
    census.mark(1, False)
    assert (census.ready(), census.full()) == (2, False)


@pytest.fixture
def health_server() -> Iterator[tuple[WorkerCensus, PoolHealthServicer, grpc.Channel]]:
    census = WorkerCensus(2)
    servicer = PoolHealthServicer(census, 0, poll_interval=0.01)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield census, servicer, channel
    finally:
        channel.close()
        server.stop(0).wait()


def test_health_is_not_serving_while_a_sibling_is_not_ready(
    health_server: tuple[WorkerCensus, PoolHealthServicer, grpc.Channel],
) -> None:
    census, servicer, channel = health_server
    stub = health_pb2_grpc.HealthStub(channel)

    def check(service: str = SERVICE) -> int:
        request = health_pb2.HealthCheckRequest(service=service)
        return int(stub.Check(request, timeout=5).status)

    watch = stub.Watch(health_pb2.HealthCheckRequest(service=SERVICE), timeout=30)
    assert next(watch).status == Status.SERVICE_UNKNOWN
    assert check("") == Status.NOT_SERVING
    servicer.set("", Status.SERVING)
    servicer.set(SERVICE, Status.SERVING)
    # This worker is ready and says so in the census; its sibling in slot 1 is not.
    assert census.ready() == 1
    assert next(watch).status == Status.NOT_SERVING
    assert check() == Status.NOT_SERVING
    assert check("") == Status.NOT_SERVING

    census.mark(1, True)
    assert next(watch).status == Status.SERVING
    assert check() == Status.SERVING
    assert check("") == Status.SERVING

    census.mark(1, False)  # the parent reaped the sibling
    assert check() == Status.NOT_SERVING  # at once: Check reads the census
    assert next(watch).status == Status.NOT_SERVING
    census.mark(1, True)  # its replacement is ready
    assert next(watch).status == Status.SERVING

    # This worker's own status counts too, for the census and for its answers.
    servicer.set(SERVICE, Status.NOT_SERVING)
    assert next(watch).status == Status.NOT_SERVING
    assert census.ready() == 1 and not census.full()
    servicer.set(SERVICE, Status.SERVING)
    assert next(watch).status == Status.SERVING
    assert census.full()

    servicer.enter_graceful_shutdown()
    assert next(watch).status == Status.NOT_SERVING
    assert check() == Status.NOT_SERVING
    assert census.ready() == 1  # only the sibling's slot is left
    watch.cancel()
