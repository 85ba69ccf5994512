"""The change-log follower's metrics, from a real server following a real redis-server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from pyroaring import BitMap64

from suppression.lists import SuppressionLists, Version
from suppression.settings import Settings
from suppression.snapshot import write_snapshot
from suppression.v1 import suppression_pb2 as pb
from suppression.v1 import suppression_pb2_grpc as pb_grpc
from tests.conftest import RedisServer, ServerSubprocess, client_channel, wait_for
from tests.integration.scraping import (
    lint_with_promtool,
    scrape,
    scrape_text,
    value,
)

pytestmark = pytest.mark.integration

NEW_OPT_OUT = 8613911112222


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "data"
    lists = SuppressionLists({"internal": BitMap64([8613800138000])}, version=Version(1, 0))
    write_snapshot(directory, lists.view)
    return directory


@pytest.mark.parametrize("workers", [1, 2])
def test_follower_metrics_after_a_write_and_a_dead_letter(
    serve_subprocess: Callable[..., ServerSubprocess],
    redis_server: RedisServer,
    data_dir: Path,
    workers: int,
) -> None:
    server = serve_subprocess(
        "--data-dir", str(data_dir), "--redis-url", redis_server.url,
        "--workers", str(workers), "--snapshot-interval", "0",
    )  # fmt: skip
    server.wait_serving()
    with client_channel(server.target) as channel:
        written = pb_grpc.SuppressionStub(channel).Suppress(
            pb.SuppressRequest(
                e164=[NEW_OPT_OUT], list="internal", source="in_call", actor="agent-7"
            ),
            timeout=10,
        )
    ms = int(written.version.split("-")[0])
    stream = Settings().stream
    with redis.Redis.from_url(redis_server.url) as client:
        client.xadd(stream, {"v": "999", "op": "add"})

    def caught_up() -> bool:
        samples = scrape(server)[0]
        return (
            value(samples, "suppression_changelog_dead_letters_total") == 1
            and value(samples, "suppression_changelog_applied_total", op="add") == 1
            and value(samples, "suppression_changelog_lag_entries") == 0
            # The lowest version of any worker: every worker has applied the write.
            and (value(samples, "suppression_data_version_timestamp_seconds") or 0) >= ms / 1000
        )

    wait_for(caught_up, 15, "every worker to apply the write and dead-letter the bad entry")
    samples, types = scrape(server)
    assert types["suppression_changelog_applied"] == "counter"
    assert types["suppression_changelog_dead_letters"] == "counter"
    assert value(samples, "suppression_changelog_connected") == 1
    assert value(samples, "suppression_stale") == 0
    assert value(samples, "suppression_changelog_needs_resync") == 0
    assert value(samples, "suppression_changelog_lag_seconds") == 0
    assert (value(samples, "suppression_staleness_seconds") or 0) < 10
    assert value(samples, "suppression_list_numbers", list="internal", kind="opt_out") == 2
    assert value(samples, "suppression_ready") == 1
    lint_with_promtool(scrape_text(server))
    assert server.terminate() == 0


@pytest.mark.parametrize("workers", ["1", "2"])
def test_snapshot_age_is_exported(
    serve_subprocess: Callable[..., ServerSubprocess],
    redis_server: RedisServer,
    data_dir: Path,
    workers: str,
) -> None:
    """The age of the snapshot the replica started from, with or without workers."""
    server = serve_subprocess(
        "--data-dir", str(data_dir), "--redis-url", redis_server.url,
        "--workers", workers, "--snapshot-interval", "0",
    )  # fmt: skip
    server.wait_serving()
    wait_for(lambda: value(scrape(server)[0], "suppression_ready") == 1, 20, "ready")
    samples, types = scrape(server)
    age = value(samples, "suppression_snapshot_age_seconds")
    assert age is not None, "no suppression_snapshot_age_seconds"
    assert 0 <= age < 600  # the fixture wrote the snapshot moments ago
    assert types["suppression_snapshot_age_seconds"] == "gauge"
    assert server.terminate() == 0
