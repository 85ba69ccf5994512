"""The remote engine against real in-process gRPC servers: spreading, versions, errors, failover."""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any

import grpc
import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from pyroaring import BitMap64

from suppression.checker import Verdict
from suppression.lists import Change, ListInfo, ListKind, Op, SuppressionLists, Version
from suppression.metrics import ServiceMetrics
from suppression.replica import Replica
from suppression.scrub.answers import Answers
from suppression.scrub.local import LocalEngine
from suppression.scrub.remote import RemoteEngine, RemoteError
from suppression.service import SuppressionServicer
from suppression.v1 import suppression_pb2_grpc as pb_grpc
from tests.conftest import InProcessServer, free_port, replica_data

TEXTS = [
    "+12125550123",
    "(212) 555-0124",
    "+8613800138000",
    "1-202-555-0147",
    "junk",
    "+12025550148",
    "202.555.0149",
    "12",
]
Start = Callable[..., InProcessServer]


def make_lists(default_lists: list[str] | None = None) -> SuppressionLists:
    return SuppressionLists(
        {
            "internal": BitMap64([12125550123, 12025550147]),
            "national": BitMap64([8613800138000, 12125550124]),
        },
        [ListInfo("national", ListKind.REGISTRY)],
        Version(1_700_000_000_000, 5),
        default_lists,
    )


def answer(engine: RemoteEngine | LocalEngine, texts: list[str], split: int = 3) -> Answers:
    try:
        for start in range(0, len(texts), split):
            engine.submit(start, texts[start : start + split])
        return engine.take(0, len(texts))
    finally:
        engine.close()


def by_name(answers: Answers) -> list[tuple[int, set[str], int, int]]:
    """Per string: verdict, matched list names, reason, value; independent of list order."""
    names = answers.list_names
    return [
        (
            int(answers.verdicts[i]),
            {name for bit, name in enumerate(names) if int(answers.masks[i]) >> bit & 1},
            int(answers.reasons[i]),
            int(answers.values[i]),
        )
        for i in range(len(answers.verdicts))
    ]


def test_remote_answers_equal_local_answers(start_server: Start) -> None:
    lists = make_lists()
    server = start_server(lists)
    remote = answer(RemoteEngine([server.target], "US", [], batch_size=2), TEXTS)
    local = answer(LocalEngine(lists.view, "US", [], processes=1, batch_size=2), TEXTS)
    assert by_name(remote) == by_name(local)
    assert remote.versions == {server.target: "1700000000000-5"}
    assert local.versions == {"local": "1700000000000-5"}
    assert [Verdict(v).name for v in remote.verdicts] == [
        "SUPPRESSED",
        "SUPPRESSED",
        "SUPPRESSED",
        "SUPPRESSED",
        "INVALID",
        "ALLOWED",
        "ALLOWED",
        "INVALID",
    ]


def test_batches_spread_over_targets_with_different_list_orders(start_server: Start) -> None:
    first = start_server(make_lists(["internal", "national"]))
    second = start_server(make_lists(["national", "internal"]))
    texts = TEXTS * 250  # 400 batches: the second server is connected long before they run out
    answers = answer(
        RemoteEngine([first.target, second.target], "US", [], batch_size=5), texts, split=500
    )
    assert set(answers.versions) == {first.target, second.target}
    assert by_name(answers) == by_name(
        answer(LocalEngine(make_lists().view, "US", [], processes=1), texts)
    )
    for server in (first, second):  # both servers answered some of the batches
        assert server.registry.get_sample_value("suppression_batch_size_numbers_count")


def test_answers_from_an_older_version_are_asked_again(start_server: Start) -> None:
    lists = make_lists()
    server = start_server(lists)
    newcomer = "+12025550148"  # allowed until the change below
    texts = [newcomer, "+12025550150"] + [f"+1202555{n:04d}" for n in range(200, 220)]
    changed: list[Version] = []

    def change_once(_count: int) -> None:
        if not changed:
            changed.append(lists.apply([Change(Op.ADD, "internal", [12025550148])]))

    engine = RemoteEngine(
        [server.target], "US", [], batch_size=2, streams_per_target=1, progress=change_once
    )
    answers = answer(engine, texts, split=len(texts))
    assert answers.versions == {server.target: str(changed[0])}
    assert Verdict(answers.verdicts[0]) == Verdict.SUPPRESSED
    assert np.count_nonzero(answers.verdicts == Verdict.SUPPRESSED) == 1


