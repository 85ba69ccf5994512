"""Trust files, tokens and a bare servicer for authentication tests."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import grpc

from suppression.auth import (
    Identity,
    PermissionDeniedError,
    Scope,
    UnauthenticatedError,
    actor_for,
    authorize,
    current_identity,
    hash_token,
    new_token,
    required_scopes,
    resolve_lists,
    resolve_write_list,
    visible_lists,
)
from suppression.errors import SuppressionError, UnknownListError
from suppression.quota import IdentityMetrics
from suppression.v1 import suppression_pb2 as pb
from suppression.v1 import suppression_pb2_grpc as pb_grpc

FAST = {"n": 1 << 10, "r": 8, "p": 1}


NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)


def tokens() -> dict[str, str]:
    return {name: new_token(name) for name in SCOPES_BY_IDENTITY}


def trust_toml(tokens: dict[str, str], extra: str = "") -> str:
    lines = [
        "[defaults.quota]",
        "numbers_per_minute = 60000",
        "numbers_per_day = 1000000",
        "",
        "[tenants.acme]",
        'lists = ["acme_campaign"]',
        'shared = ["national"]',
        'shared_writable = ["internal"]',
        'default_lists = ["national", "internal", "acme_campaign"]',
        "",
        "[tenants.globex]",
        'lists = ["globex_campaign"]',
        'shared = ["national", "internal"]',
        "",
        "[tenants.ops]",
        "all_lists = true",
        "",
    ]
    for name, scopes in SCOPES_BY_IDENTITY.items():
        tenant = {"globex": "globex", "admin": "ops"}.get(name, "acme")
        lines += [
            f"[identities.{name}]",
            f'tenant = "{tenant}"',
            "scopes = [" + ", ".join(f'"{scope}"' for scope in scopes) + "]",
            f'token_hashes = ["{hash_token(tokens[name], **FAST)}"]',
        ]
        if name == "checker":
            lines.append('certificate_names = ["dialer.acme.example"]')
        if name == "expired":
            lines.append("expires = 2026-11-01T00:00:00Z")
        if name == "revoked":
            lines.append("revoked = true")
        if name == "tiny":
            lines += ["quota = { numbers_per_minute = 60, numbers_per_day = 1000, burst = 5 }"]
        if name == "admin":
            lines += ["quota = { unlimited = true }"]
        lines.append("")
    return "\n".join(lines) + extra


class ShellServicer(pb_grpc.SuppressionServicer):
    def __init__(self, metrics: IdentityMetrics | None = None) -> None:
        self.metrics = metrics

    def _answer(self, request: pb.CheckRequest, context: grpc.ServicerContext) -> pb.CheckResponse:
        identity = _identity()
        try:
            names = resolve_lists(identity.tenant, request.lists, LIST_KINDS)
        except SuppressionError as exc:
            _abort(context, exc)
        count = len(request.e164) + len(request.numbers)
        if self.metrics is not None:
            self.metrics.count_suppressed(identity.name, count)
        return pb.CheckResponse(
            verdicts=[pb.SUPPRESSED] * count,
            list_names=names,
            version=identity.name,
            request_id=request.request_id,
        )

    def Check(  # noqa: N802
        self, request: pb.CheckRequest, context: grpc.ServicerContext
    ) -> pb.CheckResponse:
        return self._answer(request, context)

    def CheckStream(  # noqa: N802
        self, request_iterator: Iterator[pb.CheckRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.CheckResponse]:
        for request in request_iterator:
            yield self._answer(request, context)

    def GetStatus(  # noqa: N802
        self, request: pb.GetStatusRequest, context: grpc.ServicerContext
    ) -> pb.GetStatusResponse:
        identity = _identity()
        response = pb.GetStatusResponse(ready=True)
        if Scope.ADMIN in identity.scopes:
            for name in visible_lists(identity.tenant, LIST_KINDS):
                response.lists.add(name=name)
        return response

    def _write(
        self, method: str, request: pb.SuppressRequest | pb.ReleaseRequest, context: object
    ) -> pb.WriteResponse:
        assert isinstance(context, grpc.ServicerContext)
        identity = _identity()
        try:
            exists = resolve_write_list(identity.tenant, request.list, LIST_KINDS)
            authorize(
                identity,
                required_scopes(
                    method,
                    opt_out=LIST_KINDS.get(request.list, "opt_out") == "opt_out",
                    blocks=any("x" in number for number in request.numbers),
                    creates_list=not exists,
                ),
            )
        except SuppressionError as exc:
            _abort(context, exc)
        return pb.WriteResponse(version=actor_for(identity, request.actor), applied=1)

    def Suppress(  # noqa: N802
        self, request: pb.SuppressRequest, context: grpc.ServicerContext
    ) -> pb.WriteResponse:
        return self._write("Suppress", request, context)

    def Release(  # noqa: N802
        self, request: pb.ReleaseRequest, context: grpc.ServicerContext
    ) -> pb.WriteResponse:
        return self._write("Release", request, context)


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


LIST_KINDS = {
    "national": "registry",
    "internal": "opt_out",
    "acme_campaign": "campaign",
    "globex_campaign": "campaign",
}


SCOPES_BY_IDENTITY = {
    "checker": ["check"],
    "writer": ["write"],
    "consenter": ["consent"],
    "admin": ["check", "write", "consent", "explain", "admin"],
    "explainer": ["explain"],
    "globex": ["check", "write"],
    "expired": ["check"],
    "revoked": ["check"],
    "tiny": ["check"],
}


def _abort(context: grpc.ServicerContext, exc: SuppressionError) -> None:
    codes = {
        UnknownListError: grpc.StatusCode.INVALID_ARGUMENT,
        PermissionDeniedError: grpc.StatusCode.PERMISSION_DENIED,
        UnauthenticatedError: grpc.StatusCode.UNAUTHENTICATED,
    }
    for error_type, code in codes.items():
        if isinstance(exc, error_type):
            context.abort(code, str(exc))
    raise exc


def _identity() -> Identity:
    identity = current_identity()
    assert identity is not None, "the interceptor sets the identity"
    return identity
