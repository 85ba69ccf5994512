"""The client's policy fields against `suppression serve --policy-file` processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from suppression.client import (
    ClientConfig,
    PolicyVersionMismatchError,
    RetryPolicy,
    SuppressionClient,
    Verdict,
)
from tests.conftest import ServerSubprocess, wait_for

pytestmark = pytest.mark.integration

US = 12125550123
SHANGHAI = 8613800138000
RETRY = RetryPolicy(initial_backoff=0.001, max_backoff=0.01)
POLICIES = """\
version = "{version}"

[lists]
national = "registry"

[policies.calls]
suppress = ["national"]

[policies.calls.window]
start = "08:00"
end = "21:00"
"""
AT = "2026-06-15T09:00-04:00"
"""09:00 in New York, 21:00 in Shanghai: Shanghai's window has just closed."""
AT_MS = 1_781_528_400_000
EARLIEST = "2026-06-16T00:00:00+00:00"


def serve_with_policy(
    serve_subprocess: Callable[..., ServerSubprocess], tmp_path: Path, name: str, version: str
) -> tuple[ServerSubprocess, Path]:
    national = tmp_path / "national.txt"
    national.write_text(f"+{US}\n")
    policy_file = tmp_path / f"{name}.toml"
    policy_file.write_text(POLICIES.format(version=version))
    server = serve_subprocess(
        "--list", f"national:registry={national}", "--policy-file", str(policy_file),
        "--max-batch", "50",
    )  # fmt: skip
    server.wait_serving()
    return server, policy_file


def test_a_split_batch_is_decided_under_the_servers_policy(
    serve_subprocess: Callable[..., ServerSubprocess], tmp_path: Path
) -> None:
    server, _ = serve_with_policy(serve_subprocess, tmp_path, "a", "v1")
    numbers = [US, SHANGHAI, US + 1] * 40
    config = ClientConfig(targets=(server.target,), retry=RETRY)
    with SuppressionClient(config) as client:
        result = client.check(e164=numbers, decide_at=AT_MS)
    assert [(p.start, p.count, p.policy_version) for p in result.parts] == [
        (0, 50, "v1"),
        (50, 50, "v1"),
        (100, 20, "v1"),
    ]
    assert [r.verdict for r in result] == [
        Verdict.SUPPRESSED,
        Verdict.DEFERRED,
        Verdict.ALLOWED,
    ] * 40
    assert {str(result.earliest_of(i).isoformat()) for i in result.deferred_indexes()} == {EARLIEST}


def test_suppression_check_target_prints_deferred_with_its_earliest_time(
    serve_subprocess: Callable[..., ServerSubprocess], tmp_path: Path
) -> None:
    server, _ = serve_with_policy(serve_subprocess, tmp_path, "a", "v1")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPPRESSION_")}
    done = subprocess.run(
        [sys.executable, "-m", "suppression.cli", "check", f"+{SHANGHAI}", f"+{US}",
         "--target", server.target, "--decide-at", AT, "--policy", "calls", "--output", "json"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    answer = json.loads(done.stdout)
    assert answer["policy_version"] == "v1"
    assert [(r["verdict"], r["rules"], r["earliest"]) for r in answer["results"]] == [
        ("DEFERRED", ["window"], EARLIEST),
        ("SUPPRESSED", ["list.national"], ""),
    ]


def test_a_reload_on_one_replica_makes_a_split_batch_refused_until_both_agree(
    serve_subprocess: Callable[..., ServerSubprocess], tmp_path: Path
) -> None:
    first, first_file = serve_with_policy(serve_subprocess, tmp_path, "a", "v1")
    second, second_file = serve_with_policy(serve_subprocess, tmp_path, "b", "v1")
    config = ClientConfig(targets=(first.target, second.target), retry=RETRY, max_batch=50)
    numbers = [US + k for k in range(100)]
    with SuppressionClient(config) as client:
        assert client.check(e164=numbers).policy_version == "v1"
        first_file.write_text(POLICIES.format(version="v2"))
        first.process.send_signal(signal.SIGHUP)
        wait_for(
            lambda: (
                client.check_one(US).policy_version == "v2"
                or client.check_one(US).policy_version == "v2"
            ),
            10,
            "the reload on the first replica",
        )
        with pytest.raises(PolicyVersionMismatchError, match="calls v1.*calls v2|calls v2.*v1"):
            client.check(e164=numbers)
        second_file.write_text(POLICIES.format(version="v2"))
        second.process.send_signal(signal.SIGHUP)

        def agreed() -> bool:
            try:
                return client.check(e164=numbers).policy_version == "v2"
            except PolicyVersionMismatchError:
                return False

        wait_for(agreed, 10, "both replicas on v2")
