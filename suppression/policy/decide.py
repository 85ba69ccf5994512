"""The policy decision over a batch: lists, exemptions, reassigned numbers, types, caps, windows.

Pure and vectorized: numpy arrays in, numpy arrays out, no Python object per
number. The lists were already looked up (``masks``, from
:func:`suppression.checker.check_batch`); what else a number needs (a dated
list's day, attempts, a time zone) is looked up in bulk here. Per number:

1. INVALID stays INVALID.
2. SUPPRESSED (never dial under this policy): on a suppress list that no
   exemption lifts (an opt-out list is never lifted); reassigned since the
   consent day, or no reassignment data for it where the policy says so; a
   blocked number type, or a type that needs consent without it; a zone that
   is unknown, or a window that does not open within a year.
3. DEFERRED (not now): an attempt cap reached, or outside the calling window
   in any zone the number may be in; ``earliest`` is the first instant at
   which every cap has freed and the window is open.
4. ALLOWED otherwise.

Every non-ALLOWED verdict carries the rules that decided it (a bitmask into
``rule_names``) and every exemption that lifted a list is reported (a bitmask
into ``exemption_names``), as the response's ``matched`` does for lists.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from suppression.policy.attempts import AttemptLog
from suppression.policy.model import CapScope, Exemption, NoData, Policy, WindowRule
from suppression.policy.numbertypes import TYPE_NAMES, NumberTypes
from suppression.policy.prefixes import PrefixTable, ZoneTable
from suppression.policy.window import Pairs, day_of, earliest_one, earliest_open

__all__ = [
    "FIXED_RULES",
    "Decision",
    "DayLookup",
    "ListDays",
    "PolicyVerdict",
    "decide",
    "exemption_expiry",
    "rule_names",
    "valid_days",
]

MAX_RULES = 64
"""Rules are one uint64 bitmask per number."""


class PolicyVerdict(enum.IntEnum):
    """The verdict under a policy; values match the wire enum."""

    ALLOWED = 1
    SUPPRESSED = 2
    INVALID = 3
    DEFERRED = 4


FIXED_RULES = (
    "failed_closed",
    "reassigned",
    "reassigned.no_data",
    "number_type.blocked",
    "number_type.needs_consent",
    "window.unknown_zone",
    "window.never_opens",
    "window",
)
"""Rules every policy has, after its ``list.<name>`` rules and before its caps."""

DayLookup = Callable[
    [str, npt.NDArray[np.uint64]], tuple[npt.NDArray[np.bool_], npt.NDArray[np.int32]]
]
"""Looks numbers up in a list: on it, and the day recorded (-1: the list holds no days)."""


@runtime_checkable
class ListDays(Protocol):
    """What the decision reads from exemption, consent and reassigned lists."""

    def __call__(
        self, name: str, values: npt.NDArray[np.uint64]
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.int32]]:
        """On the list, and the day recorded (-1: no day)."""

    def within(
        self, name: str, values: npt.NDArray[np.uint64], first: int | None, last: int
    ) -> npt.NDArray[np.bool_]:
        """On the list with a day in ``[first, last]``.

        ``first`` None: any day up to ``last``, or none recorded. The exemption
        check: one bitmap lookup per number where the lists can answer it so
        (see :meth:`DatedList.on_days`).
        """


class _FromCallable:
    """A :data:`DayLookup` function as :class:`ListDays`, ``within`` from the days."""

    def __init__(self, lookup: DayLookup) -> None:
        self._lookup = lookup

    def __call__(
        self, name: str, values: npt.NDArray[np.uint64]
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.int32]]:
        return self._lookup(name, values)

    def within(
        self, name: str, values: npt.NDArray[np.uint64], first: int | None, last: int
    ) -> npt.NDArray[np.bool_]:
        on, days = self._lookup(name, values)
        if first is None:
            return on & (days <= last)
        return on & (days >= first) & (days <= last)


@dataclass(frozen=True, slots=True)
class Decision:
    """One batch's answer under a policy: parallel per-number arrays."""

    verdicts: npt.NDArray[np.int32]
    rules: npt.NDArray[np.uint64]
    """Bit j: ``rule_names[j]`` decided this number's verdict."""
    rule_names: tuple[str, ...]
    exemptions: npt.NDArray[np.uint64]
    """Bit j: ``exemption_names[j]`` lifted a list for this number."""
    exemption_names: tuple[str, ...]
    earliest: npt.NDArray[np.int64]
    """UTC seconds from which a DEFERRED number may be dialed; 0 otherwise."""


