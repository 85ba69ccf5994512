"""/metrics of a real `suppression serve` process after real gRPC traffic, and its logs."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
import redis
from grpc_health.v1 import health_pb2
from pyroaring import BitMap64

from suppression.lists import ListInfo, ListKind, SuppressionLists, Version
from suppression.metrics import build_version
from suppression.settings import Settings
from suppression.snapshot import write_snapshot
from suppression.v1 import suppression_pb2 as pb
from suppression.v1 import suppression_pb2_grpc as pb_grpc
from tests.conftest import RedisServer, ServerSubprocess, client_channel, wait_for
from tests.integration.scraping import Samples, lint_with_promtool, scrape, scrape_text, value

pytestmark = pytest.mark.integration

CN = 8613800138000
US = 12125550123
US_LISTED_TOO = 12125550124
ALLOWED = 12025550147
SERVICE = "suppression.v1.Suppression"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "data"
    lists = SuppressionLists(
        {"national": BitMap64([US, US_LISTED_TOO]), "internal": BitMap64([CN])},
        infos=[ListInfo("national", ListKind.REGISTRY)],
        version=Version(1700000000000, 3),
    )
    write_snapshot(directory, lists.view)
    return directory


def grpc_labels(method: str, grpc_type: str = "unary", **more: str) -> dict[str, str]:
    return {"grpc_type": grpc_type, "grpc_service": SERVICE, "grpc_method": method, **more}


def send_traffic(target: str, calls: int) -> None:
    """``calls`` e164 batches and text batches, one bad request, one stream, one status.

    Every call opens its own channel, so a server with workers spreads them.
    """
    for _ in range(calls):
        with client_channel(target) as channel:
            stub = pb_grpc.SuppressionStub(channel)
            stub.Check(pb.CheckRequest(e164=[US, CN, ALLOWED]), timeout=10)
            stub.Check(
                pb.CheckRequest(
                    numbers=["+86 138 0013 8000", "nonsense", "+1 202 555 0147"],
                    default_region="CN",
                ),
                timeout=10,
            )
    with client_channel(target) as channel:
        stub = pb_grpc.SuppressionStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.Check(pb.CheckRequest(e164=[US], lists=["no-such-list"]), timeout=10)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        stream = stub.CheckStream(iter([pb.CheckRequest(e164=[US])] * 3), timeout=10)
        assert len(list(stream)) == 3
        stub.GetStatus(pb.GetStatusRequest(), timeout=10)


def assert_metrics_match_traffic(samples: Samples, types: dict[str, str], calls: int) -> None:
    # gRPC server metrics, under grpc-prometheus's names and labels.
    assert value(samples, "grpc_server_started_total", **grpc_labels("Check")) == 2 * calls + 1
    assert (
        value(samples, "grpc_server_handled_total", **grpc_labels("Check", grpc_code="OK"))
        == 2 * calls
    )
    assert (
        value(
            samples,
            "grpc_server_handled_total",
            **grpc_labels("Check", grpc_code="InvalidArgument"),
        )
        == 1
    )
    stream = grpc_labels("CheckStream", "bidi_stream")
    assert value(samples, "grpc_server_started_total", **stream) == 1
    assert value(samples, "grpc_server_handled_total", **stream, grpc_code="OK") == 1
    assert value(samples, "grpc_server_handled_total", **grpc_labels("GetStatus"), grpc_code="OK")
    assert (
        value(samples, "grpc_server_handling_seconds_count", **grpc_labels("Check"))
        == 2 * calls + 1
    )
    buckets = {
        float(dict(labels)["le"]): v
        for (name, labels), v in samples.items()
        if name == "grpc_server_handling_seconds_bucket"
        and dict(labels).items() >= grpc_labels("Check").items()
    }
    assert min(buckets) < 0.001, "buckets must resolve sub-millisecond calls"
    assert buckets[float("inf")] == 2 * calls + 1
    assert types["grpc_server_handling_seconds"] == "histogram"
    assert types["grpc_server_started"] == "counter"

    # The service's own: per call, 2 + 1 suppressed e164 numbers, 1 allowed each, 1 invalid;
    # the stream adds 3 batches of one listed number.
    checked = "suppression_checked_numbers_total"
    assert value(samples, checked, verdict="suppressed") == 3 * calls + 3
    assert value(samples, checked, verdict="allowed") == 2 * calls
    assert value(samples, checked, verdict="invalid") == calls
    by_list = "suppression_suppressed_by_list_total"
    assert value(samples, by_list, list="national") == calls + 3
    assert value(samples, by_list, list="internal") == 2 * calls
    assert value(samples, "suppression_batch_size_numbers_count") == 2 * calls + 3
    assert value(samples, "suppression_batch_size_numbers_sum") == 6 * calls + 3

    # Read at scrape time.
    assert value(samples, "suppression_list_numbers", list="national", kind="registry") == 2
    assert value(samples, "suppression_list_numbers", list="internal", kind="opt_out") == 1
    assert (value(samples, "suppression_list_bytes", list="internal") or 0) > 0
    assert value(samples, "suppression_data_version_timestamp_seconds") == 1700000000
    assert value(samples, "suppression_ready") == 1
    (build,) = [labels for name, labels in samples if name == "suppression_build_info"]
    assert dict(build)["version"] == build_version()
    assert dict(build)["membership"] == "compiled"  # the server process has the C loop


def test_metrics_after_real_traffic(
    serve_subprocess: Callable[..., ServerSubprocess], data_dir: Path
) -> None:
    server = serve_subprocess("--data-dir", str(data_dir))
    server.wait_serving()
    send_traffic(server.target, calls=5)
    samples, types = scrape(server)
    assert_metrics_match_traffic(samples, types, calls=5)
    lint_with_promtool(scrape_text(server))


def test_workers_metrics_are_aggregated(
    serve_subprocess: Callable[..., ServerSubprocess], data_dir: Path
) -> None:
    server = serve_subprocess("--data-dir", str(data_dir), "--workers", "2")
    server.wait_serving()
    wait_for(lambda: value(scrape(server)[0], "suppression_ready") == 1, 10, "both workers ready")
    # 20 connections: the kernel spreads them over both workers; the parent's /metrics
    # shows the sums only if it reads every worker's values.
    send_traffic(server.target, calls=20)
    samples, types = scrape(server)
    assert_metrics_match_traffic(samples, types, calls=20)
    # Memory of every process, which the parent reads from /proc at scrape time.
    for process in ("parent", "worker-0", "worker-1"):
        resident = value(samples, "suppression_resident_memory_bytes", process=process)
        proportional = value(samples, "suppression_proportional_memory_bytes", process=process)
        assert resident is not None and resident > 1 << 20, process
        assert proportional is not None and 0 < proportional <= resident, process
    lint_with_promtool(scrape_text(server))
    assert server.terminate() == 0


# Every number the log test sends, as the digits that must never appear in a log line.
LOGGED_NUMBERS = {
    "8613800138000": "+86 138 0013 8000",
    "13800138000": "138-0013-8000",
    "12125550123": "(212) 555-0123",
    "12025550147": "+1 202.555.0147",
    "999123456789": "+999 123456789",
    "4420794609": "+44 20 7946 09",
}


def test_no_log_line_holds_a_number(
    serve_subprocess: Callable[..., ServerSubprocess],
    redis_server: RedisServer,
    data_dir: Path,
    tmp_path: Path,
) -> None:
    """Reads, writes through the change log, bad requests and bad entries, all at DEBUG."""
    listed = tmp_path / "listed.txt"
    listed.write_text("+86 138 0013 8000\n(212) 555-0123\n+999 123456789\n")
    server = serve_subprocess(
        "--data-dir", str(data_dir), "--list", f"more={listed}", "--skip-invalid",
        "--region", "US", "--max-batch", "5", "--log-level", "DEBUG", "--log-format", "json",
        "--redis-url", redis_server.url, "--snapshot-interval", "0",
    )  # fmt: skip
    server.wait_serving()
    texts = list(LOGGED_NUMBERS.values())
    integers = [int(digits) for digits in LOGGED_NUMBERS]
    with client_channel(server.target) as channel:
        stub = pb_grpc.SuppressionStub(channel)
        stub.Check(pb.CheckRequest(numbers=texts[:5], default_region="CN"), timeout=10)
        stub.Check(pb.CheckRequest(e164=integers[:5]), timeout=10)
        list(stub.CheckStream(iter([pb.CheckRequest(numbers=[t]) for t in texts]), timeout=10))
        failing = [
            pb.CheckRequest(e164=integers, numbers=texts),  # over --max-batch
            pb.CheckRequest(numbers=texts[:2], lists=[texts[0]]),  # a number as a list name
            pb.CheckRequest(numbers=texts[:2], default_region="+8613800138000"),
        ]
        for request in failing:
            with pytest.raises(grpc.RpcError):
                stub.Check(request, timeout=10)
        stub.Suppress(
            pb.SuppressRequest(
                numbers=texts[:2], e164=integers[2:4], list="internal", source="in_call"
            ),
            timeout=10,
        )
        with pytest.raises(grpc.RpcError):  # an opt-out is released only with consent
            stub.Release(
                pb.ReleaseRequest(numbers=texts[:2], e164=integers[:2], list="internal"),
                timeout=10,
            )
    # Entries the follower cannot apply go to the dead-letter stream, with a logged reason.
    bad_entries = [
        {"v": "1", "op": "remove", "list": "internal", "numbers": "8613800138000", "source": "app"},
        {"v": "1", "op": "add", "list": "internal", "numbers": "8613800138000,+12125550123"},
    ]
    with redis.Redis.from_url(redis_server.url) as client:
        for entry in bad_entries:
            client.xadd(Settings().stream, entry)
    wait_for(
        lambda: value(scrape(server)[0], "suppression_changelog_dead_letters_total") == 2,
        10,
        "both bad entries to be dead-lettered",
    )
    assert server.terminate() == 0
    log = server.log()
    lines = log.splitlines()
    assert any("skipped" in json.loads(line)["message"] for line in lines)
    for line in lines:
        json.loads(line)
    # Failed calls are logged at DEBUG with their details, which quote the bad list name.
    assert "unknown list(s) +86138****8000" in log
    for digits, text in LOGGED_NUMBERS.items():
        assert digits not in log
        assert text not in log


def worker_pids(parent: int) -> list[int]:
    """The live worker processes of a parent."""
    text = Path(f"/proc/{parent}/task/{parent}/children").read_text()
    return [int(pid) for pid in text.split() if not exited(int(pid))]


def test_a_killed_worker_is_restarted_and_the_replica_recovers(
    serve_subprocess: Callable[..., ServerSubprocess], data_dir: Path
) -> None:
    server = serve_subprocess("--data-dir", str(data_dir), "--workers", "2")
    server.wait_serving()

    def whole(samples: Samples) -> bool:
        return (
            value(samples, "suppression_ready") == 1
            and value(samples, "suppression_workers_ready") == 2
        )

    wait_for(lambda: whole(scrape(server)[0]), 20, "both workers ready")
    parent = server.process.pid
    first = worker_pids(parent)
    assert len(first) == 2
    assert value(scrape(server)[0], "suppression_worker_restarts_total") == 0
    os.kill(first[0], signal.SIGKILL)

    def recovered() -> bool:
        now = worker_pids(parent)
        samples = scrape(server)[0]
        return (
            len(now) == 2
            and first[0] not in now
            and whole(samples)
            and value(samples, "suppression_worker_restarts_total") == 1
        )

    wait_for(recovered, 20, "the killed worker to be replaced and the replica whole")
    # Metrics come from state files each worker writes every interval; health follows the
    # census within its own poll, so it may trail the metrics by a moment.
    wait_for(
        lambda: server.health(SERVICE) == health_pb2.HealthCheckResponse.SERVING,
        10,
        "SERVING again",
    )
    assert f"(pid {first[0]}) died (killed by SIGKILL); restarted it" in server.log()
    # A worker whose parent dies stops too, instead of serving on unmonitored.
    workers = worker_pids(parent)
    server.kill()
    wait_for(lambda: all(exited(pid) for pid in workers), 10, "the orphaned workers to stop")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_grpc_series_exist_before_the_first_call(
    serve_subprocess: Callable[..., ServerSubprocess], data_dir: Path, workers: str
) -> None:
    server = serve_subprocess("--data-dir", str(data_dir), "--workers", workers)
    server.wait_serving()
    wait_for(lambda: value(scrape(server)[0], "suppression_ready") == 1, 20, "ready")
    samples, _ = scrape(server)
    for method in ("Check", "GetStatus", "Suppress", "Release"):
        assert value(samples, "grpc_server_started_total", **grpc_labels(method)) == 0
        for code in ("OK", "InvalidArgument", "Unavailable", "Internal", "Unknown"):
            labels = grpc_labels(method, grpc_code=code)
            assert value(samples, "grpc_server_handled_total", **labels) == 0, (method, code)
    stream = grpc_labels("CheckStream", "bidi_stream", grpc_code="Unavailable")
    assert value(samples, "grpc_server_handled_total", **stream) == 0
    lint_with_promtool(scrape_text(server))


def exited(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")
