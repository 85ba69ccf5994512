"""Days in the change log and in the lists: entries that carry them, and their apply."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyroaring import BitMap64

from suppression.entries import (
    DATED_FORMAT_VERSION,
    FORMAT_VERSION,
    Entry,
    InvalidEntryError,
    decode_entry,
    encode_entry,
    entries_for,
    validate_entry,
)
from suppression.lists import Change, ListInfo, ListKind, Op, SuppressionLists
from suppression.policy.batch import PolicyRequest, check_with_policy
from suppression.policy.dated import MAX_DAY, NO_DAY, DatedList, carry_days
from suppression.policy.parse import parse_policies

BASE = 12125550000
NUMBERS = st.integers(BASE, BASE + 99)
DAYS = st.integers(0, MAX_DAY)


def raw(entry: Entry) -> dict[bytes, bytes]:
    return {k.encode(): v.encode() for k, v in encode_entry(entry).items()}


@given(
    st.lists(st.tuples(NUMBERS, DAYS), min_size=1, max_size=40),
    st.booleans(),
)
def test_dated_add_round_trips(pairs: list[tuple[int, int]], one_day: bool) -> None:
    numbers = tuple(n for n, _ in pairs)
    days = tuple(pairs[0][1] for _ in pairs) if one_day else tuple(d for _, d in pairs)
    entry = Entry(
        Op.ADD, "consent", ListKind.CAMPAIGN, "consent", numbers, timestamp_ms=7, days=days
    )
    fields = encode_entry(entry)
    assert fields["v"] == str(DATED_FORMAT_VERSION)
    assert ("day" in fields) == (len(set(days)) == 1)
    assert decode_entry(raw(entry)) == entry


def test_plain_entries_stay_version_one() -> None:
    entry = Entry(Op.ADD, "optout", ListKind.OPT_OUT, "in_call", (BASE,), timestamp_ms=1)
    fields = encode_entry(entry)
    assert fields["v"] == str(FORMAT_VERSION)
    assert "days" not in fields and "day" not in fields


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"v": "1", "day": "20000"}, "only it carries days"),
        ({"v": "2"}, "only it carries days"),
        ({"v": "2", "days": "1,2"}, "2 days for 1 numbers"),
        ({"v": "2", "days": "x"}, "decimal day numbers"),
        ({"v": "2", "day": "65535"}, "must be 0 to 65534"),
        ({"v": "2", "day": "1", "days": "1"}, "days or day, not both"),
        ({"v": "2", "op": "remove", "day": "3"}, "only an add entry carries days"),
        ({"v": "3", "day": "3"}, "a newer producer needs a newer consumer"),
    ],
)
def test_bad_days_are_refused(change: dict[str, str], message: str) -> None:
    fields = encode_entry(
        Entry(Op.ADD, "consent", ListKind.CAMPAIGN, "consent", (BASE,), timestamp_ms=1)
    )
    fields.update(change)
    with pytest.raises(InvalidEntryError, match=message):
        decode_entry(fields)


def test_validate_refuses_days_on_a_removal_and_unparallel_days() -> None:
    with pytest.raises(InvalidEntryError, match="only an add"):
        validate_entry(Entry(Op.REMOVE, "c", ListKind.CAMPAIGN, "app", (BASE,), days=(3,)))
    with pytest.raises(InvalidEntryError, match="1 days for 2 numbers"):
        entries_for(Op.ADD, "c", ListKind.CAMPAIGN, [BASE, BASE + 1], source="app", days=[3])


def test_entries_for_splits_days_with_their_numbers() -> None:
    numbers = np.arange(BASE, BASE + 5, dtype=np.uint64)
    made = entries_for(
        Op.ADD, "c", ListKind.CAMPAIGN, numbers, source="consent", days=[1, 2, 3, 4, 5]
    )
    assert [e.days for e in made] == [(1, 2, 3, 4, 5)]


# -- applying days: a model test against a plain dict ------------------------------------

CHANGES = st.one_of(
    st.tuples(st.just("dated"), st.lists(st.tuples(NUMBERS, DAYS), min_size=1, max_size=8)),
    st.tuples(st.just("add"), st.lists(NUMBERS, min_size=1, max_size=8)),
    st.tuples(st.just("remove"), st.lists(NUMBERS, min_size=1, max_size=8)),
    st.tuples(st.just("remove_range"), st.tuples(NUMBERS, st.integers(0, 20))),
    st.tuples(st.just("add_range"), st.tuples(NUMBERS, st.integers(0, 20))),
)


def _change(kind: str, arg: object) -> Change:
    if kind == "dated":
        pairs = list(arg)  # type: ignore[call-overload]
        return Change(
            Op.ADD,
            "c",
            tuple(n for n, _ in pairs),
            kind=ListKind.CAMPAIGN,
            days=[d for _, d in pairs],
        )
    if kind in ("add", "remove"):
        return Change(Op(kind), "c", tuple(arg), kind=ListKind.CAMPAIGN)  # type: ignore[call-overload]
    first, width = arg  # type: ignore[misc]
    return Change(Op(kind), "c", (), first, first + width, kind=ListKind.CAMPAIGN)


def _model_apply(model: dict[int, int | None], kind: str, arg: object) -> None:
    if kind == "dated":
        for number, day in arg:  # type: ignore[attr-defined]
            model[number] = day
    elif kind == "add":
        for number in arg:  # type: ignore[attr-defined]
            model.setdefault(number, None)
    elif kind == "remove":
        for number in arg:  # type: ignore[attr-defined]
            model.pop(number, None)
    else:
        first, width = arg  # type: ignore[misc]
        for number in range(first, first + width + 1):
            if kind == "add_range":
                model.setdefault(number, None)
            else:
                model.pop(number, None)


@given(st.lists(st.lists(CHANGES, min_size=1, max_size=5), min_size=1, max_size=6))
def test_days_follow_the_numbers(batches: list[list[tuple[str, object]]]) -> None:
    """A dated add sets days, a plain add keeps them, a removal drops them; batch by batch."""
    lists = SuppressionLists()
    model: dict[int, int | None] = {}
    for batch in batches:
        lists.apply([_change(kind, arg) for kind, arg in batch])
        for kind, arg in batch:
            _model_apply(model, kind, arg)
        view = lists.view
        assert set(view.bitmaps.get("c", [])) == set(model)
        dated = view.days.get("c")
        if all(day is None for day in model.values()):
            assert dated is None
            continue
        assert dated is not None and dated.bitmap is view.bitmaps["c"]
        probe = np.arange(BASE - 1, BASE + 121, dtype=np.uint64)
        expected = [model.get(int(n)) for n in probe]
        got = dated.lookup(probe).tolist()
        assert got == [-1 if day is None else day for day in expected]
        # The exemption's question: a day in [first, last], or (first None) none recorded too.
        window = dated.on_days(100, 30_000)
        assert set(window) == {n for n, d in model.items() if d is not None and 100 <= d <= 30_000}
        loose = dated.on_days(-1, 30_000, undated=True)
        assert set(loose) == {n for n, d in model.items() if d is None or d <= 30_000}


@given(
    st.dictionaries(NUMBERS, st.one_of(st.none(), DAYS), max_size=60),
    st.sets(NUMBERS, max_size=20),
    st.sets(NUMBERS, max_size=20),
    st.sets(NUMBERS, max_size=10),
    st.lists(st.tuples(NUMBERS, DAYS), max_size=20),
)
def test_both_ways_of_carrying_days_agree_with_the_model(
    old: dict[int, int | None],
    added: set[int],
    removed: set[int],
    readded: set[int],
    dated: list[tuple[int, int]],
) -> None:
    """The three ways (rebuild, positions by arrays, positions by rank) give the same days."""
    numbers = sorted(old)
    previous = DatedList(
        BitMap64(numbers),
        np.array([NO_DAY if old[n] is None else old[n] for n in numbers], dtype=np.uint16),
    )
    final = (set(old) - removed - readded) | added | readded | {n for n, _ in dated}
    dropped = BitMap64(removed | readded)
    # A removal in the batch already filtered the dated adds before it: here all come after.
    updates = (
        [
            (
                np.array([n for n, _ in dated], dtype=np.uint64),
                np.array([d for _, d in dated], dtype=np.uint16),
            )
        ]
        if dated
        else []
    )
    expected: dict[int, int] = {}
    for n in final:
        if n in old and n not in dropped and old[n] is not None:
            expected[n] = old[n]  # type: ignore[assignment]
    for n, d in dated:
        expected[n] = d
    probe = np.arange(BASE - 1, BASE + 101, dtype=np.uint64)
    for way in ("rebuild", "arrays", "ranks", ""):
        result = carry_days(BitMap64(final), previous, dropped, updates, way)
        if not expected:
            assert result is None
            continue
        assert result is not None
        assert result.lookup(probe).tolist() == [expected.get(int(n), -1) for n in probe]


def test_a_new_view_never_changes_the_days_an_older_view_answers_with() -> None:
    # Large enough for the way by rank, which starts from the previous days array.
    numbers = np.arange(BASE, BASE + 2000, dtype=np.uint64)
    lists = SuppressionLists()
    lists.apply([Change(Op.ADD, "c", tuple(numbers.tolist()), days=[100] * 2000)])
    old = lists.view
    # Another day for one number, nothing added or removed: the in-place way.
    lists.apply([Change(Op.ADD, "c", (BASE,), days=(200,))])
    lists.apply([Change(Op.REMOVE, "c", (BASE + 1,))])
    assert old.days["c"].lookup(numbers[:2]).tolist() == [100, 100]
    assert lists.view.days["c"].lookup(numbers[:3]).tolist() == [200, -1, 100]


# -- the policy reads the view's days ------------------------------------------------------

POLICY = """\
[lists]
registry = "registry"
ebr = "exemption"
rnd = "reassigned"

