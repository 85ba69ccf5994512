"""Wrapping a gRPC method's behavior while keeping its kind and (de)serializers.

Both server interceptors (metrics, and authentication with quotas) wrap every
kind of method the same way; this is the one place that knows the four kinds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

__all__ = ["Behavior", "rewrap"]

Behavior = Callable[[Any, grpc.ServicerContext], Any]
"""A method's implementation: request (or request iterator) and context in, response out."""


def rewrap(
    handler: grpc.RpcMethodHandler,
    unary_response: Callable[[Behavior, bool], Behavior],
    stream_response: Callable[[Behavior, bool], Behavior],
) -> grpc.RpcMethodHandler:
    """The same method, its behavior wrapped by ``unary_response`` or ``stream_response``.

    Args:
        handler: the method's handler.
        unary_response: wraps a behavior that returns one response; its second
            argument says whether the requests arrive as a stream.
        stream_response: wraps a behavior that yields responses; likewise.
    """
    serializers = {
        "request_deserializer": handler.request_deserializer,
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
