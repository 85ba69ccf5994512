"""The "may I dial?" decision for a batch: normalize, validate, look up, decide.

Pure: imports only the core (e164, lists). The servicer and the local scrub
both call :func:`check_batch`, so remote and local answers cannot drift.

Results are parallel arrays (one verdict and one list bitmask per number)
plus a sparse map of invalid reasons, mirroring the wire format, because a
Python object per number would cost more than the lookup itself.
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import numpy.typing as npt
from pyroaring import BitMap64

from suppression.e164 import InvalidReason, Normalizer, e164_reason, e164_reasons
from suppression.errors import InvalidRequestError
from suppression.lists import ListView, Version

if TYPE_CHECKING:
    from suppression.policy.batch import PolicyAnswer

__all__ = [
    "LOOKUP_SLICE",
    "SLICE",
    "BatchLookup",
    "CheckOutcome",
    "SingleOutcome",
    "Verdict",
    "check_batch",
    "decide_one",
    "hits_per_bit",
    "lookup_batch",
    "pausing_between_slices",
]

_VECTOR_THRESHOLD = 32
"""Below this many numbers numpy's per-call overhead outweighs its speed."""

SLICE = 2_000
"""Text numbers normalized between two calls of the pause function.

Python holds the GIL through a whole ``map`` over a bitmap, so an unsliced
10,000-number batch keeps other threads out for milliseconds; a slice of
2,000 text numbers takes about 1 ms here.
"""
LOOKUP_SLICE = 5_000
"""Numbers looked up between two calls of the pause function: 0.3-1 ms here.

The server's pause (``lanes``) drops the GIL only once a batch has held it for
a while: each drop is a system call that gives the core away for 50-150 µs.
"""

_PAUSE: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar(
    "suppression_check_pause", default=None
)


@contextlib.contextmanager
def pausing_between_slices(pause: Callable[[], None]) -> Iterator[None]:
    """Make :func:`check_batch` in this context call ``pause()`` between slices of a batch.

    The server passes a function that lets interactive calls go first, so
    bulk batches cannot hold every other call back (see
    :mod:`suppression.lanes`). A context, not an argument, so that every
    caller of ``check_batch`` (the replica, the scrub) keeps its signature;
    the pause never changes the answer, which reads one view throughout.
    """
    token = _PAUSE.set(pause)
    try:
        yield
    finally:
        _PAUSE.reset(token)


class Verdict(enum.IntEnum):
    """The answer for one number; values match the wire enum."""

    ALLOWED = 1
    SUPPRESSED = 2
    INVALID = 3
    DEFERRED = 4
    """Only under a pre-dial policy (:mod:`suppression.policy`): not now, later."""


_VERDICTS = tuple(Verdict)
"""Every verdict, once: iterating the enum class itself costs a generator step per member."""


@dataclass(frozen=True, slots=True, eq=False)
class CheckOutcome:
    """The answer for a batch: parallel per-number arrays and the version read.

    A vectorized batch keeps numpy arrays: the servicer packs them into the
    response without a Python object per number (``tolist`` and back cost about
    80 ns a number, more than the rest of the decision). The scalar path of
    small batches keeps lists, which its numbers already are: a round trip
    through numpy costs a single-number check more than its decision.
    :attr:`verdicts` and :attr:`masks` give either as lists.
    """

    verdict_array: npt.NDArray[np.uint8] | list[int]
    """One :class:`Verdict` value per number."""
    mask_array: npt.NDArray[np.uint64] | list[int]
    """One bitmask per number over ``list_names``."""
    list_names: tuple[str, ...]
    invalid_reasons: dict[int, int]
    normalized: list[int]
    version: Version
    verdict_counts: dict[Verdict, int]
    hits_per_list: tuple[int, ...]
    """Suppressed numbers per checked list, parallel to ``list_names``."""
    failed_closed: bool = False
    policy: PolicyAnswer | None = None
    """Under a pre-dial policy: the policy, the rules, exemptions and earliest times."""

    @property
    def verdicts(self) -> list[int]:
        """One :class:`Verdict` value per number, as a new list."""
        return _as_list(self.verdict_array)

    @property
    def masks(self) -> list[int]:
        """One bitmask per number over ``list_names``, as a new list."""
        return _as_list(self.mask_array)

    def __len__(self) -> int:
        return len(self.verdict_array)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CheckOutcome):
            return NotImplemented
        return (
            np.array_equal(self.verdict_array, other.verdict_array)
            and np.array_equal(self.mask_array, other.mask_array)
            and self._rest() == other._rest()
        )

    __hash__ = None  # type: ignore[assignment]  # mutable arrays inside

    def _rest(self) -> tuple[object, ...]:
        return (
            self.list_names,
            self.invalid_reasons,
            self.normalized,
            self.version,
            self.verdict_counts,
            self.hits_per_list,
            self.failed_closed,
            self.policy,
        )


def _as_list(values: npt.NDArray[np.uint8] | npt.NDArray[np.uint64] | list[int]) -> list[int]:
    if isinstance(values, list):
        return list(values)
    as_list: list[int] = values.tolist()
    return as_list


