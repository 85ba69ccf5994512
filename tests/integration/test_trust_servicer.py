"""The trust pieces in front of the production servicer, as create_server is to assemble them.

In one process: a real :class:`Replica` over test lists, the real
:class:`SuppressionServicer`, the metrics interceptor then the auth interceptor,
TLS credentials that reload, the shared quota, over a real TLS connection.
What the servicer itself must still do (tenant lists, list-level scopes, the
actor) is covered with the small servicer in tests/unit/test_auth.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from prometheus_client import CollectorRegistry
from pyroaring import BitMap64

from suppression.auth import RETRY_AFTER_KEY, AuthInterceptor, TrustStore
from suppression.e164 import Normalizer
from suppression.interceptor import MetricsInterceptor
from suppression.lists import ListInfo, ListKind, SuppressionLists, Version
from suppression.metrics import GrpcServerMetrics, ServiceMetrics
from suppression.quota import IdentityMetrics, SharedQuota
from suppression.replica import Replica
from suppression.service import SuppressionServicer
from suppression.tls import ReloadingCertificates, TlsFiles
from suppression.v1 import suppression_pb2 as pb
from suppression.v1 import suppression_pb2_grpc as pb_grpc
from tests.certs import Pem, make_ca, secure_channel, server_cert
from tests.conftest import replica_data
from tests.trust_samples import NOW, bearer, tokens, trust_toml

CN = 8613800138000
US = 12125550123


@dataclass
class Assembled:
    stub: pb_grpc.SuppressionStub
    tokens: dict[str, str]
    registry: CollectorRegistry
    replica: Replica


@pytest.fixture
def assembled(tmp_path: Path) -> Iterator[Assembled]:
    lists = SuppressionLists(
        {"internal": BitMap64([CN]), "national": BitMap64([US]), "acme_campaign": BitMap64()},
        infos=[
            ListInfo("national", ListKind.REGISTRY),
            ListInfo("acme_campaign", ListKind.CAMPAIGN),
        ],
        version=Version(1700000000000, 7),
    )
    replica = Replica(replica_data(lists))
    replica.start()
    registry = CollectorRegistry()
    the_tokens = tokens()
    trust_file = tmp_path / "trust.toml"
    trust_file.write_text(trust_toml(the_tokens))
    quota = SharedQuota.create(tmp_path / "quota", slots=64, clock=lambda: 10.0)
    ca: Pem = make_ca(tmp_path, "ca")
    certificate = server_cert(tmp_path, ca)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4),
        interceptors=[
            MetricsInterceptor(GrpcServerMetrics(registry)),
            AuthInterceptor(
                TrustStore(trust_file, clock=lambda: NOW),
                quota=quota,
                metrics=IdentityMetrics(registry),
            ),
        ],
    )
    pb_grpc.add_SuppressionServicer_to_server(  # type: ignore[no-untyped-call]
        SuppressionServicer(replica, ServiceMetrics(registry), normalizer=Normalizer(1000)), server
    )
    credentials = ReloadingCertificates(
        TlsFiles(certificate.cert, certificate.key), registry
    ).credentials()
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    channel = secure_channel(port, ca)
    try:
        yield Assembled(pb_grpc.SuppressionStub(channel), the_tokens, registry, replica)
    finally:
        channel.close()
        server.stop(None)
        quota.close(remove=True)


def _refusal(call: object) -> grpc.Call:
    assert callable(call)
    with pytest.raises(grpc.RpcError) as refused:
        call()
    assert isinstance(refused.value, grpc.Call)
    return refused.value


def test_check_over_tls_with_a_token(assembled: Assembled) -> None:
    answer = assembled.stub.Check(
        pb.CheckRequest(e164=[CN, US, 12025550147], lists=["internal", "national"]),
        metadata=bearer(assembled.tokens["checker"]),
    )
    assert list(answer.verdicts) == [pb.SUPPRESSED, pb.SUPPRESSED, pb.ALLOWED]
    assert (
        assembled.registry.get_sample_value(
            "suppression_identity_numbers_checked_total", {"identity": "checker"}
        )
        == 3
    )


def test_a_list_added_later_is_checked_for_a_tenant_that_sees_every_list(
    assembled: Assembled,
) -> None:
    admin = bearer(assembled.tokens["admin"])
    first = assembled.stub.Check(pb.CheckRequest(e164=[12025550147]), metadata=admin)
    assert list(first.list_names) == ["acme_campaign", "internal", "national"]
    assert list(first.verdicts) == [pb.ALLOWED]
    lists = assembled.replica.lists
    assert lists is not None
    view = lists.view
    bitmaps = {**view.bitmaps, "globex_campaign": BitMap64([12025550147])}
    infos = {**view.infos, "globex_campaign": ListInfo("globex_campaign", ListKind.CAMPAIGN)}
    lists.replace(
        SuppressionLists(bitmaps, infos=list(infos.values()), version=view.version.next()).view
    )
    # The servicer remembers which lists a tenant reads; a new list must not be missed.
    second = assembled.stub.Check(pb.CheckRequest(e164=[12025550147]), metadata=admin)
    assert list(second.list_names) == ["acme_campaign", "globex_campaign", "internal", "national"]
    assert list(second.verdicts) == [pb.SUPPRESSED]


def test_the_real_servicer_is_closed_without_credentials_or_scope(assembled: Assembled) -> None:
    error = _refusal(lambda: assembled.stub.Check(pb.CheckRequest(e164=[CN])))
    assert error.code() is grpc.StatusCode.UNAUTHENTICATED
    error = _refusal(
        lambda: assembled.stub.Suppress(
            pb.SuppressRequest(e164=[CN], list="internal"),
            metadata=bearer(assembled.tokens["checker"]),
        )
    )
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "lacks scope write for Suppress" in (error.details() or "")


def test_quota_stops_a_stream_of_the_real_servicer(assembled: Assembled) -> None:
    requests = iter([pb.CheckRequest(e164=[CN, US], request_id=i) for i in range(4)])
    responses = assembled.stub.CheckStream(requests, metadata=bearer(assembled.tokens["tiny"]))
    assert [next(responses).request_id for _ in range(2)] == [0, 1]
    error = _refusal(lambda: next(responses))
    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert int(dict(error.trailing_metadata() or ())[RETRY_AFTER_KEY]) > 0
    handled = assembled.registry.get_sample_value(
        "grpc_server_handled_total",
        {
            "grpc_type": "bidi_stream",
            "grpc_service": "suppression.v1.Suppression",
            "grpc_method": "CheckStream",
            "grpc_code": "ResourceExhausted",
        },
    )
    assert handled == 1
