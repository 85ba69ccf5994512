"""Distinct numbers: a block's, and the scrub's set of those seen so far (as a Python set)."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from suppression.scrub.distinct import SeenNumbers, distinct_with_inverse, sorted_distinct

numbers = st.one_of(
    st.integers(0, 2**64 - 1),
    st.integers(12_000_000_000, 12_000_000_100),
    st.integers(2**32 - 3, 2**32 + 3),
    st.sampled_from([0, 1, 2**63, 8613800138000]),
)


@given(
    st.lists(numbers, max_size=50),
    st.lists(st.lists(numbers, max_size=40), max_size=12),
    st.sampled_from([1, 2, 5, 1 << 16]),
)
def test_it_says_which_numbers_are_new_as_a_set_would(
    before: list[int], batches: list[list[int]], merge_min: int
) -> None:
    seen = SeenNumbers(np.array(before, dtype=np.uint64), merge_min=merge_min)
    model = set(before)
    assert len(seen) == len(model)
    for batch in batches:
        values = sorted_distinct(np.array(batch, dtype=np.uint64))
        assert values.tolist() == sorted(set(batch))
        new = seen.add(values)
        assert values[new].tolist() == sorted(set(batch) - model)
        model |= set(batch)
        assert len(seen) == len(model)


@given(st.lists(numbers, max_size=60))
def test_distinct_values_and_where_each_value_is_among_them(values: list[int]) -> None:
    array = np.array(values, dtype=np.uint64)
    distinct, inverse = distinct_with_inverse(array)
    assert distinct.tolist() == sorted(set(values)) == sorted_distinct(array).tolist()
    assert distinct[inverse].tolist() == values
