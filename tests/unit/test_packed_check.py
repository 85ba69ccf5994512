"""The packed Check encoding gives exactly the answers of the repeated fields.

``packed_answer`` moves verdicts and bitmasks into two bytes fields, and
``e164_packed`` carries the numbers as little-endian uint64. Both are read
here independently of the client library (with numpy), over a real
in-process gRPC server, for random batches and list selections wide enough for
every bitmask width.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from contextlib import contextmanager

import grpc
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from suppression.client import ClientConfig, SuppressionClient
from suppression.client.assembly import Piece, merge
from suppression.lists import SuppressionLists, Version
from suppression.metrics import ServiceMetrics
from suppression.replica import Replica
from suppression.service import SuppressionServicer
from suppression.v1 import suppression_pb2 as pb
from suppression.v1 import suppression_pb2_grpc as pb_grpc
from suppression.wire import one_byte_varints
from tests.conftest import InProcessServer, replica_data
from tests.samples import random_campaign_lists

LIST_COUNT = 40
"""Enough lists for masks of 1, 2, 4 and 8 bytes."""
POOL = [12125550000 + index for index in range(120)]
NAMES = [f"list{index:02d}" for index in range(LIST_COUNT)]


def many_lists() -> SuppressionLists:
    return random_campaign_lists(NAMES, POOL, 11, 0.3, Version(1700000000000, 3))


def packed(values: Sequence[int]) -> bytes:
    return np.asarray(values, dtype="<u8").tobytes()


def read_packed(response: pb.CheckResponse) -> tuple[list[int], list[int]]:
    """Verdicts and masks of a packed answer, read with numpy (not the client's code)."""
    width = response.matched_width
    assert width in (1, 2, 4, 8)
    masks = np.frombuffer(response.matched_packed, dtype=f"<u{width}")
    verdicts = np.frombuffer(response.verdicts_packed, dtype=np.uint8)
    return verdicts.tolist(), masks.tolist()


def expected_width(list_count: int) -> int:
    return next(width for width in (1, 2, 4, 8) if list_count <= 8 * width)


numbers = st.one_of(
    st.sampled_from(POOL),
    st.integers(min_value=0, max_value=2**64 - 1),
    st.sampled_from([0, 7, 999, 10**16, 2**64 - 1, 12125551234]),
)
texts = st.one_of(st.sampled_from([f"+{n}" for n in POOL[:20]]), st.sampled_from(["junk", ""]))
selections = st.one_of(
    st.just([]),
    st.lists(st.sampled_from(NAMES), min_size=1, max_size=LIST_COUNT, unique=True),
)


def test_packed_answers_equal_repeated_ones(
    start_server: Callable[..., InProcessServer],
) -> None:
    server = start_server(many_lists())
    check = server.stub.Check

    @given(
        st.lists(numbers, max_size=300),
        st.lists(texts, max_size=40),
        selections,
        st.integers(min_value=0, max_value=2**64 - 1),
    )
    def same(e164: list[int], text: list[str], lists: list[str], request_id: int) -> None:
        fields = {"numbers": text, "default_region": "US", "lists": lists}
        old = check(pb.CheckRequest(e164=e164, request_id=request_id, **fields))
        new = check(pb.CheckRequest(e164=e164, packed_answer=True, request_id=request_id, **fields))
        both = check(
            pb.CheckRequest(
                e164_packed=packed(e164), packed_answer=True, request_id=request_id, **fields
            )
        )
        assert both == new
        # The old request is answered as before: repeated fields, nothing packed.
        assert (old.verdicts_packed, old.matched_packed, old.matched_width) == (b"", b"", 0)
        assert len(old.verdicts) == len(old.matched) == len(e164) + len(text)
        assert not new.verdicts and not new.matched
        assert new.matched_width == expected_width(len(new.list_names))
        assert read_packed(new) == (list(old.verdicts), list(old.matched))
        for response in (old, new):
            response.ClearField("verdicts")
            response.ClearField("matched")
            response.ClearField("verdicts_packed")
            response.ClearField("matched_packed")
            response.ClearField("matched_width")
        assert new == old

    same()


def test_malformed_packed_numbers_are_refused(
    start_server: Callable[..., InProcessServer],
) -> None:
    server = start_server(many_lists())
    cases = [
        (pb.CheckRequest(e164=[POOL[0]], e164_packed=packed([POOL[1]])), "not in both"),
        (pb.CheckRequest(e164_packed=packed([POOL[1]])[:-1]), "not a multiple of 8"),
    ]
    for request, message in cases:
        with pytest.raises(grpc.RpcError) as caught:
            server.stub.Check(request)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert message in (caught.value.details() or "")
    assert server.stub.GetStatus(pb.GetStatusRequest()).packed


masks_and_verdicts = st.integers(min_value=0, max_value=LIST_COUNT).flatmap(
    lambda lists: st.tuples(
        st.just(lists),
        st.lists(
            st.tuples(
                st.sampled_from([pb.ALLOWED, pb.SUPPRESSED, pb.INVALID, pb.DEFERRED]),
                st.integers(min_value=0, max_value=(1 << lists) - 1),
            ),
            max_size=200,
        ),
    )
)


@given(masks_and_verdicts, masks_and_verdicts)
def test_the_client_reads_packed_and_repeated_answers_alike(
    first: tuple[int, list[tuple[int, int]]], second: tuple[int, list[tuple[int, int]]]
) -> None:
    """Two pieces, lists named in different orders: the client's merge remaps both forms."""
    start = 0
    old_form: list[tuple[Piece, pb.CheckResponse, str]] = []
    new_form: list[tuple[Piece, pb.CheckResponse, str]] = []
    for part, (list_count, rows) in enumerate((first, second)):
        names = NAMES[:list_count] if part == 0 else NAMES[:list_count][::-1]
        verdicts = [verdict for verdict, _ in rows]
        masks = [mask for _, mask in rows]
        piece = Piece(start, POOL[: len(rows)] if len(rows) <= len(POOL) else [1] * len(rows), ())
        start += len(rows)
        common = {"list_names": names, "version": f"1700000000000-{part}"}
        old = pb.CheckResponse(verdicts=verdicts, matched=masks, **common)  # type: ignore[arg-type]
        width = expected_width(list_count)
        new = pb.CheckResponse(
            verdicts_packed=bytes(verdicts),
            matched_packed=np.asarray(masks, dtype=f"<u{width}").tobytes(),
            matched_width=width,
            **common,  # type: ignore[arg-type]
        )
        old_form.append((piece, old, "old"))
        new_form.append((piece, new, "new"))
    was = merge(old_form)
    # All packed, and one of each (targets of two releases during a rolling upgrade).
    for now in (merge(new_form), merge([old_form[0], new_form[1]])):
        assert len(now) == len(was)
        assert [now[i] for i in range(len(now))] == [was[i] for i in range(len(was))]
        assert now.suppressed_indexes() == was.suppressed_indexes()
        assert now.verdicts == was.verdicts
        assert now.masks == was.masks
        assert (now.list_names, now.normalized, now.version) == (
            was.list_names,
            was.normalized,
            was.version,
        )


def test_the_client_asks_for_packed_answers() -> None:
    assert Piece(0, [POOL[0]], ()).request("", ()).packed_answer


def test_a_short_packed_answer_is_refused() -> None:
    piece = Piece(0, [POOL[0], POOL[1]], ())
    answer = pb.CheckResponse(
        verdicts_packed=bytes([1, 2]), matched_packed=b"\x01", matched_width=1
    )
    with pytest.raises(ValueError, match="matched_packed holds 1 bytes"):
        merge([(piece, answer, "t")])
    answer = pb.CheckResponse(verdicts_packed=bytes([1]), matched_packed=b"\x01", matched_width=1)
    with pytest.raises(ValueError, match="1 packed verdicts for 2 numbers"):
        merge([(piece, answer, "t")])


class _Servicer(SuppressionServicer):
    """A server that can play one from before the packed encoding, which knows neither
    ``packed_answer`` nor ``e164_packed``; it notes the form of each request's numbers."""

    old = False
    seen: list[str]

    def Check(  # noqa: N802 - gRPC method name
        self, request: pb.CheckRequest, context: grpc.ServicerContext
    ) -> pb.CheckResponse:
        self.seen.append("packed" if request.e164_packed else "e164")
        if self.old:
            request = pb.CheckRequest.FromString(request.SerializeToString())
            request.ClearField("packed_answer")
            request.ClearField("e164_packed")  # unknown to it: no numbers at all
        return super().Check(request, context)


@contextmanager
def _serving(old: bool) -> Iterator[tuple[str, _Servicer]]:
    replica = Replica(replica_data(many_lists()))
    replica.start()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = _Servicer(replica, ServiceMetrics(CollectorRegistry()))
    servicer.old, servicer.seen = old, []
    pb_grpc.add_SuppressionServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", servicer
    finally:
        server.stop(0)


def test_the_client_gets_the_same_results_from_old_and_new_servers() -> None:
    rng = np.random.default_rng(5)
    e164 = [*rng.choice(POOL, 500).tolist(), 0, 10**16]
    texts_ = ["+12125550003", "junk"]
    results = []
    with _serving(old=False) as (new_target, new), _serving(old=True) as (old_target, old):
        for target in (new_target, old_target):
            config = ClientConfig(targets=(target,), max_batch=200)
            with SuppressionClient(config) as client:
                for lists in ((), NAMES[:3], NAMES[::-1]):
                    results.append(client.check(e164, texts_, lists=lists, region="US"))
        # Numbers go packed once the server has answered packed; never to the old one.
        assert new.seen == ["e164", *["packed"] * 8]
        assert old.seen == ["e164"] * 9
    for new_result, old_result in zip(results[:3], results[3:], strict=True):
        assert len(new_result.parts) == 3  # split into pieces of max_batch
        assert new_result.verdicts == old_result.verdicts
        assert new_result.masks == old_result.masks
        assert new_result.list_names == old_result.list_names
        assert new_result.invalid_reasons == old_result.invalid_reasons
        assert new_result.normalized == old_result.normalized
        assert new_result.version == old_result.version
        assert list(new_result) == list(old_result)


def test_the_client_sends_numbers_again_to_a_server_rolled_back() -> None:
    with _serving(old=False) as (target, servicer):
        with SuppressionClient(ClientConfig(targets=(target,), max_batch=1000)) as client:
            first = client.check(POOL)
            servicer.old = True  # the same address now runs an older release
            again = client.check(POOL)
            later = client.check(POOL)
    assert servicer.seen == ["e164", "packed", "e164", "e164"]
    assert len(again) == len(first) == len(later) == len(POOL)
    assert again.verdicts == first.verdicts == later.verdicts
    assert again.masks == first.masks


@pytest.mark.parametrize("count", [0, 1, 127, 128, 300, 16_384, 20_000])
def test_one_byte_varints_parse_as_the_repeated_field(count: int) -> None:
    rng = np.random.default_rng(count)
    masks = rng.integers(0, 128, count, dtype=np.uint64)
    verdicts = rng.integers(1, 4, count, dtype=np.uint8)
    response = pb.CheckResponse()
    verdicts_bytes = one_byte_varints(1, verdicts)
    masks_bytes = one_byte_varints(2, masks)
    assert verdicts_bytes is not None and masks_bytes is not None
    response.MergeFromString(verdicts_bytes + masks_bytes)
    assert list(response.verdicts) == verdicts.tolist()
    assert list(response.matched) == masks.tolist()


def test_one_byte_varints_refuse_values_of_two_bytes() -> None:
    assert one_byte_varints(2, np.array([0, 127, 128], dtype=np.uint64)) is None
    assert one_byte_varints(2, np.array([2**63], dtype=np.uint64)) is None


@pytest.mark.parametrize("selected", [3, 7, 8, LIST_COUNT])
def test_a_large_batch_answers_the_same_repeated_and_packed(
    start_server: Callable[..., InProcessServer], selected: int
) -> None:
    """Large batches build the repeated fields from bytes; masks of 8+ lists take extend."""
    server = start_server(many_lists())
    rng = np.random.default_rng(selected)
    e164 = rng.choice(np.array(POOL + [0, 7, 2**64 - 1], dtype=np.uint64), 10_000).tolist()
    lists = NAMES[:selected]
    old = server.stub.Check(pb.CheckRequest(e164=e164, lists=lists))
    new = server.stub.Check(pb.CheckRequest(e164=e164, lists=lists, packed_answer=True))
    verdicts, masks = read_packed(new)
    assert (list(old.verdicts), list(old.matched)) == (verdicts, masks)
    assert max(masks) >= 2 ** (selected - 1)  # the highest list's bit is in the answer
    assert {pb.SUPPRESSED, pb.INVALID} <= set(verdicts)  # 0 and 7 are invalid
