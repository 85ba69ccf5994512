"""The scrub's shortcut for punctuated numbers must give exactly what the normalizer gives."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberType

from suppression.e164 import Normalizer
from suppression.scrub.shortcut import canonical_text, canonicalize

NORMALIZER = Normalizer(0)
REGIONS = ["US", "CN", "GB", "DE", "FR", "IN", "BR", "JP", "AU", "MX", "IT", "RU", "AR", "KR", ""]
COUNTRY_CODES = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)


@st.composite
def punctuated(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        digits = str(draw(st.sampled_from(COUNTRY_CODES)))
        digits += draw(st.text(alphabet="0123456789", min_size=1, max_size=13))
        prefix = "+"
    else:
        digits = draw(st.text(alphabet="0123456789", min_size=1, max_size=14))
        prefix = ""
    pieces = [prefix, draw(st.sampled_from(["", "", " ", "-", "(", "."])) if prefix else ""]
    for digit in digits:
        pieces.append(digit)
        pieces.append(draw(st.sampled_from(["", "", "", " ", "-", ".", "(", ")"])))
    return draw(st.sampled_from(["", " ", "("])) + "".join(pieces)


def punctuate(draw: st.DrawFn, digits: str) -> str:
    pieces = []
    for digit in digits:
        pieces.append(digit)
        pieces.append(draw(st.sampled_from(["", "", " ", "-", ".", "(", ")"])))
    return "".join(pieces)


@st.composite
def own_country_code(draw: st.DrawFn) -> tuple[str, str]:
    """Near-real national numbers written with the region's own country code in front."""
    region = draw(st.sampled_from([region for region in REGIONS if region]))
    kind = draw(st.sampled_from([PhoneNumberType.FIXED_LINE, PhoneNumberType.MOBILE]))
    example = phonenumbers.example_number_for_type(region, kind)
    assert example is not None
    national = str(example.national_number)
    changed = draw(st.integers(min_value=0, max_value=min(4, len(national) - 1)))
    tail = draw(st.text(alphabet="0123456789", min_size=changed, max_size=changed))
    national = national[: len(national) - changed] + tail
    extra = draw(st.sampled_from(["", "", "0", "1", "00"]))
    return punctuate(draw, f"{example.country_code}{extra}{national}"), region


@settings(max_examples=1_000)
@given(case=own_country_code())
@example(case=("1-202-555-0147", "US"))
@example(case=("1 1 212 555 0123", "US"))
@example(case=("86 0 10 1234 5678", "CN"))
def test_the_own_country_code_shortcut_agrees_with_the_normalizer(case: tuple[str, str]) -> None:
    text, region = case
    shortcut = canonical_text(text, region)
    if shortcut is not None:
        assert NORMALIZER.normalize(shortcut, region) == NORMALIZER.normalize(text, region)


@settings(max_examples=1_000)
@given(text=punctuated(), region=st.sampled_from(REGIONS))
@example(text="(212) 555-0123", region="US")
@example(text="+44 20 7946 0000", region="US")
@example(text="138 0013 8000", region="CN")
@example(text="17912345678", region="CN")
@example(text="+52 1 55 1234 5678", region="MX")
def test_the_shortcut_agrees_with_the_normalizer(text: str, region: str) -> None:
    shortcut = canonical_text(text, region)
    if shortcut is not None:
        assert NORMALIZER.normalize(shortcut, region) == NORMALIZER.normalize(text, region)
        assert NORMALIZER.normalize(text, region)[1] == 0  # only valid numbers are shortened


@pytest.mark.parametrize(
    ("text", "region", "expected"),
    [
        ("(212) 555-0123", "US", "+12125550123"),
        ("212.555.0123", "US", "+12125550123"),
        ("+1 212 555 0123", "", "+12125550123"),
        ("138 0013 8000", "CN", "+8613800138000"),
        ("+86 138-0013-8000", "US", "+8613800138000"),
        # Left to parse: a national prefix, the region's country code, an IDD prefix,
        # letters, no region, and anything invalid.
        ("+44 020 7946 0000", "US", None),
        ("1-212-555-0123", "US", "+12125550123"),
        ("1 1 212 555 0123", "US", None),
        ("011 44 20 7946 0000", "US", None),
        ("0086 138 0013 8000", "CN", None),
        ("1-800-FLOWERS", "US", None),
        ("212 555 0123", "", None),
        ("55 5", "US", None),
    ],
)
def test_what_the_shortcut_takes_and_leaves(text: str, region: str, expected: str | None) -> None:
    assert canonical_text(text, region) == expected


def test_canonicalize_keeps_what_it_cannot_shorten() -> None:
    texts = ["+12125550123", "(212) 555-0123", "011 44 20 7946 0000", "junk", "555"]
    assert canonicalize(texts, "US") == [
        "+12125550123",
        "+12125550123",
        "011 44 20 7946 0000",
        "junk",
        "555",
    ]