[policies.tsr]
suppress = ["registry"]

[[policies.tsr.exemptions]]
list = "ebr"
lifts = ["registry"]
days = 90

[policies.tsr.reassigned]
list = "rnd"
data_begins = 2021-01-01
"""
JUNE_1 = 20_605  # 2026-06-01
AT = JUNE_1 * 86_400 + 12 * 3600


def _decided(
    lists: SuppressionLists, numbers: list[int], **extra: object
) -> tuple[list[int], list[int]]:
    outcome = check_with_policy(
        lists.view,
        parse_policies(POLICY),
        PolicyRequest(at_ms=AT * 1000, **extra),  # type: ignore[arg-type]
        numbers,
    )
    assert outcome.policy is not None
    return outcome.verdicts, outcome.policy.exemptions


def test_check_with_policy_reads_exemption_and_reassigned_days_from_the_view() -> None:
    recent, old, undated, plain_only = BASE, BASE + 1, BASE + 2, BASE + 3
    lists = SuppressionLists(
        {"registry": BitMap64([recent, old, undated, plain_only])},
        [ListInfo("registry", ListKind.REGISTRY)],
    )
    lists.apply(
        [
            Change(
                Op.ADD,
                "ebr",
                (recent, old),
                kind=ListKind.CAMPAIGN,
                days=(JUNE_1 - 10, JUNE_1 - 91),
            ),
            Change(Op.ADD, "ebr", (undated,), kind=ListKind.CAMPAIGN),
            Change(Op.ADD, "rnd", (recent,), kind=ListKind.CAMPAIGN, days=(JUNE_1 - 30,)),
        ]
    )
    verdicts, exemptions = _decided(lists, [recent, old, undated, plain_only])
    assert verdicts == [1, 2, 2, 2]  # ALLOWED only where a day proves the 90 days
    assert exemptions == [1, 0, 0, 0]
    # Reassigned: disconnected 30 days ago; consent from before that is stale, after it holds.
    verdicts, _ = _decided(lists, [recent], consent_day=JUNE_1 - 60)
    assert verdicts == [2]
    verdicts, _ = _decided(lists, [recent], consent_day=JUNE_1 - 20)
    assert verdicts == [1]
    # A --dated-list file of the same name wins over the view's days.
    file_days = {"ebr": DatedList.build([old], [JUNE_1 - 1])}
    outcome = check_with_policy(
        lists.view,
        parse_policies(POLICY),
        PolicyRequest(at_ms=AT * 1000),
        [recent, old],
        dated=file_days,
    )
    assert outcome.verdicts == [2, 1]
