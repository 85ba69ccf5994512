"""The Prometheus ``/metrics`` HTTP endpoint, bound to the address the gRPC server uses."""

from __future__ import annotations

import logging
from pathlib import Path

from prometheus_client import CollectorRegistry

from suppression.webconfig import MetricsServer

__all__ = ["serve_metrics"]

logger = logging.getLogger(__name__)


def serve_metrics(
    host: str, port: int, registry: CollectorRegistry, web_config: Path | None = None
) -> MetricsServer:
    """Serve ``registry`` on ``http(s)://host:port/metrics`` in a daemon thread.

    Args:
        host: the address to bind, as given to ``--host``: a name, an IPv4
            address, or an IPv6 address with or without brackets (``[::]``
            binds every address, IPv4 included where the system allows).
        port: the TCP port; 0 picks a free one.
        registry: what to expose.
        web_config: a Prometheus web-config file (TLS, basic auth), if any.

    Raises:
        ConfigError: the port is busy, the address cannot be bound, or the web
            config is wrong.
    """
    server = MetricsServer(registry, port, host=host, web_config=web_config).start()
    scheme = "http" if web_config is None else "http(s)"
    logger.info("metrics on %s://%s:%d/metrics", scheme, host, server.port)
    return server
