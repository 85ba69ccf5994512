"""Explain behind the trust file: the `explain` scope, and a tenant sees only its lists."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from prometheus_client import CollectorRegistry
from pyroaring import BitMap64

from suppression.archive import ArchiveOptions, ChangeArchive
from suppression.auth import AuthInterceptor, TrustStore
from suppression.datasource import DataSource
from suppression.e164 import Normalizer
from suppression.entries import Entry, encode_entry
from suppression.lists import ListInfo, ListKind, ListView, Op, Version
from suppression.metrics import ServiceMetrics
from suppression.replica import Replica
from suppression.service import SuppressionServicer
from suppression.snapshot import write_snapshot
from suppression.v1 import suppression_pb2 as pb
from suppression.v1 import suppression_pb2_grpc as pb_grpc
from tests.trust_samples import NOW, bearer, tokens, trust_toml

pytestmark = pytest.mark.integration

US = 12125550123
LISTS = {
    "internal": ListKind.OPT_OUT,
    "national": ListKind.REGISTRY,
    "globex_campaign": ListKind.CAMPAIGN,
}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[pb_grpc.SuppressionStub, dict[str, str]]]:
    data = tmp_path / "data"
    empty = ListView(
        Version(1000, 0),
        {name: BitMap64() for name in LISTS},
        {name: ListInfo(name, kind) for name, kind in LISTS.items()},
        (),
    )
    write_snapshot(data, empty)
    archive = ChangeArchive(ArchiveOptions(data / "archive", fsync=False))
    archive.open()
    archive.start(empty)
    for ms, name in ((2000, "internal"), (3000, "national"), (4000, "globex_campaign")):
        entry = Entry(Op.ADD, name, LISTS[name], "in_call", (US,), evidence=f"e-{name}")
        fields = {k.encode(): v.encode() for k, v in encode_entry(entry).items()}
        archive.append([(f"{ms}-0".encode(), fields)], empty)
    archive.close()
    replica = Replica(DataSource(data_dir=data))
    replica.start()
    the_tokens = tokens()
    trust_file = tmp_path / "trust.toml"
    trust_file.write_text(trust_toml(the_tokens))
    registry = CollectorRegistry()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=2),
        interceptors=[AuthInterceptor(TrustStore(trust_file, clock=lambda: NOW))],
    )
    servicer = SuppressionServicer(replica, ServiceMetrics(registry), normalizer=Normalizer(100))
    pb_grpc.add_SuppressionServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield pb_grpc.SuppressionStub(channel), the_tokens
    finally:
        channel.close()
        server.stop(None)


def test_explain_needs_its_scope_and_shows_only_the_tenants_lists(
    served: tuple[pb_grpc.SuppressionStub, dict[str, str]],
) -> None:
    stub, the_tokens = served
    request = pb.ExplainRequest(number_e164=US, version="4000-0")
    with pytest.raises(grpc.RpcError) as refused:
        stub.Explain(request, metadata=bearer(the_tokens["checker"]), timeout=10)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    acme = stub.Explain(request, metadata=bearer(the_tokens["explainer"]), timeout=10)
    assert [(item.name, item.on_list) for item in acme.lists] == [
        ("internal", True),
        ("national", True),
    ]
    assert "globex" not in acme.SerializeToString().decode("latin-1")
    everything = stub.Explain(request, metadata=bearer(the_tokens["admin"]), timeout=10)
    assert [item.name for item in everything.lists] == ["globex_campaign", "internal", "national"]
