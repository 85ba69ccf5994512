"""Sizes on the wire that the server, the client and the scrub must agree on."""

from __future__ import annotations

__all__ = ["grpc_message_limit"]

_BYTES_PER_NUMBER_ON_WIRE = 64
"""Generous: a text number plus its share of every parallel response array."""


def grpc_message_limit(max_batch: int) -> int:
    """A message size limit that fits the largest batch, request or response."""
    return max_batch * _BYTES_PER_NUMBER_ON_WIRE + (1 << 20)
