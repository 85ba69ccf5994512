"""Reading the phone fields of many rows at once with numpy: E.164 numbers for the common shapes.

The shapes read here, and only where the result is exactly what the
shortcut (:mod:`suppression.scrub.shortcut`) and the normalizer would give:

- ``+12125550123`` (``+`` then digits): the normalizer's own canonical rule,
  validated with the country-code tables; its invalid reasons too;
- ``+1 212 555 0123`` and other ``+1`` forms with punctuation, where the
  national number starts with neither 0 nor 1;
- ``+44 20 7946 0000`` and other ``+`` forms with punctuation, where the
  national number starts with no 0 and no national prefix of its country
  (checked with that country's pattern, one ``re`` match a phone);
- with a default region of the North American plan (:func:`nanp_region`):
  ``(212) 555-0123`` and ``212.555.0123``, with no leading ``0`` or ``1``,
  and ``1-212-555-0123``, where the region's own patterns take it so.

Every other phone (letters, other countries' punctuated forms, a national
prefix, an invalid number) is left to be checked as text.

The fields are laid out as a matrix, character ``j`` of every phone in row
``j``, so each step is one numpy pass over a few bytes per phone: about
0.1 µs a phone, against 15-35 µs for ``phonenumbers.parse``.
"""

from __future__ import annotations

import functools
import re

import numpy as np
import numpy.typing as npt
import phonenumbers

from suppression.digitrows import digits_value, windows
from suppression.e164 import e164_reasons
from suppression.scrub.shortcut import _country_prefixes, _region_prefixes

__all__ = ["PHONE_WIDTH", "nanp_region", "read_phones"]

PHONE_WIDTH = 24
"""Phone fields longer than this are left to the text path."""
_MAX_UINT64_DIGITS = 19
_MAX_E164 = 15
_TEN = np.array([10**k for k in range(_MAX_UINT64_DIGITS + 1)], dtype=np.uint64)
_SLICE = 1 << 16
_COLUMNS = np.arange(PHONE_WIDTH, dtype=np.uint8)
"""Phones read at a time: the work matrices stay a few MiB whatever the block."""


@functools.cache
def _country_code_lengths() -> npt.NDArray[np.uint8]:
    """By a number's first three digits: the length of its country code, as parse reads it."""
    lengths = np.zeros(1000, dtype=np.uint8)
    for lead3 in range(100, 1000):
        for length in (1, 2, 3):
            if lead3 // 10 ** (3 - length) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
                lengths[lead3] = length
                break
    return lengths


def nanp_region(region: str) -> bool:
    """True if ``region``'s national forms follow the rule read here (US, CA...).

    Its international prefix is ``011`` and its national prefix ``1``, so a
    national number that starts with 2-9 is taken by parse as it is.
    """
    prefixes = _region_prefixes(region) if region else None
    return (
        prefixes is not None
        and prefixes.country_code == "1"
        and prefixes.idd is not None
        and prefixes.idd.pattern == "011"
        and prefixes.national_prefix is not None
        and prefixes.national_prefix.pattern == "1"
    )


def read_phones(
    arr: npt.NDArray[np.uint8],
    starts: npt.NDArray[np.int64],
    ends: npt.NDArray[np.int64],
    region: str,
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint8], npt.NDArray[np.bool_]]:
    """Read the phone fields ``arr[starts[i]:ends[i]]`` (not stripped).

    Args:
        arr: the bytes.
        starts: where each field starts.
        ends: where each ends.
        region: the validated default region, or "".

    Returns:
        E.164 values (0 where not read), the invalid reasons of canonical
        ``+digits`` phones (0 otherwise), and which phones must be checked as
        text instead (every empty or blank one too, which the caller counts as
        missing).
    """
    count = len(starts)
    if count <= _SLICE:
        return _read_slice(arr, starts, ends, region)
    parts = [
        _read_slice(arr, starts[at : at + _SLICE], ends[at : at + _SLICE], region)
        for at in range(0, count, _SLICE)
    ]
    values, reasons, slow = zip(*parts, strict=True)
    return np.concatenate(values), np.concatenate(reasons), np.concatenate(slow)


