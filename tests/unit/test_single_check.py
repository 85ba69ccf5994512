"""A single-number Check takes its own short path; it must answer and count as the batch path.

The servicer answers one E.164 integer without building a batch
(``Replica.check_one``, ``ServiceMetrics.record_one``). Over a real in-process
gRPC server, each single-number answer is compared with the same number's part
of a two-number batch, which takes the batch path; the metrics of both paths
are compared on the same outcomes.
"""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from suppression.checker import SingleOutcome, check_batch, decide_one
from suppression.lists import SuppressionLists, Version
from suppression.metrics import ServiceMetrics
from suppression.v1 import suppression_pb2 as pb
from tests.conftest import InProcessServer
from tests.samples import random_campaign_lists

LIST_COUNT = 12
"""Enough lists for masks of 1 and 2 bytes."""
POOL = [12125550000 + index for index in range(60)]
NAMES = [f"list{index:02d}" for index in range(LIST_COUNT)]
OTHER = 12125559999
"""The second number of the batch that takes the batch path."""


def some_lists() -> SuppressionLists:
    return random_campaign_lists(NAMES, POOL, 5, 0.4, Version(1700000000000, 7))


numbers = st.one_of(
    st.sampled_from(POOL),
    st.integers(min_value=0, max_value=2**64 - 1),
    st.sampled_from([0, 7, 999, 10**16, 2**64 - 1, 8613800138000, 4930123456]),
)
selections = st.one_of(
    st.just([]),
    st.lists(st.sampled_from(NAMES), min_size=1, max_size=LIST_COUNT, unique=True),
)


def first_of(batch: pb.CheckResponse) -> pb.CheckResponse:
    """The answer a batch gives its first number, as a one-number response."""
    first = pb.CheckResponse()
    first.CopyFrom(batch)
    if batch.matched_width:
        width = batch.matched_width
        first.verdicts_packed = batch.verdicts_packed[:1]
        first.matched_packed = batch.matched_packed[:width]
    else:
        del first.verdicts[1:]
        del first.matched[1:]
    first.invalid_reasons.clear()
    if 0 in batch.invalid_reasons:
        first.invalid_reasons[0] = batch.invalid_reasons[0]
    return first


def test_a_single_number_is_answered_as_in_a_batch(
    start_server: Callable[..., InProcessServer],
) -> None:
    server = start_server(some_lists())
    check = server.stub.Check

    @given(numbers, selections, st.booleans(), st.booleans(), st.integers(0, 2**64 - 1))
    def same(number: int, lists: list[str], packed_in: bool, packed_out: bool, rid: int) -> None:
        fields = {"lists": lists, "packed_answer": packed_out, "request_id": rid}
        if packed_in:
            single = check(pb.CheckRequest(e164_packed=number.to_bytes(8, "little"), **fields))
        else:
            single = check(pb.CheckRequest(e164=[number], **fields))
        batch = check(pb.CheckRequest(e164=[number, OTHER], **fields))
        assert single == first_of(batch)

    same()


def test_unknown_lists_are_refused_on_the_single_path_too(
    start_server: Callable[..., InProcessServer],
) -> None:
    server = start_server(some_lists())
    refusals = []
    for numbers_sent in ([POOL[0]], [POOL[0], OTHER]):
        with pytest.raises(grpc.RpcError) as caught:
            server.stub.Check(pb.CheckRequest(e164=numbers_sent, lists=["nope"]))
        refusals.append((caught.value.code(), caught.value.details()))
    assert refusals[0] == refusals[1]
    assert refusals[0][0] == grpc.StatusCode.INVALID_ARGUMENT


def samples(registry: CollectorRegistry) -> list[tuple[str, list[tuple[str, str]], float]]:
    return sorted(
        (sample.name, sorted(sample.labels.items()), sample.value)
        for metric in registry.collect()
        for sample in metric.samples
        if not sample.name.endswith("_created")
    )


@given(st.lists(st.tuples(numbers, selections, st.booleans()), max_size=20))
def test_both_paths_decide_and_count_alike(
    checks: list[tuple[int, list[str], bool]],
) -> None:
    view = some_lists().view
    batch_registry, single_registry = CollectorRegistry(), CollectorRegistry()
    batch_metrics, single_metrics = ServiceMetrics(batch_registry), ServiceMetrics(single_registry)
    for number, lists, fail_closed in checks:
        outcome = check_batch(view, [number], lists=lists, fail_closed=fail_closed)
        names, bitmaps = view.select(lists)
        verdict, mask, reason = decide_one(number, bitmaps, fail_closed)
        single = SingleOutcome(verdict, mask, reason, names, view.version, fail_closed)
        assert (outcome.verdicts, outcome.masks) == ([verdict], [mask])
        assert outcome.invalid_reasons == ({0: int(reason)} if reason else {})
        assert (outcome.list_names, outcome.version) == (names, view.version)
        batch_metrics.record_check(outcome)
        single_metrics.record_one(single)
    assert samples(single_registry) == samples(batch_registry)
