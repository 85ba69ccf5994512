"""`suppression-loader import --with-dates` and `publish add --with-dates`: days into lists."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from loader.cli import main
from suppression.lists import Version
from suppression.policy.dated import DatedList
from suppression.snapshot import DATED_FORMAT_VERSION, find_newest, read_snapshot
from tests.conftest import RedisServer, wait_for
from tests.integration.live_replicas import (  # noqa: F401 - a fixture
    Replica,
    ReplicaFactory,
    redis_client,
    start_replica_fixture,
)

pytestmark = pytest.mark.integration

STREAM = "suppression:deltas"
A, B, C, D = 12125550100, 12125550101, 8613800138000, 442079460000


def day(text: str) -> int:
    return (dt.date.fromisoformat(text) - dt.date(1970, 1, 1)).days


def csv_file(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("name,number,date\n" + "".join(f"x,{n},{d}\n" for n, d in rows))
    return path


def days_of(dated: DatedList, *numbers: int) -> list[int]:
    return dated.lookup(np.array(numbers, dtype=np.uint64)).tolist()


def test_a_bootstrap_import_writes_the_days_into_the_snapshot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    rows = [(f"+{A}", "2025-01-02"), ("(212) 555-0101", "2025-03-04"), (f"+{C}", "2024-12-31")]
    first = csv_file(tmp_path / "ebr.csv", rows)
    common = ["--list-name", "ebr", "--data-dir", str(data), "--region", "US", "--with-dates"]
    assert main(["import", str(first), *common, "--kind", "campaign", "--create-list"]) == 0
    newest = find_newest(data)
    assert newest is not None
    assert int.from_bytes(newest.read_bytes()[8:12], "little") == DATED_FORMAT_VERSION
    snapshot = read_snapshot(newest)
    assert set(snapshot.bitmaps["ebr"]) == {A, B, C}
    assert days_of(snapshot.days["ebr"], A, B, C, D) == [
        day("2025-01-02"),
        day("2025-03-04"),
        day("2024-12-31"),
        -1,
    ]
    # A bad row refuses the whole file, naming the line, and writes nothing.
    bad = csv_file(tmp_path / "bad.csv", [(f"+{D}", "2025-01-02"), (f"+{A}", "2025-13-01")])
    assert main(["import", str(bad), *common]) == 2
    assert "line 3" in capsys.readouterr().err
    assert find_newest(data) == newest


def test_a_dated_import_publishes_new_and_redated_numbers_and_replicas_hold_the_days(
    tmp_path: Path,
    redis_server: RedisServer,
    start_replica: ReplicaFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    replica = start_replica()
    common = ["--list-name", "ebr", "--redis-url", redis_server.url, "--with-dates"]
    first = csv_file(tmp_path / "one.csv", [(f"+{A}", "2025-01-02"), (f"+{B}", "2025-01-03")])
    assert main(["import", str(first), *common, "--kind", "campaign", "--create-list"]) == 0
    assert "2 added or given another day, 0 removed" in capsys.readouterr().out
    # The next file: A keeps its day, B gets another, C is new; nothing of A is rewritten.
    second = csv_file(
        tmp_path / "two.csv",
        [(f"+{A}", "2025-01-02"), (f"+{B}", "2025-06-30"), (f"+{C}", "2025-02-01")],
    )
    assert main(["import", str(second), *common]) == 0
    assert "2 added or given another day, 0 removed" in capsys.readouterr().out
    # publish add --with-dates: a number from a CSV with its day.
    extra = csv_file(tmp_path / "extra.csv", [(f"+{D}", "2026-01-01")])
    publish = ["publish", "add", str(extra), "--list-name", "ebr", "--source", "crm"]
    assert main([*publish, "--redis-url", redis_server.url, "--with-dates"]) == 0
    head = Version.parse(redis_client(redis_server).xrevrange(STREAM, count=1)[0][0].decode())
    wait_for(lambda: replica.lists.version >= head, 5, "the replica to reach the head")
    assert days_of(replica.lists.view.days["ebr"], A, B, C, D) == [
        day("2025-01-02"),
        day("2025-06-30"),
        day("2025-02-01"),
        day("2026-01-01"),
    ]
    # A removal carries no days.
    assert main(["publish", "remove", str(extra), *publish[3:], *common[2:]]) == 2
    assert "a removal carries no days" in capsys.readouterr().err
    # compact replays the log, days included, into a snapshot.
    data = tmp_path / "data"
    assert main(["compact", "--data-dir", str(data), "--redis-url", redis_server.url]) == 0
    newest = find_newest(data)
    assert newest is not None
    assert days_of(read_snapshot(newest).days["ebr"], A, B, C, D) == days_of(
        replica.lists.view.days["ebr"], A, B, C, D
    )
