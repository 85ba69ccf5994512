"""Phone patterns matched with numpy (digit classes by position) agree with ``re``."""

from __future__ import annotations

import random
import re

import numpy as np
import phonenumbers
import pytest

from suppression.scrub import phonearrays
from suppression.scrub.phonearrays import _digit_pattern, _with_country_code
from suppression.scrub.shortcut import _region_prefixes


def general_patterns() -> list[str]:
    found = set()
    for region in phonenumbers.SUPPORTED_REGIONS:
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
        if metadata is not None and metadata.general_desc is not None:
            if metadata.general_desc.national_number_pattern:
                found.add(metadata.general_desc.national_number_pattern)
        if metadata is not None and metadata.national_prefix_for_parsing:
            found.add(metadata.national_prefix_for_parsing)
    return sorted(found)


def test_simple_patterns_are_taken_and_others_refused() -> None:
    assert _digit_pattern(r"[2-9]\d{9}|3\d{6}") is not None
    assert _digit_pattern("1") is not None
    for refused in (r"(?:1|2)\d", r"\d{2,3}", r"[^1]\d", r"1?", r"\d+", "", "a"):
        assert _digit_pattern(refused) is None


@pytest.mark.parametrize("seed", [1, 2])
def test_digit_patterns_agree_with_re_on_every_pattern_they_take(seed: int) -> None:
    rng = random.Random(seed)
    taken = [(pattern, _digit_pattern(pattern)) for pattern in general_patterns()]
    taken = [(pattern, compiled) for pattern, compiled in taken if compiled is not None]
    assert len(taken) >= 10  # the NANP regions' patterns among them
    for pattern, compiled in taken:
        assert compiled is not None
        regex = re.compile(pattern)
        texts = ["".join(rng.choice("0123456789") for _ in range(rng.randint(1, 15)))]
        texts += ["".join(rng.choice("0123456789") for _ in range(len(texts[0])))]
        for _ in range(300):
            # Near misses too: a digit of a matching string changed, its length changed.
            length = rng.randint(1, 15)
            texts.append(
                "".join(
                    rng.choice("23456789" if rng.random() < 0.7 else "01") for _ in range(length)
                )
            )
        numbers = np.array([int(text) for text in texts], dtype=np.uint64)
        lengths = np.array([len(text) for text in texts], dtype=np.int64)
        full = compiled.fullmatch(numbers, lengths).tolist()
        start = compiled.match(numbers, lengths).tolist()
        assert full == [regex.fullmatch(text) is not None for text in texts], pattern
        assert start == [regex.match(text) is not None for text in texts], pattern


@pytest.mark.parametrize(("region", "by_numpy"), [("US", True), ("CA", True), ("JM", False)])
def test_with_country_code_the_same_with_numpy_and_with_re(
    region: str, by_numpy: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    general = _region_prefixes(region)
    assert general is not None and general.general is not None
    assert (_digit_pattern(general.general.pattern) is not None) == by_numpy
    rng = random.Random(region)
    numbers = [
        int("1" + "".join(rng.choice("0123456789") for _ in range(rng.randint(2, 13))))
        for _ in range(3000)
    ]
    numbers += [
        int(f"1{area}{rest:07d}") for area in (212, 311, 876) for rest in range(0, 10**7, 10**5)
    ]
    value = np.array(numbers, dtype=np.uint64)
    rows = np.ones(len(value), dtype=bool)
    rows[::7] = False
    vectorized = _with_country_code(value, rows, region)
    monkeypatch.setattr(phonearrays, "_digit_pattern", lambda pattern: None)
    one_by_one = _with_country_code(value, rows, region)
    assert vectorized.tolist() == one_by_one.tolist()
    assert 0 < np.count_nonzero(vectorized) < len(value)
