"""Finding the phone column of a lead file: by the name given, a known header name, or content."""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass

from suppression.e164 import Normalizer, mask_number
from suppression.errors import ConfigError

__all__ = ["ColumnChoice", "Detection", "check_header", "choose_column"]

# In order of preference: when a file has both "phone" and "mobile", "phone" wins.
_KNOWN_NAMES = (
    "phone",
    "phonenumber",
    "phoneno",
    "mobile",
    "mobilephone",
    "mobilenumber",
    "cell",
    "cellphone",
    "telephone",
    "tel",
    "msisdn",
    "contactnumber",
    "number",
    "手机",
    "手机号",
    "手机号码",
    "电话",
    "电话号码",
    "联系电话",
    "联系方式",
)
_RANK = {name: rank for rank, name in enumerate(_KNOWN_NAMES)}
_SEPARATORS = re.compile(r"[\s_\-.]+")
_MIN_VALID_SHARE = 0.5
"""Content detection needs at least this share of a column's sample to be numbers."""


class Detection(enum.StrEnum):
    """How the phone column was chosen."""

    OPTION = "option"
    NAME = "name"
    CONTENT = "content"


@dataclass(frozen=True, slots=True)
class ColumnChoice:
    """The phone column."""

    index: int
    name: str
    detection: Detection


_DIGITS_OF_A_NUMBER = 7


def _shown(name: str) -> str:
    """A header name for a message, masked if it could be a phone number (no header row)."""
    if sum(character.isdigit() for character in name) >= _DIGITS_OF_A_NUMBER:
        return mask_number(name)
    return name


def _key(name: str) -> str:
    return _SEPARATORS.sub("", name.strip().lower())


def choose_column(
    header: Sequence[str],
    sample: Sequence[Sequence[str]],
    requested: str,
    region: str,
    normalizer: Normalizer,
    source: str,
) -> ColumnChoice:
    """Pick the phone column.

    Args:
        header: the header row.
        sample: some rows of the file, each as wide as the header.
        requested: the ``--column`` value ("" to detect): a header name
            (case and separators ignored) or a 1-based position.
        region: default region, for recognizing national forms by content.
        normalizer: parses sample values.
        source: the file, for messages.

    Raises:
        ConfigError: the requested column does not exist, or none looks like phones.
    """
    columns = ", ".join(_shown(name) for name in header)
    if requested:
        wanted = _key(requested)
        for index, name in enumerate(header):
            if _key(name) == wanted:
                return ColumnChoice(index, name, Detection.OPTION)
        if requested.isdigit() and 1 <= int(requested) <= len(header):
            index = int(requested) - 1
            return ColumnChoice(index, header[index], Detection.OPTION)
        raise ConfigError(f"column {requested!r} is not in {source}; its columns are: {columns}")
    named = [(_RANK[_key(name)], index) for index, name in enumerate(header) if _key(name) in _RANK]
    if named:
        _, index = min(named)
        return ColumnChoice(index, header[index], Detection.NAME)
    best_index, best_share = -1, 0.0
    for index in range(len(header)):
        values = [row[index].strip() for row in sample if row[index].strip()]
        if not values:
            continue
        valid = sum(1 for value in values if not normalizer.normalize(value, region)[1])
        share = valid / len(values)
        if share > best_share:
            best_index, best_share = index, share
    if best_index < 0 or best_share < _MIN_VALID_SHARE:
        hint = "" if region else " (national number forms also need --region)"
        raise ConfigError(
            f"cannot tell which column of {source} holds phone numbers{hint}; "
            f"name it with --column (columns: {columns})"
        )
    return ColumnChoice(best_index, header[best_index], Detection.CONTENT)


def check_header(
    header: Sequence[str], column: ColumnChoice, region: str, normalizer: Normalizer, source: str
) -> None:
    """Refuse a file whose first line is a lead rather than a header.

    Without this, the first lead would become every output's header and never
    be checked.

    Raises:
        ConfigError: the header's phone column holds a valid phone number.
    """
    if not normalizer.normalize(header[column.index].strip(), region)[1]:
        raise ConfigError(
            f"{source} has no header row: its first line holds a phone number in column "
            f"{column.index + 1}; add a header line (such as id,name,phone)"
        )
