"""`suppression serve` as a real process, called over the network."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from pyroaring import BitMap64

from suppression.lists import ListInfo, ListKind, SuppressionLists, Version
from suppression.snapshot import write_snapshot
from suppression.v1 import suppression_pb2 as pb
from suppression.v1 import suppression_pb2_grpc as pb_grpc
from tests.conftest import REPO, ServerSubprocess, client_channel, wait_for

pytestmark = pytest.mark.integration

CN = 8613800138000
US = 12125550123


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "data"
    lists = SuppressionLists(
        {"national": BitMap64([US]), "internal": BitMap64([CN])},
        infos=[ListInfo("national", ListKind.REGISTRY)],
        version=Version(1700000000000, 1),
    )
    write_snapshot(directory, lists.view)
    return directory


def check(target: str, request: pb.CheckRequest, timeout: float = 30) -> pb.CheckResponse:
    with client_channel(target) as channel:
        return pb_grpc.SuppressionStub(channel).Check(request, timeout=timeout)


def test_serves_a_snapshot_and_number_files(
    serve_subprocess: Callable[..., ServerSubprocess], data_dir: Path, tmp_path: Path
) -> None:
    optouts = tmp_path / "campaign.txt"
    optouts.write_text("138 0013 9999\n+1900xxxxxxx\n")
    server = serve_subprocess(
        "--data-dir", str(data_dir), "--list", f"campaign:campaign={optouts}", "--region", "CN"
    )
    server.wait_serving()
    response = check(
        server.target, pb.CheckRequest(e164=[US, CN, 8613800139999, 19005550199, 12025550147])
    )
    assert list(response.list_names) == ["campaign", "internal", "national"]
    assert list(response.verdicts) == [pb.SUPPRESSED] * 4 + [pb.ALLOWED]
    assert list(response.matched) == [0b100, 0b010, 0b001, 0b001, 0]
    assert response.version == "1700000000000-1"
    assert server.terminate() == 0


def test_reflection_lists_the_services(
    serve_subprocess: Callable[..., ServerSubprocess], data_dir: Path
) -> None:
    server = serve_subprocess("--data-dir", str(data_dir))
    server.wait_serving()
    with grpc.insecure_channel(server.target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        answers = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        names = {s.name for s in next(answers).list_services_response.service}
    assert {"suppression.v1.Suppression", "grpc.health.v1.Health"} <= names


def test_sigterm_finishes_in_flight_calls(
    serve_subprocess: Callable[..., ServerSubprocess], data_dir: Path
) -> None:
    server = serve_subprocess("--data-dir", str(data_dir), "--parse-cache-size", "0")
    server.wait_serving()
    # Distinct national forms defeat the cache, so this call takes a second or more.
    slow = pb.CheckRequest(
        numbers=[f"(212) 555-{k % 10000:04d} x{k}" for k in range(60_000)], default_region="US"
    )
    result: dict[str, object] = {}

    def call() -> None:
        try:
            result["response"] = check(server.target, slow, timeout=60)
        except grpc.RpcError as exc:  # pragma: no cover - reported by the assertion below
            result["error"] = exc

    caller = threading.Thread(target=call)
    caller.start()
    from tests.conftest import wait_for

    wait_for(lambda: "suppression" in server.log(), 10, "the server to log")
    import time

    time.sleep(0.3)  # let the call reach the server before the signal
    assert server.terminate(timeout=60) == 0
    caller.join(60)
    assert "error" not in result, result.get("error")
    response = result["response"]
    assert isinstance(response, pb.CheckResponse)
    assert len(response.verdicts) == 60_000
    assert "shutting down gracefully" in server.log()


def test_corrupt_snapshot_stops_start_up_with_a_clear_error(
    serve_subprocess: Callable[..., ServerSubprocess], data_dir: Path
) -> None:
    snapshot = next(data_dir.glob("*.snap"))
    snapshot.write_bytes(snapshot.read_bytes()[:-10])
    server = serve_subprocess("--data-dir", str(data_dir))
    assert server.process.wait(30) == 2
    assert "truncated" in server.log() and "Traceback" not in server.log()


def test_two_worker_processes_share_the_port(
    serve_subprocess: Callable[..., ServerSubprocess], data_dir: Path
) -> None:
    server = serve_subprocess("--data-dir", str(data_dir), "--workers", "2")
    server.wait_serving()

    def serving_pids() -> set[str]:
        return {
            line.split("[")[1].split("]")[0]
            for line in server.log().splitlines()
            if "serving 2 lists" in line
        }

    wait_for(lambda: len(serving_pids()) == 2, 30, "both workers to serve")
    for _ in range(40):
        with client_channel(server.target) as channel:
            stub = pb_grpc.SuppressionStub(channel)
            assert list(stub.Check(pb.CheckRequest(e164=[US])).verdicts) == [pb.SUPPRESSED]
    assert server.terminate() == 0


def test_check_command_remote_and_local(
    serve_subprocess: Callable[..., ServerSubprocess], data_dir: Path
) -> None:
    server = serve_subprocess("--data-dir", str(data_dir))
    server.wait_serving()
    base = [sys.executable, "-m", "suppression.cli", "check"]
    remote = subprocess.run(
        [
            *base,
            "--target",
            server.target,
            "--output",
            "json",
            "+8613800138000",
            "+12025550147",
            "--region",
            "US",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert remote.returncode == 1, remote.stderr
    assert '"verdict": "SUPPRESSED"' in remote.stdout and '"internal"' in remote.stdout
    allowed = subprocess.run(
        [*base, "--data-dir", str(data_dir), "+1 202 555 0147"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert allowed.returncode == 0, allowed.stderr
    assert "ALLOWED" in allowed.stdout and "1700000000000-1" in allowed.stdout
    broken = subprocess.run(
        [*base, "--target", "127.0.0.1:1", "--timeout", "1", "+12025550147"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert broken.returncode == 2
    assert "UNAVAILABLE" in broken.stderr and "Traceback" not in broken.stderr


def test_demo_data_set(tmp_path: Path, serve_subprocess: Callable[..., ServerSubprocess]) -> None:
    from suppression.demo import DEMO_NUMBERS, build_demo

    build_demo(tmp_path / "demo", registry_size=200_000)
    server = serve_subprocess("--data-dir", str(tmp_path / "demo"))
    server.wait_serving()
    response = check(server.target, pb.CheckRequest(numbers=list(DEMO_NUMBERS)))
    expected = [pb.ALLOWED if "allowed" in why else pb.SUPPRESSED for why in DEMO_NUMBERS.values()]
    assert list(response.verdicts) == expected
