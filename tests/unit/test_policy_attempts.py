"""Attempts in the change log: the entry format, and applying them with the lists' versions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from suppression.entries import attempt_entries, decode_entry, encode_entry, validate_entry
from suppression.errors import InvalidEntryError
from suppression.lists import Op, SuppressionLists, Version
from suppression.policy.attempts import ATTEMPT_RETENTION

NUMBERS = [12125550100, 8613800138000]


def test_an_attempts_entry_round_trips() -> None:
    (entry,) = attempt_entries(NUMBERS, [1_780_000_000, 1_780_000_100], ["sim-1", "线路 2"])
    fields = encode_entry(entry)
    assert "list" not in fields and fields["op"] == "attempts"
    assert fields["times"] == "1780000000,1780000100"
    decoded = decode_entry({k.encode(): v.encode() for k, v in fields.items()})
    assert (decoded.op, decoded.numbers, decoded.times, decoded.lines) == (
        Op.ATTEMPTS,
        tuple(NUMBERS),
        (1_780_000_000, 1_780_000_100),
        ("sim-1", "线路 2"),
    )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"times": "1780000000"}, "one time and one line per number"),
        ({"lines": '["a"]'}, "one time and one line per number"),
        ({"lines": '{"a": 1}'}, "JSON list of strings"),
        ({"times": "1780000000,x"}, "malformed attempts entry"),
        ({"numbers": "12125550100,123"}, "not valid E.164"),
        ({"times": "1780000000,-1"}, "from 1970 to 2106"),
    ],
)
def test_a_malformed_attempts_entry_is_refused(change: dict[str, str], reason: str) -> None:
    (entry,) = attempt_entries(NUMBERS, [1_780_000_000, 1_780_000_100], ["", ""])
    with pytest.raises(InvalidEntryError, match=reason):
        decode_entry({**encode_entry(entry), **change})


def test_attempts_entries_are_split_and_name_no_list() -> None:
    entries = attempt_entries([12125550100] * 100_001, [1] * 100_001, [""] * 100_001)
    assert [len(e.numbers) for e in entries] == [100_000, 1]
    (entry,) = attempt_entries([12125550100], [1], [""])
    with pytest.raises(InvalidEntryError, match="names no list"):
        validate_entry(entry.__class__(**{**_fields(entry), "list_name": "internal"}))


def _fields(entry: object) -> dict[str, object]:
    return {name: getattr(entry, name) for name in entry.__slots__}  # type: ignore[attr-defined]


def test_attempts_apply_with_the_lists_version_copy_on_write() -> None:
    lists = SuppressionLists()
    before = lists.view
    (entry,) = attempt_entries(NUMBERS, [1_780_000_000, 1_780_000_100], ["a", "b"])
    version = lists.apply([entry.to_change()], version=Version(5, 0))
    after = lists.view
    assert (after.version, len(after.attempts), len(before.attempts)) == (version, 2, 0)
    assert after.attempts.retention == ATTEMPT_RETENTION
    counts, _ = after.attempts.number_counts(
        np.array(NUMBERS, dtype=np.uint64), np.array([1_780_000_100] * 2, dtype=np.int64), 3600, 1
    )
    assert counts.tolist() == [1, 1]
    # A snapshot swapped in holds no attempts: the ones applied here are kept.
    lists.replace(before.__class__(Version(6, 0), {}, {}, ()))
    assert len(lists.view.attempts) == 2


@given(
    st.lists(
        st.lists(
            st.tuples(
                st.sampled_from([11, 22, 33, 44, 55]),
                st.sampled_from(["", "a", "b"]),
                st.integers(0, 400),
            ),
            min_size=1,
            max_size=6,
        ),
        max_size=8,
    )
)
def test_the_attempt_log_keeps_exactly_the_recent_attempts(
    batches: list[list[tuple[int, str, int]]],
) -> None:
    from suppression.policy.attempts import Attempt, AttemptLog

    log = AttemptLog(100)
    seen: list[tuple[int, str, int]] = []
    for batch in batches:
        log = log.with_attempts([Attempt(n, line, t) for n, line, t in batch])
        seen += batch
        floor = max(t for _, _, t in seen) - 100
        kept = sorted((n, t) for n, _, t in seen if t > floor)
        index = (log.packed >> np.uint64(32)).astype(np.intp)
        got = sorted(
            zip(log.keys[index].tolist(), (log.packed & np.uint64(2**32 - 1)).tolist(), strict=True)
        )
        assert got == kept
        assert sorted(log.keys.tolist()) == log.keys.tolist() == sorted({n for n, _ in kept})
        for line in ("a", "b"):
            want = sorted(t for _, name, t in seen if name == line and t > floor)
            assert log.lines.get(line, np.zeros(0)).tolist() == want
