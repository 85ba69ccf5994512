"""The auth interceptor: authenticates every call, checks its method's scopes, charges quotas.

It also makes the caller the :func:`~suppression.auth.model.current_identity` of the
handler; checks that need the target list's kind are
:func:`~suppression.auth.model.required_scopes` plus
:func:`~suppression.auth.model.authorize`, which the servicer calls.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from suppression.auth.model import (
    _CURRENT,
    Identity,
    Scope,
    UnauthenticatedError,
    _method_name,
    is_public,
    method_scopes,
    use_identity,
)
from suppression.auth.trustfile import TrustStore
from suppression.handlers import WrappingInterceptor, rewrap
from suppression.quota import IdentityMetrics, QuotaExceededError, SharedQuota

logger = logging.getLogger(__name__)


_CHARGED_METHODS = frozenset({"Check", "CheckStream", "Explain"})
"""Methods that reveal list membership, so count against the quota of numbers."""


UNAUTHENTICATED_LABEL = "(none)"
"""The ``identity`` label of calls refused before an identity was known; no name can
be spelled like it, since names allow only letters, digits, ``_`` and ``-``."""


RETRY_AFTER_KEY = "retry-after-ms"
"""Trailing metadata of a RESOURCE_EXHAUSTED answer: milliseconds until a retry can pass."""


def _numbers_in(request: Any) -> int:
    # e164_packed holds 8 bytes a number; a partial number is refused later, but counted here.
    packed = (len(getattr(request, "e164_packed", b"")) + 7) // 8
    return len(getattr(request, "e164", ())) + len(getattr(request, "numbers", ())) + packed


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


class AuthInterceptor(WrappingInterceptor):
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
        super().__init__()
        self._trust = trust
        self._quota = quota
        self._metrics = metrics

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

    def _admit(
        self,
        method: str,
        name: str,
        gate: frozenset[Scope] | None,
        context: grpc.ServicerContext,
    ) -> Identity:
        """Authenticate the caller of ``method`` (short ``name``) and check its scopes, ``gate``."""
        try:
            identity = self.authenticate(context)
        except UnauthenticatedError as exc:
            self._refused(UNAUTHENTICATED_LABEL, "unauthenticated")
            context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
            raise AssertionError("unreachable") from exc
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

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """``handler`` guarded: built once per method (health checks pass unguarded)."""
        if is_public(method):
            return handler
        name = _method_name(method)
        gate = method_scopes(method)  # once per method, not per call
        charged = name in _CHARGED_METHODS
        admit, charge = self._admit, self._charge

        def requests(
            identity: Identity, iterator: Iterator[Any], context: grpc.ServicerContext
        ) -> Iterator[Any]:
            for request in iterator:
                charge(identity, request, context)
                yield request

        def unary_in(request: Any, context: grpc.ServicerContext) -> tuple[Identity, Any]:
            identity = admit(method, name, gate, context)
            if charged:
                charge(identity, request, context)
            return identity, request

        def stream_in(iterator: Any, context: grpc.ServicerContext) -> tuple[Identity, Any]:
            identity = admit(method, name, gate, context)
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
