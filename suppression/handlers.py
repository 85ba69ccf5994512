"""Wrapping a gRPC method's behavior while keeping its kind and (de)serializers.

Both server interceptors (metrics, and authentication with quotas) wrap every
kind of method the same way; this is the one place that knows the four kinds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

__all__ = ["Behavior", "WrappingInterceptor", "rewrap"]

Behavior = Callable[[Any, grpc.ServicerContext], Any]
"""A method's implementation: request (or request iterator) and context in, response out."""


def rewrap(
    handler: grpc.RpcMethodHandler,
    unary_response: Callable[[Behavior, bool], Behavior],
    stream_response: Callable[[Behavior, bool], Behavior],
    request_deserializer: Callable[[bytes], Any] | None = None,
) -> grpc.RpcMethodHandler:
    """The same method, its behavior wrapped by ``unary_response`` or ``stream_response``.

    Args:
        handler: the method's handler.
        unary_response: wraps a behavior that returns one response; its second
            argument says whether the requests arrive as a stream.
        stream_response: wraps a behavior that yields responses; likewise.
        request_deserializer: replaces the method's own, if given.
    """
    serializers = {
        "request_deserializer": request_deserializer or handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            unary_response(handler.unary_unary, False), **serializers
        )
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(
            unary_response(handler.stream_unary, True), **serializers
        )
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            stream_response(handler.unary_stream, False), **serializers
        )
    return grpc.stream_stream_rpc_method_handler(
        stream_response(handler.stream_stream, True), **serializers
    )


class WrappingInterceptor(grpc.ServerInterceptor):
    """A server interceptor that wraps each method's handler once and reuses the wrapper.

    Subclasses implement :meth:`wrap`; a handler is wrapped again only if the
    server hands out a different one for the same method.
    """

    def __init__(self) -> None:
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        """Return the method's handler, wrapped."""
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method: str = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self.wrap(method, handler)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """The handler that replaces ``handler`` for ``method``."""
        raise NotImplementedError
