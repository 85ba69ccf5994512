"""Server addresses from --target: a port is always named, 50051 when the user gave none."""

from __future__ import annotations

import pytest

from suppression.errors import ConfigError
from suppression.targets import normalize_target


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("localhost", "localhost:50051"),
        ("localhost:6000", "localhost:6000"),
        (" replica-1.dialer.svc ", "replica-1.dialer.svc:50051"),
        ("10.0.0.7", "10.0.0.7:50051"),
        ("10.0.0.7:443", "10.0.0.7:443"),
        ("[::1]", "[::1]:50051"),
        ("[::1]:6000", "[::1]:6000"),
        ("::1", "[::1]:50051"),
        ("fe80::1:2", "[fe80::1:2]:50051"),
        ("dns:///replicas.internal:50051", "dns:///replicas.internal:50051"),
        ("unix:/run/suppression.sock", "unix:/run/suppression.sock"),
    ],
)
def test_targets(text: str, expected: str) -> None:
    assert normalize_target(text) == expected
    assert normalize_target(expected) == expected, "normalizing twice changes nothing"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "--target is empty"),
        ("localhost:", "the port must be a number from 1 to 65535"),
        ("localhost:0", "the port must be a number from 1 to 65535"),
        ("localhost:70000", "the port must be a number from 1 to 65535"),
        ("localhost:http", "the port must be a number from 1 to 65535"),
        ("[::1", "an IPv6 address is written [ADDRESS]:PORT"),
        ("[::1]6000", "expected [ADDRESS]:PORT"),
        ("bad host:1", "is not a host name or address"),
        (":50051", "is not a host name or address"),
    ],
)
def test_bad_targets(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        normalize_target(text)
