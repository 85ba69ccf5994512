"""Bulk checking over CheckStream: batches in, results out in order, a bounded number in flight.

The batches are split into requests of at most ``max_batch`` numbers and sent on
one stream, with at most ``in_flight`` requests unanswered, so neither side waits
for the other and memory stays bounded however long the input is. Answers come
back in request order (the server's contract), so results are yielded in batch
order. When the stream breaks with UNAVAILABLE, the unanswered requests are sent
again on a new stream to the next target, with the same backoff as single calls.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import grpc

from suppression.client.assembly import Piece, merge, split
from suppression.client.errors import (
    ClientError,
    DeadlineExceededError,
    InvalidRequestError,
    error_from_rpc,
)
from suppression.client.policyfields import ConsentDay, PolicyFields, consent_days_of
from suppression.client.result import CheckResult
from suppression.v1 import suppression_pb2 as pb

if TYPE_CHECKING:
    from suppression.client.client import SuppressionClient

__all__ = ["CheckStream"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Item:
    request_id: int
    piece: Piece
    last: bool
    """The batch's last piece: once it is answered, the batch is complete."""
    request: pb.CheckRequest


class CheckStream:
    """An iterator: sends ``batches`` and gives one :class:`CheckResult` per batch, in order.

    Each batch is a sequence of E.164 integers or a sequence of text numbers. A
    batch larger than the server's ``max_batch`` is split and reassembled; its
    ``version`` is then the OLDEST part's version.
    """

    def __init__(
        self,
        client: SuppressionClient,
        batches: Iterable[Sequence[int] | Sequence[str]],
        *,
        lists: Sequence[str],
        region: str,
        in_flight: int,
        timeout: float,
        policy: PolicyFields | None = None,
        consent_days: Iterable[Sequence[ConsentDay]] | None = None,
    ) -> None:
        """Prepare the stream; nothing is sent until iteration starts.

        Args:
            client: the client whose targets, retries and credentials are used.
            batches: the input, read lazily.
            lists: lists to check; empty means the server's defaults.
            region: default region for national forms.
            in_flight: requests sent and not yet answered, at most (at least 1).
            timeout: deadline in seconds of the whole stream, reconnections included.
            policy: the policy fields every request carries.
            consent_days: one sequence of consent days per batch, read alongside it.
        """
        if in_flight < 1:
            raise ValueError(f"in_flight must be at least 1, not {in_flight}")
        self._client = client
        self._batches = batches
        self._lists = tuple(lists)
        self._region = region
        self._in_flight = in_flight
        self._timeout = timeout
        self._policy = policy or PolicyFields()
        self._consent_days = consent_days
        self._lock = threading.Lock()
        self._source_lock = threading.Lock()
        self._slots = threading.Semaphore(in_flight)
        self._unanswered: deque[_Item] = deque()
        self._resend: deque[_Item] = deque()
        self._generation = 0
        self._closed = False
        self._cancelled = False
        self._call: Any = None
        self._source_error: BaseException | None = None
        self._results = self._run()

    def _items(self, size: int) -> Iterator[_Item]:
        request_id = 0
        days_of = iter(self._consent_days) if self._consent_days is not None else None
        for count, batch in enumerate(self._batches):
            days: list[int] = []
            if days_of is not None:
                given = next(days_of, None)
                if given is None:
                    raise InvalidRequestError(
                        f"consent_days ran out at batch {count}: give one sequence per batch"
                    )
                days = consent_days_of(given, len(batch))
            if batch and isinstance(batch[0], str):
                pieces = split((), cast(Sequence[str], batch), size, days)
            else:
                pieces = split(cast(Sequence[int], batch), (), size, days)
            for number, piece in enumerate(pieces):
                request_id += 1
                request = piece.request(self._region, self._lists, request_id, self._policy)
                yield _Item(request_id, piece, number == len(pieces) - 1, request)

    def _requests(self, source: Iterator[_Item], generation: int) -> Iterator[pb.CheckRequest]:
        """The request side of one stream; it runs in gRPC's thread.

        The caller's iterator is read outside ``_lock``, so answers keep flowing
        while it is slow; ``_source_lock`` keeps items in order across the streams
        of a retry.
        """
        while True:
            self._slots.acquire()
            with self._source_lock:
                with self._lock:
                    if self._closed or generation != self._generation:
                        self._slots.release()
                        return
                    item = self._resend.popleft() if self._resend else None
                    if item is not None:
                        self._unanswered.append(item)
                if item is None:
                    try:
                        item = next(source, None)
                    except Exception as exc:  # the caller's iterator failed: end the stream
                        self._source_error = exc
                    with self._lock:
                        if item is None:
                            self._slots.release()
                            return
                        if self._closed or generation != self._generation:
                            # This stream broke meanwhile: the item waits for the next one.
                            self._resend.append(item)
                            self._slots.release()
                            return
                        self._unanswered.append(item)
            yield item.request

    def __iter__(self) -> CheckStream:
        return self

    def __next__(self) -> CheckResult:
        return next(self._results)

    def close(self) -> None:
        """Stop the stream from the iterating thread (as leaving a ``for`` loop early does)."""
        self._results.close()

    def cancel(self) -> None:
        """Stop the stream from any thread; the iterating thread gets a :class:`ClientError`."""
        with self._lock:
            self._cancelled = self._closed = True
            call = self._call
        if call is not None:
            call.cancel()
        for _ in range(self._in_flight):
            self._slots.release()

    def _run(self) -> Generator[CheckResult, None, None]:
        client = self._client
        policy = client.config.retry
        deadline = time.monotonic() + self._timeout
        source = self._items(client.max_batch())
        order = client._order(bulk=True)
        attempt = 0
        answered: list[tuple[Piece, Any, str]] = []
        call: Any = None
        try:
            while True:
                target = order[attempt % len(order)]
                if self._cancelled:
                    raise ClientError("the stream was cancelled", code=grpc.StatusCode.CANCELLED)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise DeadlineExceededError(
                        f"the stream did not finish within {self._timeout:g} s; raise its timeout",
                        code=grpc.StatusCode.DEADLINE_EXCEEDED,
                        target=target,
                    )
                call = client._stubs[target].CheckStream(
                    self._requests(source, self._generation),
                    timeout=remaining,
                    metadata=client._metadata,
                )
                with self._lock:
                    self._call = call
                    if self._cancelled:
                        call.cancel()
                try:
                    for response in call:
                        with self._lock:
                            item = self._unanswered.popleft()
                        self._slots.release()
                        if response.request_id != item.request_id:
                            raise ClientError(
                                f"server {target} answered request {response.request_id} "
                                f"in place of {item.request_id}; it breaks the stream's order"
                            )
                        attempt = 0  # progress: a later failure starts its retries afresh
                        answered.append((item.piece, response, target))
                        if item.last:
                            result = merge(answered)
                            answered = []
                            yield result
                except grpc.RpcError as exc:
                    if self._cancelled:
                        raise ClientError(
                            "the stream was cancelled",
                            code=grpc.StatusCode.CANCELLED,
                            target=target,
                        ) from None
                    if not self._retry(exc, attempt, policy.max_attempts, deadline):
                        raise error_from_rpc(exc, target, attempt + 1) from None
                    logger.debug("stream to %s broke with %s; resending", target, exc.code())
                    attempt += 1
                    client._pause(attempt - 1, deadline)
                    continue
                if isinstance(self._source_error, ClientError):
                    raise self._source_error  # a bad batch: refused as such
                if self._source_error is not None:
                    raise ClientError(
                        f"reading the batches failed: {self._source_error}"
                    ) from self._source_error
                with self._lock:
                    finished = not self._unanswered and not self._resend
                if finished:
                    return
                # The server ended the stream early; ask again for what it left.
                self._requeue()
        finally:
            with self._lock:
                self._closed = True
            for _ in range(self._in_flight):
                self._slots.release()  # wakes request threads that wait for a slot
            if call is not None:
                call.cancel()

    def _requeue(self) -> None:
        with self._lock:
            self._generation += 1
            count = len(self._unanswered)
            self._resend.extendleft(reversed(self._unanswered))
            self._unanswered.clear()
        for _ in range(count):
            self._slots.release()

    def _retry(self, exc: grpc.RpcError, attempt: int, attempts: int, deadline: float) -> bool:
        code = exc.code()
        retryable = code == grpc.StatusCode.UNAVAILABLE or (
            code == grpc.StatusCode.DEADLINE_EXCEEDED and time.monotonic() < deadline
        )
        if not retryable or attempt + 1 >= attempts:
            return False
        self._requeue()
        return True
