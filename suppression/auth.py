"""Who is calling and what they may do: identities, scopes, tenants, and the trust file.

A caller is an :class:`Identity`: a bearer token (``authorization: Bearer <name>.<secret>``
metadata) or an mTLS client certificate whose subject CN or a SAN is listed for it.
Each identity has scopes (:class:`Scope`) and belongs to a :class:`Tenant`, which decides
the lists it sees. All of it comes from one TOML trust file, re-read when it changes::

    [defaults.quota]
    numbers_per_minute = 600000
    numbers_per_day = 20000000

    [tenants.acme]
    lists = ["acme_campaign"]                 # its own lists: read and write
    shared = ["national"]                     # lists it may read
    shared_writable = ["internal"]            # shared lists it may also add to
    default_lists = ["national", "internal", "acme_campaign"]

    [identities.acme-dialer]
    tenant = "acme"
    scopes = ["check"]
    token_hashes = ["scrypt:16384:8:1:<salt>:<hash>"]   # python -m suppression.auth new-token
    certificate_names = ["dialer.acme.example"]
    expires = 2027-01-01T00:00:00Z
    revoked = false

Method-level scope checks and quotas run in :class:`AuthInterceptor`, which also makes
the caller the :func:`current_identity` of the handler; checks that need the target
list's kind are :func:`required_scopes` plus :func:`authorize`, which the servicer calls.
"""

from __future__ import annotations

import argparse
import contextvars
import datetime as dt
import enum
import hashlib
import hmac
import logging
import os
import re
import secrets
import sys
import threading
import tomllib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from suppression.errors import ConfigError, SuppressionError, UnknownListError
from suppression.handlers import rewrap
from suppression.quota import IdentityMetrics, QuotaExceededError, QuotaLimits, SharedQuota

__all__ = [
    "DEFAULT_QUOTA",
    "RETRY_AFTER_KEY",
    "UNAUTHENTICATED_LABEL",
    "AuthError",
    "AuthInterceptor",
    "Identity",
    "PermissionDeniedError",
    "Scope",
    "Tenant",
    "TrustConfig",
    "TrustStore",
    "UnauthenticatedError",
    "actor_for",
    "authorize",
    "current_identity",
    "hash_token",
    "is_public",
    "load_trust_file",
    "method_scopes",
    "new_token",
    "parse_trust_config",
    "required_scopes",
    "resolve_lists",
    "resolve_write_list",
    "use_identity",
    "verify_token",
    "visible_lists",
]

logger = logging.getLogger(__name__)


class AuthError(SuppressionError):
    """A call that is not allowed: the root of the two gRPC-facing auth errors."""


class UnauthenticatedError(AuthError):
    """No valid credentials: missing, unknown, expired or revoked (UNAUTHENTICATED)."""


class PermissionDeniedError(AuthError):
    """Valid credentials without the scope a call needs (PERMISSION_DENIED)."""


class Scope(enum.StrEnum):
    """What an identity may do."""

    CHECK = "check"
    """Check and CheckStream."""
    WRITE = "write"
    """Suppress, and Release from lists that are not opt-out lists."""
    CONSENT = "consent"
    """Release from an opt-out list (with consent evidence)."""
    EXPLAIN = "explain"
    """Explain: why a number is suppressed."""
    ADMIN = "admin"
    """GetStatus details, snapshots, creating lists, ranges on opt-out removals."""


_METHOD_SCOPES: Mapping[str, frozenset[Scope]] = {
    "Check": frozenset({Scope.CHECK}),
    "CheckStream": frozenset({Scope.CHECK}),
    "Explain": frozenset({Scope.EXPLAIN}),
    "GetStatus": frozenset(),
    "Suppress": frozenset({Scope.WRITE}),
    "Release": frozenset({Scope.WRITE, Scope.CONSENT}),
    "Snapshot": frozenset({Scope.ADMIN}),
    "CreateList": frozenset({Scope.ADMIN}),
}
"""Per method of the Suppression service, the scopes of which a caller needs AT LEAST ONE
to enter it. An empty set: any authenticated identity. A method missing here is refused."""

