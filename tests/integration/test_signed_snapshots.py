"""Signed snapshots end to end: serve, check, a following replica and the loader, with a key."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from pyroaring import BitMap64

from loader.cli import main as loader_main
from suppression.cli import main as suppression_main
from suppression.demo import main as demo_main
from suppression.errors import SnapshotError
from suppression.lists import ListInfo, ListKind, Op, SuppressionLists, Version
from suppression.snapshot import FORMAT_VERSION, find_newest, read_snapshot, write_snapshot
from suppression.snapshotkey import SnapshotKey
from suppression.snapshotter import Snapshotter
from tests.conftest import RedisServer, ServerSubprocess, wait_for
from tests.integration.live_replicas import (  # noqa: F401 - a fixture
    ReplicaFactory,
    redis_client,
    start_replica_fixture,
)
from tests.samples import KEY, OTHER_KEY, craft, write_key_file

pytestmark = pytest.mark.integration

STREAM = "suppression:deltas"
CN = 8613800138000
US = 12125550123
CRAFTED = 12025550147


def signed_data(directory: Path, key: SnapshotKey | None) -> Path:
    lists = SuppressionLists(
        {"national": BitMap64([US]), "internal": BitMap64([CN])},
        infos=[ListInfo("national", ListKind.REGISTRY)],
        version=Version(1700000000000, 1),
    )
    return write_snapshot(directory, lists.view, key)


def test_serve_with_the_key_refuses_a_crafted_snapshot_in_one_line(
    serve_subprocess: Callable[..., ServerSubprocess], tmp_path: Path
) -> None:
    key_file = write_key_file(tmp_path / "snapshot.key", KEY)
    data = tmp_path / "data"
    craft(signed_data(data, SnapshotKey((KEY,))))
    server = serve_subprocess("--data-dir", str(data), "--snapshot-key-file", str(key_file))
    assert server.process.wait(30) == 2
    log = server.log()
    errors = [line for line in log.splitlines() if "error" in line.lower()]
    assert errors == [log.strip().splitlines()[-1]], log
    assert errors[0].startswith("suppression: error: snapshot ")
    assert "invalid signature" in log and "Traceback" not in log
    assert SnapshotKey((KEY,)).key_id in errors[0]  # legible: not masked as a number


def test_serve_takes_the_key_from_the_environment_and_refuses_an_unsigned_snapshot(
    serve_subprocess: Callable[..., ServerSubprocess], tmp_path: Path
) -> None:
    key_file = write_key_file(tmp_path / "snapshot.key", KEY)
    data = tmp_path / "data"
    signed_data(data, None)
    server = serve_subprocess(
        "--data-dir", str(data), env={"SUPPRESSION_SNAPSHOT_KEY_FILE": str(key_file)}
    )
    assert server.process.wait(30) == 2
    log = server.log()
    errors = [line for line in log.splitlines() if "error" in line.lower()]
    assert errors == [log.strip().splitlines()[-1]], log
    assert errors[0].startswith("suppression: error: snapshot ")
    assert "is not signed" in log


def test_serve_with_the_key_serves_a_signed_snapshot(
    serve_subprocess: Callable[..., ServerSubprocess], tmp_path: Path
) -> None:
    key_file = write_key_file(tmp_path / "snapshot.key", KEY)
    signed_data(tmp_path / "data", SnapshotKey((KEY,)))
    server = serve_subprocess(
        "--data-dir", str(tmp_path / "data"), "--snapshot-key-file", str(key_file)
    )
    server.wait_serving()


def test_serve_refuses_a_key_file_others_can_read(
    serve_subprocess: Callable[..., ServerSubprocess], tmp_path: Path
) -> None:
    key_file = write_key_file(tmp_path / "snapshot.key", KEY)
    key_file.chmod(0o644)
    signed_data(tmp_path / "data", SnapshotKey((KEY,)))
    server = serve_subprocess(
        "--data-dir", str(tmp_path / "data"), "--snapshot-key-file", str(key_file)
    )
    assert server.process.wait(30) == 2
    assert "readable by every user" in server.log()


def test_check_reads_a_crafted_file_without_the_key_and_refuses_it_with_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key_file = write_key_file(tmp_path / "snapshot.key", KEY)
    data = tmp_path / "data"
    craft(signed_data(data, SnapshotKey((KEY,))))
    number = f"+{CRAFTED}"
    assert suppression_main(["check", "--data-dir", str(data), number]) == 1  # crafted: blocked
    capsys.readouterr()
    args = ["check", "--data-dir", str(data), "--snapshot-key-file", str(key_file), number]
    assert suppression_main(args) == 2
    assert "invalid signature" in capsys.readouterr().err


def test_a_following_replica_with_the_key_resyncs_only_from_a_signed_snapshot(
    start_replica: ReplicaFactory,
    redis_server: RedisServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = SnapshotKey((KEY,))
    first = start_replica(tmp_path / "first", snapshot_key=key)
    first.core.submit(Op.ADD, "internal", [CN], source="app", create_list=True)
    first.core.submit(Op.ADD, "internal", [US], source="app")
    Snapshotter(first.lists, tmp_path / "first", 3600, key=key).snapshot_now()
    good = find_newest(tmp_path / "first")
    assert good is not None
    redis_client(redis_server).xtrim(STREAM, minid=str(first.lists.version), approximate=False)
    late = start_replica(tmp_path / "late", max_staleness=0.5, snapshot_key=key)
    wait_for(lambda: late.follower_state().needs_resync, 5, "the gap to be noticed")
    # The crafted file appears whole, as a rename makes it: the follower never sees the
    # genuine bytes under that name before they are altered.
    staging = tmp_path / good.name
    staging.write_bytes(good.read_bytes())
    craft(staging)
    crafted = tmp_path / "late" / good.name
    with caplog.at_level(logging.WARNING, logger="suppression.changelog.follower"):
        os.replace(staging, crafted)
        wait_for(lambda: "invalid signature" in caplog.text, 5, "the crafted file refused")
    assert late.follower_state().needs_resync and not late.core.serving
    assert CRAFTED not in late.lists.view.bitmaps.get("internal", BitMap64())
    staging.write_bytes(good.read_bytes())
    os.replace(staging, crafted)
    wait_for(lambda: late.core.serving, 5, "a resync from the signed snapshot")
    assert late.suppressed(CN) and late.suppressed(US) and not late.suppressed(CRAFTED)


def test_loader_import_compact_and_reseed_sign_what_they_write(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    key_file = write_key_file(tmp_path / "snapshot.key", KEY)
    key = SnapshotKey((KEY,))
    data = tmp_path / "data"
    registry = tmp_path / "dnc.txt"
    registry.write_text("2125550123\n")
    signing = ["--snapshot-key-file", str(key_file)]
    common = ["--list-name", "national", "--data-dir", str(data), "--create-list"]
    assert loader_main(["import", str(registry), *common, *signing]) == 0
    imported = find_newest(data)
    assert imported is not None and set(read_snapshot(imported, key).bitmaps["national"]) == {US}
    with pytest.raises(SnapshotError, match="signed with another key"):
        read_snapshot(imported, SnapshotKey((OTHER_KEY,)))
    url = ["--redis-url", redis_server.url]
    assert loader_main(["reseed", "--data-dir", str(data), *url, *signing]) == 0
    reseeded = find_newest(data)
    assert reseeded is not None and reseeded != imported
    assert read_snapshot(reseeded, key).position.epoch
    publish = ["publish", "add", f"+{CN}", "--list-name", "internal", "--source", "app"]
    assert loader_main([*publish, "--create-list", "--data-dir", str(data), *url, *signing]) == 0
    assert loader_main(["compact", "--data-dir", str(data), *url, *signing]) == 0
    compacted = find_newest(data)
    assert compacted is not None and compacted != reseeded
    assert CN in read_snapshot(compacted, key).bitmaps["internal"]
    assert compacted.read_bytes()[8] == FORMAT_VERSION


def test_loader_with_the_key_refuses_an_unsigned_base_snapshot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key_file = write_key_file(tmp_path / "snapshot.key", KEY)
    data = tmp_path / "data"
    signed_data(data, None)
    registry = tmp_path / "dnc.txt"
    registry.write_text("2125550124\n")
    args = ["import", str(registry), "--list-name", "national", "--data-dir", str(data)]
    assert loader_main([*args, "--snapshot-key-file", str(key_file)]) == 2
    assert "is not signed" in capsys.readouterr().err
    assert len(list(data.glob("*.snap"))) == 1, "nothing written"


def test_the_demo_data_set_can_be_signed(tmp_path: Path) -> None:
    key_file = write_key_file(tmp_path / "snapshot.key", KEY)
    demo = tmp_path / "demo"
    assert (
        demo_main([str(demo), "--registry-size", "1000", "--snapshot-key-file", str(key_file)]) == 0
    )
    args = ["check", "--data-dir", str(demo), "--snapshot-key-file", str(key_file)]
    assert suppression_main([*args, "+12025550147"]) == 0  # the demo's allowed number
    assert suppression_main([*args, "+12125550123"]) == 1
