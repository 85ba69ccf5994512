"""Generates ``suppression/e164_tables.py`` from phonenumbers' metadata (``make tables``).

The tables are committed so that importing :mod:`suppression.e164` does not
load the metadata of every region (a quarter of a second here); a test fails
when they differ from the installed phonenumbers.
"""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["compute_tables", "render", "main"]

MAX_E164_DIGITS = 15
TARGET = Path(__file__).with_name("e164_tables.py")


def compute_tables() -> tuple[dict[int, int], tuple[str, ...]]:
    """Each country code's bitmask of possible national lengths, and the supported regions."""
    import phonenumbers
    from phonenumbers import PhoneMetadata

    masks: dict[int, int] = {}
    for cc, regions in sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items()):
        width = len(str(cc))
        mask = 0
        for region in regions:
            if region == "001":
                metadata = PhoneMetadata.metadata_for_nongeo_region(cc)
            else:
                metadata = PhoneMetadata.metadata_for_region(region)
            if metadata is None or metadata.general_desc is None:
                continue
            for length in metadata.general_desc.possible_length or ():
                if length > 0:
                    mask |= 1 << length
        if mask == 0:  # no length data: accept anything E.164 can hold
            for length in range(2, MAX_E164_DIGITS - width + 1):
                mask |= 1 << length
        masks[cc] = mask
    return masks, tuple(sorted(phonenumbers.SUPPORTED_REGIONS))


def render(masks: dict[int, int], regions: tuple[str, ...]) -> str:
    """The text of the generated module."""
    import phonenumbers

    lines = [
        '"""Country codes and regions from phonenumbers\' metadata. Generated: do not edit.',
        "",
        "Made by ``python -m suppression.e164_tables_gen`` (``make tables``) from",
        f"phonenumbers {phonenumbers.__version__}.",
        '"""',
        "",
        "NSN_LENGTHS_BY_COUNTRY_CODE: dict[int, int] = {",
        *(f"    {cc}: 0x{mask:X}," for cc, mask in masks.items()),
        "}",
        '"""Country code to a bitmask of possible national number lengths (bit n: n digits)."""',
        "",
        "SUPPORTED_REGIONS: frozenset[str] = frozenset(",
        "    (",
        *(f'        "{region}",' for region in regions),
        "    )",
        ")",
        '"""ISO 3166-1 region codes phonenumbers can parse national numbers for."""',
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    """Write the generated module."""
    TARGET.write_text(render(*compute_tables()))
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
