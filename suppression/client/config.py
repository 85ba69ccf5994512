"""The client's configuration: one frozen dataclass per concern, each field documented."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from suppression.errors import ConfigError
from suppression.targets import normalize_target

__all__ = ["ClientConfig", "KeepAlive", "RetryPolicy", "TlsConfig"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When and how often a failed call is sent again, to the next target.

    Only UNAVAILABLE is retried, and DEADLINE_EXCEEDED of an attempt when an
    :attr:`attempt_timeout` leaves time in the call's deadline (every call this
    client makes is a read, so sending it twice is harmless). INVALID_ARGUMENT,
    UNAUTHENTICATED, PERMISSION_DENIED, RESOURCE_EXHAUSTED and the rest are never
    retried: the same request would fail again.
    """

    max_attempts: int = 3
    """Attempts per call, the first included; each goes to the next target in turn."""
    initial_backoff: float = 0.05
    """Seconds: the first pause is drawn uniformly from 0 to this ("full jitter")."""
    max_backoff: float = 1.0
    """Seconds: no pause is drawn from a range wider than this."""
    multiplier: float = 2.0
    """Each further pause's range grows by this factor."""
    attempt_timeout: float | None = None
    """Seconds one attempt may take before the next target is tried; None gives
    each attempt whatever is left of the call's deadline."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {self.max_attempts}")
        if self.initial_backoff < 0 or self.max_backoff < 0 or self.multiplier < 1:
            raise ValueError("backoffs must be 0 or more, and the multiplier at least 1")
        if self.attempt_timeout is not None and self.attempt_timeout <= 0:
            raise ValueError(f"attempt_timeout must be above 0, not {self.attempt_timeout}")


@dataclass(frozen=True, slots=True)
class KeepAlive:
    """HTTP/2 keepalive pings, so a dead connection is noticed before a call waits on it.

    The server accepts a client ping every ``ServerOptions.min_client_ping_interval``
    seconds (10 s by default), idle or not; a client that pings more often is cut off
    with ``too_many_pings``. Keep :attr:`time` at or above the server's interval.
    """

    time: float = 30.0
    """Seconds between pings (``grpc.keepalive_time_ms``)."""
    timeout: float = 10.0
    """Seconds to wait for a ping's answer before the connection is closed."""
    permit_without_calls: bool = True
    """Ping idle connections too, so a dialer's first call after a pause does not
    find a silently dropped connection."""

    def __post_init__(self) -> None:
        if self.time <= 0 or self.timeout <= 0:
            raise ValueError("keepalive time and timeout must be above 0")

    def channel_options(self) -> list[tuple[str, int]]:
        """The gRPC channel arguments."""
        return [
            ("grpc.keepalive_time_ms", int(self.time * 1000)),
            ("grpc.keepalive_timeout_ms", int(self.timeout * 1000)),
            ("grpc.keepalive_permit_without_calls", int(self.permit_without_calls)),
            # gRPC's default stops pinging after 2 pings without data; keep going.
            ("grpc.http2.max_pings_without_data", 0),
        ]


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """TLS towards the servers; with a certificate and key, mutual TLS."""

    root_certificates: Path | None = None
    """PEM CA certificates that sign the servers' certificates; None uses the system's."""
    certificate_chain: Path | None = None
    """PEM client certificate chain, for mutual TLS."""
    private_key: Path | None = None
    """PEM private key of the client certificate."""
    server_name: str = ""
    """Name to verify the server's certificate against, when it differs from the
    target's host (``grpc.ssl_target_name_override``)."""

    def __post_init__(self) -> None:
        if (self.certificate_chain is None) != (self.private_key is None):
            raise ValueError("give both certificate_chain and private_key for mutual TLS")


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Everything a :class:`~suppression.client.SuppressionClient` needs."""

    targets: tuple[str, ...]
    """Servers as ``host[:port]``, ``[v6][:port]`` or gRPC URIs (``dns:///...``); calls
    rotate over them and retries move to the next one. A target without a port gets
    the service's 50051 (gRPC would dial 443)."""
    bulk_targets: tuple[str, ...] = ()
    """The servers' bulk ports (``serve --bulk-port``), written like ``targets``:
    :meth:`~suppression.client.SuppressionClient.check` requests of
    ``bulk_threshold`` numbers or more, and every ``check_stream``, go there, so
    bulk work never queues beside single-number checks. Empty: everything goes to
    ``targets``."""
    bulk_threshold: int = 1_000
    """Requests of at least this many numbers go to ``bulk_targets`` (match the
    servers' ``--bulk-threshold``)."""
    timeout: float = 5.0
    """Default deadline in seconds of one call, retries included; each method
    takes ``timeout=`` to override it."""
    stream_timeout: float = 3600.0
    """Default deadline in seconds of a whole :meth:`check_stream`."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    """Retries and their backoff."""
    hedge_delay: float | None = None
    """Seconds after which a single-number check is also sent to the next target,
    the first answer winning; None turns hedging off."""
    keepalive: KeepAlive = field(default_factory=KeepAlive)
    """Keepalive pings."""
    max_batch: int | None = None
    """Numbers per request; larger checks are split. None asks the first target's
    ``GetStatus`` once, at the first check that needs it."""
    lists: tuple[str, ...] = ()
    """Lists to check by default; empty means the server's default lists."""
    region: str = ""
    """Default region (``US``, ``CN``) for national number forms."""
    token: str | None = None
    """Bearer token, sent as ``authorization: Bearer <token>`` metadata."""
    tls: TlsConfig | None = None
    """TLS settings; None connects in plain text."""
    max_message_bytes: int = 64 << 20
    """Largest message sent or received; it must fit the server's ``max_batch``."""
    channel_options: tuple[tuple[str, int | str], ...] = ()
    """Further gRPC channel arguments, e.g. ``(("grpc.use_local_subchannel_pool", 1),)``
    so that several clients to one address get a connection each."""

    def __post_init__(self) -> None:
        if isinstance(self.targets, str):
            raise TypeError("targets is a sequence of host:port strings, not one string")
        try:
            object.__setattr__(self, "targets", tuple(map(normalize_target, self.targets)))
            object.__setattr__(
                self, "bulk_targets", tuple(map(normalize_target, self.bulk_targets))
            )
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc
        object.__setattr__(self, "lists", tuple(self.lists))
        object.__setattr__(self, "channel_options", tuple(self.channel_options))
        if not self.targets:
            raise ValueError("give at least one target, e.g. ('localhost:50051',)")
        if self.timeout <= 0 or self.stream_timeout <= 0:
            raise ValueError("timeouts must be above 0")
        if self.hedge_delay is not None and self.hedge_delay < 0:
            raise ValueError(f"hedge_delay must be 0 or more, not {self.hedge_delay}")
        if self.max_batch is not None and self.max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {self.max_batch}")
