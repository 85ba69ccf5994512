"""/metrics is served on the address given, and a busy port is a one-line ConfigError."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter

from suppression.errors import ConfigError
from suppression.exposition import serve_metrics
from suppression.webconfig import MetricsServer


@pytest.fixture
def registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("exposition_test", "A counter only this test has.", registry=registry).inc(3)
    return registry


@pytest.fixture
def endpoints() -> Iterator[list[MetricsServer]]:
    started: list[MetricsServer] = []
    yield started
    for endpoint in started:
        endpoint.stop()


def _scrape(host: str, port: int) -> str:
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as answer:
        return str(answer.read().decode())


def test_metrics_bind_only_the_given_host(
    registry: CollectorRegistry, endpoints: list[MetricsServer]
) -> None:
    endpoint = serve_metrics("127.0.0.1", 0, registry)
    endpoints.append(endpoint)
    assert endpoint.port > 0
    assert endpoint.address == "127.0.0.1"
    assert "exposition_test_total 3.0" in _scrape("127.0.0.1", endpoint.port)
    # Every 127/8 address reaches the loopback interface; only the bound one answers.
    with pytest.raises(OSError), socket.create_connection(("127.0.0.2", endpoint.port), 2):
        pass


def test_bracketed_ipv6_hosts_as_given_to_host(
    registry: CollectorRegistry, endpoints: list[MetricsServer]
) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        endpoint = serve_metrics("[::1]", 0, registry)
    except ConfigError as exc:
        pytest.skip(f"IPv6 loopback unavailable: {exc}")
    endpoints.append(endpoint)
    assert endpoint.address == "::1"
    assert "exposition_test_total 3.0" in _scrape("[::1]", endpoint.port)


def test_a_busy_port_is_a_one_line_config_error(registry: CollectorRegistry) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(ConfigError) as caught:
            serve_metrics("127.0.0.1", port, registry)
    message = str(caught.value)
    assert "\n" not in message
    assert f"cannot serve /metrics on 127.0.0.1:{port}: Address already in use" in message
    assert "--metrics-port" in message


def test_an_unknown_host_is_a_config_error(registry: CollectorRegistry) -> None:
    with pytest.raises(ConfigError, match="cannot serve /metrics on no-such-host.invalid:0"):
        serve_metrics("no-such-host.invalid", 0, registry)
