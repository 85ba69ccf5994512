"""Snapshots from peers: a replica with an empty data directory fetches one over gRPC.

A real gRPC server streams a real snapshot file; the fetcher writes it, checks
the SHA-256, resumes a broken transfer, and falls back to another peer.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
import redis
from prometheus_client import CollectorRegistry
from pyroaring import BitMap64

from loader.cli import main as loader_main
from suppression.auth import Scope
from suppression.auth.model import method_scopes
from suppression.datasource import DataSource
from suppression.errors import SnapshotError
from suppression.lists import ListInfo, ListKind, SuppressionLists, Version
from suppression.peersnapshot import CHUNK_BYTES, PeerFetcher
from suppression.replica import Replica
from suppression.server import ServerOptions, ServingProcess, create_server
from suppression.snapshot import read_snapshot, write_snapshot
from suppression.v1 import suppression_pb2 as pb
from suppression.v1 import suppression_pb2_grpc as pb_grpc
from tests.conftest import RedisServer, ServerSubprocess, client_channel, free_port, wait_for

pytestmark = pytest.mark.integration

CN = 8613800138000


def snapshot_dir(directory: Path, count: int = 600_000) -> Path:
    """A data directory with one snapshot of ``count`` scattered numbers (several MiB)."""
    rng = random.Random(7)
    numbers = BitMap64(rng.randrange(12_000_000_000, 19_999_999_999) for _ in range(count))
    numbers.add(CN)
    lists = SuppressionLists(
        {"internal": numbers}, [ListInfo("internal", ListKind.OPT_OUT)], Version(1700000000000, 0)
    )
    return write_snapshot(directory, lists.view)


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A running replica that serves the snapshot in its data directory: (target, file)."""
    data = tmp_path / "peer"
    path = snapshot_dir(data)
    core = Replica(DataSource(data_dir=data))
    process: ServingProcess = create_server(
        core, ServerOptions(port=0), CollectorRegistry(), "127.0.0.1:0"
    )
    core.start()
    try:
        yield f"127.0.0.1:{process.port}", path
    finally:
        process.stop(0)


def test_fetch_brings_the_same_file_in_several_chunks(
    peer: tuple[str, Path], tmp_path: Path
) -> None:
    target, original = peer
    assert original.stat().st_size > 2 * CHUNK_BYTES, "the test needs several chunks"
    result = PeerFetcher([target]).fetch(tmp_path / "new")
    assert result.path == tmp_path / "new" / original.name
    assert result.path.read_bytes() == original.read_bytes()
    assert (result.resumed_from, result.peer) == (0, target)
    assert CN in read_snapshot(result.path).bitmaps["internal"]
    assert not list((tmp_path / "new").glob(".peer-*")), "no partial file is left"


def test_a_broken_transfer_resumes_where_it_stopped(peer: tuple[str, Path], tmp_path: Path) -> None:
    target, original = peer
    data = tmp_path / "new"
    data.mkdir()
    half = original.stat().st_size // 2
    (data / f".peer-{original.name}.part").write_bytes(original.read_bytes()[:half])
    result = PeerFetcher([target]).fetch(data)
    assert result.resumed_from == half
    assert result.path.read_bytes() == original.read_bytes()


def test_a_corrupt_partial_file_fails_the_checksum_and_is_fetched_again(
    peer: tuple[str, Path], tmp_path: Path
) -> None:
    target, original = peer
    data = tmp_path / "new"
    data.mkdir()
    (data / f".peer-{original.name}.part").write_bytes(b"\0" * 4096)
    result = PeerFetcher([target]).fetch(data)
    assert result.resumed_from == 0, "the second attempt starts from the first byte"
    assert result.path.read_bytes() == original.read_bytes()


def test_a_partial_file_the_peer_no_longer_has_is_dropped(
    peer: tuple[str, Path], tmp_path: Path
) -> None:
    target, original = peer
    data = tmp_path / "new"
    data.mkdir()
    gone = "snapshot-00000001600000000000-00000000000000000000.snap"
    (data / f".peer-{gone}.part").write_bytes(b"old")
    result = PeerFetcher([target]).fetch(data)
    assert result.path.name == original.name
    assert not (data / f".peer-{gone}.part").exists()


