"""Recording dial attempts: batches to ``max_batch``, retried only when nothing was written.

Reads are safe to send twice; attempts are not. ``RecordAttempts`` appends to the change
log and answers once the replica applied it, and each attempt is counted, not set:
an attempt sent twice counts twice against its caps. The server can fail AFTER the
append: "not acknowledged" (``--min-replicas``: the entry is on the Redis primary,
WAIT did not confirm it, a failover may still lose it), "in the change log as ID, but
this replica has not applied it", a deadline, a connection lost mid-call. All of them
answer UNAVAILABLE or DEADLINE_EXCEEDED, as a replica that is merely down does. So a
batch is sent again only when the failure proves nothing was written: the channel
never connected (the request never left), or the replica refused before appending
(still loading, waiting to resynchronize, "nothing was written"). Any other failure
stops at that batch and raises :class:`IncompleteWriteError`, which says which
attempts were recorded, which are in doubt and which were never sent; the caller
decides, knowing that sending the doubtful ones again may count them twice (caps
stricter than they should be) and dropping them may count them never (caps looser).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc

from suppression.client.errors import (
    ClientError,
    DeadlineExceededError,
    IncompleteWriteError,
    InvalidRequestError,
    error_from_rpc,
)
from suppression.client.result import Part
from suppression.errors import SuppressionError
from suppression.v1 import suppression_pb2 as pb

if TYPE_CHECKING:
    from suppression.client.client import SuppressionClient

__all__ = ["AttemptTime", "RecordedAttempts", "record_attempts"]

logger = logging.getLogger(__name__)

AttemptTime = dt.datetime | int
"""When an attempt was made: an aware datetime, or milliseconds since the Unix epoch."""

NOTHING_WRITTEN_HINTS = (
    "failed to connect to all addresses",  # gRPC: the request never left this process
    "still loading",
    "waiting for a snapshot to resynchronize",
    "nothing was written",
)
"""Phrases of an UNAVAILABLE answer that prove the attempts were not appended."""


@dataclass(frozen=True, slots=True)
class RecordedAttempts:
    """Every attempt was appended to the change log and applied by the answering replica."""

    count: int
    """Attempts recorded."""
    version: str
    """The version of the last batch's last entry: caps count them from this version on."""
    parts: tuple[Part, ...]
    """The requests they were sent as, each with its target and version."""


def _ms(moment: AttemptTime, index: int) -> int:
    if isinstance(moment, dt.datetime):
        if moment.utcoffset() is None:
            raise InvalidRequestError(
                f"attempt {index}: time {moment.isoformat()} has no UTC offset; pass an aware "
                "datetime"
            )
        return int(moment.timestamp() * 1000)
    if isinstance(moment, int) and not isinstance(moment, bool) and moment >= 0:
        return moment
    raise InvalidRequestError(
        f"attempt {index}: time {moment!r} is neither an aware datetime nor milliseconds since 1970"
    )


def _lines(calling_lines: Sequence[str] | str, count: int) -> list[str]:
    lines = [calling_lines] if isinstance(calling_lines, str) else list(calling_lines)
    if len(lines) not in (0, 1, count):
        raise InvalidRequestError(
            f"{len(lines):,} calling lines for {count:,} attempts: give none, one for all, "
            "or one each"
        )
    return lines


def _nothing_written(exc: grpc.RpcError) -> bool:
    if exc.code() != grpc.StatusCode.UNAVAILABLE:
        return False
    details = str(exc.details() or "")
    return any(hint in details for hint in NOTHING_WRITTEN_HINTS)


