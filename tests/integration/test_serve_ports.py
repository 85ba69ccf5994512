"""`suppression serve` on ports it cannot have: one line, exit 2, for gRPC and /metrics alike."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from pyroaring import BitMap64

from suppression.lists import SuppressionLists, Version
from suppression.snapshot import write_snapshot
from tests.conftest import REPO, free_port

pytestmark = pytest.mark.integration


def _serve(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPPRESSION_")}
    return subprocess.run(
        [sys.executable, "-m", "suppression.cli", "serve", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=REPO,
        check=False,
    )


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    lists = SuppressionLists({"internal": BitMap64([8613800138000])}, version=Version(1, 0))
    write_snapshot(tmp_path / "data", lists.view)
    return tmp_path / "data"


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize("which", ["grpc", "metrics"])
def test_a_busy_port_is_one_line_and_exit_2(data_dir: Path, which: str, workers: str) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        grpc_port = busy if which == "grpc" else free_port()
        metrics_port = busy if which == "metrics" else free_port()
        result = _serve(
            data_dir,
            "--host",
            "127.0.0.1",
            "--port",
            str(grpc_port),
            "--metrics-port",
            str(metrics_port),
            "--workers",
            workers,
            "--log-level",
            "WARNING",
        )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(busy) in lines[0] and "--" in lines[0]


def test_metrics_bind_only_the_given_host(data_dir: Path) -> None:
    """With --host 127.0.0.1, /metrics is not reachable on another loopback address."""
    port, metrics_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPPRESSION_")}
    command = [sys.executable, "-m", "suppression.cli", "serve", "--data-dir", str(data_dir)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--metrics-port", str(metrics_port)]
    server = subprocess.Popen(command, env=env, cwd=REPO, stderr=subprocess.DEVNULL)
    try:
        from tests.conftest import wait_for

        def reachable(host: str) -> bool:
            try:
                with socket.create_connection((host, metrics_port), timeout=0.5):
                    return True
            except OSError:
                return False

        wait_for(lambda: reachable("127.0.0.1"), 30, "/metrics on 127.0.0.1")
        assert not reachable("127.0.0.2")
    finally:
        server.terminate()
        server.wait(30)


_SYS_TGKILL = {"x86_64": 234, "aarch64": 131}


def test_sigterm_delivered_to_another_thread_still_stops_the_server(data_dir: Path) -> None:
    """The kernel may hand a process's SIGTERM to any of its threads, not the main one."""
    import ctypes
    import platform
    import signal

    from tests.conftest import wait_for

    number = _SYS_TGKILL.get(platform.machine())
    if number is None:
        pytest.skip(f"tgkill's syscall number is not known here ({platform.machine()})")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPPRESSION_")}
    command = [sys.executable, "-m", "suppression.cli", "serve", "--data-dir", str(data_dir)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--metrics-port", "0"]
    server = subprocess.Popen(command, env=env, cwd=REPO, stderr=subprocess.DEVNULL)
    try:

        def listening() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return True
            except OSError:
                return False

        wait_for(listening, 30, "the server to listen")
        threads = [int(t.name) for t in Path(f"/proc/{server.pid}/task").iterdir()]
        other = next(tid for tid in threads if tid != server.pid)
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.syscall(number, server.pid, other, signal.SIGTERM) == 0
        assert server.wait(20) == 0, "SIGTERM to a non-main thread must stop the server"
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
