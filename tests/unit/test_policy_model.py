"""The whole policy decision against a plain-Python model, on random policies, data and times.

The model decides one number at a time with sets, dicts, ``datetime`` and
phonenumbers' own per-number time-zone lookup; the window is found by trying
every minute from the candidate time on, with :func:`window.is_open` (the
definition) as the only shared piece. Times are drawn around the 2026
daylight-saving changes in the US, and around 2026-06-15.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import phonenumbers
from hypothesis import given
from hypothesis import strategies as st
from phonenumbers import timezone as pn_timezone
from pyroaring import BitMap64

from suppression.policy.attempts import Attempt, AttemptLog
from suppression.policy.dated import DatedList
from suppression.policy.decide import PolicyVerdict, decide, rule_names
from suppression.policy.model import (
    Cap,
    CapScope,
    Exemption,
    NoData,
    NumberTypeRules,
    Policy,
    Reassigned,
    Window,
    WindowRule,
)
from suppression.policy.numbertypes import NumberTypes
from suppression.policy.prefixes import zone_table
from suppression.policy.window import is_open

EPOCH = dt.date(1970, 1, 1)
POOL = [
    12125550100,  # New York
    13125550100,  # Chicago
    16055550100,  # South Dakota: Denver and North Dakota/Center
    17755550100,  # Nevada: Boise and Los Angeles
    13055550100,  # Florida: a prefix override
    19005550100,  # a premium-rate number
    8613800138000,  # Shanghai
    88213000000,  # no zone at all
]
BASES = [
    int(dt.datetime(2026, 3, 8, 7, 0, tzinfo=dt.UTC).timestamp()),  # US spring forward
    int(dt.datetime(2026, 11, 1, 6, 0, tzinfo=dt.UTC).timestamp()),  # US fall back
    int(dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.UTC).timestamp()),
]
SUPPRESS = ("reg", "opt", "camp")
OPT_OUT = frozenset({"opt"})
TYPES = NumberTypes()


@dataclass
class NumberData:
    on: set[str] = field(default_factory=set)
    exemption_days: dict[str, int | None] = field(default_factory=dict)
    """Exemption list -> day (None: on the undated list)."""
    disconnected: int | None = None
    reassigned_undated: bool = False
    consent_day: int = -1
    attempts: list[int] = field(default_factory=list)


def _rules(draw: st.DrawFn, ranges: tuple[int, int]) -> WindowRule:
    start = draw(st.integers(0, 23 * 60))
    end = draw(st.integers(start + 1, 24 * 60))
    weekdays = draw(st.frozensets(st.integers(0, 6), min_size=1))
    base_day = ranges[0]
    quiet = draw(st.frozensets(st.integers(base_day - 2, base_day + 4), max_size=3))
    return WindowRule(start, end, weekdays, quiet)


@st.composite
def policies(draw: st.DrawFn, day: int) -> Policy:
    suppress = tuple(draw(st.permutations(SUPPRESS)))[: draw(st.integers(1, 3))]
    exemptions = []
    for list_name in draw(st.lists(st.sampled_from(["ex_dated", "ex_plain"]), unique=True)):
        lifts = tuple(draw(st.lists(st.sampled_from(suppress), min_size=1, unique=True)))
        duration = draw(st.sampled_from(["days", "months", "none"]))
        days = draw(st.integers(1, 400)) if duration == "days" else 0
        months = draw(st.integers(1, 24)) if duration == "months" else 0
        exemptions.append(Exemption(list_name, list_name, lifts, days, months))
    window = None
    if draw(st.booleans()):
        rule = _rules(draw, (day, day))
        prefixes = (("1305", _rules(draw, (day, day))),) if draw(st.booleans()) else ()
        zones = (("America/Chicago", _rules(draw, (day, day))),) if draw(st.booleans()) else ()
        unknown = ("Asia/Tokyo", "Europe/Paris") if draw(st.booleans()) else ()
        window = Window(rule, prefixes, zones, unknown)
    caps = []
    for scope in draw(st.lists(st.sampled_from(list(CapScope)), max_size=3)):
        caps.append(Cap(scope, draw(st.integers(1, 3)), draw(st.integers(60, 2 * 86400))))
    caps = list({cap.name: cap for cap in caps}.values())
    reassigned = None
    if draw(st.booleans()):
        reassigned = Reassigned(
            "gone", day - draw(st.integers(0, 300)), draw(st.sampled_from(list(NoData)))
        )
    types = NumberTypeRules()
    if draw(st.booleans()):
        types = NumberTypeRules(
            frozenset(draw(st.sets(st.sampled_from(["premium_rate", "toll_free"])))),
            frozenset(draw(st.sets(st.sampled_from(["mobile", "fixed_line_or_mobile"])))),
            ("ex_dated",),
        )
    zone = draw(st.sampled_from(["UTC", "America/New_York", "Asia/Shanghai"]))
    return Policy("p", suppress, tuple(exemptions), window, tuple(caps), reassigned, types, zone)


@st.composite
def numbers(draw: st.DrawFn, day: int, at: int) -> tuple[int, NumberData]:
    number = draw(st.sampled_from(POOL))
    data = NumberData()
    data.on = set(draw(st.sets(st.sampled_from(SUPPRESS))))
    for name in draw(st.sets(st.sampled_from(["ex_dated", "ex_plain"]))):
        data.exemption_days[name] = (
            None if name == "ex_plain" else draw(st.integers(day - 800, day + 2))
        )
    if draw(st.booleans()):
        if draw(st.integers(0, 5)) == 0:
            data.reassigned_undated = True
        else:
            data.disconnected = draw(st.integers(day - 400, day))
    data.consent_day = draw(st.sampled_from([-1, draw(st.integers(day - 500, day))]))
    data.attempts = sorted(draw(st.lists(st.integers(at - 3 * 86400, at), max_size=4)))
    return number, data


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Policy, int, list[tuple[int, NumberData]], list[int], str]:
    at = draw(st.sampled_from(BASES)) + draw(st.integers(-36 * 3600, 36 * 3600))
    day = at // 86400
    policy = draw(policies(day))
    batch = draw(st.lists(numbers(day, at), min_size=1, max_size=10))
    line_attempts = sorted(draw(st.lists(st.integers(at - 2 * 86400, at), max_size=4)))
    line = draw(st.sampled_from(["", "L1"]))
    return policy, at, batch, line_attempts, line


# -- the model ---------------------------------------------------------------------


def _today(at: int, zone: str) -> int:
    import zoneinfo

    return (dt.datetime.fromtimestamp(at, zoneinfo.ZoneInfo(zone)).date() - EPOCH).days


def _add_months(day: int, months: int) -> int:
    date = EPOCH + dt.timedelta(days=day)
    month_index = date.month - 1 + months
    year, month = date.year + month_index // 12, month_index % 12 + 1
    last = calendar.monthrange(year, month)[1]
    return (dt.date(year, month, min(date.day, last)) - EPOCH).days


def _exemption_holds(exemption: Exemption, recorded: int | None, today: int) -> bool:
    if not exemption.days and not exemption.months:
        return recorded is None or recorded <= today
    if recorded is None:
        return False
    if exemption.days:
        expiry = recorded + exemption.days
    else:
        expiry = _add_months(recorded, exemption.months)
    return recorded <= today < expiry


def _zones(number: int) -> tuple[str, ...]:
    parsed = phonenumbers.parse(f"+{number}")
    found = pn_timezone.time_zones_for_geographical_number(parsed)
    return () if found == ("Etc/Unknown",) else tuple(found)


def _model_window(policy: Policy, number: int, when: int) -> int | None:
    """The first instant at or after ``when`` inside the window; None: unknown zone; -1: never."""
    window = policy.window
    assert window is not None
    zones = _zones(number) or window.unknown_zones
    if not zones:
        return None
    rule_by_prefix = [r for digits, r in window.prefixes if str(number).startswith(digits)]
    pairs = tuple(
        (zone, rule_by_prefix[0] if rule_by_prefix else dict(window.zones).get(zone, window.rule))
        for zone in zones
    )
    if is_open(pairs, when):
        return when
    minute = -(-when // 60) * 60
    for step in range(400 * 1440):
        if is_open(pairs, minute + step * 60):
            return minute + step * 60
    return -1


def _model(
    policy: Policy, at: int, number: int, data: NumberData, line_attempts: list[int], line: str
) -> tuple[int, set[str], set[str], int]:
    today = _today(at, policy.date_zone)
    rules: set[str] = set()
    applied: set[str] = set()
    remaining = {name for name in policy.suppress if name in data.on}
    for exemption in policy.exemptions:
        if exemption.list_name not in data.exemption_days:
            continue
        if not _exemption_holds(exemption, data.exemption_days[exemption.list_name], today):
            continue
        lifted = {n for n in exemption.lifts if n in remaining and n not in OPT_OUT}
        if lifted:
            applied.add(exemption.name)
            remaining -= lifted
    rules |= {f"list.{name}" for name in remaining}
    check = policy.reassigned
    if check is not None and data.consent_day >= 0:
        if data.consent_day < check.data_begins:
            if check.no_data is NoData.SUPPRESS:
                rules.add("reassigned.no_data")
        elif data.reassigned_undated or (
            data.disconnected is not None and data.disconnected >= data.consent_day
        ):
            rules.add("reassigned")
    types = policy.number_types
    if not rules and (types.block or types.need_consent):
        kind = phonenumbers.number_type(phonenumbers.parse(f"+{number}"))
        name = {4: "premium_rate", 3: "toll_free", 1: "mobile", 2: "fixed_line_or_mobile"}.get(
            int(kind), "other"
        )
        if name in types.block:
            rules.add("number_type.blocked")
        needs = set(types.need_consent)
        if "mobile" in needs:
            needs.add("fixed_line_or_mobile")
        recorded = data.exemption_days.get("ex_dated", -(10**9))
        consented = "ex_dated" in data.exemption_days and (recorded is None or recorded <= today)
        if name in needs and not consented:
            rules.add("number_type.needs_consent")
    if rules:
        return PolicyVerdict.SUPPRESSED, rules, applied, 0
    when = at
    held = False
    for cap in policy.caps:
        if cap.scope is CapScope.NUMBER:
            times = data.attempts
        elif line:
            times = line_attempts
        else:
            continue
        inside = sorted(t for t in times if at - cap.seconds < t <= at)
        if len(inside) >= cap.limit:
            rules.add(cap.name)
            held = True
            when = max(when, inside[len(inside) - cap.limit] + cap.seconds)
    if policy.window is not None:
        opens = _model_window(policy, number, when)
        if opens is None:
            return PolicyVerdict.SUPPRESSED, {"window.unknown_zone"}, applied, 0
        if opens < 0:
            return PolicyVerdict.SUPPRESSED, {"window.never_opens"}, applied, 0
        if opens > when or _model_window(policy, number, at) != at:
            rules.add("window")
            held = True
        when = opens
    if held:
        return PolicyVerdict.DEFERRED, rules, applied, when
    return PolicyVerdict.ALLOWED, rules, applied, 0


# -- the test ----------------------------------------------------------------------


def _run(
    policy: Policy,
    at: int,
    batch: list[tuple[int, NumberData]],
    line_attempts: list[int],
    line: str,
) -> tuple[list[int], list[set[str]], list[set[str]], list[int]]:
    last: dict[int, NumberData] = dict(batch)
    values = np.array([number for number, _ in batch], dtype=np.uint64)
    masks = np.array(
        [
            sum(1 << j for j, name in enumerate(policy.suppress) if name in last[number].on)
            for number, _ in batch
        ],
        dtype=np.uint64,
    )
    dated: dict[int, int] = {}
    plain = BitMap64()
    gone: dict[int, int] = {}
    gone_undated = BitMap64()
    attempts: list[Attempt] = []
    for number, data in batch:
        # A number drawn twice keeps its last data, as a list would.
        day = data.exemption_days.get("ex_dated")
        dated.pop(number, None)
        plain.discard(number)
        if "ex_dated" in data.exemption_days and day is not None:
            dated[number] = day
        if "ex_plain" in data.exemption_days:
            plain.add(number)
        gone.pop(number, None)
        gone_undated.discard(number)
        if data.disconnected is not None and not data.reassigned_undated:
            gone[number] = data.disconnected
        if data.reassigned_undated:
            gone_undated.add(number)
    dated_list = DatedList.build(list(dated), list(dated.values()))
    gone_list = DatedList.build(list(gone), list(gone.values()))

    def list_days(name: str, looked: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if name == "ex_dated":
            days = dated_list.lookup(looked)
            return days >= 0, days
        if name == "ex_plain":
            on = np.array([int(v) in plain for v in looked], dtype=bool)
            return on, np.full(len(looked), -1, dtype=np.int32)
        assert name == "gone"
        days = gone_list.lookup(looked)
        undated = np.array([int(v) in gone_undated for v in looked], dtype=bool)
        return (days >= 0) | undated, np.where(undated, -1, days).astype(np.int32)

    for number, data in last.items():
        attempts += [Attempt(number, "", t) for t in data.attempts]
    attempts += [Attempt(1, "L1", t) for t in line_attempts]
    log = AttemptLog(10 * 86400).with_attempts(attempts)
    consent = np.array([last[number].consent_day for number, _ in batch], dtype=np.int32)
    decision = decide(
        policy,
        values,
        np.zeros(len(batch), dtype=bool),
        masks,
        at=at,
        list_days=list_days,
        attempts=log,
        zones=zone_table(),
        types=TYPES,
        consent_days=consent,
        line=line,
        opt_out=OPT_OUT,
    )
    names = decision.rule_names
    assert names == rule_names(policy)
    got_rules = [{n for j, n in enumerate(names) if int(r) >> j & 1} for r in decision.rules]
    got_ex = [
        {n for j, n in enumerate(decision.exemption_names) if int(e) >> j & 1}
        for e in decision.exemptions
    ]
    return decision.verdicts.tolist(), got_rules, got_ex, decision.earliest.tolist()


@given(scenarios())
def test_decision_matches_the_model(
    scenario: tuple[Policy, int, list[tuple[int, NumberData]], list[int], str],
) -> None:
    policy, at, batch, line_attempts, line = scenario
    # The model sees each number's last data, as the lists and the attempt log do.
    last = dict(batch)
    verdicts, rules, exemptions, earliest = _run(policy, at, batch, line_attempts, line)
    for index, (number, _) in enumerate(batch):
        want = _model(policy, at, number, last[number], line_attempts, line)
        got = (verdicts[index], rules[index], exemptions[index], earliest[index])
        assert got == want, f"number {number} at {at}: got {got}, model says {want}"
