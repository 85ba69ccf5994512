"""The CheckStream helper against real servers: order, splitting, bounded in-flight, resending."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator, Sequence

import pytest
from pyroaring import BitMap64

from suppression.client import (
    ClientConfig,
    ClientError,
    InvalidRequestError,
    RetryPolicy,
    SuppressionClient,
    Verdict,
)
from suppression.lists import SuppressionLists, Version
from tests.conftest import InProcessServer, free_port

US = 12125550123
RETRY = RetryPolicy(initial_backoff=0.001, max_backoff=0.01)


def model_lists(rng: random.Random) -> tuple[SuppressionLists, set[int]]:
    on = {US + rng.randrange(1_000) for _ in range(300)}
    return SuppressionLists({"national": BitMap64(on)}, version=Version(1700000000000, 3)), on


def test_results_come_back_in_order_split_and_reassembled(
    start_server: Callable[..., InProcessServer],
) -> None:
    rng = random.Random(5)
    lists, on = model_lists(rng)
    server = start_server(lists, max_batch=7)
    batches: list[Sequence[int] | Sequence[str]] = []
    for index in range(40):
        size = rng.choice([0, 1, 6, 7, 8, 15, 30])
        values = [US + rng.randrange(1_000) for _ in range(size)]
        batches.append([f"+{v}" for v in values] if index % 3 == 0 else values)
    config = ClientConfig(targets=(server.target,), retry=RETRY)
    with SuppressionClient(config) as suppression:
        results = list(suppression.check_stream(batches, in_flight=3))
    assert len(results) == len(batches)
    for batch, result in zip(batches, results, strict=True):
        values = [int(str(v).lstrip("+")) for v in batch]
        assert len(result) == len(values)
        assert [r.verdict for r in result] == [
            Verdict.SUPPRESSED if v in on else Verdict.ALLOWED for v in values
        ]
        assert [r.e164 for r in result] == values
        assert len(result.parts) == max(1, -(-len(values) // 7))
        assert result.version == "1700000000000-3"


def test_no_more_than_in_flight_requests_are_read_ahead(
    start_server: Callable[..., InProcessServer],
) -> None:
    server = start_server(model_lists(random.Random(1))[0])
    pulled = 0

    def batches() -> Iterator[list[int]]:
        nonlocal pulled
        for index in range(30):
            pulled += 1
            yield [US + index]

    config = ClientConfig(targets=(server.target,), max_batch=100)
    with SuppressionClient(config) as suppression:
        for consumed, _result in enumerate(suppression.check_stream(batches(), in_flight=2), 1):
            # Answered and yielded: `consumed`; sent and unanswered: at most 2; one more
            # may be in the hands of the request thread, waiting for a slot.
            assert pulled <= consumed + 3
    assert pulled == 30


def test_a_down_first_target_sends_the_stream_to_the_next(
    start_server: Callable[..., InProcessServer],
) -> None:
    server = start_server(model_lists(random.Random(2))[0])
    down = f"127.0.0.1:{free_port()}"
    config = ClientConfig(targets=(down, server.target), max_batch=100, retry=RETRY)
    with SuppressionClient(config) as suppression:
        results = list(suppression.check_stream([[US], [US + 1]]))
    assert [r.target for r in results] == [server.target, server.target]


def test_a_broken_stream_resumes_on_the_next_target(
    start_server: Callable[..., InProcessServer],
) -> None:
    lists, on = model_lists(random.Random(3))
    first, second = start_server(lists), start_server(lists)
    resume = threading.Event()

    def batches() -> Iterator[list[int]]:
        yield [US, US + 1]
        resume.wait(30)
        for start in range(2, 40, 2):
            yield [US + start, US + start + 1]

    config = ClientConfig(targets=(first.target, second.target), max_batch=100, retry=RETRY)
    with SuppressionClient(config) as suppression:
        stream = suppression.check_stream(batches(), in_flight=4)
        head = next(stream)
        assert head.target == first.target
        first.process.stop(0)  # the stream breaks while the client waits for its next batch
        resume.set()
        rest = list(stream)
    assert {r.target for r in rest} == {second.target}
    values = [v for r in [head, *rest] for v in r.normalized]
    assert values == list(range(US, US + 40))
    verdicts = [r.verdict for result in [head, *rest] for r in result]
    assert verdicts == [Verdict.SUPPRESSED if v in on else Verdict.ALLOWED for v in values]


def test_a_refused_stream_raises_while_iterating(
    start_server: Callable[..., InProcessServer],
) -> None:
    server = start_server(model_lists(random.Random(4))[0])
    config = ClientConfig(targets=(server.target,), max_batch=100)
    with SuppressionClient(config) as suppression:
        stream = suppression.check_stream([[US]] * 5, lists=["nope"])
        with pytest.raises(InvalidRequestError, match="nope"):
            list(stream)


def test_leaving_a_stream_early_cancels_it(start_server: Callable[..., InProcessServer]) -> None:
    server = start_server(model_lists(random.Random(6))[0])

    def endless() -> Iterator[list[int]]:
        index = 0
        while True:
            index += 1
            yield [US + index % 1000]

    config = ClientConfig(targets=(server.target,), max_batch=100)
    with SuppressionClient(config) as suppression:
        for count, _result in enumerate(suppression.check_stream(endless()), 1):
            if count == 10:
                break
        assert suppression.check_one(US).version == "1700000000000-3"


def test_a_stream_cancelled_from_another_thread_stops_with_an_error(
    start_server: Callable[..., InProcessServer],
) -> None:
    server = start_server(model_lists(random.Random(7))[0])
    never = threading.Event()

    def batches() -> Iterator[list[int]]:
        yield [US]
        never.wait(30)

    config = ClientConfig(targets=(server.target,), max_batch=100)
    with SuppressionClient(config) as suppression:
        stream = suppression.check_stream(batches())
        assert len(next(stream)) == 1
        threading.Thread(target=stream.cancel).start()
        with pytest.raises(ClientError, match="cancelled"):
            next(stream)
    never.set()
