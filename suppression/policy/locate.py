"""Which line of a TOML file holds a key, so that a policy error can name it.

``tomllib`` reports the line of a syntax error but returns plain dicts, so a
rule broken by a well-formed file (an exemption lifting an opt-out list) has
no line. This scanner follows table headers and keys closely enough for the
files people write: headers, arrays of tables, dotted and quoted keys.
"""

from __future__ import annotations

import re

__all__ = ["line_of"]

_HEADER = re.compile(r"^\s*(\[\[?)\s*(.+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(
    r"""^\s*((?:"[^"]*"|'[^']*'|[A-Za-z0-9_-]+)(?:\s*\.\s*(?:"[^"]*"|'[^']*'|[A-Za-z0-9_-]+))*)\s*="""
)
_PART = re.compile(r"""\s*("[^"]*"|'[^']*'|[A-Za-z0-9_-]+)\s*(?:\.|$)""")

PathItem = str | int


def _split(dotted: str) -> list[str]:
    return [part.strip("\"'") for part in _PART.findall(dotted)]


def line_of(text: str, path: tuple[PathItem, ...]) -> int:
    """The 1-based line of ``path`` (keys and array indexes), or of its nearest enclosing table.

    Returns 0 when not even the outermost key is found.
    """
    best = 0
    best_score = -1.0
    table: list[PathItem] = []
    counts: dict[tuple[PathItem, ...], int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        header = _HEADER.match(line) if stripped.startswith("[") else None
        if header:
            names: list[PathItem] = list(_split(header.group(2)))
            if header.group(1) == "[[":
                key = tuple(names)
                index = counts.get(key, -1) + 1
                counts[key] = index
                names.append(index)
            table = names
            score = _score(table, path)
            if score > best_score:
                best, best_score = number, score
            continue
        key_match = _KEY.match(line)
        if key_match is None:
            continue
        score = _score([*table, *_split(key_match.group(1))], path)
        if score > best_score:
            best, best_score = number, score
    return best


def _score(have: list[PathItem], want: tuple[PathItem, ...]) -> float:
    """How well a line at ``have`` points at ``want``: the deeper the better.

    A line at an enclosing key scores its depth; a line inside ``want`` (the
    first key of a table named by dotted headers) a little less than ``want``
    itself; an unrelated line -1.
    """
    depth = _common(have, want)
    if depth < 0:
        return -1.0
    if depth == len(have):
        return float(depth)
    if depth == len(want):
        return depth - 0.5
    return -1.0


def _common(have: list[PathItem], want: tuple[PathItem, ...]) -> int:
    """How many leading items two paths share; -1 when ``have`` leaves ``want``."""
    depth = 0
    for a, b in zip(have, want, strict=False):
        if a != b:
            return -1
        depth += 1
    return depth
