"""Identities, scopes and tenants, and the rules that decide what a caller may do.

Pure: the trust file (:mod:`.trustfile`) builds these values; the interceptor
(:mod:`.interceptor`) and the servicer apply the rules.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import enum
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from suppression.errors import ConfigError, SuppressionError, UnknownListError
from suppression.quota import QuotaLimits

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
    "RecordAttempts": frozenset({Scope.WRITE}),
    "Snapshot": frozenset({Scope.ADMIN}),
    "CreateList": frozenset({Scope.ADMIN}),
    "FetchSnapshot": frozenset({Scope.ADMIN}),
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
