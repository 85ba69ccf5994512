"""The decision's edges: exemptions expiring on their day, caps rolling over, opt-outs."""

from __future__ import annotations

import datetime as dt
import random

import numpy as np
import pytest
from pyroaring import BitMap64

from suppression.policy import Attempt, AttemptLog, DatedList, PolicyVerdict, decide
from suppression.policy.decide import Decision, exemption_expiry
from suppression.policy.model import (
    Cap,
    CapScope,
    Exemption,
    NumberTypeRules,
    Policy,
    Reassigned,
)
from suppression.policy.numbertypes import NumberTypes
from suppression.policy.prefixes import PrefixTable, zone_table

EPOCH = dt.date(1970, 1, 1)
NY_NUMBER = 12125550100


def day(text: str) -> int:
    return (dt.date.fromisoformat(text) - EPOCH).days


def utc(*args: int) -> int:
    return int(dt.datetime(*args, tzinfo=dt.UTC).timestamp())


def rules_of(decision: Decision, index: int = 0) -> set[str]:
    bits = int(decision.rules[index])
    return {name for j, name in enumerate(decision.rule_names) if bits >> j & 1}


def run(
    policy: Policy,
    at: int,
    *,
    on: int = 0b1,
    dated: dict[str, DatedList] | None = None,
    attempts: AttemptLog | None = None,
    consent_day: int = -1,
    opt_out: frozenset[str] = frozenset(),
    number: int = NY_NUMBER,
    line: str = "",
) -> Decision:
    lists = dated or {}

    def list_days(name: str, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        days = lists[name].lookup(values) if name in lists else np.full(len(values), -1, np.int32)
        return days >= 0, days

    return decide(
        policy,
        np.array([number], dtype=np.uint64),
        np.zeros(1, dtype=bool),
        np.array([on], dtype=np.uint64),
        at=at,
        list_days=list_days,
        attempts=attempts or AttemptLog(7 * 86_400),
        zones=zone_table(),
        types=NumberTypes(),
        consent_days=np.array([consent_day], dtype=np.int32),
        opt_out=opt_out,
        line=line,
    )


EBR_18 = Policy(
    "tsr",
    ("registry", "optout"),
    (Exemption("ebr", "ebr", ("registry",), months=18),),
    date_zone="America/New_York",
)


def test_a_months_exemption_ends_on_its_day_with_the_month_end_clipped() -> None:
    # 18 months after 2025-05-31 is 2026-11-31, which does not exist: 2026-11-30.
    recorded = DatedList.build([NY_NUMBER], [day("2025-05-31")])
    before = run(EBR_18, utc(2026, 11, 30, 4, 59, 59), dated={"ebr": recorded})  # 23:59:59 EST
    assert before.verdicts.tolist() == [PolicyVerdict.ALLOWED]
    assert before.exemptions.tolist() == [1]
    edge = run(EBR_18, utc(2026, 11, 30, 5, 0), dated={"ebr": recorded})  # midnight in New York
    assert edge.verdicts.tolist() == [PolicyVerdict.SUPPRESSED]
    assert rules_of(edge) == {"list.registry"} and edge.exemptions.tolist() == [0]


def test_a_days_exemption_holds_until_the_day_before_its_edge() -> None:
    policy = Policy("p", ("registry",), (Exemption("ebr", "ebr", ("registry",), days=90),))
    recorded = DatedList.build([NY_NUMBER], [day("2026-01-01")])
    last = utc(2026, 3, 31, 23, 59, 59)  # 2026-01-01 + 89 days, UTC calendar
    assert run(policy, last, dated={"ebr": recorded}).verdicts.tolist() == [1]
    assert run(policy, last + 1, dated={"ebr": recorded}).verdicts.tolist() == [2]
    # Recorded tomorrow: not yet.
    early = DatedList.build([NY_NUMBER], [day("2026-04-02")])
    assert run(policy, last, dated={"ebr": early}).verdicts.tolist() == [2]


def test_expiry_matches_the_calendar() -> None:
    exemption = Exemption("e", "e", ("r",), months=1)
    days = np.array([day("2024-01-31"), day("2023-01-31"), day("2024-12-15")], dtype=np.int64)
    assert exemption_expiry(days, exemption).tolist() == [
        day("2024-02-29"),
        day("2023-02-28"),
        day("2025-01-15"),
    ]


def test_nothing_lifts_an_opt_out_list_even_if_the_policy_says_so() -> None:
    # A Policy built in code, past the file's check; the data says "optout" is an opt-out list.
    sneaky = Policy("p", ("registry", "optout"), (Exemption("c", "c", ("registry", "optout")),))
    consent = DatedList.build([NY_NUMBER], [day("2026-01-01")])
    decision = run(
        sneaky, utc(2026, 6, 1, 15, 0), on=0b11, dated={"c": consent}, opt_out=frozenset({"optout"})
    )
    assert decision.verdicts.tolist() == [PolicyVerdict.SUPPRESSED]
    assert rules_of(decision) == {"list.optout"}
    assert decision.exemptions.tolist() == [1]  # it did lift the registry


def test_a_cap_rolls_over_exactly_at_the_window_edge() -> None:
    policy = Policy("p", ("registry",), caps=(Cap(CapScope.NUMBER, 3, 86_400),))
    start = utc(2026, 6, 1, 12, 0)
    log = AttemptLog(7 * 86_400).with_attempts(
        [Attempt(NY_NUMBER, "L", start + k * 3600) for k in range(3)]
    )
    held = run(policy, start + 86_400 - 1, on=0, attempts=log)
    assert held.verdicts.tolist() == [PolicyVerdict.DEFERRED]
    assert held.earliest.tolist() == [start + 86_400]
    assert rules_of(held) == {"cap.number.3_per_86400s"}
    free = run(policy, start + 86_400, on=0, attempts=log)
    assert free.verdicts.tolist() == [PolicyVerdict.ALLOWED]
    assert free.earliest.tolist() == [0]


def test_a_line_cap_defers_the_whole_batch_and_window_and_cap_combine() -> None:
    from suppression.policy.model import Window, WindowRule

    policy = Policy(
        "p",
        ("registry",),
        window=Window(WindowRule(8 * 60, 21 * 60)),
        caps=(Cap(CapScope.LINE, 2, 3600),),
    )
    at = utc(2026, 6, 2, 0, 30)  # 20:30 EDT
    log = AttemptLog(86_400).with_attempts(
        [Attempt(1, "sim-7", at - 1800), Attempt(2, "sim-7", at - 60)]
    )
    decision = run(policy, at, on=0, attempts=log, line="sim-7")
    # The cap frees at 21:00 EDT, when the window has closed: 08:00 EDT the next morning.
    assert decision.verdicts.tolist() == [PolicyVerdict.DEFERRED]
    assert rules_of(decision) == {"cap.line.2_per_3600s", "window"}
    assert decision.earliest.tolist() == [utc(2026, 6, 2, 12, 0)]
    assert run(policy, at, on=0, attempts=log, line="sim-8").verdicts.tolist() == [1]


def test_reassigned_numbers_answer_as_the_fcc_database() -> None:
    policy = Policy("p", ("registry",), reassigned=Reassigned("rnd", day("2021-01-27")))
    gone = DatedList.build([NY_NUMBER], [day("2025-06-01")])
    at = utc(2026, 6, 1, 15, 0)
    since = run(policy, at, on=0, dated={"rnd": gone}, consent_day=day("2025-06-01"))
    assert rules_of(since) == {"reassigned"}
    before = run(policy, at, on=0, dated={"rnd": gone}, consent_day=day("2025-06-02"))
    assert before.verdicts.tolist() == [PolicyVerdict.ALLOWED]
    no_data = run(policy, at, on=0, dated={"rnd": gone}, consent_day=day("2020-12-31"))
    assert rules_of(no_data) == {"reassigned.no_data"}
    not_asked = run(policy, at, on=0, dated={"rnd": gone})
    assert not_asked.verdicts.tolist() == [PolicyVerdict.ALLOWED]


def test_number_types_block_and_need_consent() -> None:
    policy = Policy(
        "p",
        ("registry",),
        number_types=NumberTypeRules(
            frozenset({"premium_rate"}), frozenset({"mobile"}), ("consent",)
        ),
    )
    at = utc(2026, 6, 1, 15, 0)
    assert rules_of(run(policy, at, on=0, number=19005550100)) == {"number_type.blocked"}
    # A US number may be a mobile: it needs consent.
    assert rules_of(run(policy, at, on=0)) == {"number_type.needs_consent"}
    consent = DatedList.build([NY_NUMBER], [day("2026-01-01")])
    assert run(policy, at, on=0, dated={"consent": consent}).verdicts.tolist() == [1]
    assert run(policy, at, on=0, number=18005550100).verdicts.tolist() == [1]  # toll free


def test_a_failed_closed_batch_is_suppressed_with_its_rule() -> None:
    decision = decide(
        Policy("p", ("registry",)),
        np.array([NY_NUMBER, 0], dtype=np.uint64),
        np.array([False, True]),
        np.zeros(2, dtype=np.uint64),
        at=utc(2026, 6, 1),
        list_days=lambda name, v: (np.zeros(len(v), bool), np.full(len(v), -1, np.int32)),
        attempts=AttemptLog(1),
        zones=zone_table(),
        failed_closed=True,
    )
    assert decision.verdicts.tolist() == [PolicyVerdict.SUPPRESSED, PolicyVerdict.INVALID]
    assert rules_of(decision) == {"failed_closed"} and rules_of(decision, 1) == set()


# -- the stores --------------------------------------------------------------------------


def test_dated_lists_look_up_as_a_dict_and_replace_days() -> None:
    rng = random.Random(3)
    truth = {rng.randrange(10**10, 2 * 10**10): rng.randrange(20_000, 21_000) for _ in range(5000)}
    dated = DatedList.build(list(truth), list(truth.values()))
    probe = list(truth)[:100] + [rng.randrange(10**10, 2 * 10**10) for _ in range(100)] + [0]
    got = dated.lookup(np.array(probe, dtype=np.uint64)).tolist()
    assert got == [truth.get(n, -1) for n in probe]
    first = probe[0]
    later = dated.with_days([first, first], [1, 2]).without([probe[1]])
    assert later.lookup(np.array([first, probe[1]], dtype=np.uint64)).tolist() == [2, -1]
    assert dated.lookup(np.array([first], dtype=np.uint64)).tolist() == [truth[first]]
    with pytest.raises(ValueError, match="days must be"):
        dated.with_days([first], [70_000])


def test_a_dated_list_costs_a_plain_list_plus_two_bytes_a_number() -> None:
    rng = np.random.default_rng(7)
    numbers = np.unique(rng.integers(12_000_000_000, 12_100_000_000, 200_000, dtype=np.uint64))
    days = rng.integers(day("2024-11-25"), day("2026-11-25"), len(numbers))
    dated = DatedList.build(numbers, days)
    plain = BitMap64(numbers.tolist())
    stats = plain.get_statistics()
    plain_bytes = sum(stats[k] for k in stats if k.startswith("n_bytes_"))
    assert dated.nbytes() <= plain_bytes + 2 * len(numbers)


def test_attempts_prune_by_their_own_times() -> None:
    log = AttemptLog(3600).with_attempts([Attempt(5, "a", 1000), Attempt(5, "a", 2000)])
    assert len(log) == 2
    later = log.with_attempts([Attempt(6, "b", 4601)])
    assert len(later) == 2 and set(later.lines) == {"a", "b"}  # 1000 is older than 4601 - 3600
    counts, frees = later.number_counts(
        np.array([5, 6, 7], dtype=np.uint64), np.array([4601] * 3, dtype=np.int64), 3600, 1
    )
    assert counts.tolist() == [1, 1, 0]
    assert frees.tolist() == [2000 + 3600, 4601 + 3600, 0]


def test_prefix_tables_take_the_longest_prefix() -> None:
    table = PrefixTable({"1": 0, "1305": 1, "13055": 2, "86": 3})
    numbers = np.array(
        [13055550100, 13045550100, 13065550100, 8613800138000, 447700900000, 0], dtype=np.uint64
    )
    assert table.lookup(numbers).tolist() == [2, 0, 0, 3, -1, -1]
    zones = zone_table()
    found = zones.lookup(np.array([16055550100], dtype=np.uint64))[0]
    assert zones.zone_sets[found] == ("America/Denver", "America/North_Dakota/Center")


def test_on_days_holds_the_numbers_of_a_day_range() -> None:
    rng = random.Random(5)
    truth = {rng.randrange(10**10, 2 * 10**10): rng.randrange(100, 200) for _ in range(3000)}
    dated = DatedList.build(list(truth), list(truth.values()))
    for first, last in [(120, 150), (-1, 199), (150, 150), (201, 300)]:
        inside = dated.on_days(first, last)
        assert set(inside) == {n for n, d in truth.items() if first <= d <= last}
        assert dated.on_days(first, last) is inside  # cached
    assert dated.on_days(-1, 500) is dated.bitmap  # every day inside: the list itself


def test_the_served_lookup_agrees_with_the_days() -> None:
    from suppression.lists import ListInfo, ListKind, SuppressionLists
    from suppression.policy.batch import _ListDays

    rng = random.Random(9)
    truth = {rng.randrange(10**10, 2 * 10**10): rng.randrange(100, 200) for _ in range(500)}
    plain = BitMap64(list(truth)[:100])
    view = SuppressionLists({"plain": plain}, infos=[ListInfo("plain", ListKind.CAMPAIGN)]).view
    lookup = _ListDays(view, {"dated": DatedList.build(list(truth), list(truth.values()))})
    probe = np.array(
        list(truth)[:200] + [rng.randrange(10**10, 2 * 10**10) for _ in range(50)], dtype=np.uint64
    )
    on, days = lookup("dated", probe)
    assert days.tolist() == [truth.get(int(n), -1) for n in probe]
    for first, last in [(None, 150), (130, 160)]:
        want = on & (days <= last) & (days >= (-1 if first is None else first))
        assert lookup.within("dated", probe, first, last).tolist() == want.tolist()
    plain_on, plain_days = lookup("plain", probe)
    assert plain_on.tolist() == [int(n) in plain for n in probe] and set(plain_days.tolist()) == {
        -1
    }
    assert lookup.within("plain", probe, None, 150).tolist() == plain_on.tolist()
    assert not lookup.within("plain", probe, 100, 150).any()  # no day: cannot prove a range
    assert not lookup.within("missing", probe, None, 150).any()
