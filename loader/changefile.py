"""Registry change files: additions and deletions since the last download.

One change per line, the action and the number separated by a comma, either
order: ``A,2125550123``, ``D,212,5550123``, ``2125550123,D``,
``A,+442079460000``. The action is ``A``/``ADD`` or ``D``/``DEL``/``DELETE``
(any case); ten-digit numbers (or ``AAA,NNNNNNN``) are US numbers (+1), others
must be E.164 with ``+``. Blank lines and ``#`` comments are skipped, and so is a
header line. When a number appears more than once, its last line wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from loader.readers import NANP_PREFIX
from suppression.compressed import read_bytes
from suppression.e164 import InvalidReason, e164_reason
from suppression.errors import NumberFileError
from suppression.numberfile import invalid_lines_message

__all__ = ["RegistryChanges", "read_change_file"]

_ADD = frozenset({"A", "ADD", "+"})
_DELETE = frozenset({"D", "DEL", "DELETE", "-"})


@dataclass(frozen=True, slots=True)
class RegistryChanges:
    """The net changes of one or more change files."""

    additions: npt.NDArray[np.uint64]
    deletions: npt.NDArray[np.uint64]
    skipped_lines: int = 0


def read_change_file(paths: list[Path], *, skip_invalid: bool = False) -> RegistryChanges:
    """Read change files in order; later lines win over earlier ones.

    Raises:
        NumberFileError: lines that are neither an action nor a number, unless
            ``skip_invalid``.
    """
    net: dict[int, bool] = {}
    skipped = 0
    for path in paths:
        bad: list[tuple[int, str]] = []
        text = read_bytes(path).decode("utf-8-sig", errors="replace")
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            parsed = _parse_line(line)
            if parsed is None:
                if number == 1 and not any(ch.isdigit() for ch in line):
                    continue  # a header
                bad.append((number, "not 'A|D,number'"))
                continue
            value, is_addition = parsed
            net.pop(value, None)  # re-insert so the last occurrence decides
            net[value] = is_addition
        if bad and not skip_invalid:
            raise NumberFileError(
                f"{invalid_lines_message(str(path), bad)}; fix them or pass --skip-invalid"
            )
        skipped += len(bad)
    additions = np.array(sorted(v for v, add in net.items() if add), dtype=np.uint64)
    deletions = np.array(sorted(v for v, add in net.items() if not add), dtype=np.uint64)
    return RegistryChanges(additions, deletions, skipped)


def _parse_line(line: str) -> tuple[int, bool] | None:
    fields = [field.strip() for field in line.split(",")]
    actions = [field.upper() for field in fields if field.upper() in _ADD | _DELETE]
    if len(actions) != 1:
        return None
    digits = "".join(field for field in fields if field.upper() not in _ADD | _DELETE)
    if digits.isascii() and digits.isdigit() and len(digits) == 10 and digits[0] >= "2":
        value = NANP_PREFIX + int(digits)
    elif digits.startswith("+") and digits[1:].isascii() and digits[1:].isdigit():
        value = int(digits[1:])
    else:
        return None
    if e164_reason(value) is not InvalidReason.VALID:
        return None
    return value, actions[0] in _ADD
