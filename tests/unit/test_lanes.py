"""Lanes: bulk batches one at a time, sliced, pausing for interactive calls; same answers."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from suppression import lanes as lanes_module
from suppression.checker import LOOKUP_SLICE, SLICE, check_batch, pausing_between_slices
from suppression.e164 import Normalizer
from suppression.lanes import Lanes
from tests.conftest import wait_for
from tests.samples import make_lists


def test_sliced_batches_answer_as_whole_ones() -> None:
    view = make_lists().view
    rng = np.random.default_rng(3)
    e164 = (12125550000 + rng.integers(0, 20_000, 2 * SLICE + 17)).tolist()
    texts = [f"+{n}" for n in e164[: SLICE + 5]] + ["(212) 555-0100", "junk"] * 300
    pauses: list[int] = []
    whole = check_batch(view, e164, texts, "US", (), Normalizer())
    with pausing_between_slices(lambda: pauses.append(1)):
        sliced = check_batch(view, e164, texts, "US", (), Normalizer())
    assert sliced == whole
    assert len(pauses) >= len(texts) // SLICE + (len(e164) + len(texts)) // LOOKUP_SLICE


def test_one_bulk_batch_at_a_time() -> None:
    lanes = Lanes(bulk_threshold=10)
    assert lanes.is_bulk(10) and not lanes.is_bulk(9)
    inside = threading.Event()
    second_in = threading.Event()
    release = threading.Event()

    def first() -> None:
        with lanes.bulk():
            inside.set()
            release.wait(10)

    def second() -> None:
        with lanes.bulk():
            second_in.set()

    one = threading.Thread(target=first)
    one.start()
    assert inside.wait(10)
    two = threading.Thread(target=second)
    two.start()
    assert not second_in.wait(0.2)
    release.set()
    wait_for(second_in.is_set, 10, "the second bulk batch to start")
    one.join(10)
    two.join(10)


def test_bulk_work_pauses_while_an_interactive_call_runs() -> None:
    lanes = Lanes(longest_pause=30.0)
    paused = threading.Event()
    resumed = threading.Event()
    leave = threading.Event()
    entered = threading.Event()

    def interactive() -> None:
        with lanes.interactive():
            entered.set()
            leave.wait(10)

    def bulk() -> None:
        with lanes.bulk() as pause:
            paused.set()
            pause()
            resumed.set()

    small = threading.Thread(target=interactive)
    small.start()
    assert entered.wait(10)
    big = threading.Thread(target=bulk)
    big.start()
    assert paused.wait(10)
    assert not resumed.wait(0.2)
    leave.set()
    wait_for(resumed.is_set, 10, "bulk work to resume")
    small.join(10)
    big.join(10)


def test_a_bulk_batch_drops_the_gil_once_per_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    """Between slices the GIL is dropped only after ``longest_hold`` of work: each drop costs."""
    now = [100.0]
    drops: list[float] = []
    monkeypatch.setattr(lanes_module, "_clock", lambda: now[0])
    monkeypatch.setattr(lanes_module, "_drop_gil", lambda: drops.append(now[0]))
    lanes = Lanes(longest_hold=0.001)
    with lanes.bulk() as pause:
        for _slice in range(10):
            now[0] += 0.0004
            pause()
    # 0.4 ms of work a slice: every third boundary has held it 1.2 ms, and drops it.
    assert drops == pytest.approx([100.0012, 100.0024, 100.0036])
