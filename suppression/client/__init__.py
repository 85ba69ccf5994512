"""A client for the suppression service that needs only grpc and protobuf.

``import suppression.client`` loads neither numpy, pyroaring, redis nor phonenumbers,
so a dialer can use it beside anything. See ``docs/client.md``.
"""

from __future__ import annotations

from suppression.client.attempts import RecordedAttempts
from suppression.client.client import SuppressionClient
from suppression.client.config import ClientConfig, KeepAlive, RetryPolicy, TlsConfig
from suppression.client.errors import (
    ClientError,
    DeadlineExceededError,
    IncompleteWriteError,
    InvalidRequestError,
    NotReadyError,
    PermissionDeniedError,
    PolicyVersionMismatchError,
    QuotaExceededError,
    ServerError,
    UnauthenticatedError,
    UnavailableError,
)
from suppression.client.result import (
    CheckResult,
    InvalidReason,
    ListInfo,
    NumberResult,
    Part,
    PolicyArrays,
    Status,
    Verdict,
)
from suppression.client.stream import CheckStream

__all__ = [
    "CheckResult",
    "CheckStream",
    "ClientConfig",
    "ClientError",
    "DeadlineExceededError",
    "IncompleteWriteError",
    "InvalidReason",
    "InvalidRequestError",
    "KeepAlive",
    "ListInfo",
    "NotReadyError",
    "NumberResult",
    "Part",
    "PermissionDeniedError",
    "PolicyArrays",
    "PolicyVersionMismatchError",
    "QuotaExceededError",
    "RecordedAttempts",
    "RetryPolicy",
    "ServerError",
    "Status",
    "SuppressionClient",
    "TlsConfig",
    "UnauthenticatedError",
    "UnavailableError",
    "Verdict",
]