_PUBLIC_SERVICES = frozenset({"grpc.health.v1.Health"})
"""Services that answer without credentials: load balancers and probes have none."""

SUPPRESSION_SERVICE = "suppression.v1.Suppression"

_AUTHENTICATED_SERVICES: Mapping[str, frozenset[Scope]] = {
    "grpc.reflection.v1alpha.ServerReflection": frozenset(),
    "grpc.reflection.v1.ServerReflection": frozenset(),
}
"""Other services, open to any authenticated identity (grpcurl with a token)."""

_TOKEN_SEPARATOR = "."
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 1 << 14, 8, 1

_CONCURRENT_HASHES = 2
"""scrypt checks running at once: each takes about 50 ms and 16 MiB, so a flood of
wrong tokens could otherwise take every core and thread."""

_REMEMBERED_FAILURES = 4096
"""Wrong tokens remembered, so repeating one costs no scrypt check."""

_INVALID_TOKEN = "the bearer token is not valid here; check the token, or ask for a new one"

DEFAULT_QUOTA = QuotaLimits(per_minute=600_000, per_day=20_000_000, burst=200_000)
"""The quota of identities when the trust file gives none: a trust file must say
``unlimited = true`` to turn quotas off, never get it by leaving something out."""


def _method_name(method: str) -> str:
    return method.rpartition("/")[2]


def method_scopes(method: str) -> frozenset[Scope] | None:
    """The scopes of which a caller needs at least one to enter ``method``.

    Args:
        method: ``Check`` or the full gRPC path ``/suppression.v1.Suppression/Check``.

    Returns:
        The scopes (empty: authentication alone), or None when no scope grants the
        method, which callers must treat as a refusal.
    """
    service, _, name = method.lstrip("/").rpartition("/")
    if not service or service == SUPPRESSION_SERVICE:
        return _METHOD_SCOPES.get(name)
    return _AUTHENTICATED_SERVICES.get(service)


def is_public(method: str) -> bool:
    """Whether ``method`` (a full gRPC path) answers without credentials (health checks)."""
    return method.lstrip("/").rpartition("/")[0] in _PUBLIC_SERVICES


def required_scopes(
    method: str,
    *,
    opt_out: bool = False,
    blocks: bool = False,
    creates_list: bool = False,
    details: bool = False,
) -> frozenset[Scope]:
    """Every scope a call needs, once the servicer knows the target list.

    Args:
        method: the gRPC method name (``Release``) or full path.
        opt_out: the target list of a write is an opt-out list.
        blocks: the write carries number blocks (``+1900xxxxxxx``).
        creates_list: the write names a list that does not exist yet.
        details: GetStatus asks for details beyond readiness (list names and sizes).

    Returns:
        The scopes the identity must hold, all of them.
    """
    name = _method_name(method)
    needed: set[Scope] = set()
    if name == "Release":
        needed.add(Scope.CONSENT if opt_out else Scope.WRITE)
        if opt_out and blocks:
            # Releasing a whole block of opted-out numbers is rare and dangerous.
            needed.add(Scope.ADMIN)
    elif name == "GetStatus":
        if details:
            needed.add(Scope.ADMIN)
    else:
        gate = _METHOD_SCOPES.get(name)
        if gate is None:
            raise ConfigError(f"no scope grants method {name!r}; add it to auth._METHOD_SCOPES")
        needed.update(gate)
    if creates_list:
        needed.add(Scope.ADMIN)
    return frozenset(needed)