def rule_names(policy: Policy) -> tuple[str, ...]:
    """The rule table of a policy: its suppress lists, the fixed rules, its caps."""
    return _compiled(policy).rule_names


def exemption_expiry(days: npt.NDArray[np.int64], exemption: Exemption) -> npt.NDArray[np.int64]:
    """The first day an exemption recorded on ``days`` no longer holds (max int64: never)."""
    if exemption.days:
        return days + exemption.days
    if not exemption.months:
        return np.full(len(days), np.iinfo(np.int64).max, dtype=np.int64)
    dates = days.astype("datetime64[D]")
    months = dates.astype("datetime64[M]")
    day_of_month = (dates - months.astype("datetime64[D]")).astype(np.int64)
    target = months + np.timedelta64(exemption.months, "M")
    first = target.astype("datetime64[D]")
    length = ((target + np.timedelta64(1, "M")).astype("datetime64[D]") - first).astype(np.int64)
    expiry: npt.NDArray[np.int64] = (first + np.minimum(day_of_month, length - 1)).astype(np.int64)
    return expiry


def decide(
    policy: Policy,
    values: npt.NDArray[np.uint64],
    invalid: npt.NDArray[np.bool_],
    masks: npt.NDArray[np.uint64],
    *,
    at: int,
    list_days: ListDays | DayLookup,
    attempts: AttemptLog,
    zones: ZoneTable,
    types: NumberTypes | None = None,
    consent_days: npt.NDArray[np.int32] | None = None,
    line: str = "",
    opt_out: frozenset[str] = frozenset(),
    failed_closed: bool = False,
) -> Decision:
    """Decide a batch under ``policy``.

    Args:
        policy: the policy.
        values: E.164 integers; 0 where invalid.
        invalid: True where the number is INVALID.
        masks: bit j set where the number is on ``policy.suppress[j]``.
        at: the time to decide for, UTC seconds.
        list_days: looks numbers up in exemption, consent and reassigned lists.
        attempts: the attempts recorded so far.
        zones: the time-zone table.
        types: number types; needed when the policy has number-type rules.
        consent_days: per number, the day the caller got consent (-1: not given).
        line: the calling line the batch would be dialed from ("": none).
        opt_out: lists that are opt-out lists in the data; never lifted, even
            if the policy file declares them otherwise.
        failed_closed: the data is too stale to trust: every valid number is
            SUPPRESSED (rule ``failed_closed``).
    """
    if not hasattr(list_days, "within"):
        list_days = _FromCallable(list_days)
    assert isinstance(list_days, ListDays | _FromCallable)
    compiled = _compiled(policy)
    bit = compiled.bit
    count = len(values)
    valid = ~invalid
    rules = np.zeros(count, dtype=np.uint64)
    applied = np.zeros(count, dtype=np.uint64)
    earliest = np.zeros(count, dtype=np.int64)
    verdicts = np.full(count, PolicyVerdict.ALLOWED, dtype=np.int32)
    verdicts[invalid] = PolicyVerdict.INVALID
    if failed_closed:
        rules[valid] = bit["failed_closed"]
        verdicts[valid] = PolicyVerdict.SUPPRESSED
        return compiled.decision(verdicts, rules, applied, earliest)
    today = day_of(at, policy.date_zone)
    remaining = np.where(valid, masks, np.uint64(0))
    _exempt(compiled, policy, values, remaining, applied, today, list_days, opt_out)
    rules |= remaining  # list rules are the first bits, in suppress order
    suppressed = remaining != 0
    if policy.reassigned is not None and consent_days is not None:
        _reassigned(policy, values, valid, consent_days, rules, suppressed, bit, list_days)
    rules_types = policy.number_types
    if rules_types.block or rules_types.need_consent:
        if types is None:
            raise ValueError("this policy has number-type rules: pass a NumberTypes")
        _number_types(compiled, policy, values, valid, suppressed, rules, types, today, list_days)
    open_ = np.flatnonzero(valid & ~suppressed)
    if len(open_) and (policy.caps or policy.window is not None):
        when = np.full(len(open_), at, dtype=np.int64)
        held = np.zeros(len(open_), dtype=bool)
        sub_rules = np.zeros(len(open_), dtype=np.uint64)
        _caps(policy, values[open_], at, line, attempts, when, held, sub_rules, bit)
        blocked = np.zeros(len(open_), dtype=bool)
        if policy.window is not None:
            _windows(compiled, values[open_], at, zones, when, held, blocked, sub_rules, bit)
        rules[open_] |= sub_rules
        suppressed[open_[blocked]] = True
        deferred = open_[held & ~blocked]
        verdicts[deferred] = PolicyVerdict.DEFERRED
        earliest[deferred] = when[held & ~blocked]
    verdicts[suppressed & valid] = PolicyVerdict.SUPPRESSED
    return compiled.decision(verdicts, rules, applied, earliest)


