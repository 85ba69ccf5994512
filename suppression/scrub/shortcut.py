"""An exact shortcut from plain punctuated numbers to canonical ``+digits`` text, without parsing.

``phonenumbers.parse`` costs 15-35 µs a number here, and lead files are full
of forms like ``(212) 555-0123`` or ``+1 212 555 0123``. For such strings,
made of ASCII digits, spaces, ``-``, ``.``, ``(`` and ``)`` with at most a
leading ``+``, parse's answer depends only on the digits and on three
prefixes from its metadata:

- the default region's international dialling prefix (``011`` for US);
- the default region's country code (``1``), which parse strips when what
  follows is a national number by the region's general pattern and the
  whole is not (``1-202-555-0147``);
- the national prefix pattern (``1`` for US; ``0`` and carrier codes for CN)
  of the region the number belongs to.

When none of those match the start of the digits, parse keeps the digits as
they are: the E.164 number is the region's country code followed by the
digits (or, after ``+``, the digits themselves). This module takes exactly
that case and leaves every other string, including anything that would be
invalid, to the normalizer; a test holds the shortcut to the normalizer's
answer over generated numbers. A scrub applies it before sending numbers to
a server or to its own workers, so local and remote answers stay the same.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import phonenumbers
from phonenumbers import PhoneMetadata

from suppression.e164 import MAX_E164_DIGITS, InvalidReason, e164_reason, e164_reasons

__all__ = ["canonical_text", "canonicalize"]

_PUNCTUATION = str.maketrans("", "", " -.()")
_MAX_CC_DIGITS = 3
_MIN_NATIONAL = 2
"""parse refuses a national number shorter than this (TOO_SHORT_NSN)."""


@dataclass(frozen=True, slots=True)
class _Prefixes:
    """The metadata prefixes that can change what parse makes of a digit string."""

    country_code: str
    idd: re.Pattern[str] | None
    national_prefix: re.Pattern[str] | None
    general: re.Pattern[str] | None = None
    """The region's general national number pattern (parse's ``general_desc``)."""


def _compile(pattern: str | None) -> re.Pattern[str] | None:
    return re.compile(pattern) if pattern else None


@functools.cache
def _region_prefixes(region: str) -> _Prefixes | None:
    metadata = PhoneMetadata.metadata_for_region(region)
    if metadata is None:
        return None
    return _Prefixes(
        str(metadata.country_code),
        _compile(metadata.international_prefix),
        _compile(metadata.national_prefix_for_parsing),
        _compile(metadata.general_desc.national_number_pattern if metadata.general_desc else None),
    )


@functools.cache
def _country_prefixes(country_code: int) -> _Prefixes | None:
    region = phonenumbers.region_code_for_country_code(country_code)
    if region == "001":
        metadata = PhoneMetadata.metadata_for_nongeo_region(country_code)
    else:
        metadata = PhoneMetadata.metadata_for_region(region)
    if metadata is None:
        return None
    return _Prefixes(str(country_code), None, _compile(metadata.national_prefix_for_parsing))


def _country_code_length(digits: str) -> int:
    for length in range(1, _MAX_CC_DIGITS + 1):
        if int(digits[:length]) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return length
    return 0


def _candidate(text: str, region: str) -> str | None:
    """The E.164 digits parse would keep for ``text``, not yet validated; None to parse."""
    compact = text.translate(_PUNCTUATION)
    if compact[:1] == "+":
        digits = compact[1:]
        if not (digits.isascii() and digits.isdigit()) or digits[0] == "0":
            return None
        cc_length = _country_code_length(digits)
        if not cc_length:
            return None
        national = digits[cc_length:]
        prefixes = _country_prefixes(int(digits[:cc_length]))
        if prefixes is None or len(national) < _MIN_NATIONAL or national[0] == "0":
            return None
        if prefixes.national_prefix is not None and prefixes.national_prefix.match(national):
            return None
        return digits if len(digits) <= MAX_E164_DIGITS else None
    if not region or not (compact.isascii() and compact.isdigit()) or compact[0] == "0":
        return None
    region_prefixes = _region_prefixes(region)
    if region_prefixes is None:
        return None
    if compact.startswith(region_prefixes.country_code):
        return _with_country_code(compact, region_prefixes)
    for pattern in (region_prefixes.idd, region_prefixes.national_prefix):
        if pattern is not None and pattern.match(compact):
            return None
    e164 = region_prefixes.country_code + compact
    return e164 if len(compact) >= _MIN_NATIONAL and len(e164) <= MAX_E164_DIGITS else None


def _with_country_code(compact: str, region: _Prefixes) -> str | None:
    """Digits that begin with the default region's own country code: ``1 202 555 0147`` in US.

    Parse strips that country code when the whole is not a national number
    of the region (by its general pattern) and the rest is; we take only that
    case, and only when no national prefix could then be stripped from the rest.
    """
    general = region.general
    if general is None or (region.idd is not None and region.idd.match(compact)):
        return None
    rest = compact[len(region.country_code) :]
    if len(rest) < _MIN_NATIONAL or rest[0] == "0":
        return None
    if general.fullmatch(compact) or not general.fullmatch(rest):
        return None
    # parse tries the default region's national prefix, then that of the country
    # code's main region (the same region unless, say, CA numbers are read as US).
    main = _country_prefixes(int(region.country_code))
    for prefixes in (region, main):
        if prefixes is None or (
            prefixes.national_prefix is not None and prefixes.national_prefix.match(rest)
        ):
            return None
    return compact if len(compact) <= MAX_E164_DIGITS else None


def canonical_text(text: str, region: str) -> str | None:
    """The canonical ``+digits`` form parse would give ``text``, or None to let parse decide.

    Args:
        text: a number as written.
        region: upper-case default region, or "".

    Returns:
        ``"+" + E.164 digits`` for a valid number in a shape this module
        covers exactly; None otherwise (including every invalid number, so
        parse alone names the reason).
    """
    digits = _candidate(text, region)
    if digits is None or e164_reason(int(digits)) is not InvalidReason.VALID:
        return None
    return "+" + digits


def canonicalize(texts: Sequence[str], region: str) -> list[str]:
    """Apply :func:`canonical_text` to each string, keeping those it leaves to parse.

    Strings already of the form ``+digits`` pass through untouched: the
    normalizer's own fast path takes them. Candidates are validated together
    with numpy (about 1 µs a number saved).
    """
    result = list(texts)
    at: list[int] = []
    found: list[str] = []
    candidate = _candidate
    for index, text in enumerate(result):
        if text[:1] == "+" and text[1:].isdigit():
            continue
        digits = candidate(text, region)
        if digits is not None:
            at.append(index)
            found.append(digits)
    if found:
        values = np.array([int(digits) for digits in found], dtype=np.uint64)
        valid = (e164_reasons(values) == 0).tolist()
        for index, digits, ok in zip(at, found, valid, strict=True):
            if ok:
                result[index] = "+" + digits
    return result