def record_attempts(
    client: SuppressionClient,
    e164: Sequence[int],
    times: Sequence[AttemptTime],
    calling_lines: Sequence[str] | str,
    timeout: float | None,
) -> RecordedAttempts:
    """Send the attempts in batches of ``max_batch``, in order; see the module's docstring.

    Raises:
        InvalidRequestError: the arrays are not parallel, a time is naive or negative;
            nothing was sent.
        IncompleteWriteError: a batch failed after earlier ones were recorded, or in a
            way that may have recorded it.
        ClientError: the first batch was refused before anything was written (the
            mapped error: nothing was recorded).
    """
    count = len(e164)
    if len(times) != count:
        raise InvalidRequestError(
            f"{count:,} numbers but {len(times):,} times: give one time per attempt"
        )
    if not count:
        raise InvalidRequestError("no attempts to record")
    times_ms = [_ms(moment, index) for index, moment in enumerate(times)]
    lines = _lines(calling_lines, count)
    size = client.max_batch()
    parts: list[Part] = []
    for start in range(0, count, size):
        end = min(start + size, count)
        request = pb.RecordAttemptsRequest(
            e164=e164[start:end],
            times_ms=times_ms[start:end],
            calling_lines=lines[start:end] if len(lines) == count else lines,
        )
        try:
            answer, target = _send(client, request, timeout)
        except _Failed as failed:
            if not parts and not failed.in_doubt:
                raise failed.error from None
            raise IncompleteWriteError(
                _incomplete_message(parts, start, end, count, failed),
                recorded=start,
                in_doubt=range(start, end) if failed.in_doubt else range(0),
                not_sent=range(end if failed.in_doubt else start, count),
                versions=tuple(part.version for part in parts),
                cause=failed.error,
            ) from None
        parts.append(Part(start, end - start, target, answer.version))
    return RecordedAttempts(count, parts[-1].version, tuple(parts))


class _Failed(SuppressionError):  # noqa: N818 - internal signal, never escapes this module
    def __init__(self, error: ClientError, in_doubt: bool) -> None:
        super().__init__(str(error))
        self.error = error
        self.in_doubt = in_doubt


def _send(
    client: SuppressionClient, request: pb.RecordAttemptsRequest, timeout: float | None
) -> tuple[pb.WriteResponse, str]:
    """One batch: sent again on the next target only while the failure proves nothing was written.

    No per-attempt timeout: an attempt cut short by one is in doubt, not retryable.
    """
    policy = client.config.retry
    deadline = time.monotonic() + (client.config.timeout if timeout is None else timeout)
    order = client._order()
    attempt = 0
    while True:
        target = order[attempt % len(order)]
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            error = DeadlineExceededError(
                "no attempt could be made within the deadline; nothing was sent this time",
                code=grpc.StatusCode.DEADLINE_EXCEEDED,
                target=target,
            )
            raise _Failed(error, in_doubt=False)
        try:
            stub = client._stubs[target]
            answer = stub.RecordAttempts(request, timeout=remaining, metadata=client._metadata)
            return answer, target
        except grpc.RpcError as exc:
            retryable = _nothing_written(exc)
            attempt += 1
            if not retryable or attempt >= policy.max_attempts:
                raise _Failed(
                    error_from_rpc(exc, target, attempt), in_doubt=_in_doubt(exc)
                ) from None
            logger.debug("RecordAttempts on %s wrote nothing (%s); retrying", target, exc.code())
            client._pause(attempt - 1, deadline)


def _in_doubt(exc: grpc.RpcError) -> bool:
    """Whether the failed call may have appended its attempts to the change log."""
    code = exc.code()
    if code == grpc.StatusCode.UNAVAILABLE:
        return not _nothing_written(exc)
    # The server validates and authorizes before it appends, so these refusals wrote nothing.
    return code in (
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INTERNAL,
    )


def _incomplete_message(
    parts: Sequence[Part], start: int, end: int, count: int, failed: _Failed
) -> str:
    done = (
        f"attempts 0-{start - 1} were recorded (version {parts[-1].version}); "
        if parts
        else "no attempt was recorded before; "
    )
    if failed.in_doubt:
        middle = (
            f"attempts {start}-{end - 1} MAY have been recorded: {failed.error}. They were not "
            "sent again, since an attempt sent twice counts twice against its caps; "
        )
        rest = f"attempts {end}-{count - 1} were not sent" if end < count else "none is left"
    else:
        middle = f"attempts {start}-{end - 1} were refused and not recorded: {failed.error}; "
        rest = f"attempts {start}-{count - 1} were not recorded"
    return done + middle + rest
