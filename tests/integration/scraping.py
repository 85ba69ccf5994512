"""Scraping a real server's /metrics in tests: the text, parsed samples, and promtool's lint."""

from __future__ import annotations

import shutil
import subprocess
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ServerSubprocess

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape_text(server: ServerSubprocess) -> str:
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as answer:
        return str(answer.read().decode())


def scrape(server: ServerSubprocess) -> tuple[Samples, dict[str, str]]:
    """Samples by (name, labels), and each family's type."""
    text = scrape_text(server)
    samples: Samples = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return samples, types


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def lint_with_promtool(exposition: str) -> None:
    """`promtool check metrics`: Prometheus's own lint of names, types and help."""
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is not installed; `make test` installs it (Debian: prometheus)")
    result = subprocess.run(
        [binary, "check", "metrics"],
        input=exposition,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
