"""TLS from files, reloaded at the next handshake; mTLS; the refusal to serve insecurely.

Certificates are made with the ``openssl`` command in a temporary directory.
``make_ca`` and ``make_cert`` are also used by the other trust tests.
"""

from __future__ import annotations

import time
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry

from suppression.errors import ConfigError
from suppression.tls import ReloadingCertificates, TlsFiles, check_exposure, is_loopback
from tests.certs import Pem, make_ca, make_cert, replace_file, secure_channel, server_cert


def health_ok(channel: grpc.Channel, timeout: float = 5.0) -> bool:
    stub = health_pb2_grpc.HealthStub(channel)
    try:
        stub.Check(health_pb2.HealthCheckRequest(), timeout=timeout)
    except grpc.RpcError:
        return False
    return True


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Pem]:
    directory = tmp_path_factory.mktemp("pki")
    ca = make_ca(directory, "ca")
    other_ca = make_ca(directory, "other-ca")
    return {
        "ca": ca,
        "other_ca": other_ca,
        "server": server_cert(directory, ca),
        "server2": server_cert(directory, other_ca, "server2"),
        "client": make_cert(directory, ca, "acme-dialer", ("DNS:dialer.acme.example",)),
        "rogue": make_cert(directory, other_ca, "rogue", ("DNS:dialer.acme.example",)),
    }


def _serve(certificates: ReloadingCertificates) -> tuple[grpc.Server, int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_secure_port("127.0.0.1:0", certificates.credentials())
    server.start()
    return server, port


def _live_files(tmp_path: Path, server: Pem, ca: Pem | None = None) -> TlsFiles:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    replace_file(server.cert, cert)
    replace_file(server.key, key)
    client_ca = None
    if ca is not None:
        client_ca = tmp_path / "client-ca.crt"
        replace_file(ca.cert, client_ca)
    return TlsFiles(cert, key, client_ca)


def _eventually(condition: object, deadline: float = 10.0) -> bool:
    """Poll ``condition`` until true or the deadline passes."""
    assert callable(condition)
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if condition():
            return True
    return False


def test_serves_tls_from_files(tmp_path: Path, pki: dict[str, Pem]) -> None:
    server, port = _serve(ReloadingCertificates(_live_files(tmp_path, pki["server"])))
    try:
        with secure_channel(port, pki["ca"]) as channel:
            assert health_ok(channel)
        with secure_channel(port, pki["other_ca"]) as channel:
            assert not health_ok(channel, timeout=2.0)
    finally:
        server.stop(None)


def test_reloads_a_rotated_certificate_without_restart(tmp_path: Path, pki: dict[str, Pem]) -> None:
    registry = CollectorRegistry()
    files = _live_files(tmp_path, pki["server"])
    certificates = ReloadingCertificates(files, registry)
    server, port = _serve(certificates)
    try:
        with secure_channel(port, pki["ca"]) as channel:
            assert health_ok(channel)
        replace_file(pki["server2"].key, files.key_file)
        replace_file(pki["server2"].cert, files.cert_file)

        def new_certificate_served() -> bool:
            with secure_channel(port, pki["other_ca"]) as channel:
                return health_ok(channel, timeout=2.0)

        assert _eventually(new_certificate_served)
        with secure_channel(port, pki["ca"]) as channel:
            assert not health_ok(channel, timeout=2.0)
        assert certificates.reloaded >= 1
        assert registry.get_sample_value("suppression_tls_reloads_total", {"result": "ok"}) >= 1
    finally:
        server.stop(None)


def test_a_key_that_does_not_match_keeps_the_previous_pair(
    tmp_path: Path, pki: dict[str, Pem]
) -> None:
    files = _live_files(tmp_path, pki["server"])
    certificates = ReloadingCertificates(files)
    server, port = _serve(certificates)
    try:
        # Half a rotation: the new certificate is in place, its key is not.
        replace_file(pki["server2"].cert, files.cert_file)
        assert certificates.fetch() is None
        assert certificates.failed == 1
        with secure_channel(port, pki["ca"]) as channel:
            assert health_ok(channel)
        replace_file(pki["server2"].key, files.key_file)
        assert certificates.fetch() is not None
        assert certificates.reloaded == 1
    finally:
        server.stop(None)


def test_unchanged_files_are_not_reloaded(tmp_path: Path, pki: dict[str, Pem]) -> None:
    certificates = ReloadingCertificates(_live_files(tmp_path, pki["server"]))
    assert certificates.fetch() is None
    assert certificates.fetch() is None
    assert certificates.reloaded == 0


def test_mutual_tls_requires_a_certificate_from_the_client_ca(
    tmp_path: Path, pki: dict[str, Pem]
) -> None:
    files = _live_files(tmp_path, pki["server"], ca=pki["ca"])
    server, port = _serve(ReloadingCertificates(files))
    try:
        with secure_channel(port, pki["ca"], pki["client"]) as channel:
            assert health_ok(channel)
        with secure_channel(port, pki["ca"]) as channel:
            assert not health_ok(channel, timeout=2.0), "no client certificate"
        with secure_channel(port, pki["ca"], pki["rogue"]) as channel:
            assert not health_ok(channel, timeout=2.0), "a certificate from another CA"
    finally:
        server.stop(None)


def test_files_that_do_not_work_are_refused_at_start(tmp_path: Path, pki: dict[str, Pem]) -> None:
    with pytest.raises(ConfigError, match="do not form a usable pair"):
        ReloadingCertificates(TlsFiles(pki["server"].cert, pki["client"].key))
    with pytest.raises(ConfigError, match="cannot read"):
        ReloadingCertificates(TlsFiles(tmp_path / "absent.crt", pki["server"].key))


@pytest.mark.parametrize(
    ("host", "local"),
    [
        ("127.0.0.1", True),
        ("127.8.0.1", True),
        ("[::1]", True),
        ("localhost", True),
        ("unix:/run/suppression.sock", True),
        ("[::]", False),
        ("0.0.0.0", False),
        ("", False),
        ("10.0.0.5", False),
        ("suppression.internal", False),
    ],
)
def test_is_loopback(host: str, local: bool) -> None:
    assert is_loopback(host) is local


def test_refuses_to_serve_a_network_address_insecurely() -> None:
    refusal = check_exposure("[::]", tls=False, authentication=False, insecure=False)
    assert refusal is not None
    assert "\n" not in refusal
    assert "without TLS and authentication" in refusal
    assert "--insecure" in refusal
    partial = check_exposure("0.0.0.0", tls=True, authentication=False, insecure=False)
    assert partial is not None and "without authentication" in partial


def test_allows_loopback_secured_or_explicitly_insecure() -> None:
    assert check_exposure("127.0.0.1", tls=False, authentication=False, insecure=False) is None
    assert check_exposure("[::]", tls=True, authentication=True, insecure=False) is None
    assert check_exposure("[::]", tls=False, authentication=False, insecure=True) is None
