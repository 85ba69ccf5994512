"""TLS for the gRPC server from certificate files, reloaded without a restart; safe defaults.

:class:`ReloadingCertificates` gives :func:`grpc.dynamic_ssl_server_credentials` a
fetcher that gRPC calls at each new connection's handshake. It re-reads the files
only when one of them changed (mtime, size or inode: one ``stat`` per file per
handshake), and only if the new key matches the new certificate; otherwise it
keeps serving the previous pair, so a half-finished rotation (certificate renamed
into place, key not yet) never breaks new connections.

:func:`check_exposure` decides whether a server may start at all.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

import grpc
from prometheus_client import CollectorRegistry, Counter

from suppression.errors import ConfigError

__all__ = ["ReloadingCertificates", "TlsFiles", "check_exposure", "is_loopback"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """Where the server's certificate, key and client CA are."""

    cert_file: Path
    """PEM certificate chain of the server, leaf first."""
    key_file: Path
    """PEM private key of the certificate."""
    client_ca_file: Path | None = None
    """PEM CA certificates that sign client certificates. With it, every client
    must present a certificate signed by one of them (mutual TLS): gRPC Python
    either requires and verifies client certificates or does not ask for them,
    it cannot ask for an optional one. A client certificate may name no identity,
    and the call then authenticates with a bearer token."""

    def paths(self) -> tuple[Path, ...]:
        """Every file, for watching."""
        ca = () if self.client_ca_file is None else (self.client_ca_file,)
        return (self.cert_file, self.key_file, *ca)


def _signature(paths: tuple[Path, ...]) -> tuple[tuple[int, int, int], ...]:
    result = []
    for path in paths:
        stat = os.stat(path)
        result.append((stat.st_mtime_ns, stat.st_size, stat.st_ino))
    return tuple(result)


@dataclass(frozen=True, slots=True)
class _Loaded:
    cert: bytes
    key: bytes
    client_ca: bytes | None


def _read(files: TlsFiles) -> _Loaded:
    """Read the files and check that the key belongs to the certificate.

    Raises:
        ConfigError: a file is missing or unreadable, or key and certificate do not match.
    """
    try:
        cert = files.cert_file.read_bytes()
        key = files.key_file.read_bytes()
        client_ca = None if files.client_ca_file is None else files.client_ca_file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {exc.filename}: {exc.strerror}") from exc
    check = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        check.load_cert_chain(files.cert_file, files.key_file)
        if files.client_ca_file is not None:
            check.load_verify_locations(cafile=files.client_ca_file)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(
            f"TLS files {files.cert_file} and {files.key_file} do not form a usable pair "
            f"({exc}); give the key that matches the certificate, in PEM"
        ) from exc
    return _Loaded(cert, key, client_ca)


def _configuration(loaded: _Loaded) -> grpc.ServerCertificateConfiguration:
    return grpc.ssl_server_certificate_configuration(
        [(loaded.key, loaded.cert)], root_certificates=loaded.client_ca
    )


class ReloadingCertificates:
    """Server credentials over files that may be replaced while the server runs."""

    def __init__(self, files: TlsFiles, registry: CollectorRegistry | None = None) -> None:
        """Load the files now.

        Args:
            files: the certificate, key and optional client CA.
            registry: where to count reloads (``suppression_tls_reloads_total{result}``).

        Raises:
            ConfigError: a file is missing, or the key does not match the certificate.
        """
        self._files = files
        self._lock = threading.Lock()
        try:
            # Before reading: a change after the stat shows at the next handshake.
            self._signature = _signature(files.paths())
        except OSError as exc:
            raise ConfigError(f"cannot read {exc.filename}: {exc.strerror}") from exc
        self._loaded = _read(files)
        self._reloads = Counter(
            "suppression_tls_reloads",
            "Certificate reloads of the gRPC server, by result (ok, failed).",
            ["result"],
            registry=registry,
        )
        self.reloaded = 0
        """Successful reloads since start."""
        self.failed = 0
        """Reloads refused since start (the previous files stay in use)."""

    def credentials(self) -> grpc.ServerCredentials:
        """Credentials for ``server.add_secure_port``; they call :meth:`fetch` per handshake."""
        return grpc.dynamic_ssl_server_credentials(
            _configuration(self._loaded),
            self.fetch,
            require_client_authentication=self._files.client_ca_file is not None,
        )

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """The fetcher gRPC calls per handshake: a new configuration if files changed, else None."""
        try:
            signature = _signature(self._files.paths())
        except OSError as exc:
            # A rename in progress: keep the old pair, look again at the next handshake.
            logger.warning("TLS file missing during rotation, keeping the previous ones: %s", exc)
            return None
        with self._lock:
            if signature == self._signature:
                return None
            self._signature = signature
            try:
                loaded = _read(self._files)
            except ConfigError as exc:
                self.failed += 1
                self._reloads.labels("failed").inc()
                logger.error("keeping the previous TLS certificate: %s", exc)
                return None
            self._loaded = loaded
            self.reloaded += 1
            self._reloads.labels("ok").inc()
        logger.info("TLS certificate reloaded from %s", self._files.cert_file)
        return _configuration(loaded)


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` exposes the port only to this machine.

    ``localhost``, ``127.0.0.0/8``, ``::1`` and Unix sockets are local; the
    wildcards (``[::]``, ``0.0.0.0``, empty) and every other name are not.
    """
    host = host.strip()
    if host.startswith("unix:") or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(
    host: str, *, tls: bool, authentication: bool, insecure: bool, what: str = "gRPC"
) -> str | None:
    """Decide whether a server may listen on ``host``.

    Args:
        host: the address to bind, without the port.
        tls: TLS is configured.
        authentication: a trust file (tokens or client certificates) is configured.
        insecure: the operator accepted the risk (``--insecure``).
        what: the server's name, for the message.

    Returns:
        None to go ahead, else a one-line refusal that says what to do. With
        ``insecure`` on a network address it still goes ahead (the caller logs a warning).
    """
    if is_loopback(host) or (tls and authentication) or insecure:
        return None
    missing = " and ".join(
        part for part, present in (("TLS", tls), ("authentication", authentication)) if not present
    )
    return (
        f"refusing to serve {what} on {host} without {missing}: give --tls-cert and --tls-key "
        "and --trust-file, bind a loopback address, or pass --insecure to accept the risk"
    )