def test_a_server_refusal_fails_the_scrub(start_server: Start) -> None:
    server = start_server(make_lists())
    engine = RemoteEngine([server.target], "US", ["nope"])
    with pytest.raises(RemoteError, match="INVALID_ARGUMENT: unknown list"):
        answer(engine, TEXTS)


def test_unreachable_and_loading_servers_are_refused_at_once(start_server: Start) -> None:
    with pytest.raises(RemoteError, match="cannot reach server 127.0.0.1:1"):
        RemoteEngine(["127.0.0.1:1"], "US", [], timeout=2)
    loading = start_server(None)
    with pytest.raises(RemoteError, match="still loading"):
        RemoteEngine([loading.target], "US", [])


def test_the_batch_size_shrinks_to_the_servers_maximum(start_server: Start) -> None:
    server = start_server(make_lists(), max_batch=3)
    answers = answer(RemoteEngine([server.target], "US", [], batch_size=1000), TEXTS, split=8)
    assert len(answers.verdicts) == len(TEXTS)


def test_data_that_never_stops_changing_fails_the_scrub(start_server: Start) -> None:
    lists = make_lists()
    server = start_server(lists)
    stop = threading.Event()

    def keep_changing() -> None:
        number = 12025550000
        while not stop.is_set():
            number += 1
            lists.apply([Change(Op.ADD, "internal", [number])])
            time.sleep(0.0005)

    changer = threading.Thread(target=keep_changing, daemon=True)
    changer.start()
    try:
        texts = [f"+1303555{n:04d}" for n in range(60)]
        engine = RemoteEngine([server.target], "US", [], batch_size=1, streams_per_target=2)
        with pytest.raises(RemoteError, match="the data kept changing during the scrub"):
            answer(engine, texts, split=60)
    finally:
        stop.set()
        changer.join(5)


# -- failover: a batch whose server fails is answered by another target ---------------


class HeldStreams(grpc.ServerInterceptor):
    """Holds every CheckStream once its first batch has arrived, until released."""

    def __init__(self) -> None:
        self.holding = threading.Event()
        self.release = threading.Event()

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(details)
        if handler is None or not details.method.endswith("/CheckStream"):
            return handler
        inner = handler.stream_stream

        def held(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
            first = next(requests)
            self.holding.set()  # a batch is in this server's hands, unanswered
            self.release.wait(30)
            yield from inner(itertools.chain([first], requests), context)

        return grpc.stream_stream_rpc_method_handler(
            held,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


class HeldServer:
    """A real server of the real servicer whose streams hold their batches unanswered."""

    def __init__(self, lists: SuppressionLists) -> None:
        replica = Replica(replica_data(lists))
        replica.start()
        self.held = HeldStreams()
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=8), interceptors=[self.held]
        )
        pb_grpc.add_SuppressionServicer_to_server(  # type: ignore[no-untyped-call]
            SuppressionServicer(replica, ServiceMetrics(CollectorRegistry())), self.server
        )
        self.target = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"
        self.server.start()

    def stop(self) -> None:
        self.server.stop(0).wait()  # every call cancelled before a held one may go on
        self.held.release.set()


@pytest.fixture
def held_servers() -> Iterator[Callable[[], HeldServer]]:
    started: list[HeldServer] = []

    def start() -> HeldServer:
        started.append(HeldServer(make_lists()))
        return started[-1]

    yield start
    for server in started:
        server.stop()


MANY = [f"+1202555{n:04d}" for n in range(200)] + TEXTS


def local_answers(texts: list[str]) -> list[tuple[int, set[str], int, int]]:
    return by_name(answer(LocalEngine(make_lists().view, "US", [], processes=1), texts))


