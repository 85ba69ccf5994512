"""One policy path for Check, CheckStream and `suppression check`; none without --policy-file."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from prometheus_client import CollectorRegistry
from pyroaring import BitMap64

from suppression.cli import main
from suppression.lists import ListInfo, ListKind, SuppressionLists
from suppression.policy.store import PolicyStore
from suppression.replica import Replica
from suppression.server import ServerOptions, create_server
from suppression.v1 import suppression_pb2 as pb
from suppression.v1 import suppression_pb2_grpc as pb_grpc
from tests.conftest import client_channel, replica_data

ON_REGISTRY = 12125550100
CONSENTED = 12125550101
SHANGHAI = 8613800138000

POLICIES = """\
version = "t1"

[lists]
registry = "registry"
consent = "exemption"

[policies.only]
suppress = ["registry"]

[[policies.only.exemptions]]
list = "consent"
lifts = ["registry"]

[policies.only.window]
start = "08:00"
end = "21:00"
"""
JUNE_15_13_UTC = int(dt.datetime(2026, 6, 15, 13, 0, tzinfo=dt.UTC).timestamp() * 1000)


def lists() -> SuppressionLists:
    return SuppressionLists(
        {"registry": BitMap64([ON_REGISTRY, CONSENTED]), "consent": BitMap64([CONSENTED])},
        infos=[ListInfo("registry", ListKind.REGISTRY), ListInfo("consent", ListKind.CAMPAIGN)],
    )


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policies.toml"
    path.write_text(POLICIES)
    return path


def serve(replica: Replica) -> Iterator[pb_grpc.SuppressionStub]:
    replica.start()
    process = create_server(replica, ServerOptions(port=0), CollectorRegistry(), "127.0.0.1:0")
    channel = client_channel(f"127.0.0.1:{process.port}")
    try:
        yield pb_grpc.SuppressionStub(channel)
    finally:
        channel.close()
        process.stop(0)


@pytest.fixture
def stub(policy_file: Path) -> Iterator[pb_grpc.SuppressionStub]:
    yield from serve(Replica(replica_data(lists()), policies=PolicyStore(policy_file)))


@pytest.fixture
def plain_stub() -> Iterator[pb_grpc.SuppressionStub]:
    yield from serve(Replica(replica_data(lists())))


def test_check_and_check_stream_give_the_same_policy_answer(
    stub: pb_grpc.SuppressionStub,
) -> None:
    request = pb.CheckRequest(
        e164=[ON_REGISTRY, CONSENTED, SHANGHAI], decide_at_ms=JUNE_15_13_UTC, request_id=3
    )
    single = stub.Check(request)
    (streamed,) = list(stub.CheckStream(iter([request])))
    assert single == streamed
    assert list(single.verdicts) == [pb.SUPPRESSED, pb.ALLOWED, pb.DEFERRED]
    assert (single.policy, single.policy_version, single.request_id) == ("only", "t1", 3)
    assert list(single.exemption_names) == ["consent"] and list(single.exemptions) == [0, 1, 0]


def test_a_batch_over_the_small_batch_threshold_decides_the_same(
    stub: pb_grpc.SuppressionStub,
) -> None:
    numbers = [ON_REGISTRY, CONSENTED, SHANGHAI] * 20
    answer = stub.Check(pb.CheckRequest(e164=numbers, decide_at_ms=JUNE_15_13_UTC))
    assert list(answer.verdicts) == [pb.SUPPRESSED, pb.ALLOWED, pb.DEFERRED] * 20


def test_consent_days_must_be_parallel(stub: pb_grpc.SuppressionStub) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        stub.Check(pb.CheckRequest(e164=[ON_REGISTRY, CONSENTED], consent_days=[20000]))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "1 consent days for 2 numbers" in str(refused.value.details())


def test_a_server_without_policies_refuses_policy_fields(
    plain_stub: pb_grpc.SuppressionStub,
) -> None:
    assert list(plain_stub.Check(pb.CheckRequest(e164=[CONSENTED])).verdicts) == [pb.SUPPRESSED]
    with pytest.raises(grpc.RpcError) as refused:
        plain_stub.Check(pb.CheckRequest(e164=[CONSENTED], policy="only"))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "no pre-dial policies" in str(refused.value.details())


def test_suppression_check_decides_locally_under_the_policy(
    tmp_path: Path, policy_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = tmp_path / "registry.txt"
    registry.write_text(f"+{ON_REGISTRY}\n+{CONSENTED}\n")
    consent = tmp_path / "consent.txt"
    consent.write_text(f"+{CONSENTED}\n")
    code = main(
        [
            "check", f"+{CONSENTED}", f"+{SHANGHAI}",
            "--list", f"registry:registry={registry}", "--list", f"consent:campaign={consent}",
            "--policy-file", str(policy_file), "--decide-at", "2026-06-15T09:00-04:00",
            "--output", "json",
        ]
    )  # fmt: skip
    assert code == 1
    rows = json.loads(capsys.readouterr().out)["results"]
    assert [(r["verdict"], r["rules"], r["exemptions"]) for r in rows] == [
        ("ALLOWED", [], ["consent"]),
        ("DEFERRED", ["window"], []),
    ]
    assert rows[1]["earliest"] == "2026-06-16T00:00:00+00:00"


def test_suppression_check_refuses_a_time_without_offset(
    policy_file: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    registry = tmp_path / "registry.txt"
    registry.write_text(f"+{ON_REGISTRY}\n")
    code = main(
        ["check", f"+{ON_REGISTRY}", "--list", f"registry={registry}",
         "--policy-file", str(policy_file), "--decide-at", "2026-06-15T09:00"]
    )  # fmt: skip
    assert code == 2
    assert "has no UTC offset" in capsys.readouterr().err


def test_a_time_out_of_range_is_refused(stub: pb_grpc.SuppressionStub) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        stub.Check(pb.CheckRequest(e164=[ON_REGISTRY], decide_at_ms=2**63))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "is not a time from 1970 to 2106" in str(refused.value.details())
