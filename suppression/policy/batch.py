"""A batch under a policy: ``lookup_batch`` looks the numbers up, :func:`decide` decides.

The one path from a request to a policy answer: the Replica calls
:func:`check_with_policy` for ``Check``, ``CheckStream`` and ``suppression
check``, so they cannot drift apart. A scrub calls it the same way with the
view it answers from. The result is a :class:`CheckOutcome` like any other,
with DEFERRED among the verdicts, ``masks`` reduced to the lists that still
suppress after exemptions, and a :class:`PolicyAnswer` for the rest.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from pyroaring import BitMap64

from suppression import membership
from suppression.checker import CheckOutcome, Verdict, hits_per_bit, lookup_batch
from suppression.e164 import Normalizer
from suppression.errors import InvalidRequestError, NotReadyError
from suppression.lists import ListKind, ListView
from suppression.policy.attempts import MAX_TIME, AttemptLog
from suppression.policy.dated import DatedList
from suppression.policy.decide import decide
from suppression.policy.model import PolicySet
from suppression.policy.numbertypes import NumberTypes
from suppression.policy.prefixes import zone_table

__all__ = ["EMPTY_ATTEMPTS", "PolicyAnswer", "PolicyRequest", "check_with_policy"]

EMPTY_ATTEMPTS = AttemptLog(0)
_TYPES = NumberTypes()


@dataclass(frozen=True, slots=True)
class PolicyRequest:
    """What a request says about the policy decision."""

    name: str = ""
    """The policy; "" is the default policy."""
    at_ms: int = 0
    """The time to decide for, milliseconds since the epoch; 0 is now."""
    consent_days: Sequence[int] = ()
    """Per number, the consent day (days since 1970-01-01); 0: not given. Empty: none."""
    consent_day: int = 0
    """One consent day for the whole batch; 0: none."""
    calling_line: str = ""
    """The line the batch would be dialed from; "" checks no line caps."""

    @property
    def given(self) -> bool:
        """Whether the request asks for anything only a policy can answer."""
        return bool(
            self.name or self.at_ms or self.consent_days or self.consent_day or self.calling_line
        )


@dataclass(frozen=True, slots=True)
class PolicyAnswer:
    """The policy part of an answer: parallel per-number lists and their name tables."""

    policy: str
    version: str
    rules: list[int]
    rule_names: tuple[str, ...]
    exemptions: list[int]
    exemption_names: tuple[str, ...]
    earliest_ms: list[int]
    verdict_counts: dict[Verdict, int] = field(default_factory=dict)


def check_with_policy(
    view: ListView,
    policies: PolicySet,
    request: PolicyRequest,
    e164: Sequence[int] | npt.NDArray[np.uint64],
    texts: Sequence[str] = (),
    region: str = "",
    normalizer: Normalizer | None = None,
    *,
    lists: Sequence[str] = (),
    max_batch: int = 0,
    fail_closed: bool = False,
    dated: Mapping[str, DatedList] | None = None,
    attempts: AttemptLog = EMPTY_ATTEMPTS,
    now: float | None = None,
) -> CheckOutcome:
    """Decide a batch under the request's policy.

    Args:
        view: the data; the whole batch reads only this view.
        policies: the policies being served.
        request: which policy, when, consent days, calling line.
        e164: numbers as E.164 integers.
        texts: numbers as text.
        region: the validated default region for national forms.
        normalizer: parses ``texts``.
        lists: must be empty: the policy says which lists suppress.
        max_batch: refuse larger batches (0: no limit).
        fail_closed: every valid number SUPPRESSED (rule ``failed_closed``).
        dated: dated lists (a day per number) by name, from ``--dated-list`` files; they
            win over a list of the view of the same name. Other lists take their days
            from the view (``view.days``, from the change log and snapshots), if any.
        attempts: the attempts recorded so far.
        now: the current time in seconds (for tests); None reads the clock.

    Raises:
        InvalidRequestError: unknown policy, lists named with a policy, or
            consent days that are not parallel to the numbers.
        UnknownListError: a suppress list of the policy is not loaded.
        NotReadyError: the policy checks reassigned numbers and the list is not loaded.
    """
    if lists:
        raise InvalidRequestError(
            "a policy says which lists suppress: send no lists with a policy "
            "(or ask a server without --policy-file)"
        )
    try:
        policy = policies.get(request.name)
    except KeyError:
        known = ", ".join(sorted(policies.policies))
        raise InvalidRequestError(
            f"unknown policy {request.name[:64]!r}; policies: {known}"
        ) from None
    total = len(e164) + len(texts)
    if request.consent_days and len(request.consent_days) != total:
        raise InvalidRequestError(
            f"{len(request.consent_days):,} consent days for {total:,} numbers: give one per "
            "number (0 for none), or one consent_day for the batch"
        )
    if max_batch and total > max_batch:
        raise InvalidRequestError(
            f"batch of {total:,} numbers exceeds the maximum of {max_batch:,}; split it"
        )
    found = lookup_batch(
        view, e164, texts, region, policy.suppress, normalizer, fail_closed=fail_closed
    )
    consent = _consent_days(request, total)
    if (
        consent is not None
        and policy.reassigned is not None
        and policy.reassigned.list_name not in view.bitmaps
        and policy.reassigned.list_name not in (dated or {})
    ):
        raise NotReadyError(
            f"policy {policy.name!r} checks reassigned numbers against list "
            f"{policy.reassigned.list_name!r}, which this replica does not hold; load it"
        )
    at = request.at_ms // 1000 if request.at_ms else int(time.time() if now is None else now)
    if not 0 < at <= MAX_TIME:
        raise InvalidRequestError(
            f"decide_at_ms {request.at_ms} is not a time from 1970 to 2106 in milliseconds"
        )
    decision = decide(
        policy,
        found.values,
        found.invalid,
        found.masks,
        at=at,
        list_days=_ListDays(view, dated or {}),
        attempts=attempts,
        zones=zone_table(),
        types=_TYPES,
        consent_days=consent,
        line=request.calling_line,
        opt_out=frozenset(n for n, info in view.infos.items() if info.kind is ListKind.OPT_OUT),
        failed_closed=fail_closed,
    )
    list_bits = np.uint64((1 << len(policy.suppress)) - 1)
    masks = decision.rules & list_bits
    tally = np.bincount(decision.verdicts, minlength=len(Verdict) + 1)
    counts = {verdict: int(tally[verdict]) for verdict in Verdict}
    return CheckOutcome(
        verdict_array=decision.verdicts.astype(np.uint8),
        mask_array=masks,
        list_names=policy.suppress,
        invalid_reasons=found.invalid_reasons,
        normalized=found.normalized,
        version=view.version,
        verdict_counts=counts,
        hits_per_list=hits_per_bit(masks, len(policy.suppress)),
        failed_closed=fail_closed,
        policy=PolicyAnswer(
            policy=policy.name,
            version=policies.version,
            rules=decision.rules.tolist(),
            rule_names=decision.rule_names,
            exemptions=decision.exemptions.tolist(),
            exemption_names=decision.exemption_names,
            earliest_ms=(decision.earliest * 1000).tolist(),
            verdict_counts=counts,
        ),
    )


def _consent_days(request: PolicyRequest, total: int) -> npt.NDArray[np.int32] | None:
    """Consent days per number, -1 where none was given; None when none at all."""
    if request.consent_days:
        days = np.asarray(request.consent_days, dtype=np.int64)
    elif request.consent_day:
        days = np.full(total, request.consent_day, dtype=np.int64)
    else:
        return None
    if days.max(initial=0) > 65_535:
        raise InvalidRequestError("a consent day is after 2149: days count from 1970-01-01")
    return np.where(days > 0, days, -1).astype(np.int32)


class _ListDays:
    """Looks numbers up in a dated list file, a list of the view with days, or a plain list.

    A list of the view with days holds :data:`~suppression.policy.dated.NO_DAY`
    for numbers added without one: on the list, no day recorded, exactly as a
    plain list answers for all its numbers.
    """

    def __init__(self, view: ListView, dated: Mapping[str, DatedList]) -> None:
        self._view = view
        self._dated = dated

    def __call__(
        self, name: str, values: npt.NDArray[np.uint64]
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.int32]]:
        dated = self._dated.get(name)
        if dated is not None:
            days = dated.lookup(values)
            return days >= 0, days
        in_view = self._view.days.get(name)
        if in_view is not None:
            return self._members(in_view.bitmap, values), in_view.lookup(values)
        return self._members(self._view.bitmaps.get(name), values), np.full(
            len(values), -1, dtype=np.int32
        )

    def within(
        self, name: str, values: npt.NDArray[np.uint64], first: int | None, last: int
    ) -> npt.NDArray[np.bool_]:
        dated = self._dated.get(name)
        if dated is not None:
            return self._members(dated.on_days(-1 if first is None else first, last), values)
        in_view = self._view.days.get(name)
        if in_view is not None:
            # first None: any day up to last, or none recorded (as a plain list answers).
            window = in_view.on_days(-1 if first is None else first, last, undated=first is None)
            return self._members(window, values)
        if first is not None:  # a plain list records no day: it cannot prove one
            return np.zeros(len(values), dtype=bool)
        return self._members(self._view.bitmaps.get(name), values)

    @staticmethod
    def _members(bitmap: BitMap64 | None, values: npt.NDArray[np.uint64]) -> npt.NDArray[np.bool_]:
        if bitmap is None or not bitmap or not len(values):
            return np.zeros(len(values), dtype=bool)
        return membership.members(bitmap, values)
