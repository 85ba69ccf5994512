"""The client's exceptions, and the one place gRPC status codes become them.

    SuppressionError (suppression.errors)
    └── ClientError                 anything a call to the service can raise
        ├── UnavailableError        no target answered (UNAVAILABLE), after retries
        │   ├── DeadlineExceededError   no answer within the deadline
        │   └── NotReadyError           the server is loading or resynchronizing its data
        ├── InvalidRequestError     INVALID_ARGUMENT: an unknown list, a bad region, too
        │                           big a batch; never retried (also a ValueError)
        ├── UnauthenticatedError    UNAUTHENTICATED: no token or certificate, or a bad one
        ├── PermissionDeniedError   PERMISSION_DENIED: the identity lacks the scope
        ├── QuotaExceededError      RESOURCE_EXHAUSTED; ``retry_after`` in seconds, if known
        ├── PolicyVersionMismatchError  a split batch's parts were decided under different
        │                           policies or policy versions; no result is returned
        ├── IncompleteWriteError    record_attempts stopped part-way or in doubt: says which
        │                           attempts were recorded, which may be, which were not sent
        └── ServerError             anything else (INTERNAL, FAILED_PRECONDITION, ...)

Every exception carries the ``code`` (a :class:`grpc.StatusCode`, or None when no call
was made), the ``target`` that answered, and the server's ``details``.
"""

from __future__ import annotations

from typing import Any

import grpc

from suppression.errors import SuppressionError

__all__ = [
    "RETRY_AFTER_KEY",
    "ClientError",
    "DeadlineExceededError",
    "IncompleteWriteError",
    "InvalidRequestError",
    "NotReadyError",
    "PermissionDeniedError",
    "PolicyVersionMismatchError",
    "QuotaExceededError",
    "ServerError",
    "UnauthenticatedError",
    "UnavailableError",
    "error_from_rpc",
]

RETRY_AFTER_KEY = "retry-after-ms"
"""Trailing metadata of a RESOURCE_EXHAUSTED answer: milliseconds until a retry can pass."""

_NOT_READY_HINTS = ("still loading", "waiting for a newer snapshot")
"""Phrases of the server's UNAVAILABLE details that mean "not ready" rather than "down"."""


class ClientError(SuppressionError):
    """A call to the suppression service failed."""

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode | None = None,
        target: str = "",
        details: str = "",
    ) -> None:
        """Create the error.

        Args:
            message: what went wrong and what to do.
            code: the gRPC status code, when a server answered.
            target: the target of the last attempt.
            details: the server's own message.
        """
        super().__init__(message)
        self.code = code
        self.target = target
        self.details = details


class UnavailableError(ClientError):
    """No target answered: every attempt failed with UNAVAILABLE (or timed out)."""


class DeadlineExceededError(UnavailableError):
    """No answer arrived within the call's deadline."""


class NotReadyError(UnavailableError):
    """The server is up but cannot answer yet: loading, or waiting for a snapshot."""


class InvalidRequestError(ClientError, ValueError):
    """The server refused the request as malformed; sending it again cannot help."""


class UnauthenticatedError(ClientError):
    """The server did not accept the credentials (or none were sent)."""


class PermissionDeniedError(ClientError):
    """The credentials are valid, but the identity may not make this call."""


class QuotaExceededError(ClientError):
    """The identity's quota of numbers is spent for now."""

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode | None = None,
        target: str = "",
        details: str = "",
        retry_after: float | None = None,
    ) -> None:
        """Create the error.

        Args:
            message: what went wrong and what to do.
            code: the gRPC status code.
            target: the target that refused.
            details: the server's own message.
            retry_after: seconds until the same request would pass; None when the
                server did not say (or it never will).
        """
        super().__init__(message, code=code, target=target, details=details)
        self.retry_after = retry_after


class PolicyVersionMismatchError(ClientError):
    """A split batch's parts were answered under different policies or policy versions.

    A merged result carries one policy and one policy version, the proof of what was
    decided; parts decided under two versions (a policy reload between them, or
    replicas with different files during a rollout) cannot share one, so the client
    refuses to merge them rather than report a version that some verdicts were not
    decided under. Sending the batch again after the rollout gives one version.
    """


class IncompleteWriteError(ClientError):
    """A multi-part write stopped part-way, or failed in a way that may have applied it.

    Attempts are counted, not set, so the client never sends one twice on its own
    (docs/client.md, "Recording attempts"). The indexes are the caller's own.
    """

    def __init__(
        self,
        message: str,
        *,
        recorded: int,
        in_doubt: range,
        not_sent: range,
        versions: tuple[str, ...],
        cause: ClientError,
    ) -> None:
        """Create the error.

        Args:
            message: what was recorded, what is in doubt, what to do.
            recorded: the first ``recorded`` attempts were recorded and applied.
            in_doubt: attempts that may or may not be in the change log.
            not_sent: attempts that were never sent (or were refused unwritten).
            versions: the versions of the recorded batches, in order.
            cause: the failure of the batch that stopped it.
        """
        super().__init__(message, code=cause.code, target=cause.target, details=cause.details)
        self.recorded = recorded
        self.in_doubt = in_doubt
        self.not_sent = not_sent
        self.versions = versions
        self.cause = cause


class ServerError(ClientError):
    """Any other failure the server reported (INTERNAL, FAILED_PRECONDITION, ...)."""


def _retry_after(exc: grpc.RpcError) -> float | None:
    trailing = getattr(exc, "trailing_metadata", None)
    pairs = trailing() if callable(trailing) else None
    for key, value in pairs or ():
        if key == RETRY_AFTER_KEY:
            try:
                return max(0.0, int(value) / 1000)
            except ValueError:
                return None
    return None


def error_from_rpc(exc: grpc.RpcError, target: str, attempts: int = 1) -> ClientError:
    """The client exception for a failed gRPC call.

    Args:
        exc: the failure, as grpc raised it.
        target: the target it came from.
        attempts: how many attempts the call made, for the message.
    """
    code: grpc.StatusCode | None = exc.code() if callable(getattr(exc, "code", None)) else None
    details = str(exc.details() or "") if callable(getattr(exc, "details", None)) else str(exc)
    name = code.name if code is not None else "UNKNOWN"
    tried = f" (after {attempts} attempts)" if attempts > 1 else ""
    said = f"server {target} answered {name}{tried}: {details}"
    fields: dict[str, Any] = {"code": code, "target": target, "details": details}
    if code == grpc.StatusCode.UNAVAILABLE:
        if any(hint in details for hint in _NOT_READY_HINTS):
            return NotReadyError(f"{said}; retry shortly or ask another replica", **fields)
        return UnavailableError(
            f"{said}; is `suppression serve` running and reachable there?", **fields
        )
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return DeadlineExceededError(
            f"{said}; raise the timeout, or add targets so a slow one can be skipped", **fields
        )
    if code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.OUT_OF_RANGE):
        return InvalidRequestError(f"{said}; fix the request, retrying cannot help", **fields)
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return UnauthenticatedError(
            f"{said}; pass a valid token (ClientConfig.token) or client certificate", **fields
        )
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return PermissionDeniedError(
            f"{said}; ask an administrator to grant the scope in the trust file", **fields
        )
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        retry_after = _retry_after(exc)
        when = f"retry in {retry_after:g} s" if retry_after is not None else "retry later"
        return QuotaExceededError(f"{said}; {when}", retry_after=retry_after, **fields)
    return ServerError(said, **fields)
