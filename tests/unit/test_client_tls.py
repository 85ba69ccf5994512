"""The client over TLS and mutual TLS to a real server; certificates made with ``openssl``."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from prometheus_client import CollectorRegistry
from pyroaring import BitMap64

from suppression.client import (
    ClientConfig,
    RetryPolicy,
    SuppressionClient,
    TlsConfig,
    UnavailableError,
    Verdict,
)
from suppression.lists import SuppressionLists, Version
from suppression.metrics import ServiceMetrics
from suppression.replica import Replica
from suppression.service import SuppressionServicer
from suppression.v1 import suppression_pb2_grpc as pb_grpc
from tests.conftest import replica_data

US = 12125550123
ONCE = RetryPolicy(max_attempts=1)


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _ca(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-days", "2", "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(cert),
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    return cert, key


def _leaf(directory: Path, ca: tuple[Path, Path], name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    request, extensions = directory / f"{name}.csr", directory / f"{name}.ext"
    extensions.write_text(
        "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n"
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
    )
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(request),
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", str(request), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
        "-CAcreateserial", "-days", "2", "-extfile", str(extensions), "-out", str(cert),
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    directory = tmp_path_factory.mktemp("pki")
    ca, other = _ca(directory, "ca"), _ca(directory, "other-ca")
    return {
        "ca": ca,
        "other": other,
        "server": _leaf(directory, ca, "server"),
        "client": _leaf(directory, ca, "client"),
    }


@pytest.fixture
def mtls_target(pki: dict[str, tuple[Path, Path]]) -> Iterator[str]:
    """A real server that requires a client certificate signed by the test CA."""
    replica = Replica(
        replica_data(SuppressionLists({"national": BitMap64([US])}, version=Version(1, 1)))
    )
    replica.start()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    pb_grpc.add_SuppressionServicer_to_server(  # type: ignore[no-untyped-call]
        SuppressionServicer(replica, ServiceMetrics(CollectorRegistry())), server
    )
    cert, key = pki["server"]
    credentials = grpc.ssl_server_credentials(
        [(key.read_bytes(), cert.read_bytes())],
        root_certificates=pki["ca"][0].read_bytes(),
        require_client_auth=True,
    )
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(None)


def test_mutual_tls(mtls_target: str, pki: dict[str, tuple[Path, Path]]) -> None:
    tls = TlsConfig(
        root_certificates=pki["ca"][0],
        certificate_chain=pki["client"][0],
        private_key=pki["client"][1],
    )
    with SuppressionClient(ClientConfig(targets=(mtls_target,), tls=tls)) as suppression:
        assert suppression.check_one(US)[0].verdict is Verdict.SUPPRESSED


def test_a_name_override_for_a_target_given_by_another_name(
    mtls_target: str, pki: dict[str, tuple[Path, Path]]
) -> None:
    tls = TlsConfig(
        root_certificates=pki["ca"][0],
        certificate_chain=pki["client"][0],
        private_key=pki["client"][1],
        server_name="localhost",
    )
    with SuppressionClient(ClientConfig(targets=(mtls_target,), tls=tls)) as suppression:
        assert suppression.status().version == "1-1"


@pytest.mark.parametrize("case", ["no client certificate", "server signed by another CA"])
def test_a_failed_handshake_is_unavailable(
    case: str, mtls_target: str, pki: dict[str, tuple[Path, Path]]
) -> None:
    if case == "no client certificate":
        tls = TlsConfig(root_certificates=pki["ca"][0])
    else:
        tls = TlsConfig(
            root_certificates=pki["other"][0],
            certificate_chain=pki["client"][0],
            private_key=pki["client"][1],
        )
    config = ClientConfig(targets=(mtls_target,), tls=tls, retry=ONCE, timeout=5)
    with SuppressionClient(config) as suppression, pytest.raises(UnavailableError):
        suppression.check_one(US)


def test_a_certificate_without_its_key_is_refused(pki: dict[str, tuple[Path, Path]]) -> None:
    with pytest.raises(ValueError, match="both certificate_chain and private_key"):
        TlsConfig(certificate_chain=pki["client"][0])
