"""The change-log entry format, its validation, the consent rule and batch planning."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from suppression.changelog.planning import plan_batch
from suppression.changelog.streaminfo import StreamInfo
from suppression.entries import (
    FORMAT_VERSION,
    MAX_NUMBERS_PER_ENTRY,
    Entry,
    InvalidEntryError,
    decode_entry,
    encode_entry,
    validate_entries,
    validate_entry,
)
from suppression.errors import ConsentRequiredError
from suppression.lists import LIST_OPS, ListInfo, ListKind, Op, SuppressionLists, Version

CN = 8613800138000
US = 12125550123


def raw(entry: Entry) -> dict[bytes, bytes]:
    return {k.encode(): v.encode() for k, v in encode_entry(entry).items()}


def test_round_trip_numbers_and_ranges() -> None:
    add = Entry(
        Op.ADD,
        "internal",
        ListKind.OPT_OUT,
        "in_call",
        (CN, US),
        actor="agent-7",
        evidence="rec-1",
        timestamp_ms=1_700_000_000_000,
        producer="test",
    )
    fields = encode_entry(add)
    assert fields["v"] == str(FORMAT_VERSION)
    assert fields["numbers"] == f"{CN},{US}"
    assert decode_entry(raw(add)) == add
    block = Entry(
        Op.ADD_RANGE,
        "premium",
        ListKind.CAMPAIGN,
        "complaint",
        (),
        19000000000,
        19009999999,
        timestamp_ms=5,
    )
    assert decode_entry(raw(block)) == block
    assert block.count == 10_000_000
    assert "+1900" in block.describe() and "9999" not in block.describe()[:12]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"v": "3"}, "format version '3'"),
        ({"v": None}, "format version None"),
        ({"op": "explode"}, "explode"),
        ({"list": None}, "no 'list' field"),
        ({"list": "bad name!"}, "list name"),
        ({"source": "In Call"}, "source"),
        ({"source": None}, "no 'source' field"),
        ({"numbers": "12125550123,abc"}, "malformed number field"),
        ({"numbers": "+12125550123"}, "malformed number field"),
        ({"numbers": "12125550123,999"}, "not valid E.164"),
        ({"numbers": "12125550123,1234567890123456"}, "more than 15 digits"),
        ({"numbers": "12125550123,,12125550124"}, "malformed number field"),
        ({"numbers": None}, "no 'numbers' field"),
        ({"kind": "friends"}, "friends"),
        ({"evidence": "x" * 501}, "at most 500"),
    ],
)
def test_malformed_entries_are_refused_with_the_reason(
    change: dict[str, str | None], message: str
) -> None:
    fields = encode_entry(Entry(Op.ADD, "internal", ListKind.OPT_OUT, "app", (US,)))
    for key, value in change.items():
        if value is None:
            fields.pop(key, None)
        else:
            fields[key] = value
    with pytest.raises(InvalidEntryError, match=message):
        decode_entry(fields)


def test_ranges_are_checked() -> None:
    def entry(first: int, last: int) -> Entry:
        return Entry(Op.ADD_RANGE, "blocks", ListKind.CAMPAIGN, "app", (), first, last)

    with pytest.raises(InvalidEntryError, match="is after"):
        validate_entry(entry(19009999999, 19000000000))
    with pytest.raises(InvalidEntryError, match="exceeds"):
        validate_entry(entry(10000000000, 19999999999))
    with pytest.raises(InvalidEntryError, match="not a valid E.164"):
        validate_entry(entry(999, 1000))
    validate_entry(entry(19000000000, 19009999999))


def test_entry_size_is_bounded() -> None:
    numbers = tuple(range(12000000000, 12000000000 + MAX_NUMBERS_PER_ENTRY + 1))
    with pytest.raises(InvalidEntryError, match="split"):
        validate_entry(Entry(Op.ADD, "big", ListKind.REGISTRY, "registry", numbers))


@pytest.mark.parametrize("op", [Op.REMOVE, Op.REMOVE_RANGE])
@pytest.mark.parametrize(
    ("source", "evidence"), [("app", "ticket-1"), ("consent", ""), ("customer_service", "")]
)
def test_opt_out_removal_needs_consent_and_evidence(op: Op, source: str, evidence: str) -> None:
    first, last, numbers = (
        (19000000000, 19000000009, ()) if op is Op.REMOVE_RANGE else (0, -1, (CN,))
    )
    entry = Entry(op, "internal", ListKind.OPT_OUT, source, numbers, first, last, evidence=evidence)
    with pytest.raises(ConsentRequiredError, match="only through source 'consent'"):
        validate_entry(entry)
    allowed = Entry(
        op, "internal", ListKind.OPT_OUT, "consent", numbers, first, last, evidence="signed-form-42"
    )
    validate_entry(allowed)


def test_the_list_kind_wins_over_the_kind_an_entry_claims() -> None:
    sneaky = Entry(Op.REMOVE, "internal", ListKind.CAMPAIGN, "app", (CN,))
    validate_entry(sneaky)  # a campaign list may lose numbers for any reason
    with pytest.raises(ConsentRequiredError):
        validate_entry(sneaky, ListKind.OPT_OUT)
    with pytest.raises(ConsentRequiredError):
        decode_entry(raw(sneaky), ListKind.OPT_OUT)


def test_plan_batch_dead_letters_bad_entries_and_keeps_good_ones() -> None:
    infos = {"internal": ListInfo("internal", ListKind.OPT_OUT)}
    good = Entry(Op.ADD, "internal", ListKind.OPT_OUT, "in_call", (CN,))
    no_consent = Entry(Op.REMOVE, "internal", ListKind.CAMPAIGN, "app", (CN,))
    new_list = Entry(Op.ADD, "spring", ListKind.OPT_OUT, "app", (US,))
    # The list is created as opt_out earlier in the same batch, so the rule holds already.
    new_list_removal = Entry(Op.REMOVE, "spring", ListKind.CAMPAIGN, "app", (US,))
    entries = [
        ("1-0", raw(good)),
        ("1-1", {b"garbage": b"yes"}),
        ("1-2", raw(no_consent)),
        ("2-0", raw(new_list)),
        ("2-1", raw(new_list_removal)),
    ]
    plan = plan_batch(entries, infos)
    assert plan.last_id == "2-1"
    assert [d.entry_id for d in plan.dead] == ["1-1", "1-2", "2-1"]
    assert "format version" in plan.dead[0].reason
    assert "consent" in plan.dead[1].reason
    assert [c.list_name for c in plan.changes] == ["internal", "spring"]
    assert plan.numbers_by_op == {"add": 2}
    lists = SuppressionLists(infos=infos.values())
    lists.apply(plan.changes, Version.parse(plan.last_id))
    assert CN in lists.view.bitmaps["internal"] and US in lists.view.bitmaps["spring"]
    assert lists.view.infos["spring"].kind is ListKind.OPT_OUT


def test_stream_info_gap_detection() -> None:
    at = Version(100, 0)
    assert not StreamInfo().missing_after(at)
    untouched = StreamInfo(True, 5, 5, Version(200, 0), Version(50, 0), Version())
    assert not untouched.missing_after(Version())
    trimmed = StreamInfo(True, 3, 5, Version(200, 0), Version(150, 0), Version())
    assert trimmed.missing_after(at)
    assert not trimmed.missing_after(Version(150, 0))
    deleted = StreamInfo(True, 4, 5, Version(200, 0), Version(50, 0), Version(120, 0))
    assert deleted.missing_after(at)
    assert not deleted.missing_after(Version(120, 0))


NUMBERS = st.sampled_from([CN, US, 12125550124, 8613912345678, 19005550199])
OPS = st.tuples(
    st.sampled_from([Op.ADD, Op.REMOVE, Op.ADD_RANGE, Op.REMOVE_RANGE]),
    st.sampled_from(["internal", "spring"]),
    st.lists(NUMBERS, min_size=1, max_size=4),
    st.sampled_from(["app", "consent"]),
    st.booleans(),
)


@given(st.lists(st.lists(OPS, min_size=1, max_size=6), max_size=8))
def test_planned_batches_match_a_set_model(batches: list[list[tuple]]) -> None:
    infos = [ListInfo("internal", ListKind.OPT_OUT), ListInfo("spring", ListKind.CAMPAIGN)]
    lists = SuppressionLists(infos=infos)
    model: dict[str, set[int]] = {"internal": set(), "spring": set()}
    sequence = 0
    for batch in batches:
        entries = []
        for op, name, numbers, source, with_evidence in batch:
            sequence += 1
            kind = ListKind.OPT_OUT if name == "internal" else ListKind.CAMPAIGN
            evidence = "ev-1" if with_evidence else ""
            if op in (Op.ADD_RANGE, Op.REMOVE_RANGE):
                first = min(numbers)
                entry = Entry(op, name, kind, source, (), first, first + 2, evidence=evidence)
                affected = {first, first + 1, first + 2}
            else:
                entry = Entry(op, name, kind, source, tuple(numbers), evidence=evidence)
                affected = set(numbers)
            entries.append((f"{sequence}-0", raw(entry)))
            removal = op in (Op.REMOVE, Op.REMOVE_RANGE)
            if removal and kind is ListKind.OPT_OUT and not (source == "consent" and evidence):
                continue  # dead-lettered: the model does not change
            if removal:
                model[name] -= affected
            else:
                model[name] |= affected
        plan = plan_batch(entries, lists.view.infos)
        lists.apply(plan.changes, Version.parse(plan.last_id))
    for name, expected in model.items():
        assert set(lists.view.bitmaps[name]) == expected


def test_large_entries_are_validated_in_bulk() -> None:
    numbers = tuple(range(12125550000, 12125550100))
    validate_entry(Entry(Op.ADD, "national", ListKind.REGISTRY, "registry", numbers))
    broken = (*numbers[:50], 999, *numbers[50:], 1234)
    with pytest.raises(InvalidEntryError, match=r"2 number\(s\) are not valid E.164"):
        validate_entry(Entry(Op.ADD, "national", ListKind.REGISTRY, "registry", broken))


def test_long_number_fields_are_parsed_in_bulk_and_still_strictly() -> None:
    numbers = tuple(range(12125550000, 12125550200))
    fields = encode_entry(Entry(Op.ADD, "national", ListKind.REGISTRY, "registry", numbers))
    assert decode_entry(fields).numbers == numbers
    for tail in (",99999999999999999999999", ",1234567890123456"):
        with pytest.raises(InvalidEntryError, match="more than 15 digits"):
            decode_entry({**fields, "numbers": fields["numbers"] + tail})
    with pytest.raises(InvalidEntryError, match="separated by commas"):
        decode_entry({**fields, "numbers": fields["numbers"] + ",12125550123 "})


batch_entries = st.lists(
    st.builds(
        Entry,
        op=st.sampled_from(LIST_OPS),
        list_name=st.sampled_from(["internal", "spring", "new"]),
        kind=st.sampled_from(list(ListKind)),
        source=st.sampled_from(["consent", "app"]),
        numbers=st.just((8613800138000,)),
        first=st.just(0),
        last=st.just(-1),
        evidence=st.sampled_from(["", "form-17"]),
    ).map(
        lambda e: (
            Entry(
                e.op,
                e.list_name,
                e.kind,
                e.source,
                (),
                12125550100,
                12125550199,
                evidence=e.evidence,
            )  # fmt: skip
            if e.op in (Op.ADD_RANGE, Op.REMOVE_RANGE)
            else e
        )
    ),
    max_size=6,
)


@given(batch_entries)
def test_a_producer_refuses_exactly_the_batches_a_replica_would_dead_letter(
    batch: list[Entry],
) -> None:
    infos = {"internal": ListInfo("internal"), "spring": ListInfo("spring", ListKind.CAMPAIGN)}
    raw = [
        (f"1-{i}", {k.encode(): v.encode() for k, v in encode_entry(e).items()})
        for i, e in enumerate(batch)
    ]
    dead = plan_batch(raw, infos).dead
    kinds = {name: info.kind for name, info in infos.items()}
    if dead:
        with pytest.raises(ConsentRequiredError):
            validate_entries(batch, kinds)
    else:
        validate_entries(batch, kinds)


def test_an_entry_can_make_a_list_stricter_but_never_looser() -> None:
    """A snapshot written without seeing the log may hold an opt-out list as a campaign."""
    from suppression.changelog.planning import plan_batch
    from suppression.entries import Entry, encode_entry
    from suppression.lists import ListInfo, ListKind, Op, SuppressionLists

    def raw(entry: Entry, index: int) -> tuple[bytes, dict[bytes, bytes]]:
        fields = {k.encode(): v.encode() for k, v in encode_entry(entry).items()}
        return f"1-{index}".encode(), fields

    lists = SuppressionLists(infos=[ListInfo("internal", ListKind.CAMPAIGN)])
    claims_opt_out = Entry(Op.ADD, "internal", ListKind.OPT_OUT, "in_call", (8613800138000,))
    release = Entry(Op.REMOVE, "internal", ListKind.CAMPAIGN, "app", (8613800138000,))
    plan = plan_batch([raw(claims_opt_out, 1), raw(release, 2)], lists.view.infos)
    assert [letter.entry_id for letter in plan.dead] == ["1-2"]
    assert "consent" in plan.dead[0].reason
    lists.apply(plan.changes)
    assert lists.view.infos["internal"].kind is ListKind.OPT_OUT
    assert 8613800138000 in lists.view.bitmaps["internal"]
    # The reverse never happens: an entry claiming campaign leaves an opt-out list as it is.
    claims_campaign = Entry(Op.ADD, "internal", ListKind.CAMPAIGN, "app", (12125550123,))
    lists.apply(plan_batch([raw(claims_campaign, 3)], lists.view.infos).changes)
    assert lists.view.infos["internal"].kind is ListKind.OPT_OUT