def check_batch(
    view: ListView,
    e164: Sequence[int] | npt.NDArray[np.uint64],
    texts: Sequence[str] = (),
    region: str = "",
    lists: Sequence[str] = (),
    normalizer: Normalizer | None = None,
    *,
    max_batch: int = 0,
    fail_closed: bool = False,
) -> CheckOutcome:
    """Decide a batch.

    Args:
        view: the data to answer from; the whole batch reads only this view.
        e164: numbers as E.164 integers.
        texts: numbers as text; national forms use ``region``.
        region: upper-case ISO region code, already validated, or "".
        lists: list names to check; empty means the view's default lists.
        normalizer: parses ``texts``; required when ``texts`` is not empty.
        max_batch: refuse batches larger than this (0: no limit).
        fail_closed: answer every valid number SUPPRESSED without looking
            it up (the data is too stale to trust).

    Raises:
        InvalidRequestError: the batch is too large.
        UnknownListError: a named list does not exist.
    """
    total = len(e164) + len(texts)
    if max_batch and total > max_batch:
        raise InvalidRequestError(
            f"batch of {total:,} numbers exceeds the maximum of {max_batch:,}; split it"
        )
    if texts and normalizer is None:
        raise InvalidRequestError("text numbers need a normalizer")
    if total < _VECTOR_THRESHOLD:
        # The scalar path takes Python ints.
        ints: Sequence[int] = e164.tolist() if isinstance(e164, np.ndarray) else e164
        return _check_small(view, ints, texts, region, lists, normalizer, fail_closed)
    found = lookup_batch(view, e164, texts, region, lists, normalizer, fail_closed=fail_closed)
    masks = found.masks
    if fail_closed:
        verdicts = np.full(total, Verdict.SUPPRESSED, dtype=np.uint8)
    else:
        # ALLOWED is 1 and SUPPRESSED 2: one pass, no boolean-mask assignment.
        verdicts = (masks != 0).view(np.uint8) + np.uint8(Verdict.ALLOWED)
    verdicts[list(found.invalid_reasons)] = Verdict.INVALID
    counts = np.bincount(verdicts, minlength=len(Verdict) + 1)
    return CheckOutcome(
        verdict_array=verdicts,
        mask_array=masks,
        list_names=found.list_names,
        invalid_reasons=found.invalid_reasons,
        normalized=found.normalized,
        version=view.version,
        verdict_counts={verdict: int(counts[verdict]) for verdict in _VERDICTS},
        hits_per_list=hits_per_bit(masks, len(found.list_names)),
        failed_closed=fail_closed,
    )


def hits_per_bit(masks: npt.NDArray[np.uint64], bits: int) -> tuple[int, ...]:
    """How many of ``masks`` have each of their lowest ``bits`` bits set."""
    if bits == 1:
        return (int(np.count_nonzero(masks)),)
    one = np.uint64(1)
    return tuple(int(np.count_nonzero((masks >> np.uint64(bit)) & one)) for bit in range(bits))


@dataclass(frozen=True, slots=True)
class BatchLookup:
    """A batch validated and looked up, as arrays: what a decision starts from."""

    values: npt.NDArray[np.uint64]
    """E.164 integers, ``e164`` then the normalized texts; 0 where invalid."""
    invalid: npt.NDArray[np.bool_]
    masks: npt.NDArray[np.uint64]
    """Bit j: on ``list_names[j]``; zero when failing closed."""
    list_names: tuple[str, ...]
    invalid_reasons: dict[int, int]
    normalized: list[int]


def lookup_batch(
    view: ListView,
    e164: Sequence[int] | npt.NDArray[np.uint64],
    texts: Sequence[str] = (),
    region: str = "",
    lists: Sequence[str] = (),
    normalizer: Normalizer | None = None,
    *,
    fail_closed: bool = False,
) -> BatchLookup:
    """Validate, normalize and look up a batch, with numpy whatever its size.

    The vector half of :func:`check_batch`, for callers that decide further on
    arrays (a pre-dial policy); sizes and the normalizer are checked there.
    """
    # np.array reads protobuf's repeated field in bulk; fromiter costs ~50x more.
    values = np.array(e164, dtype=np.uint64)
    reasons = e164_reasons(values)
    normalized: list[int] = []
    pause = _PAUSE.get()
    if texts:
        if normalizer is None:
            raise InvalidRequestError("text numbers need a normalizer")
        text_values, text_reasons = _normalize(normalizer, texts, region, pause)
        normalized = text_values.tolist()
        values = np.concatenate([values, text_values])
        reasons = np.concatenate([reasons, text_reasons])
    invalid = reasons != 0
    invalid_at = np.flatnonzero(invalid)
    values[invalid_at] = 0
    if fail_closed:
        names, _ = view.select(lists)
        masks = np.zeros(len(values), dtype=np.uint64)
    else:
        # A caller's list of ints is looked up as it is: ``values.tolist()`` would make
        # and free a Python int per number again (about 27 ns). Its invalid numbers are
        # not zeroed, so their masks are cleared after.
        ints = e164 if isinstance(e164, list) and not texts else None
        names, masks = _lookup(view, values, ints, lists, pause)
        if ints is not None and len(invalid_at):
            masks[invalid_at] = 0
    return BatchLookup(
        values=values,
        invalid=invalid,
        masks=masks,
        list_names=names,
        invalid_reasons=dict(zip(invalid_at.tolist(), reasons[invalid_at].tolist(), strict=True)),
        normalized=normalized,
    )


