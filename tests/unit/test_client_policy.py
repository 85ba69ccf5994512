"""The client's policy fields and answers against real in-process servers with policy files."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from pyroaring import BitMap64

from suppression.client import (
    ClientConfig,
    InvalidRequestError,
    PolicyVersionMismatchError,
    SuppressionClient,
    Verdict,
)
from suppression.client.assembly import Piece, merge
from suppression.lists import ListInfo, ListKind, SuppressionLists
from suppression.policy.store import PolicyStore
from suppression.replica import Replica
from suppression.server import ServerOptions, ServingProcess, create_server
from suppression.v1 import suppression_pb2 as pb
from tests.conftest import replica_data
from tests.samples import WINDOW_AND_REASSIGNED_POLICIES

ON_REGISTRY = 12125550100
CONSENTED = 12125550101
SHANGHAI = 8613800138000
REASSIGNED = 12125550177
"""Disconnected on 2025-01-01 in the reassigned list."""

JUNE_15_13_UTC = dt.datetime(2026, 6, 15, 13, 0, tzinfo=dt.UTC)
"""21:00 in Shanghai, the window's end (exclusive); 09:00 in New York."""
JUNE_16_08_SHANGHAI = dt.datetime(2026, 6, 16, 0, 0, tzinfo=dt.UTC)


def lists() -> SuppressionLists:
    return SuppressionLists(
        {"registry": BitMap64([ON_REGISTRY, CONSENTED]), "consent": BitMap64([CONSENTED])},
        infos=[ListInfo("registry", ListKind.REGISTRY), ListInfo("consent", ListKind.CAMPAIGN)],
    )


Start = Callable[..., str]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    """Factory: a server over ``lists()`` with the policy file at ``version``; its target."""
    started: list[ServingProcess] = []
    dated = tmp_path / "fcc.csv"
    dated.write_text(f"number,date\n+{REASSIGNED},2025-01-01\n")

    def run(version: str | None = "t1") -> str:
        policies = None
        if version is not None:
            path = tmp_path / f"policies-{version}.toml"
            path.write_text(WINDOW_AND_REASSIGNED_POLICIES.format(version=version))
            policies = PolicyStore(path, {"fcc": dated})
        replica = Replica(replica_data(lists()), policies=policies)
        replica.start()
        process = create_server(replica, ServerOptions(port=0), CollectorRegistry(), "127.0.0.1:0")
        started.append(process)
        return f"127.0.0.1:{process.port}"

    yield run
    for process in started:
        process.stop(0)


def client(*targets: str, max_batch: int | None = None) -> SuppressionClient:
    return SuppressionClient(ClientConfig(targets=targets, timeout=10, max_batch=max_batch))


def test_check_carries_the_policy_verdicts_rules_exemptions_and_earliest(start: Start) -> None:
    with client(start()) as c:
        result = c.check(e164=[ON_REGISTRY, CONSENTED, SHANGHAI], decide_at=JUNE_15_13_UTC)
        by_ms = c.check(
            e164=[ON_REGISTRY, CONSENTED, SHANGHAI],
            decide_at=int(JUNE_15_13_UTC.timestamp() * 1000),
        )
    assert (result.policy, result.policy_version) == ("only", "t1")
    assert [r.verdict for r in result] == [Verdict.SUPPRESSED, Verdict.ALLOWED, Verdict.DEFERRED]
    assert result[0].rules == ("list.registry",) and result[0].lists == ("registry",)
    assert result[1].exemptions == ("consent",) and result[1].rules == ()
    assert result[2].rules == ("window",)
    assert result[2].earliest == JUNE_16_08_SHANGHAI and result[0].earliest is None
    assert result.deferred_indexes() == [2] and result.deferred() == [SHANGHAI]
    assert [part.policy_version for part in result.parts] == ["t1"]
    assert list(by_ms.verdicts) == list(result.verdicts)
    assert by_ms.policy_arrays == result.policy_arrays


def test_without_policy_fields_the_default_policy_decides_for_now(start: Start) -> None:
    with client(start()) as c:
        result = c.check(e164=[ON_REGISTRY])
    assert (result.policy, result.policy_version) == ("only", "t1")
    assert result[0].verdict is Verdict.SUPPRESSED


def test_consent_days_travel_with_their_numbers_when_a_batch_is_split(start: Start) -> None:
    days: list[dt.date | int | None] = [
        dt.date(2024, 6, 1),  # before the disconnection: reassigned since
        None,  # not checked
        dt.date(2019, 1, 1),  # before the data begins
        dt.date(2025, 6, 1),  # after the disconnection: not reassigned
        (dt.date(2024, 6, 1) - dt.date(1970, 1, 1)).days,  # the same day as an int
    ]
    with client(start(), max_batch=2) as c:
        result = c.check(e164=[REASSIGNED] * 5, policy="rnd", consent_days=days)
    assert [(part.start, part.count) for part in result.parts] == [(0, 2), (2, 2), (4, 1)]
    assert [r.rules for r in result] == [
        ("reassigned",),
        (),
        ("reassigned.no_data",),
        (),
        ("reassigned",),
    ]
    assert result.verdicts == [2, 1, 2, 1, 2]
    assert result.policy == "rnd"


