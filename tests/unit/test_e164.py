from __future__ import annotations

import numpy as np
import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st

from suppression.canonical_texts import read_canonical
from suppression.e164 import (
    InvalidReason,
    Normalizer,
    _is_canonical,
    e164_reason,
    e164_reasons,
    mask_number,
    parse_block,
    validate_region,
)

CN = 8613800138000
US = 12125550123


@pytest.mark.parametrize(
    ("text", "region", "expected"),
    [
        ("+8613800138000", "", CN),
        ("+86 138 0013 8000", "", CN),
        ("0086 138 0013 8000", "CN", CN),
        ("0086-138-0013-8000", "CN", CN),
        ("86-138-0013-8000", "CN", CN),
        ("86 13800138000", "CN", CN),
        ("138 0013 8000", "CN", CN),
        ("１３８００１３８０００", "CN", CN),
        ("＋８６１３８００１３８０００", "", CN),
        ("+８６１３８００１３８０００", "", CN),
        ("(212) 555-0123", "US", US),
        ("1-212-555-0123", "US", US),
        ("+1 212.555.0123", "", US),
        ("212-555-0123", "US", US),
        ("+39 06 1234 5678", "", 390612345678),
    ],
)
def test_common_forms_normalize(text: str, region: str, expected: int) -> None:
    assert Normalizer().normalize(text, region) == (expected, InvalidReason.VALID)


@pytest.mark.parametrize(
    ("text", "region", "reason"),
    [
        ("", "US", InvalidReason.UNPARSEABLE),
        ("call me", "US", InvalidReason.UNPARSEABLE),
        ("+999 1234 5678", "", InvalidReason.UNKNOWN_COUNTRY_CODE),
        ("+1234567890123456", "", InvalidReason.TOO_LONG),
        ("+8613800", "", InvalidReason.TOO_SHORT),
        ("212-555-0123", "", InvalidReason.MISSING_REGION),
        ("+0086 138 0013 8000", "", InvalidReason.UNKNOWN_COUNTRY_CODE),
    ],
)
def test_bad_input_is_invalid_with_a_reason(text: str, region: str, reason: InvalidReason) -> None:
    value, got = Normalizer().normalize(text, region)
    assert (value, got) == (0, reason)


def test_canonical_fast_path_parses_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real_parse = phonenumbers.parse

    def counting_parse(text: str, region: str | None = None) -> phonenumbers.PhoneNumber:
        calls.append(text)
        return real_parse(text, region)

    monkeypatch.setattr(phonenumbers, "parse", counting_parse)
    normalizer = Normalizer(cache_size=0)
    assert normalizer.normalize("+8613800138000")[0] == CN
    assert normalizer.normalize("+999123456789")[1] is InvalidReason.UNKNOWN_COUNTRY_CODE
    assert normalizer.normalize("+12345678901234567")[1] is InvalidReason.TOO_LONG
    assert calls == []
    normalizer.normalize("(212) 555-0123", "US")
    assert calls == ["(212) 555-0123"]


def test_loose_parses_are_cached_and_bounded() -> None:
    normalizer = Normalizer(cache_size=2)
    for _ in range(3):
        normalizer.normalize("(212) 555-0123", "US")
    info = normalizer.cache_info()
    assert (info.hits, info.misses) == (2, 1)
    normalizer.normalize("(212) 555-0124", "US")
    normalizer.normalize("(212) 555-0125", "US")
    assert normalizer.cache_info().currsize == 2


def test_unknown_region_is_refused() -> None:
    assert validate_region(" cn ") == "CN"
    assert validate_region("") == ""
    with pytest.raises(ValueError, match="unknown default region"):
        validate_region("XX")


def _reference_reason(value: int) -> InvalidReason:
    """What phonenumbers itself says of an E.164 integer, mapped to our reasons."""
    if value <= 0:
        return InvalidReason.UNPARSEABLE
    text = str(value)
    if len(text) > 15:
        return InvalidReason.TOO_LONG
    for width in (1, 2, 3):
        cc = int(text[:width])
        if cc in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            break
    else:
        return InvalidReason.TOO_SHORT if len(text) < 3 else InvalidReason.UNKNOWN_COUNTRY_CODE
    if len(text) < 3:
        return InvalidReason.TOO_SHORT
    nsn_len = len(text) - width
    lengths: set[int] = set()
    for region in phonenumbers.COUNTRY_CODE_TO_REGION_CODE[cc]:
        if region == "001":
            meta = phonenumbers.PhoneMetadata.metadata_for_nongeo_region(cc)
        else:
            meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
        if meta is not None and meta.general_desc is not None:
            lengths.update(n for n in meta.general_desc.possible_length or () if n > 0)
    if not lengths:
        lengths = set(range(2, 16 - width))
    if nsn_len in lengths:
        return InvalidReason.VALID
    if nsn_len < min(lengths):
        return InvalidReason.TOO_SHORT
    if nsn_len > max(lengths):
        return InvalidReason.TOO_LONG
    return InvalidReason.INVALID_LENGTH


