"""`suppression-loader` against a real redis-server and live replicas."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from loader.cli import main
from suppression.lists import ListKind, Version
from suppression.snapshot import find_newest, read_snapshot
from tests.conftest import REPO, RedisServer, wait_for
from tests.integration.live_replicas import (  # noqa: F401 - a fixture
    Replica,
    ReplicaFactory,
    redis_client,
    start_replica_fixture,
)

pytestmark = pytest.mark.integration

STREAM = "suppression:deltas"


def caught_up(replica: Replica, server: RedisServer) -> None:
    head = Version.parse(redis_client(server).xrevrange(STREAM, count=1)[0][0].decode())
    wait_for(lambda: replica.lists.version >= head, 5, "the replica to reach the head")


def test_import_builds_a_snapshot_without_a_change_log(tmp_path: Path) -> None:
    registry = tmp_path / "dnc.txt.gz"
    registry.write_bytes(gzip.compress(b"2125550123\n212,5550124\n"))
    data = tmp_path / "data"
    args = ["import", str(registry), "--list-name", "national", "--data-dir", str(data)]
    assert main(args) == 2, "a new list needs --create-list"
    assert find_newest(data) is None
    assert main([*args, "--create-list"]) == 0
    snapshot = read_snapshot(find_newest(data))  # type: ignore[arg-type]
    assert set(snapshot.bitmaps["national"]) == {12125550123, 12125550124}
    assert snapshot.infos["national"].kind is ListKind.REGISTRY
    opt_outs = tmp_path / "optouts.csv"
    opt_outs.write_text("phone\n+8613800138000\n")
    args = ["import", str(opt_outs), "--list-name", "internal", "--kind", "opt_out"]
    assert main([*args, "--column", "phone", "--data-dir", str(data), "--create-list"]) == 0
    newer = read_snapshot(find_newest(data))  # type: ignore[arg-type]
    assert newer.version > snapshot.version
    assert set(newer.bitmaps) == {"national", "internal"}


def test_import_publishes_the_difference_and_change_files(
    start_replica: ReplicaFactory, redis_server: RedisServer, tmp_path: Path
) -> None:
    replica = start_replica()
    url = ["--redis-url", redis_server.url, "--list-name", "national"]
    first = tmp_path / "full-1.txt"
    first.write_text("2125550123\n2125550124\n2125550125\n")
    assert main(["import", str(first), *url, "--create-list"]) == 0
    caught_up(replica, redis_server)
    assert replica.suppressed(12125550124)
    second = tmp_path / "full-2.txt"
    second.write_text("2125550123\n2125550126\n")
    assert main(["import", str(second), *url]) == 0
    caught_up(replica, redis_server)
    answer = replica.check([12125550123, 12125550124, 12125550125, 12125550126])
    assert [v == 2 for v in answer.verdicts] == [True, False, False, True]
    changes = tmp_path / "changes.txt"
    changes.write_text("A,2125550199\nD,2125550123\n")
    assert main(["import", "--changes", str(changes), *url]) == 0
    caught_up(replica, redis_server)
    assert replica.suppressed(12125550199) and not replica.suppressed(12125550123)
    assert replica.lists.view.infos["national"].kind is ListKind.REGISTRY


def test_publish_refuses_opt_out_removal_without_consent(
    start_replica: ReplicaFactory,
    redis_server: RedisServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    replica = start_replica()
    monkeypatch.setenv("SUPPRESSION_REDIS_URL", redis_server.url)
    monkeypatch.setenv("SUPPRESSION_LIST_NAME", "internal")
    assert (
        main(["publish", "add", "+86 138 0013 8000", "--source", "sms_reply", "--create-list"]) == 0
    )
    caught_up(replica, redis_server)
    assert replica.suppressed(8613800138000)
    length = redis_client(redis_server).xlen(STREAM)
    assert main(["publish", "remove", "+8613800138000", "--source", "app"]) == 2
    error = capsys.readouterr().err
    assert "only through source 'consent'" in error
    assert "8613800138000" not in error, "numbers never reach messages unmasked"
    assert redis_client(redis_server).xlen(STREAM) == length, "nothing was written"
    consent = ["--source", "consent", "--evidence", "ivr-recording-5521"]
    assert main(["publish", "remove", "+8613800138000", *consent]) == 0
    caught_up(replica, redis_server)
    assert not replica.suppressed(8613800138000)
    assert main(["publish", "add", "+8613800138000"]) == 2
    assert "--source" in capsys.readouterr().err


def test_compact_snapshots_then_trims_only_what_the_snapshot_holds(
    start_replica: ReplicaFactory, redis_server: RedisServer, tmp_path: Path
) -> None:
    early = start_replica()
    data = tmp_path / "data"
    common = ["--redis-url", redis_server.url]
    for number in ("+12125550123", "+12125550124", "+8613800138000"):
        assert main(["publish", "add", number, "--list-name", "internal", "--source", "app",
                     "--create-list", *common]) == 0  # fmt: skip
    assert main(["compact", "--data-dir", str(data), *common]) == 0
    snapshot = read_snapshot(find_newest(data))  # type: ignore[arg-type]
    client = redis_client(redis_server)
    entries = client.xrange(STREAM)
    assert [Version.parse(i.decode()) for i, _ in entries] == [snapshot.version]
    assert len(snapshot.bitmaps["internal"]) == 3
    # A replica that starts from the compacted snapshot has everything, and so has
    # one that followed all along; both continue with new entries.
    late = start_replica(data)
    caught_up(early, redis_server)
    assert main(["publish", "add", "+12125550125", "--list-name", "internal", "--source", "app",
                 "--data-dir", str(data), *common]) == 0  # fmt: skip
    for replica in (early, late):
        caught_up(replica, redis_server)
        assert list(replica.check([12125550123, 8613800138000, 12125550125]).verdicts) == [2] * 3
    assert main(["compact", "--data-dir", str(data), *common]) == 0
    assert client.xlen(STREAM) == 1


def test_compact_refuses_when_the_log_was_trimmed_past_the_snapshot(
    redis_server: RedisServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--redis-url", redis_server.url]
    for number in ("+12125550123", "+12125550124"):
        assert main(["publish", "add", number, "--list-name", "internal", "--source", "app",
                     "--create-list", *common]) == 0  # fmt: skip
    client = redis_client(redis_server)
    client.xtrim(STREAM, maxlen=1, approximate=False)
    assert main(["compact", "--data-dir", str(tmp_path / "data"), *common]) == 2
    assert "no longer holds the entries" in capsys.readouterr().err
    assert find_newest(tmp_path / "data") is None


def test_console_script_is_quiet_without_a_terminal(tmp_path: Path) -> None:
    registry = tmp_path / "dnc.txt"
    registry.write_text("2125550123\n")
    command = [sys.executable, "-m", "loader.cli", "import", str(registry)]
    env = {"SUPPRESSION_LIST_NAME": "national", "SUPPRESSION_DATA_DIR": str(tmp_path / "d"),
           "SUPPRESSION_CREATE_LIST": "yes", "PATH": "/usr/bin:/bin"}  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "national: 1 numbers" in result.stdout
    assert "━" not in result.stderr, "no progress bar when stderr is not a terminal"


def test_publish_refuses_a_list_that_does_not_exist_unless_told_to_create_it(
    redis_server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--redis-url", redis_server.url, "--source", "app"]
    client = redis_client(redis_server)
    assert main(["publish", "add", "+8613800138000", "--list-name", "internal", *common,
                 "--create-list"]) == 0  # fmt: skip
    capsys.readouterr()
    length = client.xlen(STREAM)
    assert main(["publish", "add", "+8613912345678", "--list-name", "intrenal", *common]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "list 'intrenal' does not exist (existing lists: internal)" in err
    assert "--create-list" in err and "opt_out" in err
    assert client.xlen(STREAM) == length, "nothing was written"
    # The kind of an existing list cannot be changed by a flag.
    assert main(["publish", "add", "+8613912345678", "--list-name", "internal", *common,
                 "--kind", "campaign"]) == 2  # fmt: skip
    assert "is a opt_out list, not campaign" in capsys.readouterr().err
    assert client.xlen(STREAM) == length
    # Created deliberately, with its kind; afterwards it exists for everyone.
    assert main(["publish", "add", "+8613912345678", "--list-name", "spring", *common,
                 "--kind", "campaign", "--create-list"]) == 0  # fmt: skip
    assert main(["publish", "add", "+8613912345679", "--list-name", "spring", *common]) == 0
    kinds = {fields[b"list"]: fields[b"kind"] for _, fields in client.xrange(STREAM)}
    assert kinds[b"spring"] == b"campaign"


def test_import_refuses_a_new_list_before_writing_anything(
    redis_server: RedisServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = tmp_path / "dnc.txt"
    registry.write_text("2125550123\n")
    changes = tmp_path / "changes.txt"
    changes.write_text("A,2125550199\n")
    url = ["--redis-url", redis_server.url, "--list-name", "nationl"]
    assert main(["import", str(registry), *url]) == 2
    assert "list 'nationl' does not exist" in capsys.readouterr().err
    assert main(["import", "--changes", str(changes), *url]) == 2
    assert "list 'nationl' does not exist" in capsys.readouterr().err
    assert redis_client(redis_server).xlen(STREAM) == 0


@pytest.mark.parametrize(
    "url",
    ["localhost:6379", "redis://h:notaport/0", "redis://h:6379/zero", "http://h:6379/0"],
)
def test_a_malformed_redis_url_is_one_line_and_exit_2(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = tmp_path / "dnc.txt"
    registry.write_text("2125550123\n")
    for argv in (
        ["publish", "add", "+8613800138000", "--list-name", "x", "--source", "app"],
        ["import", str(registry), "--list-name", "x"],
        ["compact", "--data-dir", str(tmp_path)],
    ):
        assert main([*argv, "--redis-url", url]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--redis-url" in err, err


def test_json_logs_every_stderr_line_is_json(redis_server: RedisServer, tmp_path: Path) -> None:
    registry = tmp_path / "dnc.txt"
    registry.write_text("".join(f"212555{n:04d}\n" for n in range(2_000)) + "bad line\n")
    base = [sys.executable, "-m", "loader.cli"]
    common = ["--log-format", "json", "--log-level", "DEBUG"]
    runs = [
        ["import", str(registry), "--list-name", "national", "--data-dir", str(tmp_path / "d"),
         "--create-list", "--skip-invalid"],
        ["import", str(registry), "--list-name", "national", "--redis-url", redis_server.url,
         "--create-list", "--skip-invalid"],
        ["import", str(registry), "--list-name", "national", "--redis-url", redis_server.url],
        ["publish", "add", "+8613800138000", "--list-name", "nope", "--source", "app",
         "--redis-url", redis_server.url],
        ["compact", "--data-dir", str(tmp_path / "d"), "--redis-url", redis_server.url],
        ["publish", "add", "--redis-url", "redis://h:6379/x"],
        ["import", "--no-such-flag"],
    ]  # fmt: skip
    codes = []
    for argv in runs:
        result = subprocess.run(
            [*base, *argv, *common], capture_output=True, text=True, cwd=REPO, timeout=60
        )
        codes.append(result.returncode)
        lines = result.stderr.splitlines()
        assert lines, argv
        for line in lines:
            record = json.loads(line)  # fails on any plain-text line
            assert {"time", "level", "logger", "message"} <= record.keys()
    assert codes == [0, 0, 2, 2, 0, 2, 2]
    # The same through the environment, as the deployment sets it.
    env = {"SUPPRESSION_LOG_FORMAT": "json", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [*base, "publish", "add", "x"], capture_output=True, text=True, cwd=REPO, timeout=60,
        env=env,
    )  # fmt: skip
    assert result.returncode == 2
    assert json.loads(result.stderr)["level"] == "ERROR"
