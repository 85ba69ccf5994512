"""``--bulk-port``: bulk batches in their own processes, refused on the main port."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from pyroaring import BitMap64

from suppression.client import ClientConfig, ClientError, SuppressionClient
from suppression.lists import ListInfo, ListKind, SuppressionLists, Version
from suppression.snapshot import write_snapshot
from suppression.v1 import suppression_pb2 as pb
from suppression.v1 import suppression_pb2_grpc as pb_grpc
from tests.conftest import REPO, ServerSubprocess, client_channel, free_port, wait_for

pytestmark = pytest.mark.integration

LISTED = [12125550000 + k for k in range(0, 2000, 2)]
"""Every other number of a 2,000-number block is on the registry."""
BATCH = [12125550000 + k for k in range(1500)]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "data"
    lists = SuppressionLists(
        {"national": BitMap64(LISTED)},
        infos=[ListInfo("national", ListKind.REGISTRY)],
        version=Version(1700000000000, 1),
    )
    write_snapshot(directory, lists.view)
    return directory


@pytest.fixture
def served(
    serve_subprocess: Callable[..., ServerSubprocess], data_dir: Path
) -> Iterator[tuple[ServerSubprocess, int]]:
    bulk_port = free_port()
    server = serve_subprocess(
        "--data-dir", str(data_dir), "--bulk-port", str(bulk_port), "--bulk-threshold", "1000"
    )
    server.wait_serving()
    # Health is SERVING only once every worker, the bulk one included, is ready.
    yield server, bulk_port
    assert server.terminate() == 0


def expected(numbers: list[int]) -> list[int]:
    listed = set(LISTED)
    return [pb.SUPPRESSED if number in listed else pb.ALLOWED for number in numbers]


def serving_pids(server: ServerSubprocess, port: int) -> set[str]:
    """The pids that logged serving on ``port`` (log lines carry ``[pid]``)."""
    pattern = re.compile(rf"\[(\d+)\].*serving 1 lists on port {port} ")
    return {match.group(1) for match in pattern.finditer(server.log())}


def test_bulk_batches_are_served_on_the_bulk_port_by_another_process(
    served: tuple[ServerSubprocess, int],
) -> None:
    server, bulk_port = served
    wait_for(lambda: bool(serving_pids(server, bulk_port)), 30, "the bulk worker's log")
    main_pids, bulk_pids = serving_pids(server, server.port), serving_pids(server, bulk_port)
    assert main_pids and bulk_pids and not main_pids & bulk_pids
    with client_channel(f"127.0.0.1:{bulk_port}") as channel:
        stub = pb_grpc.SuppressionStub(channel)
        assert list(stub.Check(pb.CheckRequest(e164=BATCH)).verdicts) == expected(BATCH)
        # The bulk port answers small batches too: a client need not split its traffic exactly.
        assert list(stub.Check(pb.CheckRequest(e164=BATCH[:3])).verdicts) == expected(BATCH[:3])


def test_the_main_port_refuses_bulk_batches_and_names_the_bulk_port(
    served: tuple[ServerSubprocess, int],
) -> None:
    server, bulk_port = served
    with client_channel(server.target) as channel:
        stub = pb_grpc.SuppressionStub(channel)
        small = BATCH[:999]
        assert list(stub.Check(pb.CheckRequest(e164=small)).verdicts) == expected(small)
        with pytest.raises(grpc.RpcError) as refused:
            stub.Check(pb.CheckRequest(e164=BATCH[:1000]))
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert f"bulk port {bulk_port}" in (refused.value.details() or "")
        stream = stub.CheckStream(iter([pb.CheckRequest(numbers=[f"+{n}" for n in BATCH])]))
        with pytest.raises(grpc.RpcError) as streamed:
            list(stream)
        assert streamed.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_a_bulk_port_equal_to_the_port_is_refused_at_start(data_dir: Path) -> None:
    port = free_port()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "suppression.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--metrics-port",
            "0",
            "--data-dir",
            str(data_dir),
            "--bulk-port",
            str(port),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert result.returncode == 2
    assert f"--bulk-port {port} must differ from --port" in result.stderr


def test_the_client_sends_bulk_work_to_the_bulk_targets(
    served: tuple[ServerSubprocess, int],
) -> None:
    server, bulk_port = served
    main_only = SuppressionClient(ClientConfig(targets=(server.target,)))
    routed = SuppressionClient(
        ClientConfig(
            targets=(server.target,),
            bulk_targets=(f"127.0.0.1:{bulk_port}",),
            bulk_threshold=1000,
        )
    )
    with main_only, routed:
        with pytest.raises(ClientError, match=f"bulk port {bulk_port}"):
            main_only.check(e164=BATCH)
        assert [record.verdict for record in routed.check(e164=BATCH)] == expected(BATCH)
        assert [record.verdict for record in routed.check(e164=BATCH[:5])] == expected(BATCH[:5])
        streamed = list(routed.check_stream([BATCH, BATCH[:10]]))
        assert [record.verdict for record in streamed[0]] == expected(BATCH)
        assert [record.verdict for record in streamed[1]] == expected(BATCH[:10])