@dataclass(frozen=True, slots=True)
class Tenant:
    """A customer or business unit, and the lists it sees."""

    name: str
    lists: frozenset[str] = frozenset()
    """Its own lists: it reads and writes them."""
    shared: frozenset[str] = frozenset()
    """Lists shared with it, read only (the national registry)."""
    shared_writable: frozenset[str] = frozenset()
    """Shared lists it may also add to (the company-wide opt-out list)."""
    default_lists: tuple[str, ...] = ()
    """Checked when a request names none; empty means every list it sees."""
    all_lists: bool = False
    """Sees and writes every list (operations)."""

    def sees(self, name: str) -> bool:
        """Whether lists named ``name`` are visible to this tenant."""
        return (
            self.all_lists
            or name in self.lists
            or name in self.shared
            or name in self.shared_writable
        )

    def writes(self, name: str) -> bool:
        """Whether this tenant may change the list named ``name``."""
        return self.all_lists or name in self.lists or name in self.shared_writable


@dataclass(frozen=True, slots=True)
class Identity:
    """A caller: a service, a dialer, a person."""

    name: str
    tenant: Tenant
    scopes: frozenset[Scope]
    token_hashes: tuple[str, ...] = ()
    certificate_names: frozenset[str] = frozenset()
    expires: dt.datetime | None = None
    revoked: bool = False
    quota: QuotaLimits | None = None
    """None: no quota (trusted internal systems)."""

    def usable(self, now: dt.datetime) -> str | None:
        """Why this identity may not call now, or None if it may."""
        if self.revoked:
            return f"the credentials of {self.name!r} are revoked; ask for new ones"
        if self.expires is not None and now >= self.expires:
            return (
                f"the credentials of {self.name!r} expired at {self.expires.isoformat()}; "
                "ask for new ones"
            )
        return None


def visible_lists(tenant: Tenant, all_list_names: Iterable[str]) -> tuple[str, ...]:
    """The lists of ``all_list_names`` that ``tenant`` may see, sorted."""
    return tuple(sorted(name for name in all_list_names if tenant.sees(name)))


def resolve_lists(
    tenant: Tenant, requested: Sequence[str], all_list_names: Iterable[str]
) -> tuple[str, ...]:
    """The lists a check by ``tenant`` reads: those requested, or the tenant's defaults.

    A list the tenant may not see is reported exactly like one that does not exist,
    so a tenant learns nothing about other tenants' lists.

    Raises:
        UnknownListError: a requested list does not exist or is not visible; or
            a default list of the tenant does not exist (checking fewer lists than
            configured would answer ALLOWED for numbers that must be suppressed).
    """
    existing = set(all_list_names)
    visible = visible_lists(tenant, existing)
    if requested:
        unknown = [name for name in requested if name not in existing or not tenant.sees(name)]
        if unknown:
            raise UnknownListError(
                f"unknown list {', '.join(map(repr, unknown))}; "
                f"lists you can check: {', '.join(visible) or 'none'}"
            )
        return tuple(requested)
    if not tenant.default_lists:
        return visible
    missing = [name for name in tenant.default_lists if name not in existing]
    if missing:
        raise UnknownListError(
            f"default list {', '.join(map(repr, missing))} of tenant {tenant.name!r} is not "
            "loaded on this server; name the lists in the request, or fix default_lists "
            "in the trust file"
        )
    return tenant.default_lists


def resolve_write_list(tenant: Tenant, name: str, all_list_names: Iterable[str]) -> bool:
    """Check that ``tenant`` may write list ``name``; returns whether the list exists.

    Raises:
        UnknownListError: the list is not visible to the tenant.
        PermissionDeniedError: the tenant sees the list but may not change it.
    """
    exists = name in set(all_list_names)
    if not tenant.sees(name):
        if exists:
            raise UnknownListError(f"unknown list {name!r}")
        raise UnknownListError(
            f"unknown list {name!r}; a new list must first be declared in tenant "
            f"{tenant.name!r}'s lists in the trust file"
        )
    if not tenant.writes(name):
        raise PermissionDeniedError(
            f"list {name!r} is shared with tenant {tenant.name!r} read-only; "
            "write to one of its own lists"
        )
    return exists


