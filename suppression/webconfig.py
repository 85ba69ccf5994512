"""/metrics over TLS and basic auth, configured by a Prometheus web-config file.

The file follows the Prometheus exporter-toolkit format (``--web.config.file``),
so the same file and the same habits work for this service and every exporter::

    tls_server_config:
      cert_file: metrics.crt          # relative paths are relative to this file
      key_file: metrics.key
      client_auth_type: RequireAndVerifyClientCert   # or NoClientCert (default),
      client_ca_file: prometheus-ca.crt              # or VerifyClientCertIfGiven
      client_allowed_sans: [prometheus.example]
      min_version: TLS12
    http_server_config:
      headers:
        Strict-Transport-Security: max-age=31536000
    basic_auth_users:
      prometheus: $2y$10$...          # a bcrypt hash, from htpasswd -nBC 10 ""

Like the exporter-toolkit, the file is looked at on every request and re-read
when it (or a certificate it names) changed, so rotated certificates and
changed passwords apply without a restart; a broken edit keeps the previous
configuration. Passwords are bcrypt hashes, checked with the ``bcrypt`` package;
without it, a file with ``basic_auth_users`` is refused. A successful check is
cached (keyed by an HMAC, never the password), as the exporter-toolkit does,
because bcrypt takes tens of milliseconds by design. Options this server cannot
honour (``cert``/``key`` inline, ``RequestClientCert``, ``RequireAnyClientCert``,
``cipher_suites``, ``curve_preferences``, ``rate_limit``) are refused by name
rather than silently ignored.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import importlib
import json
import logging
import re
import secrets
import socket
import ssl
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

from suppression.errors import ConfigError

__all__ = ["MetricsServer", "TlsServerConfig", "WebConfig", "load_web_config", "parse_web_config"]

logger = logging.getLogger(__name__)

_TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
_CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_UNSUPPORTED = {
    "cert": "inline certificates are not supported; write it to a file and give cert_file",
    "key": "inline keys are not supported; write it to a file and give key_file",
    "cipher_suites": "cipher_suites is not supported; the OpenSSL defaults apply",
    "curve_preferences": "curve_preferences is not supported; the OpenSSL defaults apply",
    "prefer_server_cipher_suites": "prefer_server_cipher_suites is not supported",
}
_BCRYPT_HASH = re.compile(r"^\$2[abxy]?\$\d{2}\$[./A-Za-z0-9]{53}$")
_HANDSHAKE_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class TlsServerConfig:
    """``tls_server_config``: the certificate and what is asked of clients."""

    cert_file: Path
    key_file: Path
    client_auth_type: str = "NoClientCert"
    client_ca_file: Path | None = None
    client_allowed_sans: tuple[str, ...] = ()
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    max_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3

    def files(self) -> tuple[Path, ...]:
        """The files it reads, to notice their change."""
        ca = () if self.client_ca_file is None else (self.client_ca_file,)
        return (self.cert_file, self.key_file, *ca)

    def context(self) -> ssl.SSLContext:
        """A server SSL context from the files.

        Raises:
            ConfigError: a file is missing or the key does not match the certificate.
        """
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = self.min_version
        context.maximum_version = self.max_version
        try:
            context.load_cert_chain(self.cert_file, self.key_file)
            if self.client_ca_file is not None:
                context.load_verify_locations(cafile=self.client_ca_file)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(
                f"tls_server_config: cannot use {self.cert_file} with {self.key_file} ({exc}); "
                "give a PEM certificate and its key"
            ) from exc
        context.verify_mode = _CLIENT_AUTH[self.client_auth_type]
        return context


@dataclass(frozen=True, slots=True)
class WebConfig:
    """A parsed web-config file."""

    tls: TlsServerConfig | None = None
    basic_auth_users: Mapping[str, str] = field(default_factory=dict)
    """User name to bcrypt hash; empty: no basic auth."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Headers added to every response."""


