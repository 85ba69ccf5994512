"""Number types (mobile, fixed line, VoIP, toll free, premium rate...) from phonenumbers' metadata.

phonenumbers decides a type by matching the national number against each
type's pattern of the number's region: regular expressions, not prefixes, so
no exact prefix table can be built from them. This asks phonenumbers once
per distinct number, skipping the parse (about 10 µs a number here), and
keeps the answers in a bounded cache; only numbers that no list suppresses
are asked, and only by policies that have number-type rules.
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt

__all__ = ["TYPE_NAMES", "NumberTypes"]

TYPE_NAMES: dict[int, str] = {
    0: "fixed_line",
    1: "mobile",
    2: "fixed_line_or_mobile",
    3: "toll_free",
    4: "premium_rate",
    5: "shared_cost",
    6: "voip",
    7: "personal_number",
    8: "pager",
    9: "uan",
    10: "voicemail",
    99: "unknown",
}
"""phonenumbers' ``PhoneNumberType`` values to the names policy files use."""


class NumberTypes:
    """The phonenumbers type of E.164 integers, cached per number."""

    def __init__(self, cache_size: int = 500_000) -> None:
        """Create a classifier; phonenumbers is imported on first use."""
        self._type_of = functools.lru_cache(maxsize=cache_size)(_type_of)

    def lookup(self, values: npt.NDArray[np.uint64]) -> npt.NDArray[np.int16]:
        """One phonenumbers type value per number (99, unknown, for 0)."""
        return np.fromiter(map(self._type_of, values.tolist()), dtype=np.int16, count=len(values))


def _type_of(value: int) -> int:
    import phonenumbers

    digits = str(value)
    for length in (1, 2, 3):
        code = int(digits[:length])
        if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE and len(digits) > length:
            national = digits[length:]
            zeros = len(national) - len(national.lstrip("0"))
            number = phonenumbers.PhoneNumber(
                country_code=code,
                national_number=int(national),
                italian_leading_zero=bool(zeros) or None,
                number_of_leading_zeros=zeros if zeros > 1 else None,
            )
            return int(phonenumbers.number_type(number))
    return 99
