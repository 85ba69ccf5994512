"""SIGTERM completes within the grace period whatever the clients did."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from pyroaring import BitMap64

from suppression.lists import SuppressionLists, Version
from suppression.snapshot import write_snapshot
from suppression.v1 import suppression_pb2 as pb
from suppression.v1 import suppression_pb2_grpc as pb_grpc
from tests.conftest import ServerSubprocess

GRACE = 2.0
MARGIN = 8.0
"""Seconds beyond the grace for the process to stop its threads and exit."""


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "data"
    lists = SuppressionLists({"internal": BitMap64([8613800138000])}, version=Version(1, 0))
    write_snapshot(directory, lists.view)
    return directory


def _then_idle(first: list[bytes], stop: threading.Event) -> Iterator[bytes]:
    yield from first
    stop.wait()


GOOD = pb.CheckRequest(e164=[8613800138000]).SerializeToString()
BAD = b"\xff\xff\xff\xff\xff"


@pytest.mark.parametrize(
    "sent",
    [[BAD], [BAD, BAD, BAD], [GOOD, BAD, GOOD], []],
    ids=["garbage", "garbage-3", "good-garbage-good", "idle"],
)
def test_sigterm_completes_within_the_grace_period(
    serve_subprocess: Callable[..., ServerSubprocess], data_dir: Path, sent: list[bytes]
) -> None:
    server = serve_subprocess("--data-dir", str(data_dir), "--grace", str(GRACE))
    server.wait_serving()
    stop = threading.Event()
    channel = grpc.insecure_channel(server.target)
    try:
        call = channel.stream_stream(
            "/suppression.v1.Suppression/CheckStream",
            request_serializer=None,
            response_deserializer=None,
        )
        stream = call(_then_idle(sent, stop))
        # The stream has reached the server once a unary call on the same
        # connection, sent after it, has been answered.
        answer = pb_grpc.SuppressionStub(channel).Check(
            pb.CheckRequest(e164=[8613800138000]), timeout=5
        )
        assert list(answer.verdicts) == [pb.SUPPRESSED]
        started = time.monotonic()
        code = server.terminate(timeout=GRACE + MARGIN + 5)
        elapsed = time.monotonic() - started
        assert code == 0, server.log()
        assert elapsed < GRACE + MARGIN, f"exit took {elapsed:.1f} s:\n{server.log()}"
        stream.cancel()
    finally:
        stop.set()
        channel.close()