def _table(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a mapping")
    return value


def _check_keys(table: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
    allowed = set(allowed)
    for key in table:
        if key in _UNSUPPORTED:
            raise ConfigError(f"{where}.{key}: {_UNSUPPORTED[key]}")
        if key not in allowed:
            raise ConfigError(
                f"{where}: unknown key {key!r}; allowed: {', '.join(sorted(allowed))}"
            )


def _tls(value: Any, base: Path) -> TlsServerConfig | None:
    table = _table(value, "tls_server_config")
    if not table:
        return None
    allowed = {
        "cert_file",
        "key_file",
        "client_auth_type",
        "client_ca_file",
        "client_allowed_sans",
        "min_version",
        "max_version",
    }
    _check_keys(table, allowed, "tls_server_config")
    if not table.get("cert_file") or not table.get("key_file"):
        raise ConfigError("tls_server_config needs both cert_file and key_file")
    auth = str(table.get("client_auth_type", "NoClientCert"))
    if auth not in _CLIENT_AUTH:
        raise ConfigError(
            f"tls_server_config.client_auth_type {auth!r} is not supported; use "
            "RequireAndVerifyClientCert (or VerifyClientCertIfGiven, NoClientCert)"
        )
    ca = table.get("client_ca_file")
    if auth != "NoClientCert" and not ca:
        raise ConfigError(f"client_auth_type {auth} needs client_ca_file: the CA of the clients")
    sans = table.get("client_allowed_sans") or []
    if sans and auth != "RequireAndVerifyClientCert":
        raise ConfigError("client_allowed_sans needs client_auth_type RequireAndVerifyClientCert")
    versions = {}
    for key, default in (("min_version", "TLS12"), ("max_version", "TLS13")):
        name = str(table.get(key, default))
        if name not in _TLS_VERSIONS:
            raise ConfigError(f"tls_server_config.{key} must be one of {', '.join(_TLS_VERSIONS)}")
        versions[key] = _TLS_VERSIONS[name]
    return TlsServerConfig(
        cert_file=base / str(table["cert_file"]),
        key_file=base / str(table["key_file"]),
        client_auth_type=auth,
        client_ca_file=None if not ca else base / str(ca),
        client_allowed_sans=tuple(str(san) for san in sans),
        **versions,
    )


def parse_web_config(data: Any, base: Path) -> WebConfig:
    """Validate a parsed web-config; relative file names are taken from ``base``.

    Raises:
        ConfigError: naming the key that is wrong and what to do.
    """
    data = _table(data, "the web config")
    _check_keys(data, {"tls_server_config", "http_server_config", "basic_auth_users"}, "web config")
    if "rate_limit" in data:
        raise ConfigError("rate_limit is not supported; limit scrapes in the network")
    http = _table(data.get("http_server_config"), "http_server_config")
    _check_keys(http, {"headers", "http2"}, "http_server_config")
    headers = {str(k): str(v) for k, v in _table(http.get("headers"), "headers").items()}
    users = {str(k): str(v) for k, v in _table(data.get("basic_auth_users"), "users").items()}
    for user, hashed in users.items():
        if not _BCRYPT_HASH.match(hashed):
            raise ConfigError(
                f"basic_auth_users.{user} is not a bcrypt hash; make one with "
                "htpasswd -nBC 10 \"\" | tr -d ':\\n'"
            )
    if users:
        _bcrypt()
    return WebConfig(_tls(data.get("tls_server_config"), base), users, headers)


def _bcrypt() -> Any:
    try:
        # Imported by name: an optional dependency, without type information.
        bcrypt = importlib.import_module("bcrypt")
    except ImportError as exc:
        raise ConfigError(
            "basic_auth_users needs the bcrypt package to check passwords; install it "
            "(pip install bcrypt), or use client certificates (client_auth_type)"
        ) from exc
    return bcrypt


def _parse_text(text: str, path: Path) -> Any:
    try:
        yaml = importlib.import_module("yaml")
    except ImportError:
        try:
            # JSON is YAML too; without PyYAML, a JSON-shaped file still works.
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"{path} needs PyYAML to be read (pip install pyyaml), or write it as JSON"
            ) from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc


def load_web_config(path: Path) -> WebConfig:
    """Read and validate a web-config file.

    Raises:
        ConfigError: the file is missing, malformed, or asks for something unsupported.
    """
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read the web config {path}: {exc.strerror}") from exc
    try:
        return parse_web_config(_parse_text(text, path), path.parent)
    except ConfigError as exc:
        raise ConfigError(f"web config {path}: {exc}") from exc


def _signature(paths: Iterable[Path]) -> tuple[tuple[int, int, int] | None, ...]:
    result: list[tuple[int, int, int] | None] = []
    for path in paths:
        try:
            stat = path.stat()
        except OSError:
            result.append(None)
            continue
        result.append((stat.st_mtime_ns, stat.st_size, stat.st_ino))
    return tuple(result)


@dataclass(frozen=True, slots=True)
class _Active:
    config: WebConfig
    context: ssl.SSLContext | None
    signature: tuple[tuple[int, int, int] | None, ...]


class _Live:
    """The web config in force, re-read when the file or its certificates change."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._active = self._load()
        self._cache_key = secrets.token_bytes(32)
        self._verified: set[bytes] = set()
        self.reload_failures = 0

    def _load(self) -> _Active:
        signature_before = _signature([self._path])
        config = load_web_config(self._path)
        files = config.tls.files() if config.tls is not None else ()
        signature = signature_before + _signature(files)
        context = config.tls.context() if config.tls is not None else None
        return _Active(config, context, signature)

    def current(self) -> _Active:
        active = self._active
        files = active.config.tls.files() if active.config.tls is not None else ()
        if _signature([self._path, *files]) == active.signature:
            return active
        with self._lock:
            if self._active is not active:
                return self._active
            try:
                loaded = self._load()
            except ConfigError as exc:
                self.reload_failures += 1
                logger.error("keeping the previous web config: %s", exc)
                # Remember the broken state, so it is not re-read on every request.
                self._active = _Active(
                    active.config, active.context, _signature([self._path, *files])
                )
                return self._active
            if (loaded.context is None) != (active.context is None):
                self.reload_failures += 1
                logger.error(
                    "the web config %s turns TLS on or off; that takes a restart, "
                    "keeping the previous configuration",
                    self._path,
                )
                self._active = _Active(
                    active.config, active.context, _signature([self._path, *files])
                )
                return self._active
            self._active = loaded
            self._verified = set()
            logger.info("web config %s reloaded", self._path)
            return loaded

    def password_ok(self, users: Mapping[str, str], user: str, password: str) -> bool:
        hashed = users.get(user)
        key = hmac.new(
            self._cache_key, f"{user}\0{password}\0{hashed}".encode(), hashlib.sha256
        ).digest()
        if hashed is not None and key in self._verified:
            return True
        bcrypt = _bcrypt()
        # An unknown user costs a bcrypt check too, so timing does not reveal user names.
        candidate = hashed or "$2b$10$" + "." * 53
        try:
            ok = bool(bcrypt.checkpw(password.encode(), candidate.encode()))
        except ValueError:
            ok = False
        if ok and hashed is not None:
            self._verified.add(key)
            return True
        return False


def _basic_credentials(header: str) -> tuple[str, str] | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def _guarded_app(live: _Live, app: Callable[..., Any]) -> Callable[..., Any]:
    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        config = live.current().config

        def with_headers(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
            return start_response(status, headers + list(config.headers.items()), *rest)

        if config.basic_auth_users:
            credentials = _basic_credentials(environ.get("HTTP_AUTHORIZATION", ""))
            if credentials is None or not live.password_ok(config.basic_auth_users, *credentials):
                with_headers(
                    "401 Unauthorized",
                    [
                        ("WWW-Authenticate", 'Basic realm="suppression metrics"'),
                        ("Content-Type", "text/plain"),
                    ],
                )
                return [b"Unauthorized: give the user and password of basic_auth_users\n"]
        return app(environ, with_headers)

    return guarded


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        """Scrapes are not worth a log line each."""


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    live: _Live | _NoConfig

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = self.socket.accept()
        context = self.live.current().context
        if context is None:
            return connection, address
        # The handshake runs in the request's thread, so a slow client stalls only itself.
        return context.wrap_socket(
            connection, server_side=True, do_handshake_on_connect=False
        ), address

    def finish_request(self, request: Any, client_address: Any) -> None:
        if isinstance(request, ssl.SSLSocket):
            request.settimeout(_HANDSHAKE_TIMEOUT)
            try:
                request.do_handshake()
            except (ssl.SSLError, OSError) as exc:
                logger.debug("TLS handshake with a metrics client failed: %s", exc)
                return
            tls = self.live.current().config.tls
            if (
                tls is not None
                and tls.client_allowed_sans
                and not _san_allowed(request.getpeercert(), tls.client_allowed_sans)
            ):
                logger.warning("a metrics client certificate has no allowed SAN; closing")
                return
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("error serving a metrics request", exc_info=True)


class _Server6(_Server):
    address_family = socket.AF_INET6


def _san_allowed(certificate: Any, allowed: tuple[str, ...]) -> bool:
    if not certificate:
        return False
    names = {str(value) for _kind, value in certificate.get("subjectAltName", ())}
    return bool(names & set(allowed))


class MetricsServer:
    """``/metrics`` of a registry over HTTP or HTTPS, with optional basic auth."""

    def __init__(
        self,
        registry: CollectorRegistry,
        port: int,
        *,
        host: str = "0.0.0.0",
        web_config: Path | None = None,
    ) -> None:
        """Bind the port (0 picks a free one); :meth:`start` serves it.

        Args:
            registry: what to expose.
            port: the port to bind.
            host: the address to bind.
            web_config: a Prometheus web-config file; None serves plain HTTP without auth.

        Raises:
            ConfigError: the web config is wrong, or the port cannot be bound.
        """
        app = make_wsgi_app(registry)
        self._live: _Live | None = None
        if web_config is not None:
            self._live = _Live(web_config)
            app = _guarded_app(self._live, app)
        address = host.strip().strip("[]")
        server_class = _Server6 if ":" in address else _Server
        shown = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
        try:
            server = make_server(address, port, app, server_class, handler_class=_QuietHandler)
        except OSError as exc:
            raise ConfigError(
                f"cannot serve /metrics on {shown}: {exc.strerror or exc}; choose another "
                "--metrics-port (0 turns metrics off) or stop what holds it"
            ) from exc
        assert isinstance(server, _Server)
        server.live = self._live if self._live is not None else _NoConfig()
        self._server = server
        self.port: int = server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics-http", daemon=True
        )

    @property
    def address(self) -> str:
        """The bound address (without brackets for IPv6)."""
        return str(self._server.server_address[0])

    @property
    def reload_failures(self) -> int:
        """Edits of the web config that were refused (the previous one stayed in force)."""
        return 0 if self._live is None else self._live.reload_failures

    def start(self) -> MetricsServer:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the port."""
        self._server.shutdown()
        self._server.server_close()


class _NoConfig:
    """Plain HTTP: no context, no config."""

    def current(self) -> _Active:
        return _Active(WebConfig(), None, ())
