from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyroaring import BitMap64

from suppression.checker import Verdict, check_batch
from suppression.e164 import InvalidReason, Normalizer, e164_reason
from suppression.errors import InvalidRequestError
from suppression.lists import SuppressionLists

CN = 8613800138000
US = 12125550123

members = st.integers(min_value=12_125_550_000, max_value=12_125_550_060)
queries = st.one_of(members, st.integers(min_value=0, max_value=2**64 - 1))


def expected_for(value: int, model: dict[str, set[int]], names: tuple[str, ...]) -> tuple[int, int]:
    if e164_reason(value):
        return Verdict.INVALID, 0
    mask = sum(1 << bit for bit, name in enumerate(names) if value in model[name])
    return (Verdict.SUPPRESSED if mask else Verdict.ALLOWED), mask


@given(
    model=st.dictionaries(
        st.sampled_from(["a", "b", "c"]), st.sets(members, max_size=30), min_size=1
    ),
    query=st.lists(queries, max_size=80),
)
def test_both_paths_agree_with_a_set_model(model: dict[str, set[int]], query: list[int]) -> None:
    lists = SuppressionLists({name: BitMap64(values) for name, values in model.items()})
    outcome = check_batch(lists.view, query)
    names = tuple(sorted(model))
    assert outcome.list_names == names
    for index, value in enumerate(query):
        verdict, mask = expected_for(value, model, names)
        assert (outcome.verdicts[index], outcome.masks[index]) == (verdict, mask)
        assert (index in outcome.invalid_reasons) == (verdict == Verdict.INVALID)
    assert sum(outcome.verdict_counts.values()) == len(query)
    for bit, name in enumerate(names):
        expected_hits = sum(1 for v in query if not e164_reason(v) and v in model[name])
        assert outcome.hits_per_list[bit] == expected_hits
    # The packed wire's numbers arrive as a numpy array: the same answer.
    assert check_batch(lists.view, np.array(query, dtype=np.uint64)) == outcome
    closed = check_batch(lists.view, np.array(query, dtype=np.uint64), fail_closed=True)
    assert closed == check_batch(lists.view, query, fail_closed=True)
    assert [v == Verdict.INVALID for v in closed.verdicts] == [bool(e164_reason(v)) for v in query]


def test_text_numbers_follow_integers_in_the_arrays() -> None:
    lists = SuppressionLists({"internal": BitMap64([CN]), "national": BitMap64([US])})
    outcome = check_batch(
        lists.view,
        [US, 999],
        ["0086 138 0013 8000", "(202) 555-0147", "junk"],
        "CN",
        normalizer=Normalizer(),
    )
    assert outcome.verdicts == [
        Verdict.SUPPRESSED,
        Verdict.INVALID,
        Verdict.SUPPRESSED,
        Verdict.ALLOWED,
        Verdict.INVALID,
    ]
    assert outcome.list_names == ("internal", "national")
    assert outcome.masks == [0b10, 0, 0b01, 0, 0]
    assert outcome.normalized == [CN, 862025550147, 0]
    assert outcome.invalid_reasons == {
        1: InvalidReason.UNKNOWN_COUNTRY_CODE,
        4: InvalidReason.UNPARSEABLE,
    }


def test_large_batch_uses_the_same_rules() -> None:
    lists = SuppressionLists({"internal": BitMap64([CN])})
    batch = [CN, US, 0] * 100
    outcome = check_batch(lists.view, batch, ["+8613800138000"] * 10, normalizer=Normalizer())
    assert outcome.verdicts[:3] == [Verdict.SUPPRESSED, Verdict.ALLOWED, Verdict.INVALID]
    assert outcome.verdict_counts[Verdict.SUPPRESSED] == 110
    assert outcome.hits_per_list == (110,)


def test_fail_closed_suppresses_every_valid_number() -> None:
    lists = SuppressionLists({"internal": BitMap64()})
    for batch in ([US, 5], [US, 5] * 40):
        outcome = check_batch(lists.view, batch, fail_closed=True)
        assert outcome.failed_closed
        assert set(outcome.verdicts[0::2]) == {Verdict.SUPPRESSED}
        assert set(outcome.verdicts[1::2]) == {Verdict.INVALID}
        assert set(outcome.masks) == {0}


def test_an_invalid_number_on_a_list_is_invalid_and_on_no_list() -> None:
    odd = BitMap64([5])
    odd.add_range(12125550000, 12125550000 + 70_000)  # large: looked up in the bitmap
    lists = SuppressionLists({"odd": odd})
    for batch in ([5, US], [5, US] * 40):
        for given_as in (batch, np.array(batch, dtype=np.uint64)):
            outcome = check_batch(lists.view, given_as)
            assert outcome.verdicts[:2] == [Verdict.INVALID, Verdict.SUPPRESSED]
            assert outcome.masks[:2] == [0, 1]
            assert outcome.hits_per_list == (len(batch) // 2,)


def test_batch_limit() -> None:
    lists = SuppressionLists()
    with pytest.raises(InvalidRequestError, match="exceeds the maximum of 10"):
        check_batch(lists.view, [US] * 11, max_batch=10)
