"""What the server admits: a bound on streams, undecodable messages refused, short echoes.

A gRPC Python server runs each call on one of its worker threads for the whole
call, so a stream that never sends a message holds a thread until the client
goes away. :class:`AdmissionInterceptor` lets at most ``max_streams`` streams
run at once, refusing the next with RESOURCE_EXHAUSTED, so that the remaining
threads always serve unary calls (``Check``, ``GetStatus``, health).

gRPC deserializes requests before any interceptor sees them, and answers a
message it cannot decode with INTERNAL and an ERROR log line with a traceback;
in a stream, the handler thread then waits forever for the next message, and
the process cannot exit. The interceptor therefore replaces each method's
request deserializer with one that returns :class:`Undecodable` instead of
raising, and the call is refused with INVALID_ARGUMENT and a log line that
:class:`RateLimitedLog` writes at most once per interval.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from suppression.handlers import WrappingInterceptor, rewrap

__all__ = [
    "MAX_ECHO",
    "AdmissionInterceptor",
    "RateLimitedLog",
    "Undecodable",
    "short_quote",
]

logger = logging.getLogger(__name__)

MAX_ECHO = 64
"""Characters of a caller's value that an error message quotes.

gRPC sends the message as a header; a client refuses headers over 8-16 KiB
and reports RESOURCE_EXHAUSTED instead of the real error.
"""

_UNDECODABLE_LOG_INTERVAL = 60.0
"""Seconds between log lines about undecodable requests."""


def short_quote(text: str, limit: int = MAX_ECHO) -> str:
    """``repr`` of ``text``, cut to ``limit`` characters with an ellipsis and the full length.

    >>> short_quote("national")
    "'national'"
    >>> short_quote("n" * 100, 4)
    "'nnnn…' (100 characters)"
    """
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}"[:-1] + f"…' ({len(text):,} characters)"


class RateLimitedLog:
    """Logs a warning at most once per ``interval`` seconds; counts the lines held back."""

    def __init__(
        self,
        log: logging.Logger,
        interval: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Create the log.

        Args:
            log: the logger to write to.
            interval: least seconds between two lines.
            clock: monotonic seconds; tests pass their own.
        """
        self._log = log
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._next = float("-inf")
        self._held_back = 0

    def warning(self, message: str, *args: object) -> None:
        """Log ``message % args`` now, or count it if a line went out less than an interval ago."""
        now = self._clock()
        with self._lock:
            if now < self._next:
                self._held_back += 1
                return
            held_back, self._held_back = self._held_back, 0
            self._next = now + self._interval
        if held_back:
            self._log.warning(message + " (%d more held back)", *args, held_back)
        else:
            self._log.warning(message, *args)


class Undecodable:
    """A request message that its deserializer could not decode."""

    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        """Record the message's size in bytes."""
        self.size = size


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except DecodeError:
            return Undecodable(len(data))

    return deserialize


class AdmissionInterceptor(WrappingInterceptor):
    """Bounds concurrent streams and refuses undecodable requests with INVALID_ARGUMENT.

    Put it right after the metrics interceptor, so that its refusals are
    counted and nothing after it ever sees an :class:`Undecodable` request.
    """

    def __init__(self, max_streams: int) -> None:
        """Create the interceptor.

        Args:
            max_streams: streaming calls (any method with a request or response
                stream) that may run at once; 0 for no limit.
        """
        super().__init__()
        self._max_streams = max_streams
        self._streams = threading.BoundedSemaphore(max_streams) if max_streams else None
        self._undecodable_log = RateLimitedLog(logger, _UNDECODABLE_LOG_INTERVAL)

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """The handler, with a tolerant deserializer and the stream bound."""
        return rewrap(
            handler,
            lambda behavior, streamed: (
                self._bounded_stream_unary(method, behavior)
                if streamed
                else self._decoded_unary(method, behavior)
            ),
            lambda behavior, streamed: self._bounded_stream(
                method, behavior, request_stream=streamed
            ),
            request_deserializer=_tolerant(handler.request_deserializer),
        )

    def _refuse_undecodable(
        self, method: str, request: Undecodable, context: grpc.ServicerContext
    ) -> None:
        self._undecodable_log.warning(
            "refused a %d-byte request to %s from %s: not a valid protobuf message",
            request.size,
            method,
            context.peer(),
        )
        context.abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"the request message ({request.size:,} bytes) could not be decoded as the "
            f"protobuf message {method} expects; check the client's generated code",
        )

    def _decoded_unary(
        self, method: str, behavior: Callable[[Any, grpc.ServicerContext], Any]
    ) -> Callable[[Any, grpc.ServicerContext], Any]:
        def call(request: Any, context: grpc.ServicerContext) -> Any:
            if isinstance(request, Undecodable):
                self._refuse_undecodable(method, request, context)
            return behavior(request, context)

        return call

    def _decoded_iterator(
        self, method: str, requests: Iterator[Any], context: grpc.ServicerContext
    ) -> Iterator[Any]:
        for request in requests:
            if isinstance(request, Undecodable):
                self._refuse_undecodable(method, request, context)
            yield request

    def _admit_stream(self, method: str, context: grpc.ServicerContext) -> None:
        if self._streams is not None and not self._streams.acquire(blocking=False):
            context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"this server already runs {self._max_streams} streams, its limit "
                f"(--max-streams), so that unary calls keep free threads; retry later, "
                f"or use Check for {method.rpartition('/')[2]}'s batches",
            )

    def _bounded_stream_unary(
        self, method: str, behavior: Callable[[Iterator[Any], grpc.ServicerContext], Any]
    ) -> Callable[[Iterator[Any], grpc.ServicerContext], Any]:
        def call(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
            self._admit_stream(method, context)
            try:
                return behavior(self._decoded_iterator(method, requests, context), context)
            finally:
                if self._streams is not None:
                    self._streams.release()

        return call

    def _bounded_stream(
        self,
        method: str,
        behavior: Callable[[Any, grpc.ServicerContext], Iterator[Any]],
        *,
        request_stream: bool,
    ) -> Callable[[Any, grpc.ServicerContext], Iterator[Any]]:
        def call(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            if not request_stream and isinstance(request, Undecodable):
                self._refuse_undecodable(method, request, context)
            self._admit_stream(method, context)
            try:
                if request_stream:
                    request = self._decoded_iterator(method, request, context)
                yield from behavior(request, context)
            finally:
                if self._streams is not None:
                    self._streams.release()

        return call
