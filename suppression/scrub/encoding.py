"""Choosing and applying a lead file's text encoding: UTF-8 (with or without a BOM) or GB18030.

Bytes that the chosen encoding cannot decode are kept as lone surrogates
(Python's ``surrogateescape``), so the rows holding them can be sent to the
invalid file, and written back out byte for byte.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

from suppression.errors import ConfigError

__all__ = [
    "DecodedText",
    "check_ascii_compatible",
    "decode",
    "detect_encoding",
    "has_undecodable",
    "resolve_encoding",
]

_BOM_UTF8 = codecs.BOM_UTF8
_SAMPLE_LINES = 2_000
"""Non-ASCII lines sampled to tell UTF-8 from GB18030."""
_UNDECODABLE = re.compile("[\udc80-\udcff]")
ERRORS = "surrogateescape"
"""The codec error handler for reading and writing lead files."""


@dataclass(frozen=True, slots=True)
class DecodedText:
    """A lead file's text and how it was decoded."""

    text: str
    encoding: str
    """The Python codec name; outputs are written in the same encoding."""
    undecodable: bool
    """Some bytes did not decode; rows holding them are invalid."""


def resolve_encoding(name: str) -> str:
    """Check a codec name given on the command line.

    Raises:
        ConfigError: Python knows no such codec.
    """
    try:
        return codecs.lookup(name).name
    except LookupError:
        raise ConfigError(
            f"unknown --encoding {name!r}; use utf-8, utf-8-sig, gbk or gb18030"
        ) from None


_SIGNIFICANT = '\r\n"\t,;| +-.()0123456789'
"""Characters a scrub finds by their bytes: line ends, quotes, delimiters, digits."""


def check_ascii_compatible(encoding: str) -> None:
    """Refuse an encoding whose line ends, quotes or digits are not their ASCII bytes.

    A scrub reads a file a block at a time, cutting blocks at line-end bytes,
    which is only right when those bytes mean the same in the encoding
    (UTF-16 and UTF-32 do not; UTF-8, GB18030 and the Latin codecs do).

    Raises:
        ConfigError: the encoding is not ASCII-compatible.
    """
    if encoding == "utf-8-sig":  # UTF-8, plus a BOM at the very start only
        return
    try:
        compatible = _SIGNIFICANT.encode(encoding) == _SIGNIFICANT.encode("ascii")
    except (UnicodeError, LookupError):
        compatible = False
    if not compatible:
        raise ConfigError(
            f"--encoding {encoding} is not ASCII-compatible; convert the file to UTF-8 first "
            "(scrub reads UTF-8, GB18030, GBK, Latin-1 and the like)"
        )


def detect_encoding(data: bytes) -> str:
    """Guess the encoding of a lead file.

    A UTF-8 BOM decides at once. Otherwise UTF-8 wins if the whole file
    decodes, or if most sampled non-ASCII lines do (a few corrupt bytes in a
    UTF-8 file must not turn it into GB18030 mojibake). GB18030, a superset
    of GBK and GB2312, is the choice when most non-ASCII lines are not UTF-8.

    Returns:
        ``utf-8-sig``, ``utf-8`` or ``gb18030``.
    """
    if data.startswith(_BOM_UTF8):
        return "utf-8-sig"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        return "utf-8"
    utf8 = gb = sampled = 0
    for line in data.split(b"\n"):
        if line.isascii():
            continue
        sampled += 1
        utf8 += _decodes(line, "utf-8")
        gb += _decodes(line, "gb18030")
        if sampled >= _SAMPLE_LINES:
            break
    return "gb18030" if gb > utf8 and utf8 * 2 < sampled else "utf-8"


def _decodes(line: bytes, encoding: str) -> bool:
    try:
        line.decode(encoding)
    except UnicodeDecodeError:
        return False
    return True


def decode(data: bytes, encoding: str) -> DecodedText:
    """Decode a whole file, keeping undecodable bytes as lone surrogates."""
    try:
        return DecodedText(data.decode(encoding), encoding, False)
    except UnicodeDecodeError:
        return DecodedText(data.decode(encoding, ERRORS), encoding, True)


def has_undecodable(text: str) -> bool:
    """True if ``text`` holds a byte that did not decode."""
    return _UNDECODABLE.search(text) is not None