class _Compiled:
    """What a policy needs per batch, built once per policy."""

    def __init__(self, policy: Policy) -> None:
        names = [f"list.{name}" for name in policy.suppress]
        names += FIXED_RULES
        names += [cap.name for cap in policy.caps]
        if len(names) > MAX_RULES:
            raise ValueError(f"policy {policy.name!r} has {len(names)} rules; at most {MAX_RULES}")
        self.rule_names = tuple(names)
        self.bit = {name: np.uint64(1 << index) for index, name in enumerate(names)}
        self.exemption_names = tuple(e.name for e in policy.exemptions)
        self.lift_masks = [
            [policy.suppress.index(name) for name in e.lifts if name in policy.suppress]
            for e in policy.exemptions
        ]
        window = policy.window
        self.prefix_rules: tuple[WindowRule, ...] = ()
        self.prefix_table: PrefixTable | None = None
        self.zone_rules: dict[str, WindowRule] = {}
        if window is not None:
            self.prefix_rules = tuple(rule for _, rule in window.prefixes)
            self.prefix_table = PrefixTable(
                {digits: index for index, (digits, _) in enumerate(window.prefixes)}
            )
            self.zone_rules = dict(window.zones)
        self.window = window
        self._pairs: dict[tuple[int, int], Pairs | None] = {}
        type_codes = {name: code for code, name in TYPE_NAMES.items()}
        rules = policy.number_types
        self.blocked_types = np.array([type_codes[t] for t in rules.block], dtype=np.int16)
        need = set(rules.need_consent)
        if "mobile" in need:
            need.add("fixed_line_or_mobile")  # it may be a mobile: ask for consent
        self.consent_types = np.array([type_codes[t] for t in need], dtype=np.int16)

    def pairs(self, zone_set: int, prefix: int, zones: ZoneTable) -> Pairs | None:
        """The (zone, rule) pairs a number with this zone set and prefix override must satisfy."""
        key = (zone_set, prefix)
        if key not in self._pairs:
            assert self.window is not None
            if zone_set >= 0:
                names: tuple[str, ...] = zones.zone_sets[zone_set]
            else:
                names = self.window.unknown_zones
            if not names:
                self._pairs[key] = None
            else:
                rules = [
                    self.prefix_rules[prefix]
                    if prefix >= 0
                    else self.zone_rules.get(name, self.window.rule)
                    for name in names
                ]
                self._pairs[key] = tuple(sorted(zip(names, rules, strict=True), key=lambda p: p[0]))
        return self._pairs[key]

    def decision(
        self,
        verdicts: npt.NDArray[np.int32],
        rules: npt.NDArray[np.uint64],
        applied: npt.NDArray[np.uint64],
        earliest: npt.NDArray[np.int64],
    ) -> Decision:
        return Decision(verdicts, rules, self.rule_names, applied, self.exemption_names, earliest)


