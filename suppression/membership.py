"""Which numbers of a batch are on a bitmap: one C loop, or pyroaring's calls.

pyroaring answers membership one number at a time. Over a batch that is a C call
through the interpreter per number, 50-90 ns here, most of it the call itself: the
largest part of a 10,000-number ``Check``. ``suppression/_membership.c`` calls
CRoaring's ``roaring64_bitmap_contains`` in a loop instead, on the bitmap's own
address (``BitMap64.raw_pointer``), resolved in the pyroaring module already
loaded, so the function and the bitmap come from the same build of CRoaring.

The compiled loop is used only if it was built (``pip install`` compiles it where a
C compiler is present), its symbol is found, and it gives pyroaring's own answers
on a probe set covering every container kind. Otherwise every call falls back to
pyroaring's per-number calls, with the same results; :data:`COMPILED` says which.
"""

from __future__ import annotations

import itertools
import logging
import operator
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import cast

import numpy as np
import numpy.typing as npt
import pyroaring
from pyroaring import BitMap64

_log = logging.getLogger(__name__)

_contains = cast(Callable[[BitMap64, int], bool], operator.contains)
"""``value in bitmap`` as a function (pyroaring's stubs do not declare ``Container``).

``operator.contains`` reaches the bitmap's ``sq_contains`` directly, where
``bitmap.__contains__`` (a method-wrapper) builds an argument tuple per number.
"""


def _probe_set() -> tuple[BitMap64, list[int]]:
    """A bitmap of every container kind and key width, and numbers on and beside it."""
    members = BitMap64([1, 7, 65_535, 65_536, 2**32 + 5, 2**63 + 11, 2**64 - 1])
    members.update(range(10_000_000_000, 10_000_000_000 + 20_000, 3))  # a bitset container
    members.add_range(12_125_550_000, 12_125_560_000)  # a run container
    members.run_optimize()
    probes = [0, 2, 2**32, 2**64 - 2, 12_125_549_999, 12_125_560_000]
    for member in members.to_array()[::97].tolist() + [2**63 + 11, 2**64 - 1]:
        probes.extend((member - 1, member, min(member + 1, 2**64 - 1)))
    return members, probes


def _bind() -> ModuleType | None:
    """The compiled module, if it is built, bound and agrees with pyroaring."""
    try:
        from suppression import _membership
    except ImportError:
        _log.info("batch membership: the compiled loop is not built; using pyroaring's calls")
        return None
    # The shared object that defines BitMap64 (pyroaring itself today), already loaded.
    library = getattr(sys.modules.get(BitMap64.__module__), "__file__", None)
    if library is None or not _membership.bind(library):
        _log.warning(
            "batch membership: roaring64_bitmap_contains not found in %s; using pyroaring's calls",
            library,
        )
        return None
    members, probes = _probe_set()
    values = np.array(probes, dtype=np.uint64)
    masks = np.zeros(len(values), dtype=np.uint64)
    try:
        _membership.mark_members(members.raw_pointer, values, masks, 0)
    except (AttributeError, TypeError, ValueError) as exc:  # e.g. a pyroaring without raw_pointer
        _log.warning("batch membership: %s; using pyroaring's calls", exc)
        return None
    if masks.astype(bool).tolist() != [probe in members for probe in probes]:
        _log.error(
            "batch membership: the compiled loop disagrees with pyroaring %s; "
            "using pyroaring's calls",
            pyroaring.__version__,
        )
        return None
    return _membership


_compiled = _bind()
COMPILED = _compiled is not None
"""Whether :func:`mark_members` runs the compiled loop (else pyroaring's calls)."""


def mark_members(
    bitmap: BitMap64,
    values: npt.NDArray[np.uint64],
    masks: npt.NDArray[np.uint64],
    bit: int,
    ints: Sequence[int] | None = None,
) -> None:
    """Set ``bit`` in ``masks[i]`` for each ``values[i]`` on ``bitmap``.

    Args:
        bitmap: the list's bitmap; held unchanged for the call.
        values: C-contiguous E.164 integers (0 is on no list).
        masks: as long as ``values``; updated in place.
        bit: 0 to 63.
        ints: the same numbers as Python ints, if the caller has them: the fallback
            then spares a ``values.tolist()``.
    """
    if _compiled is not None:
        _compiled.mark_members(bitmap.raw_pointer, values, masks, bit)
        return
    as_ints = values.tolist() if ints is None else ints
    hits = np.fromiter(
        map(_contains, itertools.repeat(bitmap, len(as_ints)), as_ints),
        dtype=np.bool_,
        count=len(as_ints),
    )
    masks |= hits.astype(np.uint64) << np.uint64(bit)


def members(bitmap: BitMap64, values: npt.NDArray[np.uint64]) -> npt.NDArray[np.bool_]:
    """Whether each of ``values`` is on ``bitmap``."""
    masks = np.zeros(len(values), dtype=np.uint64)
    mark_members(bitmap, np.ascontiguousarray(values, dtype=np.uint64), masks, 0)
    found: npt.NDArray[np.bool_] = masks != 0
    return found
