"""The trust file: identities, tenants and quotas from TOML, tokens hashed with scrypt.

The file, re-read when it changes::


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
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import hmac
import logging
import re
import secrets
import sys
import threading
import time
import tomllib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from suppression.auth.model import Identity, Scope, Tenant, UnauthenticatedError
from suppression.errors import ConfigError
from suppression.quota import QuotaLimits

logger = logging.getLogger(__name__)


_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 1 << 14, 8, 1


_TOKEN_SEPARATOR = "."


_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


_CONCURRENT_HASHES = 2
"""scrypt checks running at once: each takes about 50 ms and 16 MiB, so a flood of
wrong tokens could otherwise take every core and thread."""


_REMEMBERED_FAILURES = 4096
"""Wrong tokens remembered, so repeating one costs no scrypt check."""


_INVALID_TOKEN = "the bearer token is not valid here; check the token, or ask for a new one"


DEFAULT_QUOTA = QuotaLimits(per_minute=600_000, per_day=20_000_000, burst=200_000)
"""The quota of identities when the trust file gives none: a trust file must say
``unlimited = true`` to turn quotas off, never get it by leaving something out."""


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

    def __init__(
        self,
        path: Path,
        *,
        clock: Callable[[], dt.datetime] | None = None,
        recheck_interval: float = 0.0,
    ) -> None:
        """Load ``path`` now.

        Args:
            path: the TOML trust file.
            clock: returns the current aware datetime, for expiry; the wall clock when None.
            recheck_interval: look at the file's modification at most this often, in
                seconds. A server passes about a second: a ``stat`` on every call
                releases the interpreter lock, and under concurrency each release
                can cost a thread milliseconds of waiting to get it back.

        Raises:
            ConfigError: the file cannot be read or is wrong.
        """
        self._path = path
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._recheck_interval = recheck_interval
        self._next_check = 0.0
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
        if self._recheck_interval > 0:
            now = time.monotonic()
            if now < self._next_check:
                return
            self._next_check = now + self._recheck_interval
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

        Verifications are remembered (keyed by a MAC of the token under a
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
        # A keyed BLAKE2b is a MAC in one pass (HMAC-SHA256 hashes twice): one C call.
        key = hashlib.blake2b(token.encode(), key=self._cache_key, digest_size=16).digest()
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
        if not identity.revoked and identity.expires is None:
            return identity  # nothing can make it unusable: no clock to read on every call
        reason = identity.usable(self._clock())
        if reason is not None:
            raise UnauthenticatedError(reason)
        return identity


def main(argv: Sequence[str] | None = None) -> int:
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