@functools.lru_cache(maxsize=256)
def _compiled(policy: Policy) -> _Compiled:
    return _Compiled(policy)


def _exempt(
    compiled: _Compiled,
    policy: Policy,
    values: npt.NDArray[np.uint64],
    remaining: npt.NDArray[np.uint64],
    applied: npt.NDArray[np.uint64],
    today: int,
    list_days: ListDays,
    opt_out: frozenset[str],
) -> None:
    """Clear the list bits each holding exemption lifts; record the exemptions that lifted one."""
    for index, exemption in enumerate(policy.exemptions):
        mask = 0
        for position in compiled.lift_masks[index]:
            if policy.suppress[position] not in opt_out:
                mask |= 1 << position
        if not mask:
            continue
        lift = np.uint64(mask)
        candidates = np.flatnonzero(remaining & lift)
        if not len(candidates):
            continue
        first, last = valid_days(exemption, today)
        holds = list_days.within(exemption.list_name, values[candidates], first, last)
        chosen = candidates[holds]
        remaining[chosen] &= ~lift
        applied[chosen] |= np.uint64(1 << index)


def valid_days(exemption: Exemption, today: int) -> tuple[int | None, int]:
    """The recorded days ``[first, last]`` on which an exemption holds ``today``.

    ``first`` None: any day up to today, or none recorded (until revoked). A
    time-limited exemption needs a recorded day: ``day <= today < expiry(day)``,
    and since the expiry never decreases as the day grows, that is a range.
    """
    if not exemption.days and not exemption.months:
        return None, today
    if exemption.days:
        return today - exemption.days + 1, today
    candidates = np.arange(today - 31 * exemption.months - 2, today + 1, dtype=np.int64)
    holding = candidates[exemption_expiry(candidates, exemption) > today]
    return (int(holding[0]) if len(holding) else today + 1), today


def _reassigned(
    policy: Policy,
    values: npt.NDArray[np.uint64],
    valid: npt.NDArray[np.bool_],
    consent_days: npt.NDArray[np.int32],
    rules: npt.NDArray[np.uint64],
    suppressed: npt.NDArray[np.bool_],
    bit: Mapping[str, np.uint64],
    list_days: ListDays,
) -> None:
    check = policy.reassigned
    assert check is not None
    asked = valid & (consent_days >= 0)
    no_data = asked & (consent_days < check.data_begins)
    if check.no_data is NoData.SUPPRESS:
        rules[no_data] |= bit["reassigned.no_data"]
        suppressed |= no_data
    looked = np.flatnonzero(asked & ~no_data)
    if not len(looked):
        return
    on, days = list_days(check.list_name, values[looked])
    # Disconnected on or after the consent day; an entry without a day counts (fail closed).
    reassigned = on & ((days < 0) | (days >= consent_days[looked]))
    hit = looked[reassigned]
    rules[hit] |= bit["reassigned"]
    suppressed[hit] = True