def test_a_stopped_target_s_batches_are_answered_by_the_other(
    start_server: Start, held_servers: Callable[[], HeldServer]
) -> None:
    good, bad = start_server(make_lists()), held_servers()
    engine = RemoteEngine([good.target, bad.target], "US", [], batch_size=4, streams_per_target=2)
    try:
        engine.submit(0, MANY)
        assert bad.held.holding.wait(10)
        bad.stop()  # with a batch in its hands
        answers = engine.take(0, len(MANY))
    finally:
        engine.close()
    assert by_name(answers) == local_answers(MANY)
    assert answers.retried_on[good.target] >= 1
    assert list(answers.retried_on) == [good.target]
    assert list(answers.failed_targets) == [bad.target]
    assert answers.versions == {good.target: "1700000000000-5"}  # the stopped one answered none


def test_a_target_that_never_answers_is_left_after_the_timeout(
    start_server: Start, held_servers: Callable[[], HeldServer]
) -> None:
    good, silent = start_server(make_lists()), held_servers()
    # Long enough that the good target always answers in time on a loaded machine (0.5 s
    # did not, once in CI); the silent one never answers, whatever the timeout.
    engine = RemoteEngine(
        [silent.target, good.target], "US", [], batch_size=4, streams_per_target=2, timeout=3
    )
    answers = answer(engine, MANY, split=len(MANY))
    assert by_name(answers) == local_answers(MANY)
    assert answers.retried_on[good.target] >= 1
    assert "sent no answer within 3 s (--timeout)" in answers.failed_targets[silent.target]


def test_a_target_down_at_the_start_is_left_to_the_others(start_server: Start) -> None:
    good = start_server(make_lists())
    down = f"127.0.0.1:{free_port()}"
    answers = answer(RemoteEngine([down, good.target], "US", [], batch_size=4, timeout=2), MANY)
    assert by_name(answers) == local_answers(MANY)
    assert answers.retried_on == {}
    assert f"cannot reach server {down}" in answers.failed_targets[down]


def test_the_scrub_fails_when_no_target_can_answer(
    held_servers: Callable[[], HeldServer],
) -> None:
    first, second = held_servers(), held_servers()
    engine = RemoteEngine([first.target, second.target], "US", [], batch_size=4, timeout=2)
    try:
        engine.submit(0, MANY)
        assert first.held.holding.wait(10) and second.held.holding.wait(10)
        first.stop()
        second.stop()
        with pytest.raises(RemoteError, match=r"no target can answer \(2 tried\): ") as caught:
            engine.take(0, len(MANY))
    finally:
        engine.close()
    assert "\n" not in str(caught.value)
    assert first.target in str(caught.value) and second.target in str(caught.value)


class _SlowToTakeRetries(queue.Queue):  # type: ignore[type-arg]
    """The engine's batch queue, whose streams take a batch handed back only after a while.

    On a loaded machine gRPC's request thread can take that long to run: the
    batches of a timed-out stream then sit in the queue, held by no stream.
    """

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        batch = super().get(block, timeout)
        if batch is not None and batch.retried:
            time.sleep(0.6)  # three of the engine's 0.2 s watches
        return batch


def test_batches_handed_back_are_no_stall_while_the_others_take_them(
    start_server: Start, held_servers: Callable[[], HeldServer]
) -> None:
    """A stream timing out hands its batches back; that is no silence of the other targets.

    The engine took "no stream holds a batch, and none answered within the timeout"
    for hung connections, and cancelled the good target's streams too, while they
    were picking those batches up: the scrub failed with "no target can answer".
    """
    # Four batches; one stream a target takes two at most (its in-flight limit). Both
    # servers hold what they get, so the silent one surely holds one or two; then the good
    # one answers, and the silent one times out and hands its batches back.
    good, silent = held_servers(), held_servers()
    engine = RemoteEngine(
        [silent.target, good.target], "US", [], batch_size=52, streams_per_target=1, timeout=2
    )
    # Widens the race a loaded machine hits. The queue's class changes, not the queue: a
    # stream may already wait on it (a new queue left such a stream waiting for ever, and
    # the silent server never got a batch: this test failed on loaded machines).
    engine._queue.__class__ = _SlowToTakeRetries  # noqa: SLF001
    try:
        engine.submit(0, MANY)
        assert silent.held.holding.wait(10)
        good.held.release.set()
        answers = engine.take(0, len(MANY))
    finally:
        engine.close()
    assert by_name(answers) == local_answers(MANY)
    assert list(answers.retried_on) == [good.target]  # what the silent one held
    assert list(answers.failed_targets) == [silent.target]