integers = st.one_of(
    st.integers(min_value=0, max_value=2**64 - 1),
    st.integers(min_value=10**6, max_value=10**15),
    st.sampled_from(
        [0, 1, 9, 10, 12, 99, 100, 123, 999, 1000, CN, US, 10**15 - 1, 10**15, 10**19 - 1]
        + [10**19, 2**64 - 1]
    ),
)


@given(st.lists(integers, max_size=50))
def test_vector_and_scalar_validation_agree_with_phonenumbers_metadata(values: list[int]) -> None:
    vector = e164_reasons(np.array(values, dtype=np.uint64)).tolist()
    scalar = [int(e164_reason(v)) for v in values]
    reference = [int(_reference_reason(v)) for v in values]
    assert vector == scalar == reference


@given(st.integers(min_value=10**6, max_value=10**15 - 1))
def test_text_and_integer_forms_get_the_same_answer(value: int) -> None:
    value_text, reason = Normalizer(cache_size=0).normalize(f"+{value}")
    assert reason is e164_reason(value)
    assert value_text == (value if reason is InvalidReason.VALID else 0)


def test_mask_never_shows_the_whole_number() -> None:
    assert mask_number(CN) == "+86138****8000"
    assert mask_number("+1 212 555 0123") == "+1212****123"
    assert mask_number("12345") == "+*****"
    for number in (CN, US, 4915123456789, 12345678):
        masked = mask_number(number)
        assert str(number) not in masked
        assert masked.count("*") >= 4 or len(str(number)) < 8


def test_blocks() -> None:
    block = parse_block("+1900xxxxxxx")
    assert block is not None
    assert (block.first, block.last, len(block)) == (19000000000, 19009999999, 10_000_000)
    assert parse_block("+12125550123") is None
    with pytest.raises(ValueError, match="valid E.164"):
        parse_block("+999xxxxx")
    with pytest.raises(ValueError, match="digits"):
        parse_block("+1a00xxxx")


texts = st.one_of(
    st.integers(min_value=0, max_value=10**21).map(lambda n: f"+{n}"),
    st.integers(min_value=0, max_value=10**12).map(lambda n: f"+0{n}"),
    st.text(alphabet="+0123456789１２３ -()x.", max_size=22),
    st.sampled_from(["+8613800138000", "(212) 555-0123", "+", "", "+１２１２５５５０１２３"]),
)


@given(st.lists(texts, max_size=40), st.sampled_from(["", "US", "CN"]))
def test_batch_and_single_normalization_agree(batch: list[str], region: str) -> None:
    normalizer = Normalizer()
    values, reasons = normalizer.normalize_array(batch, region)
    singles = [normalizer.normalize(text, region) for text in batch]
    assert list(zip(values.tolist(), reasons.tolist(), strict=True)) == [
        (value, int(reason)) for value, reason in singles
    ]


awkward_texts = st.one_of(
    texts,
    st.sampled_from(
        [
            "+1212\n5550123",
            "+12125550123\r",
            "+\udc80123",
            "+١٢١٢٥٥٥٠١٢٣",
            " +12125550123",
            "+12125550123 ",
            "+0",
            "+9999999999999999999",
            "+10000000000000000000",
            "+1" + "0" * 18,
        ]
    ),
    st.text(max_size=6),
)


@given(st.lists(awkward_texts, min_size=64, max_size=200), st.sampled_from(["", "US"]))
def test_large_batches_read_canonical_texts_as_single_texts_are(
    batch: list[str], region: str
) -> None:
    """From 64 texts on, ASCII "+digits" texts are read with numpy; the answers stay the same."""
    normalizer = Normalizer()
    values, reasons = normalizer.normalize_array(batch, region)
    singles = [normalizer.normalize(text, region) for text in batch]
    assert list(zip(values.tolist(), reasons.tolist(), strict=True)) == [
        (value, int(reason)) for value, reason in singles
    ]


@given(st.lists(awkward_texts, min_size=1, max_size=100))
def test_read_canonical_takes_exactly_the_ascii_plus_digits_texts(batch: list[str]) -> None:
    read = read_canonical(batch)
    if any("\n" in text for text in batch):
        assert read is None  # the loop reads such a batch
        return
    assert read is not None
    values, canonical = read
    expected = [text.isascii() and _is_canonical(text) for text in batch]
    assert canonical.tolist() == expected
    assert values.tolist() == [
        int(text[1:]) if taken else 0 for text, taken in zip(batch, expected, strict=True)
    ]