def _normalize(
    normalizer: Normalizer,
    texts: Sequence[str],
    region: str,
    pause: Callable[[], None] | None,
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint8]]:
    """``normalize_array``, a slice at a time with ``pause()`` between slices."""
    if pause is None or len(texts) <= SLICE:
        return normalizer.normalize_array(texts, region)
    values: list[npt.NDArray[np.uint64]] = []
    reasons: list[npt.NDArray[np.uint8]] = []
    for start in range(0, len(texts), SLICE):
        if start:
            pause()
        part_values, part_reasons = normalizer.normalize_array(texts[start : start + SLICE], region)
        values.append(part_values)
        reasons.append(part_reasons)
    return np.concatenate(values), np.concatenate(reasons)


def _lookup(
    view: ListView,
    values: npt.NDArray[np.uint64],
    ints: list[int] | None,
    lists: Sequence[str],
    pause: Callable[[], None] | None,
) -> tuple[tuple[str, ...], npt.NDArray[np.uint64]]:
    """``view.lookup``, a slice at a time with ``pause()`` between slices."""
    if pause is None or len(values) <= LOOKUP_SLICE:
        return view.lookup(values, lists, ints)
    names: tuple[str, ...] = ()
    masks: list[npt.NDArray[np.uint64]] = []
    for start in range(0, len(values), LOOKUP_SLICE):
        if start:
            pause()
        end = start + LOOKUP_SLICE
        names, part = view.lookup(
            values[start:end], lists, None if ints is None else ints[start:end]
        )
        masks.append(part)
    return names, np.concatenate(masks)


def _check_small(
    view: ListView,
    e164: Sequence[int],
    texts: Sequence[str],
    region: str,
    lists: Sequence[str],
    normalizer: Normalizer | None,
    fail_closed: bool,
) -> CheckOutcome:
    """The scalar twin of the numpy path, for single numbers and small batches."""
    names, bitmaps = view.select(lists)
    decisions = [decide_one(value, bitmaps, fail_closed) for value in e164]
    normalized: list[int] = []
    for text in texts:
        assert normalizer is not None
        value, reason = normalizer.normalize(text, region)
        normalized.append(value)
        if reason:
            decisions.append((Verdict.INVALID, 0, reason))
        else:
            decisions.append((*_decide_valid(value, bitmaps, fail_closed), reason))
    verdicts: list[int] = []
    masks: list[int] = []
    invalid_reasons: dict[int, int] = {}
    verdict_counts = dict.fromkeys(_VERDICTS, 0)
    hits = [0] * len(names)
    for index, (verdict, mask, reason) in enumerate(decisions):
        if reason:
            invalid_reasons[index] = int(reason)
        elif mask:
            for bit in range(len(names)):
                hits[bit] += mask >> bit & 1
        verdict_counts[verdict] += 1
        verdicts.append(int(verdict))
        masks.append(mask)
    return CheckOutcome(
        verdicts,
        masks,
        names,
        invalid_reasons,
        normalized,
        view.version,
        verdict_counts,
        tuple(hits),
        fail_closed,
    )


class SingleOutcome(NamedTuple):
    """The answer for one number: what :class:`CheckOutcome` holds for a batch of one."""

    verdict: Verdict
    mask: int
    """The lists holding the number, one bit each over ``list_names``."""
    invalid_reason: InvalidReason
    """Why the number is invalid; VALID otherwise."""
    list_names: tuple[str, ...]
    version: Version
    failed_closed: bool


def decide_one(
    value: int, bitmaps: Sequence[BitMap64], fail_closed: bool
) -> tuple[Verdict, int, InvalidReason]:
    """One E.164 integer against the selected lists: the rule of every scalar path.

    Returns:
        The verdict; the bitmask of the lists that hold the number (0 when it
        is invalid or the answer failed closed); why it is invalid, or VALID.
    """
    reason = e164_reason(value)
    if reason:
        return Verdict.INVALID, 0, reason
    verdict, mask = _decide_valid(value, bitmaps, fail_closed)
    return verdict, mask, reason


def _decide_valid(
    value: int, bitmaps: Sequence[BitMap64], fail_closed: bool
) -> tuple[Verdict, int]:
    if fail_closed:
        return Verdict.SUPPRESSED, 0
    mask = 0
    for bit, bitmap in enumerate(bitmaps):
        if value in bitmap:
            mask |= 1 << bit
    return (Verdict.SUPPRESSED if mask else Verdict.ALLOWED), mask