def _number_types(
    compiled: _Compiled,
    policy: Policy,
    values: npt.NDArray[np.uint64],
    valid: npt.NDArray[np.bool_],
    suppressed: npt.NDArray[np.bool_],
    rules: npt.NDArray[np.uint64],
    types: NumberTypes,
    today: int,
    list_days: ListDays,
) -> None:
    asked = np.flatnonzero(valid & ~suppressed)
    if not len(asked):
        return
    kinds = types.lookup(values[asked])
    blocked = asked[np.isin(kinds, compiled.blocked_types)]
    rules[blocked] |= compiled.bit["number_type.blocked"]
    suppressed[blocked] = True
    need = asked[np.isin(kinds, compiled.consent_types)]
    if not len(need):
        return
    consented = np.zeros(len(need), dtype=bool)
    for name in policy.number_types.consent_lists:
        consented |= list_days.within(name, values[need], None, today)
    lacking = need[~consented]
    rules[lacking] |= compiled.bit["number_type.needs_consent"]
    suppressed[lacking] = True


def _caps(
    policy: Policy,
    values: npt.NDArray[np.uint64],
    at: int,
    line: str,
    attempts: AttemptLog,
    when: npt.NDArray[np.int64],
    held: npt.NDArray[np.bool_],
    rules: npt.NDArray[np.uint64],
    bit: Mapping[str, np.uint64],
) -> None:
    instants = np.full(len(values), at, dtype=np.int64)
    for cap in policy.caps:
        if cap.scope is CapScope.NUMBER:
            counts, frees = attempts.number_counts(values, instants, cap.seconds, cap.limit)
            hit = counts >= cap.limit
            rules[hit] |= bit[cap.name]
            held |= hit
            np.maximum(when, np.where(hit, frees, 0), out=when)
        elif line:
            line_count, free = attempts.line_count(line, at, cap.seconds, cap.limit)
            if line_count >= cap.limit:
                rules |= bit[cap.name]
                held[:] = True
                np.maximum(when, free, out=when)


def _windows(
    compiled: _Compiled,
    values: npt.NDArray[np.uint64],
    at: int,
    zones: ZoneTable,
    when: npt.NDArray[np.int64],
    held: npt.NDArray[np.bool_],
    blocked: npt.NDArray[np.bool_],
    rules: npt.NDArray[np.uint64],
    bit: Mapping[str, np.uint64],
) -> None:
    """Window rules for a batch: one answer per distinct (zone set, prefix override).

    A batch holds a few dozen such keys at most, so each key's earliest opening
    after ``at`` is computed once and gathered back; only numbers that a cap
    holds past ``at`` (few) are asked one key at a time.
    """
    zone_sets = zones.lookup(values)
    assert compiled.prefix_table is not None
    prefixes = compiled.prefix_table.lookup(values)
    width = len(compiled.prefix_rules) + 1
    # Keys are small (zone sets times overrides): a dense table, no sort.
    keys = (zone_sets.astype(np.intp) + 1) * width + (prefixes.astype(np.intp) + 1)
    present = np.flatnonzero(np.bincount(keys)).tolist()
    pairs_of = {k: compiled.pairs(k // width - 1, k % width - 1, zones) for k in present}
    # -2: unknown zone; -1: never opens; else the earliest opening at or after ``at``.
    key_opens = np.zeros(present[-1] + 1, dtype=np.int64)
    for key, pairs in pairs_of.items():
        key_opens[key] = -2 if pairs is None else earliest_one(pairs, at)
    now_opens = key_opens[keys]
    opens = now_opens.copy()
    later = np.flatnonzero((when > at) & (opens >= 0))
    if len(later):
        for key in np.unique(keys[later]).tolist():
            members = later[keys[later] == key]
            pairs = pairs_of[key]
            assert pairs is not None
            opens[members] = earliest_open(pairs, when[members])
    # A SUPPRESSED number carries the rule that suppressed it, not the caps it also hit.
    unknown = opens == -2
    rules[unknown] = bit["window.unknown_zone"]
    never = opens == -1
    rules[never] = bit["window.never_opens"]
    blocked |= unknown | never
    fine = ~(unknown | never)
    moved = fine & ((now_opens != at) | (opens > when))
    rules[moved] |= bit["window"]
    held |= moved
    when[fine] = opens[fine]