def test_a_dead_peer_is_skipped_and_no_peer_at_all_fails_clearly(
    peer: tuple[str, Path], tmp_path: Path
) -> None:
    target, original = peer
    dead = f"127.0.0.1:{free_port()}"
    result = PeerFetcher([dead, target]).fetch(tmp_path / "new")
    assert result.peer == target
    with pytest.raises(SnapshotError, match=f"no snapshot could be fetched.*{dead}"):
        PeerFetcher([dead], attempts=1).fetch(tmp_path / "other")


def test_fetch_snapshot_needs_the_admin_scope_and_names_only_snapshots(
    peer: tuple[str, Path],
) -> None:
    assert method_scopes("/suppression.v1.Suppression/FetchSnapshot") == {Scope.ADMIN}
    target, _ = peer
    with client_channel(target) as channel:
        stub = pb_grpc.SuppressionStub(channel)
        request = pb.FetchSnapshotRequest(name="../../etc/passwd")
        with pytest.raises(grpc.RpcError) as refused:
            list(stub.FetchSnapshot(request, timeout=5))
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_replica_started_empty_serves_the_peers_snapshot_and_follows_the_log(
    peer: tuple[str, Path],
    tmp_path: Path,
    redis_server: RedisServer,
    serve_subprocess: Callable[..., ServerSubprocess],
) -> None:
    target, original = peer
    data = tmp_path / "empty"
    server = serve_subprocess(
        "--data-dir", str(data), "--peer", target, "--redis-url", redis_server.url
    )
    server.wait_serving(60)
    assert (data / original.name).read_bytes() == original.read_bytes()
    with client_channel(server.target) as channel:
        stub = pb_grpc.SuppressionStub(channel)
        answer = stub.Check(pb.CheckRequest(e164=[CN, CN + 7]), timeout=5)
        assert list(answer.verdicts) == [pb.SUPPRESSED, pb.ALLOWED]
        common = ["--redis-url", redis_server.url, "--list-name", "internal", "--source", "app"]
        assert (
            loader_main(["publish", "add", "+8613800138007", *common, "--data-dir", str(data)]) == 0
        )

        def follows() -> bool:
            verdicts = stub.Check(pb.CheckRequest(e164=[CN + 7]), timeout=5).verdicts
            return bool(verdicts[0] == pb.SUPPRESSED)

        wait_for(follows, 10, "the fetched replica to follow the change log")


def test_compact_fetches_from_a_peer_and_keeps_young_entries(
    peer: tuple[str, Path], tmp_path: Path, redis_server: RedisServer
) -> None:
    target, original = peer
    url = ["--redis-url", redis_server.url]
    for number in ("+8613800138001", "+8613800138002", "+8613800138003"):
        publish = ["publish", "add", number, "--list-name", "internal", "--source", "app"]
        publish.append("--create-list")
        assert loader_main([*publish, *url, "--data-dir", str(tmp_path / "writer")]) == 0
    client = redis_server_client(redis_server)
    assert client.xlen("suppression:deltas") == 3
    scratch = tmp_path / "scratch"
    compact = ["compact", *url, "--data-dir", str(scratch), "--peer", target]
    assert loader_main([*compact, "--trim-min-age", "3600"]) == 0
    assert (scratch / original.name).read_bytes() == original.read_bytes()
    assert client.xlen("suppression:deltas") == 3, "entries younger than an hour stay"
    again = ["compact", *url, "--data-dir", str(tmp_path / "scratch-2"), "--peer", target]
    assert loader_main(again) == 0
    assert client.xlen("suppression:deltas") == 1, "without it, the log is trimmed to the new one"


def redis_server_client(server: RedisServer) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=5)


def test_peers_that_have_no_snapshot_are_not_waited_for(tmp_path: Path) -> None:
    core = Replica(DataSource(data_dir=tmp_path / "peer-empty"), None)
    process = create_server(core, ServerOptions(port=0), CollectorRegistry(), "127.0.0.1:0")
    try:
        fetcher = PeerFetcher([f"127.0.0.1:{process.port}"], attempts=5)
        started = time.monotonic()
        with pytest.raises(SnapshotError, match="FAILED_PRECONDITION: no snapshot"):
            fetcher.fetch(tmp_path / "new")
        assert time.monotonic() - started < 0.5, "no back-off when every peer has none"
    finally:
        process.stop(0)