def _read_slice(
    arr: npt.NDArray[np.uint8],
    starts: npt.NDArray[np.int64],
    ends: npt.NDArray[np.int64],
    region: str,
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint8], npt.NDArray[np.bool_]]:
    count = len(starts)
    values = np.zeros(count, dtype=np.uint64)
    reasons = np.zeros(count, dtype=np.uint8)
    lengths = ends - starts
    if count == 0:
        return values, reasons, np.zeros(0, dtype=bool)
    width = int(min(PHONE_WIDTH, max(1, int(lengths.max()))))
    # Each phone's first ``width`` bytes as a row (rows of a strided view of the block), the
    # bytes past its end made spaces, which the normalizer strips.
    rows = windows(arr, starts, width)
    shown_length = np.minimum(lengths, width).astype(np.uint8)
    # Arithmetic rather than a masked copy (np.copyto's where, np.where): about 40% less here.
    outside = (_COLUMNS[:width][None, :] >= shown_length[:, None]).view(np.uint8)
    rows -= rows * outside
    rows += outside * np.uint8(32)
    first = (rows != 32).argmax(axis=1)
    first_plus = rows[np.arange(count), first] == 43
    # Then turned, character j of every phone in row j: each step below is one pass over
    # contiguous memory, and sums run down the columns.
    chars = np.ascontiguousarray(rows.T)
    digit_values = chars - np.uint8(48)
    is_digit = digit_values < 10
    nonspace = chars != 32
    is_plus = chars == 43
    # ``(``, ``)``, ``+``, ``-``, ``.``: bytes 40-46 but for ``*`` and ``,``.
    symbol = (chars - np.uint8(40)) < 7
    symbol &= (chars != 42) & (chars != 44)
    digits = _column_counts(is_digit)
    pluses = _column_counts(is_plus)
    # A space between two non-spaces counts as punctuation. Each run of non-spaces but the
    # last is followed by a space, and so is the last unless it reaches the final column.
    runs_ended = _column_counts(nonspace[:-1] & ~nonspace[1:])
    inner_space = runs_ended - ~nonspace[-1] > 0
    inner_punct = (symbol & ~is_plus).any(axis=0) | inner_space
    leading_plus = first_plus & (pluses == 1)
    slow = (
        (lengths > width)
        | (nonspace & ~(is_digit | symbol)).any(axis=0)
        | ~nonspace.any(axis=0)
        | (pluses > 1)
        | ((pluses == 1) & ~leading_plus)
        | (digits == 0)
        | (digits > _MAX_UINT64_DIGITS)
    )
    # The digits as one number, read left to right; any other character is skipped.
    value = digits_value(digit_values, is_digit)
    ten = np.uint64(10)
    shown = np.clip(digits, 1, _MAX_UINT64_DIGITS)
    lead = value // _TEN[shown - 1]
    second = (value // _TEN[np.maximum(shown - 2, 0)]) % ten

    # ``+digits`` after stripping, at most 19 digits, no leading 0: the normalizer's rule.
    canonical = ~slow & leading_plus & ~inner_punct & (lead != 0)
    # ``+1 ...`` with punctuation: the shortcut keeps the digits when the national number
    # starts with neither 0 nor 1 (whatever the default region).
    candidate = (
        ~slow
        & leading_plus
        & inner_punct
        & (lead == 1)
        & (digits >= 3)
        & (digits <= _MAX_E164)
        & (second >= 2)
    )
    number = value
    region_is_nanp = nanp_region(region)
    if region_is_nanp:
        # National forms in a NANP region: no 0 or 1 first (the IDD and the national prefix).
        national = ~slow & ~leading_plus & (lead >= 2) & (digits >= 2) & (digits < _MAX_E164)
        number = value + _TEN[shown] * national
        candidate |= national
    # The other shapes with a country code, checked with that country's own patterns.
    loose = ~slow & ~canonical & ~candidate & (digits >= 3) & (digits <= _MAX_E164) & (lead != 0)
    if (loose & leading_plus).any():
        candidate |= _international(value, digits, loose & leading_plus)
    if region_is_nanp and (loose & ~leading_plus & (lead == 1)).any():
        candidate |= _with_country_code(value, loose & ~leading_plus & (lead == 1), region)
    # One validation for all: a canonical phone keeps its reason, a candidate only a pass.
    found = e164_reasons(number * (canonical | candidate))
    ok = candidate & (found == 0)
    kept = ok | (canonical & (found == 0))
    values = number * kept
    reasons = found * canonical
    return values, reasons, ~(canonical | ok)


def _column_counts(matrix: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    """How many are true in each column: ``np.count_nonzero(matrix, axis=0)``, 10x faster.

    Summed as bytes (at most :data:`PHONE_WIDTH` rows, so no overflow), then widened.
    """
    counts: npt.NDArray[np.uint8] = matrix.view(np.uint8).sum(axis=0, dtype=np.uint8)
    return counts.astype(np.int64)


def _international(
    value: npt.NDArray[np.uint64], digits: npt.NDArray[np.int64], rows: npt.NDArray[np.bool_]
) -> npt.NDArray[np.bool_]:
    """Which ``rows`` (``+`` then 3-15 digits, with punctuation) parse keeps as written.

    Parse splits off the country code (the shortest prefix that is one) and
    keeps the rest unless it is under 2 digits, starts with 0, or starts with
    the national prefix of the code's country: :func:`shortcut._candidate`'s
    rule, with the same metadata.
    """
    taken = np.zeros(len(value), dtype=bool)
    at = np.flatnonzero(rows)
    numbers, lengths = value[at], digits[at]
    lead3 = (numbers // _TEN[lengths - 3]).astype(np.intp)
    code_lengths = _country_code_lengths()[lead3].astype(np.int64)
    national_lengths = lengths - code_lengths
    national = numbers % _TEN[np.maximum(national_lengths, 0)]
    plausible = (
        (code_lengths > 0)
        & (national_lengths >= 2)
        & (national >= _TEN[np.maximum(national_lengths - 1, 0)])  # no leading 0
    )
    codes = lead3 // 10 ** (3 - code_lengths)
    for code in np.unique(codes[plausible]).tolist():
        prefixes = _country_prefixes(code)
        if prefixes is None:
            continue
        mine = np.flatnonzero(plausible & (codes == code))
        if prefixes.national_prefix is None:
            taken[at[mine]] = True
            continue
        digit_pattern = _digit_pattern(prefixes.national_prefix.pattern)
        if digit_pattern is not None:  # no leading 0: the digits are the number's
            kept = ~digit_pattern.match(national[mine], national_lengths[mine])
        else:
            match = prefixes.national_prefix.match
            texts = map(str, national[mine].tolist())
            kept = np.array([match(text) is None for text in texts], dtype=bool)
        taken[at[mine[kept]]] = True
    return taken


def _with_country_code(
    value: npt.NDArray[np.uint64], rows: npt.NDArray[np.bool_], region: str
) -> npt.NDArray[np.bool_]:
    r"""Which ``rows`` (digits starting with 1, no ``+``) parse reads as ``+1`` and the rest.

    :func:`shortcut._with_country_code`'s rule for a NANP default region,
    whose international prefix (``011``) cannot match a number starting with
    1: the whole is not a national number by the region's general pattern and
    the rest is, and neither the region's nor its country's national prefix
    starts the rest. Where those patterns are plain runs of digit classes (the
    US: ``[2-9]\d{9}|3\d{6}`` and ``1``) they are matched with numpy; else
    with ``re``, one phone at a time.
    """
    taken = np.zeros(len(value), dtype=bool)
    prefixes = _region_prefixes(region)
    main = _country_prefixes(1)
    if prefixes is None or prefixes.general is None or main is None:
        return taken
    # The region's national prefix and its country's, each pattern once (US: "1" twice).
    patterns = {
        found.national_prefix.pattern: found.national_prefix
        for found in (prefixes, main)
        if found.national_prefix is not None
    }
    at = np.flatnonzero(rows)
    general = _digit_pattern(prefixes.general.pattern)
    starts = [_digit_pattern(pattern) for pattern in patterns]
    if general is not None and all(start is not None for start in starts):
        numbers = value[at]
        lengths = _digit_counts(numbers)
        rest = numbers - _TEN[lengths - 1]  # the digits after the leading 1
        rest_lengths = lengths - 1
        ok = (rest_lengths > 0) & (rest // _TEN[np.maximum(rest_lengths - 1, 0)] != 0)
        ok &= ~general.fullmatch(numbers, lengths) & general.fullmatch(rest, rest_lengths)
        for start in starts:
            assert start is not None
            ok &= ~start.match(rest, rest_lengths)
        taken[at[ok]] = True
        return taken
    fullmatch = prefixes.general.fullmatch
    national_prefixes = [pattern.match for pattern in patterns.values()]
    kept = []
    for text in map(str, value[at].tolist()):
        rest_text = text[1:]
        matched = (
            rest_text[0] != "0" and fullmatch(text) is None and fullmatch(rest_text) is not None
        )
        for match in national_prefixes:
            matched = matched and match(rest_text) is None
        kept.append(matched)
    taken[at[np.array(kept, dtype=bool)]] = True
    return taken


def _digit_counts(numbers: npt.NDArray[np.uint64]) -> npt.NDArray[np.int64]:
    """How many digits each (positive) number has."""
    counts: npt.NDArray[np.int64] = np.searchsorted(_TEN, numbers, side="right")
    return counts


class _DigitPattern:
    """A pattern that is alternatives of fixed runs of digit classes, matched with numpy.

    Each alternative is a tuple of classes (a 10-entry table: which digits it
    takes), one per position. ``re`` gives the same answers on digit strings:
    an alternative of fixed length matches exactly the strings (or, with
    ``match``, the prefixes) of that length whose digits are in its classes.
    """

    def __init__(self, alternatives: list[list[npt.NDArray[np.bool_]]]) -> None:
        self._alternatives = alternatives

    def fullmatch(
        self, numbers: npt.NDArray[np.uint64], lengths: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.bool_]:
        """Which numbers, written with ``lengths`` digits (leading zeros kept), match whole."""
        return self._test(numbers, lengths, whole=True)

    def match(
        self, numbers: npt.NDArray[np.uint64], lengths: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.bool_]:
        """Which numbers, written with ``lengths`` digits, start with a match."""
        return self._test(numbers, lengths, whole=False)

    def _test(
        self, numbers: npt.NDArray[np.uint64], lengths: npt.NDArray[np.int64], *, whole: bool
    ) -> npt.NDArray[np.bool_]:
        found = np.zeros(len(numbers), dtype=bool)
        for classes in self._alternatives:
            size = len(classes)
            fits = lengths == size if whole else lengths >= size
            for position, allowed in enumerate(classes):
                if allowed.all() or not fits.any():  # ``\d`` takes any digit
                    continue
                # Digit ``position`` from the left: the power of ten it stands for.
                power = _TEN[np.clip(lengths - 1 - position, 0, _MAX_UINT64_DIGITS)]
                digit = ((numbers // power) % np.uint64(10)).astype(np.intp)
                fits &= allowed[digit]
            found |= fits
        return found


_DIGIT_RUN = re.compile(r"(\\d|\[(?:\d(?:-\d)?)+\]|\d)(?:\{(\d+)\})?")
_RANGE = re.compile(r"(\d)(?:-(\d))?")


@functools.cache
def _digit_pattern(pattern: str) -> _DigitPattern | None:
    r"""``pattern`` as a :class:`_DigitPattern`, or None.

    None unless it is only ``|``, ``\d``, digits, classes of digits and ranges,
    and fixed counts ``{n}``.
    """
    alternatives = []
    for alternative in pattern.split("|"):
        classes: list[npt.NDArray[np.bool_]] = []
        at = 0
        while at < len(alternative):
            found = _DIGIT_RUN.match(alternative, at)
            if found is None:
                return None
            atom, count = found.group(1), found.group(2)
            allowed = np.zeros(10, dtype=bool)
            if atom == "\\d":
                allowed[:] = True
            elif atom.startswith("["):
                for low, high in _RANGE.findall(atom[1:-1]):
                    allowed[int(low) : int(high or low) + 1] = True
            else:
                allowed[int(atom)] = True
            classes += [allowed] * (int(count) if count is not None else 1)
            at = found.end()
        if not classes:
            return None
        alternatives.append(classes)
    return _DigitPattern(alternatives)
