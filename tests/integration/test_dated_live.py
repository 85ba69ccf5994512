"""Dated lists through the change log: Suppress with days, a policy exemption, a restart."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import grpc
import pytest
from pyroaring import BitMap64

from suppression.lists import ListInfo, ListKind, SuppressionLists, Version
from suppression.policy.store import PolicyStore
from suppression.snapshot import DATED_FORMAT_VERSION, find_newest, read_snapshot, write_snapshot
from suppression.v1 import suppression_pb2 as pb
from tests.conftest import wait_for
from tests.integration.live_replicas import Replica, ReplicaFactory, start_replica_fixture

__all__ = ["start_replica_fixture"]  # the fixture, used by name

pytestmark = pytest.mark.integration

POLICIES = """\
version = "ebr-1"

[lists]
registry = "registry"
ebr = "exemption"

[policies.tsr]
suppress = ["registry"]

[[policies.tsr.exemptions]]
list = "ebr"
lifts = ["registry"]
days = 90
"""

RECENT = 12125550100  # an EBR recorded 10 days before the decision: lifted
EXPIRED = 12125550101  # recorded 200 days before: the registry holds
UNDATED = 12125550102  # on the EBR list without a day: cannot prove the 90 days
RELEASED = 12125550103  # dated, then removed from the EBR list: its day goes with it
READDED = 12125550104  # dated, removed, added back without a day in one later batch
PLAIN = 12125550105  # on the registry only
NUMBERS = [RECENT, EXPIRED, UNDATED, RELEASED, READDED, PLAIN]

DECIDE = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)
TODAY = (DECIDE.date() - dt.date(1970, 1, 1)).days
EXPECTED = [pb.ALLOWED] + [pb.SUPPRESSED] * 5


def answer(replica: Replica) -> pb.CheckResponse:
    return replica.stub.Check(
        pb.CheckRequest(e164=NUMBERS, decide_at_ms=int(DECIDE.timestamp() * 1000)), timeout=10
    )


def test_a_replica_fed_dated_adds_answers_the_exemption_and_again_after_a_restart(
    tmp_path: Path, start_replica: ReplicaFactory
) -> None:
    policy_file = tmp_path / "policies.toml"
    policy_file.write_text(POLICIES)
    data = tmp_path / "data"
    # Suppress creates opt-out lists, which nothing lifts: the bootstrap snapshot makes them.
    write_snapshot(
        data,
        SuppressionLists(
            {"registry": BitMap64(NUMBERS), "ebr": BitMap64()},
            [ListInfo("registry", ListKind.REGISTRY), ListInfo("ebr", ListKind.CAMPAIGN)],
            Version(0, 1),
        ).view,
    )
    first = start_replica(data, snapshot_interval=0.2, policies=PolicyStore(policy_file))
    stub = first.stub
    stub.Suppress(
        pb.SuppressRequest(
            e164=[RECENT, EXPIRED, RELEASED, READDED],
            days=[TODAY - 10, TODAY - 200, TODAY - 5, TODAY - 5],
            list="ebr",
            source="crm",
        ),
        timeout=10,
    )
    stub.Suppress(pb.SuppressRequest(e164=[UNDATED], list="ebr", source="crm"), timeout=10)
    stub.Release(pb.ReleaseRequest(e164=[RELEASED, READDED], list="ebr", source="crm"), timeout=10)
    last = stub.Suppress(pb.SuppressRequest(e164=[READDED], list="ebr", source="crm"), timeout=10)

    before = answer(first)
    assert list(before.verdicts) == EXPECTED
    assert list(before.exemption_names) == ["ebr"]
    assert list(before.exemptions) == [1, 0, 0, 0, 0, 0]
    assert before.version == last.version

    head = Version.parse(last.version)
    wait_for(
        lambda: (newest := find_newest(data)) is not None and read_snapshot(newest).version == head,
        10,
        "a periodic snapshot at the last write",
    )
    newest = find_newest(data)
    assert newest is not None
    assert int.from_bytes(newest.read_bytes()[8:12], "little") == DATED_FORMAT_VERSION
    first.stop()

    restarted = start_replica(data, policies=PolicyStore(policy_file))
    # It starts from the snapshot at the head: nothing to replay, the days came from the file.
    assert restarted.lists.version == head
    again = answer(restarted)
    assert list(again.verdicts) == EXPECTED
    assert list(again.exemptions) == list(before.exemptions)
    assert again.version == before.version


def test_suppress_refuses_days_it_cannot_pair_with_numbers(
    tmp_path: Path, start_replica: ReplicaFactory
) -> None:
    replica = start_replica()
    replica.stub.Suppress(
        pb.SuppressRequest(e164=[RECENT], list="ebr", source="crm", create_list=True), timeout=10
    )
    version = replica.lists.version
    for request, reason in [
        (pb.SuppressRequest(e164=[RECENT, EXPIRED], days=[TODAY]), "1 days for 2 e164 numbers"),
        (pb.SuppressRequest(e164=[RECENT], day=TODAY, days=[TODAY]), "not both"),
        (pb.SuppressRequest(e164=[RECENT], days=[0]), "a day is 1 or more"),
        (pb.SuppressRequest(e164=[RECENT], day=70_000), "must be 0 to 65534"),
        (pb.SuppressRequest(numbers=["+1900555xxxx"], day=TODAY), "blocks carry no days"),
    ]:
        request.list, request.source = "ebr", "crm"
        with pytest.raises(grpc.RpcError) as refused:
            replica.stub.Suppress(request, timeout=10)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert reason in str(refused.value.details())
    assert replica.lists.version == version
