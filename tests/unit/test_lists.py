from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from pyroaring import BitMap64

from suppression.errors import ConsentRequiredError, UnknownListError, VersionError
from suppression.lists import (
    LIST_OPS,
    MAX_LISTS_PER_CHECK,
    Change,
    ListInfo,
    ListKind,
    ListView,
    Op,
    SuppressionLists,
    Version,
)
from tests.samples import LOOKUP_WAYS, lookup_way

NAMES = ("national", "internal", "campaign")
numbers = st.integers(min_value=12_000_000_000, max_value=12_000_000_200)


class ListsMachine(RuleBasedStateMachine):
    """Drives SuppressionLists against a dict of Python sets."""

    def __init__(self) -> None:
        super().__init__()
        self.lists = SuppressionLists()
        self.model: dict[str, set[int]] = {}
        self.batches = 0

    @rule(
        batch=st.lists(
            st.tuples(
                st.sampled_from(LIST_OPS),
                st.sampled_from(NAMES),
                st.lists(numbers, max_size=8),
                numbers,
                st.integers(min_value=0, max_value=30),
            ),
            max_size=5,
        )
    )
    def apply_batch(self, batch: list[tuple[Op, str, list[int], int, int]]) -> None:
        changes = []
        for op, name, values, first, width in batch:
            changes.append(Change(op, name, values, first, first + width))
            if op in (Op.ADD, Op.ADD_RANGE):
                target = self.model.setdefault(name, set())
            elif name in self.model:
                target = self.model[name]
            else:
                continue
            span = set(range(first, first + width + 1))
            if op is Op.ADD:
                target.update(values)
            elif op is Op.REMOVE:
                target.difference_update(values)
            elif op is Op.ADD_RANGE:
                target.update(span)
            else:
                target.difference_update(span)
        before = self.lists.version
        version = self.lists.apply(changes)
        self.batches += 1
        assert version == before.next()

    @rule(query=st.lists(numbers, max_size=20))
    def lookup_matches_model(self, query: list[int]) -> None:
        view = self.lists.view
        names, masks = view.lookup(np.array(query, dtype=np.uint64))
        assert names == tuple(sorted(self.model))
        for value, mask in zip(query, masks.tolist(), strict=True):
            expected = sum(1 << bit for bit, name in enumerate(names) if value in self.model[name])
            assert mask == expected

    @invariant()
    def same_contents(self) -> None:
        view = self.lists.view
        assert set(view.bitmaps) == set(self.model)
        for name, members in self.model.items():
            assert set(view.bitmaps[name]) == members
        assert view.version == Version(0, self.batches)


TestListsMachine = ListsMachine.TestCase


def test_readers_keep_their_view_while_a_batch_applies() -> None:
    lists = SuppressionLists({"internal": BitMap64([1])})
    before = lists.view
    lists.apply([Change(Op.ADD, "internal", [2]), Change(Op.REMOVE, "internal", [1])])
    assert set(before.bitmaps["internal"]) == {1}
    assert set(lists.view.bitmaps["internal"]) == {2}
    assert before.version == Version(0, 0)
    assert lists.version == Version(0, 1)


def test_concurrent_readers_never_see_half_a_batch() -> None:
    """Every batch adds a pair (n, n + 1); a reader must never see one without the other."""
    base = 8613800000000
    lists = SuppressionLists({"internal": BitMap64()})
    stop = threading.Event()
    torn: list[int] = []

    def read() -> None:
        while not stop.is_set():
            view = lists.view
            bitmap = view.bitmaps["internal"]
            for k in range(0, 400, 2):
                if (base + k in bitmap) != (base + k + 1 in bitmap):
                    torn.append(k)
            if len(bitmap) != 2 * view.version.seq:
                torn.append(-1)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for reader in readers:
        reader.start()
    for k in range(0, 400, 2):
        lists.apply(
            [Change(Op.ADD, "internal", [base + k]), Change(Op.ADD, "internal", [base + k + 1])]
        )
    stop.set()
    for reader in readers:
        reader.join()
    assert torn == []
    assert len(lists.view.bitmaps["internal"]) == 400


def test_versions_only_move_forward() -> None:
    lists = SuppressionLists(version=Version(1700000000000, 5))
    assert lists.apply([], version=Version(1700000000001, 0)) == Version(1700000000001, 0)
    with pytest.raises(VersionError, match="not newer"):
        lists.apply([], version=Version(1700000000000, 9))
    assert Version.parse("1700000000001-0") == lists.version
    assert str(lists.version) == "1700000000001-0"
    with pytest.raises(ValueError, match="milliseconds"):
        Version.parse("17-x")


