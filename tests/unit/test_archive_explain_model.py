"""Explain and as-of views against a model: random change sequences, checked at random versions.

The archive is written as a replica writes it (appends, resyncs that write a
base, segments that close), a plain dict of sets is the model, and Explain
must agree with it on every list at every version it answers for, refuse
every version before the archive begins, and never mention another number.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from pyroaring import BitMap64

from suppression.archive import ArchiveOptions, ChangeArchive
from suppression.archive.asof import view_as_of
from suppression.entries import Entry, encode_entry
from suppression.errors import ArchiveCoverageError
from suppression.explain import explain
from suppression.lists import ListInfo, ListKind, ListView, LogPosition, Op, Version

FIRST = 14155550100
NUMBERS = [FIRST + i for i in range(0, 40, 3)]
LISTS = {"optout": ListKind.OPT_OUT, "camp": ListKind.CAMPAIGN, "reg": ListKind.REGISTRY}

Model = dict[str, set[int]]

change_strategy = st.tuples(
    st.sampled_from([Op.ADD, Op.REMOVE, Op.ADD_RANGE, Op.REMOVE_RANGE]),
    st.sampled_from(sorted(LISTS)),
    st.lists(st.sampled_from(NUMBERS), min_size=1, max_size=4, unique=True),
    st.integers(0, 30),
    st.integers(0, 12),
)
step_strategy = st.one_of(
    st.tuples(st.just("batch"), st.lists(change_strategy, min_size=1, max_size=4)),
    st.tuples(st.just("resync"), st.just([])),
)


def entry_for(op: Op, name: str, numbers: list[int], start: int, length: int, ms: int) -> Entry:
    ranged = op in (Op.ADD_RANGE, Op.REMOVE_RANGE)
    return Entry(
        op,
        name,
        LISTS[name],
        "consent" if op in (Op.REMOVE, Op.REMOVE_RANGE) else "in_call",
        () if ranged else tuple(numbers),
        FIRST + start if ranged else 0,
        FIRST + start + length if ranged else -1,
        actor=f"actor-{ms}",
        evidence=f"evidence-{ms}",
        timestamp_ms=ms,
    )


def apply_model(model: Model, entry: Entry) -> None:
    if entry.op in (Op.ADD_RANGE, Op.REMOVE_RANGE):
        touched = set(range(entry.first, entry.last + 1))
    else:
        touched = set(entry.numbers)
    if entry.op in (Op.ADD, Op.ADD_RANGE):
        model.setdefault(entry.list_name, set()).update(touched)
    elif entry.list_name in model:
        model[entry.list_name] -= touched


def view_of(model: Model, version: Version, seq: int) -> ListView:
    bitmaps = {name: BitMap64(numbers) for name, numbers in model.items()}
    infos = {name: ListInfo(name, LISTS[name]) for name in model}
    return ListView(version, bitmaps, infos, (), LogPosition("e" * 32, seq))


@settings(max_examples=60, deadline=None)
@given(
    initial=st.dictionaries(
        st.sampled_from(sorted(LISTS)), st.sets(st.sampled_from(NUMBERS), max_size=4)
    ),
    steps=st.lists(step_strategy, min_size=1, max_size=12),
    segment_bytes=st.sampled_from([1, 600, 1 << 20]),
    probes=st.lists(st.tuples(st.integers(0, 200), st.sampled_from(NUMBERS)), min_size=1),
)
def test_explain_agrees_with_the_model(
    initial: Model,
    steps: list[tuple[str, list[tuple[Op, str, list[int], int, int]]]],
    segment_bytes: int,
    probes: list[tuple[int, int]],
) -> None:
    model: Model = {name: set(numbers) for name, numbers in initial.items()}
    start_ms = 1_000
    history: list[tuple[Version, Model]] = [(Version(start_ms, 0), _copy(model))]
    unknown: list[tuple[Version, Version]] = []  # (P, R): the archive never saw that stretch
    seq = 0
    ms = start_ms
    with tempfile.TemporaryDirectory() as directory:
        archive = ChangeArchive(ArchiveOptions(Path(directory), segment_bytes, fsync=False))
        archive.open()
        archive.start(view_of(model, Version(start_ms, 0), seq))
        for kind, changes in steps:
            if kind == "resync":
                # As after a trim: the data jumps past changes the archive never saw.
                ms += 10
                seq += 1
                model.setdefault("camp", set()).add(NUMBERS[seq % len(NUMBERS)])
                version = Version(ms, 0)
                unknown.append((history[-1][0], version))
                archive.rebase(view_of(model, version, seq), "resync")
                history.append((version, _copy(model)))
                continue
            raw = []
            before = view_of(model, history[-1][0], seq)
            for op, name, numbers, first, length in changes:
                ms += 10
                seq += 1
                entry = entry_for(op, name, numbers, first, length, ms)
                fields = {k.encode(): v.encode() for k, v in encode_entry(entry).items()}
                fields[b"epoch"], fields[b"seq"] = b"e" * 32, str(seq).encode()
                raw.append((f"{ms}-0".encode(), fields))
                apply_model(model, entry)
                history.append((Version(ms, 0), _copy(model)))
            archive.append(raw, before)
        archive.close()
        reader = archive.reader
        end = history[-1][0]
        for offset, number in probes:
            at = Version(start_ms - 5 + offset * 2, 0)
            if at < history[0][0]:
                try:
                    explain(reader, number, at)
                except ArchiveCoverageError as exc:
                    assert "before the archive begins" in str(exc)
                else:
                    raise AssertionError("a point before the archive was answered")
                continue
            if any(after < at < before for after, before in unknown):
                try:
                    explain(reader, number, at)
                except ArchiveCoverageError as exc:
                    assert "lost changes" in str(exc)
                else:
                    raise AssertionError("a point the archive never saw was answered")
                continue
            expected = [state for version, state in history if version <= at][-1]
            answer = explain(reader, number, at, known_until=Version(end.ms + 1000, 0))
            shown = {a.name: a.on_list for a in answer.lists}
            assert shown == {name: number in members for name, members in expected.items()}
            assert answer.suppressed == any(number in m for m in expected.values())
            past = view_as_of(reader, at, known_until=Version(end.ms + 1000, 0))
            assert {name: set(bitmap) for name, bitmap in past.bitmaps.items()} == expected
            text = json.dumps(asdict(answer), default=str)
            others = [n for n in NUMBERS if n != number and str(n) in text]
            assert others == [], "an answer mentioned another number"


def _copy(model: Model) -> Model:
    return {name: set(numbers) for name, numbers in model.items()}