def authorize(identity: Identity, needed: Iterable[Scope]) -> None:
    """Raise unless ``identity`` holds every scope in ``needed``.

    Raises:
        PermissionDeniedError: naming the missing scopes.
    """
    missing = sorted(set(needed) - identity.scopes)
    if missing:
        raise PermissionDeniedError(
            f"identity {identity.name!r} lacks scope {', '.join(missing)} for this call; "
            "ask an administrator to grant it in the trust file"
        )


def actor_for(identity: Identity | None, requested_actor: str) -> str:
    """The actor recorded with a write: the authenticated identity, then who it names.

    A dialer may write on behalf of an agent (``acme-dialer/agent-17``); the identity
    part cannot be forged, the rest is the caller's word.
    """
    if identity is None:
        return requested_actor
    if requested_actor and requested_actor != identity.name:
        return f"{identity.name}/{requested_actor}"
    return identity.name


# -- the identity of the current call ------------------------------------------

_CURRENT: contextvars.ContextVar[Identity | None] = contextvars.ContextVar(
    "suppression_identity", default=None
)


def current_identity() -> Identity | None:
    """The identity of the call this thread is serving; None when auth is off."""
    return _CURRENT.get()


class use_identity:  # noqa: N801 - used like a function, as a context manager
    """Make ``identity`` the :func:`current_identity` inside a ``with`` block."""

    def __init__(self, identity: Identity | None) -> None:
        self._identity = identity
        self._token: contextvars.Token[Identity | None] | None = None

    def __enter__(self) -> Identity | None:
        self._token = _CURRENT.set(self._identity)
        return self._identity

    def __exit__(self, *_exc: object) -> None:
        if self._token is not None:
            _CURRENT.reset(self._token)


# -- tokens -------------------------------------------------------------------


