"""Test certificates made with openssl in a temporary directory, and TLS channels to servers."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import grpc


@dataclass(frozen=True)
class Pem:
    cert: Path
    key: Path


def make_ca(directory: Path, name: str) -> Pem:
    """A self-signed CA certificate and key."""
    pem = Pem(directory / f"{name}.crt", directory / f"{name}.key")
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-days", "2", "-subj", f"/CN={name}",
        "-keyout", str(pem.key), "-out", str(pem.cert),
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    return pem


def make_cert(directory: Path, ca: Pem, name: str, sans: tuple[str, ...] = ()) -> Pem:
    """A leaf certificate with CN ``name`` and the given SANs (``DNS:x``, ``IP:y``)."""
    pem = Pem(directory / f"{name}.crt", directory / f"{name}.key")
    request = directory / f"{name}.csr"
    extensions = directory / f"{name}.ext"
    lines = ["basicConstraints=CA:FALSE", "extendedKeyUsage=serverAuth,clientAuth"]
    if sans:
        lines.append("subjectAltName=" + ",".join(sans))
    extensions.write_text("\n".join(lines) + "\n")
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-subj", f"/CN={name}", "-keyout", str(pem.key), "-out", str(request),
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", str(request), "-CA", str(ca.cert), "-CAkey", str(ca.key),
        "-CAcreateserial", "-days", "2", "-extfile", str(extensions), "-out", str(pem.cert),
    )  # fmt: skip
    return pem


def server_cert(directory: Path, ca: Pem, name: str = "server") -> Pem:
    return make_cert(directory, ca, name, ("DNS:localhost", "IP:127.0.0.1"))


def replace_file(source: Path, target: Path) -> None:
    """Put ``source``'s bytes at ``target`` atomically, as a certificate rotation does."""
    staging = target.with_suffix(target.suffix + ".new")
    staging.write_bytes(source.read_bytes())
    os.replace(staging, target)


def secure_channel(
    port: int, ca: Pem, client: Pem | None = None, *, hostname: str = "localhost"
) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca.cert.read_bytes(),
        private_key=None if client is None else client.key.read_bytes(),
        certificate_chain=None if client is None else client.cert.read_bytes(),
    )
    # Each test channel gets its own connection, so a handshake happens for it.
    options = [("grpc.ssl_target_name_override", hostname), ("grpc.use_local_subchannel_pool", 1)]
    return grpc.secure_channel(f"127.0.0.1:{port}", credentials, options=options)


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)
