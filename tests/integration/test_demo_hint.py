"""The demo's printed `check` commands work verbatim against a real server and locally."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2

from tests.conftest import REPO, ServerSubprocess, free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def demo_output(tmp_path: Path) -> tuple[Path, int, str]:
    """Write the demo data with the hint naming a free port; returns (dir, port, output)."""
    port = free_port()
    directory = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "suppression.demo", str(directory), "--registry-size", "50000",
         "--target", f"localhost:{port}"],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return directory, port, result.stdout


@pytest.fixture
def demo_server(demo_output: tuple[Path, int, str], tmp_path: Path) -> Iterator[ServerSubprocess]:
    directory, port, _ = demo_output
    log_path = tmp_path / "server.log"
    command = [sys.executable, "-m", "suppression.cli", "serve", "--data-dir", str(directory),
               "--port", str(port), "--metrics-port", "0"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPPRESSION_")}
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO
        )
    server = ServerSubprocess(port, 0, process, log_path)
    try:
        server.wait_serving()
        assert server.health() == health_pb2.HealthCheckResponse.SERVING
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def _hints(output: str) -> list[str]:
    """The indented lines: the commands to copy."""
    return [line.strip() for line in output.splitlines() if line.startswith("  ")]


def _run_elsewhere(command: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    # From another directory, as from a second terminal: the hint must not rely on cwd.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPPRESSION_")}
    env["PYTHONPATH"] = str(REPO)  # the code under test, not another installed copy
    return subprocess.run(
        shlex.split(command), capture_output=True, text=True, cwd=elsewhere, env=env, timeout=60
    )


def _assert_demo_verdicts(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 1, f"exit code 1 means some are suppressed\n{result.stderr}"
    assert "error" not in result.stderr.lower() and "Traceback" not in result.stderr
    rows = [line for line in result.stdout.splitlines() if "+" in line and "│" in line]
    verdicts = [row.split("│")[3].strip() for row in rows]
    assert verdicts == ["SUPPRESSED"] * 4 + ["ALLOWED"], result.stdout


def test_the_printed_remote_check_works_against_the_server(
    demo_output: tuple[Path, int, str], demo_server: ServerSubprocess, tmp_path: Path
) -> None:
    remote, _ = _hints(demo_output[2])
    assert f"--target localhost:{demo_server.port}" in remote
    _assert_demo_verdicts(_run_elsewhere(remote, tmp_path))


def test_the_printed_local_check_works_without_a_server(
    demo_output: tuple[Path, int, str], tmp_path: Path
) -> None:
    _, local = _hints(demo_output[2])
    assert "--data-dir" in local
    _assert_demo_verdicts(_run_elsewhere(local, tmp_path))


def test_check_without_a_source_says_what_to_give(tmp_path: Path) -> None:
    result = _run_elsewhere(f"{sys.executable} -m suppression.cli check +12025550147", tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        "suppression: error: check needs --target HOST[:PORT] to ask a running server, or "
        "--data-dir DIR or --list NAME=FILE to check locally\n"
    )
