"""The remote engine against real in-process gRPC servers: spreading, versions, errors."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
import pytest
from pyroaring import BitMap64

from suppression.checker import Verdict
from suppression.lists import Change, ListInfo, ListKind, Op, SuppressionLists, Version
from suppression.scrub.answers import Answers
from suppression.scrub.local import LocalEngine
from suppression.scrub.remote import RemoteEngine, RemoteError
from tests.conftest import InProcessServer

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
        return engine.finish(len(texts))
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
