"""The servicer over a real in-process gRPC server on a free port."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import given
from hypothesis import strategies as st
from pyroaring import BitMap64

from suppression.lists import ListInfo, ListKind, ListView, SuppressionLists, Version
from suppression.v1 import suppression_pb2 as pb
from tests.conftest import InProcessServer

CN = 8613800138000
US = 12125550123


def demo_lists() -> SuppressionLists:
    premium = BitMap64()
    premium.add_range(19000000000, 19010000000)
    return SuppressionLists(
        {"internal": BitMap64([CN]), "national": BitMap64([US]), "premium": premium},
        infos=[ListInfo("national", ListKind.REGISTRY), ListInfo("premium", ListKind.CAMPAIGN)],
        version=Version(1700000000000, 7),
    )


def test_check_answers_with_version_and_parallel_arrays(
    start_server: Callable[..., InProcessServer],
) -> None:
    server = start_server(demo_lists())
    response = server.stub.Check(
        pb.CheckRequest(
            e164=[US, 19005550199, 12025550147],
            numbers=["+86 138 0013 8000", "nonsense"],
            default_region="CN",
            request_id=42,
        )
    )
    assert list(response.verdicts) == [
        pb.SUPPRESSED,
        pb.SUPPRESSED,
        pb.ALLOWED,
        pb.SUPPRESSED,
        pb.INVALID,
    ]
    assert list(response.list_names) == ["internal", "national", "premium"]
    assert list(response.matched) == [0b010, 0b100, 0, 0b001, 0]
    assert dict(response.invalid_reasons) == {4: pb.UNPARSEABLE}
    assert list(response.normalized) == [CN, 0]
    assert (response.version, response.stale, response.request_id) == ("1700000000000-7", False, 42)


def test_named_lists_and_request_errors(start_server: Callable[..., InProcessServer]) -> None:
    server = start_server(demo_lists(), max_batch=5)
    response = server.stub.Check(pb.CheckRequest(e164=[US, CN], lists=["internal"]))
    assert list(response.verdicts) == [pb.ALLOWED, pb.SUPPRESSED]
    assert list(response.list_names) == ["internal"]
    cases = [
        (pb.CheckRequest(e164=[US], lists=["nope"]), "unknown list"),
        (pb.CheckRequest(numbers=["123"], default_region="XX"), "unknown default region"),
        (pb.CheckRequest(e164=[US] * 6), "exceeds the maximum of 5"),
    ]
    for request, message in cases:
        with pytest.raises(grpc.RpcError) as caught:
            server.stub.Check(request)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert message in caught.value.details()


def test_not_ready_until_data_is_loaded(start_server: Callable[..., InProcessServer]) -> None:
    server = start_server(demo_lists(), loaded=False)
    health = health_pb2_grpc.HealthStub(server.channel)
    assert (
        health.Check(health_pb2.HealthCheckRequest()).status
        == health_pb2.HealthCheckResponse.NOT_SERVING
    )
    with pytest.raises(grpc.RpcError) as caught:
        server.stub.Check(pb.CheckRequest(e164=[US]))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert not server.stub.GetStatus(pb.GetStatusRequest()).ready
    server.process.replica.start()
    server.process.sync_health()
    assert (
        health.Check(health_pb2.HealthCheckRequest()).status
        == health_pb2.HealthCheckResponse.SERVING
    )
    assert (
        health.Check(health_pb2.HealthCheckRequest(service="suppression.v1.Suppression")).status
        == health_pb2.HealthCheckResponse.SERVING
    )
    assert list(server.stub.Check(pb.CheckRequest(e164=[US])).verdicts) == [pb.SUPPRESSED]


def test_status_reports_sizes_but_never_numbers(
    start_server: Callable[..., InProcessServer],
) -> None:
    server = start_server(demo_lists())
    status = server.stub.GetStatus(pb.GetStatusRequest())
    assert status.ready and status.version == "1700000000000-7" and status.max_batch == 100_000
    by_name = {entry.name: entry for entry in status.lists}
    assert by_name["premium"].count == 10_000_000
    assert by_name["internal"].count == 1 and by_name["internal"].is_opt_out
    assert not by_name["national"].is_opt_out and by_name["national"].is_default
    assert all(entry.bytes > 0 for entry in status.lists)
    assert str(CN) not in str(status) and str(US) not in str(status)


def test_stream_answers_each_request_in_order(start_server: Callable[..., InProcessServer]) -> None:
    server = start_server(demo_lists())
    requests = [
        pb.CheckRequest(e164=[US, CN, 12025550147][: i % 3 + 1], request_id=i) for i in range(30)
    ]
    answers = list(server.stub.CheckStream(iter(requests)))
    assert [a.request_id for a in answers] == list(range(30))
    assert [len(a.verdicts) for a in answers] == [i % 3 + 1 for i in range(30)]


def test_stream_error_ends_the_stream_with_a_status(
    start_server: Callable[..., InProcessServer],
) -> None:
    server = start_server(demo_lists())
    requests = [pb.CheckRequest(e164=[US]), pb.CheckRequest(e164=[US], lists=["nope"])]
    stream = server.stub.CheckStream(iter(requests))
    assert next(stream).verdicts[0] == pb.SUPPRESSED
    with pytest.raises(grpc.RpcError) as caught:
        next(stream)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_writes_need_a_change_log(start_server: Callable[..., InProcessServer]) -> None:
    server = start_server(demo_lists())
    with pytest.raises(grpc.RpcError) as caught:
        server.stub.Suppress(pb.SuppressRequest(e164=[US], list="internal", source="in_call"))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_largest_batch_fits_the_message_limits(
    start_server: Callable[..., InProcessServer],
) -> None:
    server = start_server(demo_lists())
    batch = [US + k for k in range(100_000)]
    response = server.stub.Check(pb.CheckRequest(e164=batch))
    assert len(response.verdicts) == 100_000
    texts = [f"+{n}" for n in batch]
    response = server.stub.Check(pb.CheckRequest(numbers=texts))
    assert list(response.verdicts).count(pb.SUPPRESSED) == 1


members = st.integers(min_value=8613800138000, max_value=8613800138040)


@pytest.fixture(scope="module")
def shared_server():  # type: ignore[no-untyped-def]
    from prometheus_client import CollectorRegistry

    from suppression.replica import Replica
    from suppression.server import ServerOptions, create_server
    from suppression.v1 import suppression_pb2_grpc as pb_grpc
    from tests.conftest import client_channel, replica_data

    replica = Replica(replica_data(SuppressionLists()))
    replica.start()
    process = create_server(replica, ServerOptions(port=0), CollectorRegistry(), "127.0.0.1:0")
    channel = client_channel(f"127.0.0.1:{process.port}")
    yield process, pb_grpc.SuppressionStub(channel)
    channel.close()
    process.stop(0)


@given(
    model=st.dictionaries(
        st.sampled_from(["x", "y", "z"]), st.sets(members, max_size=20), min_size=1
    ),
    query=st.lists(st.one_of(members, st.integers(min_value=0, max_value=2**64 - 1)), max_size=60),
    as_text=st.booleans(),
)
def test_check_over_grpc_agrees_with_a_set_model(shared_server, model, query, as_text) -> None:  # type: ignore[no-untyped-def]
    process, stub = shared_server
    served = process.replica.lists
    served.replace(
        ListView(
            Version(),
            {n: BitMap64(v) for n, v in model.items()},
            {n: ListInfo(n) for n in model},
            (),
        )
    )
    if as_text:
        request = pb.CheckRequest(numbers=[f"+{n}" for n in query])
    else:
        request = pb.CheckRequest(e164=query)
    response = stub.Check(request)
    names = list(response.list_names)
    assert names == sorted(model)
    from suppression.e164 import e164_reason

    for index, value in enumerate(query):
        mask = sum(1 << bit for bit, name in enumerate(names) if value in model[name])
        if e164_reason(value):
            assert response.verdicts[index] == pb.INVALID
            assert index in response.invalid_reasons
        elif mask:
            assert (response.verdicts[index], response.matched[index]) == (pb.SUPPRESSED, mask)
        else:
            assert (response.verdicts[index], response.matched[index]) == (pb.ALLOWED, 0)
