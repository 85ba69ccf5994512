"""Error messages quote at most a short prefix of what the caller sent."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest

from suppression.v1 import suppression_pb2 as pb
from tests.conftest import InProcessServer
from tests.samples import make_lists


@pytest.mark.parametrize(
    "request_",
    [
        pb.CheckRequest(e164=[12125550000], lists=["n" * 100_000]),
        pb.CheckRequest(numbers=["2125550100"], default_region="R" * 100_000),
        pb.SuppressRequest(list="n" * 100_000, e164=[12125550000]),
    ],
    ids=["list", "region", "write-list"],
)
def test_errors_quote_only_a_short_prefix(
    start_server: Callable[..., InProcessServer], request_: object
) -> None:
    server = start_server(make_lists())
    method = server.stub.Suppress if isinstance(request_, pb.SuppressRequest) else server.stub.Check
    with pytest.raises(grpc.RpcError) as raised:
        method(request_, timeout=5)
    code = raised.value.code()
    details = raised.value.details() or ""
    if isinstance(request_, pb.SuppressRequest):
        # No change log here, so writes are refused first; still short.
        assert code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION)
    else:
        assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert len(details) < 400, details[:200]
