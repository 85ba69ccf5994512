"""`suppression serve` archives; kill -9 while writes stream in loses no acknowledged change.

A real server process follows a real redis-server and archives into its
--data-dir. Writers send Suppress calls; each answer is an acknowledgement
(the change is applied, so archived). The server is killed with SIGKILL in
the middle of that, started again, and every acknowledged version must be in
the archive, and Explain must answer for it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from suppression.archive import ArchiveReader
from suppression.lists import Version
from suppression.v1 import suppression_pb2 as pb
from suppression.v1 import suppression_pb2_grpc as pb_grpc
from tests.conftest import RedisServer, ServerSubprocess, wait_for

pytestmark = pytest.mark.integration

FIRST = 12125550000


def test_kill_9_under_writes_loses_no_acknowledged_change(
    redis_server: RedisServer,
    serve_subprocess: Callable[..., ServerSubprocess],
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    args = ("--redis-url", redis_server.url, "--data-dir", str(data), "--snapshot-interval", "3600")
    server = serve_subprocess(*args)
    server.wait_serving()
    acknowledged: list[tuple[int, Version]] = []
    stop = threading.Event()

    def write() -> None:
        with grpc.insecure_channel(server.target) as channel:
            stub = pb_grpc.SuppressionStub(channel)
            index = 0
            while not stop.is_set():
                number = FIRST + index
                request = pb.SuppressRequest(
                    e164=[number], list="optout", source="in_call", create_list=True,
                    evidence=f"rec-{index}",
                )  # fmt: skip
                try:
                    answer = stub.Suppress(request, timeout=5)
                except grpc.RpcError:
                    return  # the server died under this call: not acknowledged
                acknowledged.append((number, Version.parse(answer.version)))
                index += 1

    writer = threading.Thread(target=write)
    writer.start()
    wait_for(lambda: len(acknowledged) >= 30, 30, "30 acknowledged writes")
    server.kill()
    stop.set()
    writer.join(10)
    held = {c.version for c in ArchiveReader(data / "archive").changes(None, Version(2**62, 0))[0]}
    missing = [str(version) for _, version in acknowledged if version not in held]
    assert missing == [], "acknowledged changes missing from the archive after kill -9"
    restarted = serve_subprocess(*args)
    restarted.wait_serving()
    number, version = acknowledged[-1]
    with grpc.insecure_channel(restarted.target) as channel:
        stub = pb_grpc.SuppressionStub(channel)
        answer = stub.Explain(
            pb.ExplainRequest(number_e164=number, version=str(version)), timeout=10
        )
    assert answer.verdict == pb.SUPPRESSED
    assert answer.lists[0].since.version == str(version)
    assert answer.lists[0].since.evidence == f"rec-{len(acknowledged) - 1}"