def test_check_one_and_check_stream_send_the_policy_fields(start: Start) -> None:
    target = start()
    with client(target, max_batch=2) as c:
        one = c.check_one(REASSIGNED, policy="rnd", consent_day=dt.date(2024, 6, 1))
        streamed = list(
            c.check_stream(
                [[REASSIGNED, REASSIGNED, REASSIGNED], ["+8613800138000"]],
                policy="rnd",
                consent_days=[[dt.date(2024, 6, 1), None, dt.date(2019, 1, 1)], [None]],
            )
        )
        windowed = list(c.check_stream([[SHANGHAI, ON_REGISTRY]], decide_at=JUNE_15_13_UTC))
    assert one[0].rules == ("reassigned",) and one.policy == "rnd"
    assert [r.rules for r in streamed[0]] == [("reassigned",), (), ("reassigned.no_data",)]
    assert streamed[1][0].verdict is Verdict.ALLOWED and streamed[1].policy == "rnd"
    assert windowed[0][0].earliest == JUNE_16_08_SHANGHAI
    assert windowed[0][1].rules == ("list.registry",)


def test_parts_decided_under_two_policy_versions_are_refused(start: Start) -> None:
    first, second = start("v1"), start("v2")
    with client(first, second, max_batch=1) as c:
        with pytest.raises(PolicyVersionMismatchError) as refused:
            c.check(e164=[ON_REGISTRY, CONSENTED])
    message = str(refused.value)
    assert "only v1" in message and "only v2" in message and "numbers 1-1" in message


def test_parts_under_one_policy_version_from_two_servers_merge(start: Start) -> None:
    first, second = start("same"), start("same")
    with client(first, second, max_batch=1) as c:
        result = c.check(e164=[ON_REGISTRY, CONSENTED])
    assert {part.target for part in result.parts} == {first, second}
    assert [part.policy_version for part in result.parts] == ["same", "same"]
    assert result.policy_version == "same" and result[1].exemptions == ("consent",)


def test_a_server_with_and_one_without_a_policy_are_refused_too(start: Start) -> None:
    with client(start("v1"), start(None), max_batch=1) as c:
        with pytest.raises(PolicyVersionMismatchError, match="no policy"):
            c.check(e164=[ON_REGISTRY, CONSENTED])


def test_bad_policy_arguments_are_refused_before_any_call(start: Start) -> None:
    with client("127.0.0.1:1") as c:  # nothing listens: a call would fail differently
        with pytest.raises(InvalidRequestError, match="no UTC offset"):
            c.check(e164=[ON_REGISTRY], decide_at=dt.datetime(2026, 6, 15, 13))
        with pytest.raises(InvalidRequestError, match="1 consent days for 2 numbers"):
            c.check(e164=[ON_REGISTRY, CONSENTED], consent_days=[None])
        with pytest.raises(InvalidRequestError, match="is a datetime"):
            c.check_one(ON_REGISTRY, consent_day=JUNE_15_13_UTC)


def test_a_server_without_policies_refuses_policy_fields(start: Start) -> None:
    with client(start(None)) as c:
        plain = c.check(e164=[CONSENTED])
        with pytest.raises(InvalidRequestError, match="no pre-dial policies"):
            c.check(e164=[CONSENTED], policy="only")
    assert plain.policy == "" and plain.policy_arrays is None and plain[0].rules == ()


def test_parts_naming_rules_in_another_order_merge_over_one_table() -> None:
    first = pb.CheckResponse(
        verdicts=[pb.DEFERRED, pb.SUPPRESSED],
        matched=[0, 1],
        list_names=["registry"],
        version="5-0",
        policy="p",
        policy_version="v",
        rules=[0b10, 0b01],
        rule_names=["list.registry", "window"],
        exemptions=[0, 0],
        exemption_names=["consent"],
        earliest_ms=[1_000, 0],
    )
    second = pb.CheckResponse(
        verdicts=[pb.SUPPRESSED, pb.ALLOWED],
        matched=[1, 0],
        list_names=["registry"],
        version="4-0",
        policy="p",
        policy_version="v",
        rules=[0b01 | 0b10, 0],
        rule_names=["cap.number.2_per_3600s", "list.registry"],
        exemptions=[0, 0b1],
        exemption_names=["ebr"],
        earliest_ms=[0, 0],
    )
    result = merge([(Piece(0, [1, 2], ()), first, "a"), (Piece(2, [3, 4], ()), second, "b")])
    assert [result.rules_of(i) for i in range(4)] == [
        ("window",),
        ("list.registry",),
        ("list.registry", "cap.number.2_per_3600s"),
        (),
    ]
    assert result.exemptions_of(3) == ("ebr",) and result.exemptions_of(0) == ()
    assert result.earliest_of(0) == dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=dt.UTC)
    assert result.version == "4-0" and result.policy_version == "v"
    missing = pb.CheckResponse(verdicts=[pb.ALLOWED], matched=[0], policy="p", policy_version="v")
    with pytest.raises(ValueError, match="one rule mask"):
        merge([(Piece(0, [1], ()), missing, "c")])


def test_check_stream_refuses_consent_days_that_run_out(start: Start) -> None:
    with client(start()) as c:
        stream = c.check_stream([[REASSIGNED], [REASSIGNED]], policy="rnd", consent_days=[[None]])
        with pytest.raises(InvalidRequestError, match="consent_days ran out at batch 1"):
            list(stream)
