"""Server addresses given by people (``--target``) turned into gRPC targets with a port.

gRPC dials port 443 when a target names no port, so ``--target localhost``
would quietly miss a server on the service's port. :func:`normalize_target`
adds :data:`DEFAULT_PORT` instead, and refuses what cannot be an address.
"""

from __future__ import annotations

import re

from suppression.errors import ConfigError

__all__ = ["DEFAULT_PORT", "normalize_target"]

DEFAULT_PORT = 50051
"""The port ``suppression serve`` listens on by default."""

_SCHEME = re.compile(r"^(dns|ipv4|ipv6|unix|unix-abstract|vsock|xds):")
"""Targets in gRPC's URI syntax are passed on as given: they carry their own rules."""

_HOST = re.compile(r"^[A-Za-z0-9_.\-]+$")


def normalize_target(text: str, default_port: int = DEFAULT_PORT) -> str:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` as ``host:port`` for gRPC.

    >>> normalize_target("localhost")
    'localhost:50051'
    >>> normalize_target("[::1]")
    '[::1]:50051'
    >>> normalize_target("::1")
    '[::1]:50051'
    >>> normalize_target("10.0.0.7:6000")
    '10.0.0.7:6000'

    Args:
        text: the address as written.
        default_port: the port used when ``text`` names none.

    Raises:
        ConfigError: ``text`` is empty, has a port that is not 1-65535, or a
            malformed host.
    """
    target = text.strip()
    if not target:
        raise ConfigError("--target is empty: give HOST or HOST:PORT, e.g. localhost:50051")
    if _SCHEME.match(target):
        return target
    if target.startswith("["):
        host, sep, rest = target[1:].partition("]")
        if not sep or not host or ":" not in host:
            raise ConfigError(f"--target {text!r}: an IPv6 address is written [ADDRESS]:PORT")
        if rest and not rest.startswith(":"):
            raise ConfigError(f"--target {text!r}: expected [ADDRESS]:PORT")
        port = _port(text, rest[1:]) if rest else default_port
        return f"[{host}]:{port}"
    if target.count(":") > 1:
        # A bare IPv6 literal: its colons are not a port separator.
        return f"[{target}]:{default_port}"
    host, sep, port_text = target.partition(":")
    if not host or not _HOST.match(host):
        raise ConfigError(f"--target {text!r}: {host!r} is not a host name or address")
    port = _port(text, port_text) if sep else default_port
    return f"{host}:{port}"


def _port(text: str, port_text: str) -> int:
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ConfigError(f"--target {text!r}: the port must be a number from 1 to 65535")
    return int(port_text)
