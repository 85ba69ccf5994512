"""Assembles the server's trust: TLS, authentication, quotas, and the refusal to run exposed.

The parts live in :mod:`suppression.tls`, :mod:`suppression.auth`,
:mod:`suppression.quota` and :mod:`suppression.webconfig`; this module decides,
from the settings, which of them a serving process uses, and in which order
they are built around a fork (the quota table before it, every gRPC object
after it).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from prometheus_client import CollectorRegistry

from suppression.auth import AuthInterceptor, TrustStore, load_trust_file
from suppression.errors import ConfigError
from suppression.quota import IdentityMetrics, SharedQuota
from suppression.settings import Settings
from suppression.tls import ReloadingCertificates, TlsFiles, check_exposure, is_loopback
from suppression.webconfig import load_web_config

__all__ = ["SecurityOptions", "ServerSecurity", "create_quota", "refuse_exposure"]

logger = logging.getLogger(__name__)

_SHARED_MEMORY = Path("/dev/shm")

_TRUST_RECHECK = 1.0
"""Seconds between looks at the trust file: an edit takes effect within about a second."""

_QUOTA_LEASE = 0.01
"""Share of an identity's burst a worker takes from the shared quota table at a time."""


@dataclass(frozen=True, slots=True)
class SecurityOptions:
    """Which trust features a server uses; all off by default (a loopback-only server)."""

    trust_file: Path | None = None
    """Identities, scopes, tenants and quotas; None: no authentication."""
    tls: TlsFiles | None = None
    """The server's certificate files; None: plaintext."""
    quota: SharedQuota | None = None
    """The per-identity quota table shared by every worker (made before forking)."""

    @classmethod
    def from_settings(cls, settings: Settings, quota: SharedQuota | None = None) -> SecurityOptions:
        """The ``serve`` trust options; ``quota`` comes from :func:`create_quota`."""
        tls = None
        if settings.tls_cert is not None and settings.tls_key is not None:
            tls = TlsFiles(settings.tls_cert, settings.tls_key, settings.tls_client_ca)
        return cls(settings.trust_file, tls, quota)


def refuse_exposure(settings: Settings) -> None:
    """Refuse to serve a network address without TLS and authentication, unless --insecure.

    Raises:
        ConfigError: one line saying what to give instead.
    """
    refusal = check_exposure(
        settings.host,
        tls=settings.tls_cert is not None,
        authentication=settings.trust_file is not None,
        insecure=settings.insecure,
    )
    if refusal is not None:
        raise ConfigError(refusal)
    if settings.metrics_port:
        web = load_web_config(settings.web_config_file) if settings.web_config_file else None
        metrics_tls = web is not None and web.tls is not None
        metrics_auth = web is not None and (
            bool(web.basic_auth_users)
            or (web.tls is not None and web.tls.client_auth_type == "RequireAndVerifyClientCert")
        )
        refusal = check_exposure(
            settings.host,
            tls=metrics_tls,
            authentication=metrics_auth,
            insecure=settings.insecure,
            what="/metrics",
        )
        if refusal is not None:
            raise ConfigError(
                refusal.replace(
                    "give --tls-cert and --tls-key and --trust-file",
                    "give --web-config-file with tls_server_config and basic_auth_users",
                )
            )
    if settings.insecure and not is_loopback(settings.host):
        logger.warning(
            "serving %s with --insecure: anyone who reaches it may check, write and release "
            "numbers without credentials",
            settings.host,
        )


def create_quota(settings: Settings) -> SharedQuota | None:
    """The quota table, in the parent before any fork; None without a trust file.

    Raises:
        ConfigError: the trust file is invalid, or the directory is not writable.
    """
    if settings.trust_file is None:
        return None
    identities = len(load_trust_file(settings.trust_file).identities)
    directory = settings.quota_dir
    if directory is None:
        directory = _SHARED_MEMORY if _SHARED_MEMORY.is_dir() else Path(tempfile.gettempdir())
    return SharedQuota.create(directory, slots=max(1024, 2 * identities), lease=_QUOTA_LEASE)


class ServerSecurity:
    """The trust parts of one serving process, built after any fork (they hold gRPC objects)."""

    def __init__(self, options: SecurityOptions, registry: CollectorRegistry) -> None:
        """Build the parts ``options`` asks for.

        Raises:
            ConfigError: the trust file or a certificate file is invalid.
        """
        self._options = options
        self.identity_metrics = IdentityMetrics(registry) if options.trust_file else None
        self._trust = (
            TrustStore(options.trust_file, recheck_interval=_TRUST_RECHECK)
            if options.trust_file
            else None
        )
        self._certificates = (
            ReloadingCertificates(options.tls, registry) if options.tls is not None else None
        )

    def interceptors(self) -> Sequence[grpc.ServerInterceptor]:
        """The interceptors to put after the metrics interceptor."""
        if self._trust is None:
            return ()
        return (
            AuthInterceptor(self._trust, quota=self._options.quota, metrics=self.identity_metrics),
        )

    def add_port(self, server: grpc.Server, bind: str) -> int:
        """Bind ``bind`` on ``server``, with TLS when configured; returns the port."""
        if self._certificates is None:
            return int(server.add_insecure_port(bind))
        return int(server.add_secure_port(bind, self._certificates.credentials()))
