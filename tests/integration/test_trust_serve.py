"""`suppression serve` with TLS, a trust file and quotas: the real command, called over TLS.

The trust parts are tested alone in tests/unit/test_auth.py and friends; this
checks that the server puts them together: the refusal to run exposed, tenants
and scopes on the real servicer, the actor of a write, and the quota.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from pyroaring import BitMap64

from suppression.lists import ListInfo, ListKind, SuppressionLists, Version
from suppression.snapshot import write_snapshot
from suppression.v1 import suppression_pb2 as pb
from suppression.v1 import suppression_pb2_grpc as pb_grpc
from tests.certs import make_ca, secure_channel, server_cert
from tests.conftest import REPO, RedisServer, ServerSubprocess
from tests.trust_samples import bearer, tokens, trust_toml

pytestmark = pytest.mark.integration

CN, US, OTHER = 8613800138000, 12125550123, 12025550147


def _snapshot(directory: Path) -> Path:
    lists = SuppressionLists(
        {
            "national": BitMap64([US]),
            "internal": BitMap64([CN]),
            "acme_campaign": BitMap64([OTHER]),
            "globex_campaign": BitMap64([OTHER]),
        },
        infos=[
            ListInfo("national", ListKind.REGISTRY),
            ListInfo("acme_campaign", ListKind.CAMPAIGN),
            ListInfo("globex_campaign", ListKind.CAMPAIGN),
        ],
        version=Version(1, 0),
    )
    write_snapshot(directory, lists.view)
    return directory


def _serve_once(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPPRESSION_")}
    return subprocess.run(
        [sys.executable, "-m", "suppression.cli", "serve", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=REPO,
        check=False,
    )


def test_serve_refuses_a_network_address_without_tls_and_authentication(tmp_path: Path) -> None:
    data = _snapshot(tmp_path / "data")
    result = _serve_once("--data-dir", str(data), "--host", "0.0.0.0", "--port", "0")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--insecure" in lines[0] and "TLS" in lines[0], result.stderr


@pytest.fixture
def secured(
    tmp_path: Path,
    redis_server: RedisServer,
    serve_subprocess: Callable[..., ServerSubprocess],
) -> tuple[ServerSubprocess, dict[str, str], Callable[[], grpc.Channel]]:
    ca = make_ca(tmp_path, "ca")
    cert = server_cert(tmp_path, ca)
    issued = tokens()
    trust = tmp_path / "trust.toml"
    trust.write_text(trust_toml(issued))
    server = serve_subprocess(
        "--data-dir", str(_snapshot(tmp_path / "data")),
        "--redis-url", redis_server.url,
        "--tls-cert", str(cert.cert), "--tls-key", str(cert.key),
        "--trust-file", str(trust),
        "--quota-dir", str(tmp_path / "quota"),
        "--metrics-port", "0",
    )  # fmt: skip

    def channel() -> grpc.Channel:
        return secure_channel(server.port, ca)

    from tests.conftest import wait_for

    def serving() -> bool:
        if server.process.poll() is not None:
            raise AssertionError(f"server exited early:\n{server.log()}")
        with channel() as probe:
            try:
                status = pb_grpc.SuppressionStub(probe).GetStatus(
                    pb.GetStatusRequest(), metadata=bearer(issued["admin"]), timeout=2
                )
            except grpc.RpcError:
                return False
            return bool(status.ready)

    wait_for(serving, 30, "the TLS server")
    return server, issued, channel


def test_tenants_scopes_actor_and_quota_through_the_real_server(
    secured: tuple[ServerSubprocess, dict[str, str], Callable[[], grpc.Channel]],
    redis_server: RedisServer,
) -> None:
    _server, issued, channel = secured
    with channel() as tls:
        stub = pb_grpc.SuppressionStub(tls)
        # No credentials: UNAUTHENTICATED.
        with pytest.raises(grpc.RpcError) as caught:
            stub.Check(pb.CheckRequest(e164=[CN]), timeout=10)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # acme's defaults include its own campaign; globex never sees acme's lists.
        acme = stub.Check(pb.CheckRequest(e164=[OTHER]), metadata=bearer(issued["checker"]))
        assert list(acme.verdicts) == [pb.SUPPRESSED]
        assert "globex_campaign" not in acme.list_names
        with pytest.raises(grpc.RpcError) as caught:
            stub.Check(
                pb.CheckRequest(e164=[OTHER], lists=["acme_campaign"]),
                metadata=bearer(issued["globex"]),
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        # A checker cannot write; a writer cannot release an opt-out.
        with pytest.raises(grpc.RpcError) as caught:
            stub.Suppress(
                pb.SuppressRequest(e164=[OTHER], list="internal", source="in_call"),
                metadata=bearer(issued["checker"]),
            )
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "write" in (caught.value.details() or "")
        written = stub.Suppress(
            pb.SuppressRequest(e164=[OTHER], list="internal", source="in_call", actor="agent-7"),
            metadata=bearer(issued["writer"]),
            timeout=10,
        )
        assert written.version
        with pytest.raises(grpc.RpcError) as caught:
            stub.Release(
                pb.ReleaseRequest(
                    e164=[OTHER], list="internal", source="consent", evidence="form-1"
                ),
                metadata=bearer(issued["writer"]),
            )
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "consent" in (caught.value.details() or "")
        # GetStatus lists are for administrators.
        plain = stub.GetStatus(pb.GetStatusRequest(), metadata=bearer(issued["checker"]))
        assert plain.ready and not plain.lists
        full = stub.GetStatus(pb.GetStatusRequest(), metadata=bearer(issued["admin"]))
        assert {item.name for item in full.lists} >= {"national", "internal"}
        # The tiny identity's burst is 5 numbers.
        stub.Check(pb.CheckRequest(e164=[CN] * 5), metadata=bearer(issued["tiny"]))
        with pytest.raises(grpc.RpcError) as caught:
            stub.Check(pb.CheckRequest(e164=[CN] * 5), metadata=bearer(issued["tiny"]))
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # The change log records who wrote, whatever the caller claimed.
    import redis

    client = redis.Redis.from_url(redis_server.url)
    (_, fields), *_ = client.xrevrange("suppression:deltas", count=1)
    assert fields[b"actor"] == b"writer/agent-7"
