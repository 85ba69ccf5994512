"""The Prometheus ``/metrics`` HTTP endpoint, bound to the address the gRPC server uses."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server
from prometheus_client.registry import Collector

from suppression.errors import ConfigError

__all__ = ["MetricsEndpoint", "serve_metrics"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MetricsEndpoint:
    """A running ``/metrics`` server; ``port`` is the bound one (useful with port 0)."""

    server: WSGIServer
    thread: threading.Thread
    host: str
    port: int

    def stop(self) -> None:
        """Stop serving and release the port."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def serve_metrics(host: str, port: int, registry: Collector) -> MetricsEndpoint:
    """Serve ``registry`` on ``http://host:port/metrics`` in a daemon thread.

    Args:
        host: the address to bind, as given to ``--host``: a name, an IPv4
            address, or an IPv6 address with or without brackets (``[::]``
            binds every address, IPv4 included where the system allows).
        port: the TCP port; 0 picks a free one.
        registry: what to expose.

    Raises:
        ConfigError: the port is busy or the address cannot be bound.
    """
    address = host.strip()
    if address.startswith("[") and address.endswith("]"):
        address = address[1:-1]
    shown = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    try:
        server, thread = start_http_server(port, addr=address, registry=registry)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(
            f"cannot serve /metrics on {shown}: {reason}; choose another --metrics-port "
            "(0 turns metrics off) or stop what holds it"
        ) from exc
    bound = int(server.server_address[1])
    logger.info("metrics on http://%s/metrics", shown.rsplit(":", 1)[0] + f":{bound}")
    return MetricsEndpoint(server, thread, address, bound)