def hash_token(token: str, *, n: int = _SCRYPT_N, r: int = _SCRYPT_R, p: int = _SCRYPT_P) -> str:
    """Hash a token for the trust file: ``scrypt:N:R:P:<salt hex>:<hash hex>``."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(token.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 << 20)
    return f"scrypt:{n}:{r}:{p}:{salt.hex()}:{digest.hex()}"


def verify_token(token: str, stored: str) -> bool:
    """Whether ``token`` matches a hash made by :func:`hash_token` (constant time)."""
    try:
        kind, n, r, p, salt, digest = stored.split(":")
        if kind != "scrypt":
            return False
        computed = hashlib.scrypt(
            token.encode(),
            salt=bytes.fromhex(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=256 << 20,
        )
    except ValueError:
        return False
    return hmac.compare_digest(computed, bytes.fromhex(digest))


def new_token(identity_name: str) -> str:
    """A fresh random token for ``identity_name``: ``<name>.<secret>``."""
    if not _NAME.match(identity_name):
        raise ConfigError(f"identity name {identity_name!r} must match {_NAME.pattern}")
    return f"{identity_name}{_TOKEN_SEPARATOR}{secrets.token_urlsafe(32)}"


# -- the trust file ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrustConfig:
    """Everything the trust file says, validated."""

    identities: Mapping[str, Identity]
    tenants: Mapping[str, Tenant]
    by_certificate_name: Mapping[str, Identity] = field(default_factory=dict)


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{where} must be a list of strings")
    return list(value)


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a table")
    return value


def _check_keys(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )


def _quota(value: Any, where: str) -> QuotaLimits | None:
    if value is None:
        return None
    table = _table(value, where)
    _check_keys(table, {"numbers_per_minute", "numbers_per_day", "burst", "unlimited"}, where)
    if table.get("unlimited", False):
        return None
    try:
        per_minute = int(table["numbers_per_minute"])
        per_day = int(table["numbers_per_day"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(
            f"{where} needs integer numbers_per_minute and numbers_per_day (or unlimited = true)"
        ) from exc
    burst = int(table.get("burst", per_minute))
    if min(per_minute, per_day, burst) <= 0:
        raise ConfigError(f"{where}: numbers_per_minute, numbers_per_day and burst must be > 0")
    return QuotaLimits(per_minute=per_minute, per_day=per_day, burst=burst)


def _tenant(name: str, value: Any) -> Tenant:
    where = f"tenants.{name}"
    table = _table(value, where)
    _check_keys(table, {"lists", "shared", "shared_writable", "default_lists", "all_lists"}, where)
    tenant = Tenant(
        name=name,
        lists=frozenset(_strings(table.get("lists", []), f"{where}.lists")),
        shared=frozenset(_strings(table.get("shared", []), f"{where}.shared")),
        shared_writable=frozenset(
            _strings(table.get("shared_writable", []), f"{where}.shared_writable")
        ),
        default_lists=tuple(_strings(table.get("default_lists", []), f"{where}.default_lists")),
        all_lists=bool(table.get("all_lists", False)),
    )
    hidden = [list_name for list_name in tenant.default_lists if not tenant.sees(list_name)]
    if hidden:
        raise ConfigError(
            f"{where}.default_lists names {', '.join(hidden)}, which the tenant does not see; "
            "add them to its lists or shared"
        )
    return tenant


def _expiry(value: Any, where: str) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    raise ConfigError(f"{where} must be a TOML date or date-time, like 2027-01-01T00:00:00Z")


_IDENTITY_KEYS = {
    "tenant",
    "scopes",
    "token_hashes",
    "certificate_names",
    "expires",
    "revoked",
    "quota",
}


def _identity(
    name: str, value: Any, tenants: Mapping[str, Tenant], default_quota: QuotaLimits | None
) -> Identity:
    where = f"identities.{name}"
    if not _NAME.match(name):
        raise ConfigError(f"{where}: an identity name must match {_NAME.pattern}")
    table = _table(value, where)
    _check_keys(table, _IDENTITY_KEYS, where)
    tenant_name = str(table.get("tenant", ""))
    if tenant_name not in tenants:
        raise ConfigError(
            f"{where}.tenant is {tenant_name!r}, which is not one of the tenants: "
            f"{', '.join(sorted(tenants)) or 'none'}"
        )
    scope_names = _strings(table.get("scopes", []), f"{where}.scopes")
    try:
        scopes = frozenset(Scope(scope) for scope in scope_names)
    except ValueError as exc:
        raise ConfigError(
            f"{where}.scopes: {exc}; scopes are {', '.join(s.value for s in Scope)}"
        ) from exc
    hashes = tuple(_strings(table.get("token_hashes", []), f"{where}.token_hashes"))
    for stored in hashes:
        if not stored.startswith("scrypt:") or stored.count(":") != 5:
            raise ConfigError(
                f"{where}.token_hashes holds something that is not a scrypt hash; "
                "make one with `python -m suppression.auth new-token NAME`"
            )
    cert_names = frozenset(
        _strings(table.get("certificate_names", []), f"{where}.certificate_names")
    )
    if not hashes and not cert_names:
        raise ConfigError(
            f"{where} has neither token_hashes nor certificate_names: nobody can use it"
        )
    quota = _quota(table["quota"], f"{where}.quota") if "quota" in table else default_quota
    return Identity(
        name=name,
        tenant=tenants[tenant_name],
        scopes=scopes,
        token_hashes=hashes,
        certificate_names=cert_names,
        expires=_expiry(table.get("expires"), f"{where}.expires"),
        revoked=bool(table.get("revoked", False)),
        quota=quota,
    )


def parse_trust_config(data: Mapping[str, Any]) -> TrustConfig:
    """Validate a parsed trust file.

    Raises:
        ConfigError: naming the key that is wrong and what it must be.
    """
    _check_keys(data, {"defaults", "tenants", "identities"}, "trust file")
    defaults = _table(data.get("defaults", {}), "defaults")
    _check_keys(defaults, {"quota"}, "defaults")
    default_quota = (
        _quota(defaults["quota"], "defaults.quota") if "quota" in defaults else DEFAULT_QUOTA
    )
    tenants = {
        name: _tenant(name, value)
        for name, value in _table(data.get("tenants", {}), "tenants").items()
    }
    identities = {
        name: _identity(name, value, tenants, default_quota)
        for name, value in _table(data.get("identities", {}), "identities").items()
    }
    by_cert: dict[str, Identity] = {}
    for identity in identities.values():
        for cert_name in identity.certificate_names:
            other = by_cert.get(cert_name)
            if other is not None:
                raise ConfigError(
                    f"certificate name {cert_name!r} is claimed by both {other.name!r} and "
                    f"{identity.name!r}; give it to one identity"
                )
            by_cert[cert_name] = identity
    return TrustConfig(identities=identities, tenants=tenants, by_certificate_name=by_cert)


def load_trust_file(path: Path) -> TrustConfig:
    """Read and validate the trust file at ``path``.

    Raises:
        ConfigError: the file is missing, not TOML, or wrong.
    """
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read the trust file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"the trust file {path} is not valid TOML: {exc}") from exc
    try:
        return parse_trust_config(data)
    except ConfigError as exc:
        raise ConfigError(f"trust file {path}: {exc}") from exc


def _file_signature(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


class TrustStore:
    """The trust file, re-read when it changes, and authentication against it.

    A bad edit of the file keeps the last good configuration (and logs why, and
    counts it in :attr:`reload_failures`); the server never opens up or locks
    everyone out because of a typo.
    """

    def __init__(self, path: Path, *, clock: Callable[[], dt.datetime] | None = None) -> None:
        """Load ``path`` now.

        Args:
            path: the TOML trust file.
            clock: returns the current aware datetime, for expiry; the wall clock when None.

        Raises:
            ConfigError: the file cannot be read or is wrong.
        """
        self._path = path
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._lock = threading.Lock()
        self._signature = _file_signature(path)
        self._config = load_trust_file(path)
        self._verified: dict[bytes, str] = {}
        self._failed: OrderedDict[bytes, None] = OrderedDict()
        self._hashing = threading.BoundedSemaphore(_CONCURRENT_HASHES)
        self._cache_key = secrets.token_bytes(32)
        self.reload_failures = 0

    @property
    def config(self) -> TrustConfig:
        """The current configuration, re-read first if the file changed."""
        self._maybe_reload()
        return self._config

    def _maybe_reload(self) -> None:
        signature = _file_signature(self._path)
        if signature == self._signature:
            return
        with self._lock:
            if signature == self._signature:
                return
            self._signature = signature
            try:
                config = load_trust_file(self._path)
            except ConfigError as exc:
                self.reload_failures += 1
                logger.error("keeping the previous trust configuration: %s", exc)
                return
            self._config = config
            # A removed or rotated hash must stop working at once; a new one at once too.
            self._verified = {}
            self._failed = OrderedDict()
            logger.info(
                "trust file %s reloaded: %d identities, %d tenants",
                self._path,
                len(config.identities),
                len(config.tenants),
            )

    def authenticate_token(self, token: str) -> Identity:
        """The identity of a bearer token.

        Verifications are remembered (keyed by an HMAC of the token under a
        per-process key, never the token) until the file changes, so scrypt runs
        once per token, not once per call; at most :data:`_CONCURRENT_HASHES`
        run at once.

        Raises:
            UnauthenticatedError: unknown, malformed, expired or revoked.
        """
        config = self.config
        name, sep, _secret = token.rpartition(_TOKEN_SEPARATOR)
        identity = config.identities.get(name) if sep else None
        if identity is None:
            raise UnauthenticatedError(_INVALID_TOKEN)
        key = hmac.new(self._cache_key, token.encode(), hashlib.sha256).digest()
        if self._verified.get(key) != name:
            if key in self._failed:
                raise UnauthenticatedError(_INVALID_TOKEN)
            with self._hashing:
                valid = any(verify_token(token, stored) for stored in identity.token_hashes)
            if not valid:
                self._remember_failure(key)
                raise UnauthenticatedError(_INVALID_TOKEN)
            self._verified[key] = name
        return self._usable(identity)

    def _remember_failure(self, key: bytes) -> None:
        with self._lock:
            self._failed[key] = None
            while len(self._failed) > _REMEMBERED_FAILURES:
                self._failed.popitem(last=False)

    def authenticate_certificate(self, names: Iterable[str]) -> Identity:
        """The identity of a verified client certificate, by its CN or any SAN.

        Raises:
            UnauthenticatedError: no identity claims any of the names, or it is not usable.
        """
        config = self.config
        for cert_name in names:
            identity = config.by_certificate_name.get(cert_name)
            if identity is not None:
                return self._usable(identity)
        raise UnauthenticatedError(
            "the client certificate names no identity of the trust file; add its CN or SAN "
            "to an identity's certificate_names, or send a bearer token"
        )

    def _usable(self, identity: Identity) -> Identity:
        reason = identity.usable(self._clock())
        if reason is not None:
            raise UnauthenticatedError(reason)
        return identity


# -- the interceptor -------------------------------------------------------------

_CHARGED_METHODS = frozenset({"Check", "CheckStream", "Explain"})
"""Methods that reveal list membership, so count against the quota of numbers."""

UNAUTHENTICATED_LABEL = "(none)"
"""The ``identity`` label of calls refused before an identity was known; no name can
be spelled like it, since names allow only letters, digits, ``_`` and ``-``."""

RETRY_AFTER_KEY = "retry-after-ms"
"""Trailing metadata of a RESOURCE_EXHAUSTED answer: milliseconds until a retry can pass."""


def _numbers_in(request: Any) -> int:
    return len(getattr(request, "e164", ())) + len(getattr(request, "numbers", ()))


def _bearer_token(context: grpc.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            scheme, _, token = str(value).partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise UnauthenticatedError("the authorization metadata must be `Bearer <token>`")
            return token.strip()
    return None


def _certificate_names(context: grpc.ServicerContext) -> list[str]:
    auth = context.auth_context() or {}
    names = list(auth.get("x509_subject_alternative_name", ()))
    names.extend(auth.get("x509_common_name", ()))
    return [name.decode(errors="replace") if isinstance(name, bytes) else name for name in names]


class AuthInterceptor(grpc.ServerInterceptor):
    """Authenticates every call, checks its method's scopes, charges quotas.

    Order of checks: credentials (UNAUTHENTICATED), method scopes
    (PERMISSION_DENIED), quota (RESOURCE_EXHAUSTED, with ``retry-after-ms`` in
    the trailing metadata). Then the handler runs with the caller as
    :func:`current_identity`. Health checks pass without credentials. Put it
    after the metrics interceptor, so refusals are counted by code.
    """

    def __init__(
        self,
        trust: TrustStore,
        *,
        quota: SharedQuota | None = None,
        metrics: IdentityMetrics | None = None,
    ) -> None:
        """Create the interceptor.

        Args:
            trust: the identities.
            quota: the shared token buckets; None checks no quota.
            metrics: per-identity counters; None counts nothing.
        """
        self._trust = trust
        self._quota = quota
        self._metrics = metrics

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        """Return the method's handler, guarded."""
        handler = continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or is_public(method):
            return handler
        return self._wrap(method, handler)

    def authenticate(self, context: grpc.ServicerContext) -> Identity:
        """The caller's identity: its bearer token, else its client certificate.

        Raises:
            UnauthenticatedError: no credentials, or not valid ones.
        """
        token = _bearer_token(context)
        if token is not None:
            return self._trust.authenticate_token(token)
        names = _certificate_names(context)
        if names:
            return self._trust.authenticate_certificate(names)
        raise UnauthenticatedError(
            "no credentials: send `authorization: Bearer <token>` metadata, "
            "or connect with a client certificate"
        )

    def _admit(self, method: str, context: grpc.ServicerContext) -> Identity:
        name = _method_name(method)
        try:
            identity = self.authenticate(context)
        except UnauthenticatedError as exc:
            self._refused(UNAUTHENTICATED_LABEL, "unauthenticated")
            context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
            raise AssertionError("unreachable") from exc
        gate = method_scopes(method)
        if gate is None:
            self._refused(identity.name, "permission_denied")
            context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"no scope grants {method}; it is closed until auth._METHOD_SCOPES names it",
            )
        elif gate and not gate & identity.scopes:
            self._refused(identity.name, "permission_denied")
            context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"identity {identity.name!r} lacks scope {' or '.join(sorted(gate))} for "
                f"{name}; ask an administrator to grant it in the trust file",
            )
        return identity

    def _charge(self, identity: Identity, request: Any, context: grpc.ServicerContext) -> None:
        numbers = _numbers_in(request)
        if self._quota is not None and identity.quota is not None:
            try:
                self._quota.charge(identity.name, identity.quota, numbers)
            except QuotaExceededError as exc:
                self._refused(identity.name, "quota")
                retry = exc.retry_after_ms
                if retry is not None:
                    context.set_trailing_metadata(((RETRY_AFTER_KEY, str(retry)),))
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        if self._metrics is not None:
            self._metrics.count_checked(identity.name, numbers)

    def _refused(self, identity: str, reason: str) -> None:
        if self._metrics is not None:
            self._metrics.count_refused(identity, reason)
        logger.debug("refused a call of %s: %s", identity, reason)

    def _wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        charged = _method_name(method) in _CHARGED_METHODS
        admit, charge = self._admit, self._charge

        def requests(
            identity: Identity, iterator: Iterator[Any], context: grpc.ServicerContext
        ) -> Iterator[Any]:
            for request in iterator:
                charge(identity, request, context)
                yield request

        def unary_in(request: Any, context: grpc.ServicerContext) -> tuple[Identity, Any]:
            identity = admit(method, context)
            if charged:
                charge(identity, request, context)
            return identity, request

        def stream_in(iterator: Any, context: grpc.ServicerContext) -> tuple[Identity, Any]:
            identity = admit(method, context)
            return identity, (requests(identity, iterator, context) if charged else iterator)

        def unary_out(
            behavior: Callable[[Any, grpc.ServicerContext], Any],
            accept: Callable[[Any, grpc.ServicerContext], tuple[Identity, Any]],
        ) -> Callable[[Any, grpc.ServicerContext], Any]:
            def guarded(request: Any, context: grpc.ServicerContext) -> Any:
                identity, request = accept(request, context)
                with use_identity(identity):
                    return behavior(request, context)

            return guarded

        def stream_out(
            behavior: Callable[[Any, grpc.ServicerContext], Iterator[Any]],
            accept: Callable[[Any, grpc.ServicerContext], tuple[Identity, Any]],
        ) -> Callable[[Any, grpc.ServicerContext], Iterator[Any]]:
            def guarded(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                identity, request = accept(request, context)
                # gRPC drives a response stream from one thread; set, never reset
                # (the generator may be closed from another context).
                _CURRENT.set(identity)
                try:
                    yield from behavior(request, context)
                finally:
                    _CURRENT.set(None)

            return guarded

        return rewrap(
            handler,
            lambda behavior, streamed: unary_out(behavior, stream_in if streamed else unary_in),
            lambda behavior, streamed: stream_out(behavior, stream_in if streamed else unary_in),
        )


def _main(argv: Sequence[str] | None = None) -> int:
    """``python -m suppression.auth new-token NAME``: a token and the line for the trust file."""
    parser = argparse.ArgumentParser(prog="python -m suppression.auth")
    commands = parser.add_subparsers(dest="command", required=True)
    new = commands.add_parser("new-token", help="make a token for an identity, and its hash")
    new.add_argument("name", help="the identity's name in the trust file")
    args = parser.parse_args(argv)
    try:
        token = new_token(args.name)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"token (give it to the client; it is shown only once): {token}")
    print(f'[identities.{args.name}]\ntoken_hashes = ["{hash_token(token)}"]')
    return 0


if __name__ == "__main__":
    os.umask(0o077)
    sys.exit(_main())