def test_selection_errors_name_the_known_lists() -> None:
    lists = SuppressionLists({"national": BitMap64(), "internal": BitMap64()})
    with pytest.raises(
        UnknownListError, match="unknown list.*nope.*known lists: internal, national"
    ):
        lists.view.select(["nope"])
    many = SuppressionLists({f"l{i}": BitMap64() for i in range(MAX_LISTS_PER_CHECK + 1)})
    with pytest.raises(UnknownListError, match="at most 64"):
        many.view.select([])


def test_default_lists_are_configurable_and_checked() -> None:
    lists = SuppressionLists(
        {"national": BitMap64([5]), "campaign": BitMap64([5])},
        infos=[ListInfo("national", ListKind.REGISTRY)],
        default_lists=["national"],
    )
    assert lists.view.default_lists == ("national",)
    assert lists.view.infos["campaign"].kind is ListKind.OPT_OUT
    with pytest.raises(UnknownListError, match="default list"):
        SuppressionLists({"a": BitMap64()}, default_lists=["b"])


def test_a_blocked_range_costs_almost_no_memory() -> None:
    lists = SuppressionLists()
    lists.apply([Change(Op.ADD_RANGE, "premium", first=19000000000, last=19009999999)])
    view = lists.view
    assert len(view.bitmaps["premium"]) == 10_000_000
    assert view.list_bytes("premium") < 2_000
    assert 19005550199 in view.bitmaps["premium"]
    assert 19010000000 not in view.bitmaps["premium"]


def test_an_opt_out_list_never_changes_kind() -> None:
    """Neither a batch nor a swapped-in snapshot takes a list out of the consent rule."""
    lists = SuppressionLists(
        {"internal": BitMap64([5]), "spring": BitMap64([6])},
        infos=[ListInfo("internal", ListKind.OPT_OUT), ListInfo("spring", ListKind.CAMPAIGN)],
    )
    # A change's kind only names the kind of a list it creates.
    lists.apply([Change(Op.ADD, "internal", [7], kind=ListKind.CAMPAIGN)])
    assert lists.view.infos["internal"].kind is ListKind.OPT_OUT
    before = lists.view
    for infos, message in (
        ({"internal": ListKind.CAMPAIGN, "spring": ListKind.CAMPAIGN}, "make it a campaign list"),
        ({"internal": ListKind.REGISTRY}, "make it a registry list"),
    ):
        swapped = ListView(
            Version(9, 0),
            {name: BitMap64() for name in infos},
            {name: ListInfo(name, kind) for name, kind in infos.items()},
            (),
        )
        with pytest.raises(ConsentRequiredError, match=f"'internal' is an opt-out.*{message}"):
            lists.replace(swapped)
        assert lists.view is before, "a refused snapshot changes nothing"
    # Stricter is allowed: a campaign list may become an opt-out list.
    stricter = {"internal": ListKind.OPT_OUT, "spring": ListKind.OPT_OUT}
    lists.replace(
        ListView(
            Version(9, 0),
            {name: BitMap64() for name in stricter},
            {name: ListInfo(name, kind) for name, kind in stricter.items()},
            (),
        )
    )
    assert lists.view.infos["spring"].kind is ListKind.OPT_OUT


_NUMBERS = st.integers(min_value=1, max_value=10**15)


@settings(max_examples=60, deadline=None)
@given(
    small=st.lists(_NUMBERS, max_size=300),
    big=st.lists(_NUMBERS, max_size=300),
    asked=st.lists(st.one_of(_NUMBERS, st.just(0)), min_size=0, max_size=400),
)
def test_lookup_answers_membership_whichever_way_a_list_is_searched(
    small: list[int], big: list[int], asked: list[int]
) -> None:
    """The compiled loop, a small list's sorted array and pyroaring's calls agree."""
    values = np.array(asked + small[:50] + big[:50], dtype=np.uint64)
    lists = SuppressionLists(
        {"small": BitMap64(small), "big": BitMap64(big)}, infos=[ListInfo("small"), ListInfo("big")]
    )
    expected = [
        (1 if value in set(small) else 0) | (2 if value in set(big) else 0)
        for value in values.tolist()
    ]
    for way in LOOKUP_WAYS:
        with lookup_way(way):
            names, masks = lists.view.lookup(values, ["small", "big"])
            assert names == ("small", "big")
            assert masks.tolist() == expected, way
