"""Fuzzing the change-log entry space: arbitrary raw stream entries never break a follower.

Hypothesis appends arbitrary entries to a real redis-server's stream, as a
producer that skips validation would: valid entries, valid entries with fields
mutated, dropped or added, and dictionaries of arbitrary field names and values
(arbitrary unicode, non-UTF-8 bytes, huge integers). A replica follows the
stream. Every entry is either applied or dead-lettered, the replica stays
SERVING, and its version reaches the last entry's ID.

Two logs: one written with plain XADD (no epoch or sequence numbers, the
format before sequenced logs), and one written through ``append_raw``, which
numbers entries like the change-log writer, with plain XADDs mixed in (those
are dead-lettered for carrying no sequence number). Entries never carry the
``epoch`` and ``seq`` fields themselves: a forged sequence number that skips
ahead is, by design, a gap that makes the replica wait for a snapshot.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import pytest
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from suppression.entries import Entry, encode_entry
from suppression.lists import LIST_OPS, ListKind, Op, Version
from tests.conftest import RedisServer, wait_for
from tests.integration.live_replicas import (  # noqa: F401 - a fixture
    Replica,
    ReplicaFactory,
    append_raw,
    redis_client,
    start_replica_fixture,
)

pytestmark = pytest.mark.integration

STREAM = "suppression:deltas"
DEAD = "suppression:deltas:dead"
SINK = "fuzz_sink"
"""Only well-formed ADD entries name this list, so each of them must show up in it."""

FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

Fields = Mapping[str | bytes, str | bytes]

# -- entries ----------------------------------------------------------------------------

VALID_NUMBER = st.integers(min_value=12_015_550_000, max_value=12_015_559_999)
ANY_INT = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=0, max_value=10**40),
)
FIELD_NAMES = ["v", "op", "list", "kind", "numbers", "first", "last", "source", "actor"]
FIELD_NAMES += ["evidence", "ts", "producer"]
ARBITRARY_VALUE = st.one_of(
    st.text(max_size=30),
    st.binary(max_size=30),
    ANY_INT.map(str),
    st.lists(ANY_INT, min_size=1, max_size=5).map(lambda values: ",".join(map(str, values))),
    st.sampled_from(["", "1", "2", ",", "1,,2", "+12015550100", "add", "remove", "add_range"]),
    st.sampled_from(["remove_range", "opt_out", "registry", "campaign", "consent", "\x00"]),
)
LIST_NAMES = st.one_of(
    st.sampled_from(["internal", "national", "campaign_a", "x" * 64, "x" * 65, "", "-a"]),
    st.text(max_size=12),
)


@st.composite
def well_formed(draw: st.DrawFn, list_name: st.SearchStrategy[str] = LIST_NAMES) -> Entry:
    op = draw(st.sampled_from(LIST_OPS))
    kind = draw(st.sampled_from(list(ListKind)))
    source = draw(st.sampled_from(["app", "consent", "registry", "in_call"]))
    evidence = draw(st.sampled_from(["", "form-1"]))
    name = draw(list_name)
    if op in (Op.ADD_RANGE, Op.REMOVE_RANGE):
        first = draw(VALID_NUMBER)
        last = first + draw(st.integers(min_value=-2, max_value=10**9 + 5))
        return Entry(op, name, kind, source, (), first, last, evidence=evidence)
    numbers = tuple(draw(st.lists(VALID_NUMBER, min_size=1, max_size=5)))
    return Entry(op, name, kind, source, numbers, evidence=evidence)


@st.composite
def mutated(draw: st.DrawFn) -> dict[str | bytes, str | bytes]:
    """A well-formed entry with some fields replaced, dropped, or added."""
    fields: dict[str | bytes, str | bytes] = {}
    fields.update(encode_entry(draw(well_formed())))
    for name in draw(st.lists(st.sampled_from(FIELD_NAMES), max_size=3)):
        fields[name] = draw(ARBITRARY_VALUE)
    for name in draw(st.lists(st.sampled_from(FIELD_NAMES), max_size=2)):
        fields.pop(name, None)
    extra = draw(
        st.dictionaries(
            st.one_of(st.text(max_size=8), st.binary(max_size=8)), ARBITRARY_VALUE, max_size=2
        )
    )
    fields.update(extra)
    return fields


ARBITRARY = st.dictionaries(
    st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=8), st.binary(max_size=8)),
    ARBITRARY_VALUE,
    min_size=1,
    max_size=8,
)
SINK_ADD = st.lists(VALID_NUMBER, min_size=1, max_size=3).map(
    lambda numbers: encode_entry(Entry(Op.ADD, SINK, ListKind.OPT_OUT, "app", tuple(numbers)))
)
ENTRY = st.one_of(SINK_ADD, well_formed().map(encode_entry), mutated(), ARBITRARY)


def _forged_sequence(fields: Fields) -> bool:
    return any(name in (b"epoch", b"seq", "epoch", "seq") for name in fields)


ENTRIES = st.lists(
    ENTRY.filter(lambda fields: fields and not _forged_sequence(fields)), min_size=1, max_size=6
)


# -- checks -----------------------------------------------------------------------------


def _xadd(client: redis.Redis, fields: Fields) -> str:
    entry_id = client.xadd(STREAM, dict(fields))  # type: ignore[arg-type]
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


def _check_accounted(
    replica: Replica, client: redis.Redis, written: list[tuple[str, Fields]], expect_dead: set[str]
) -> None:
    """Every written entry applied or dead-lettered; the replica SERVING at the last ID."""
    last = Version.parse(written[-1][0])
    wait_for(lambda: replica.lists.version >= last, 10.0, f"the replica to reach {last}")
    assert replica.lists.version == last
    assert replica.core.serving
    health = health_pb2_grpc.HealthStub(replica.channel)
    answer = health.Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    letters = cast(list[tuple[bytes, Any]], client.xrange(DEAD))
    dead = {entry_id.decode() for entry_id, _ in letters}
    assert replica.follower_state().dead_letters == len(dead)
    assert expect_dead <= dead, "an entry without a sequence number in a numbered log was applied"
    sink = replica.lists.view.bitmaps.get(SINK)
    for entry_id, fields in written:
        numbered_or_unnumbered_log = entry_id not in expect_dead
        if numbered_or_unnumbered_log and fields.get("list") == SINK and fields.get("op") == "add":
            assert entry_id not in dead, f"a well-formed entry {entry_id} was dead-lettered"
            assert sink is not None
            numbers = str(fields["numbers"]).split(",")
            assert all(int(number) in sink for number in numbers)


def test_unsequenced_raw_entries_are_applied_or_dead_lettered(
    start_replica: ReplicaFactory, redis_server: RedisServer
) -> None:
    # One replica and one log for all the examples: the lists an example leaves
    # behind are the next one's starting point.
    replica = start_replica()
    client = redis_client(redis_server)

    @FUZZ
    @given(entries=ENTRIES)
    def appended(entries: list[Fields]) -> None:
        written = [(_xadd(client, fields), fields) for fields in entries]
        _check_accounted(replica, client, written, set())

    appended()


def test_numbered_raw_entries_are_applied_or_dead_lettered(
    start_replica: ReplicaFactory, redis_server: RedisServer
) -> None:
    client = redis_client(redis_server)
    # The log gets its epoch from its first numbered entry, before the replica reads it.
    first = Entry(Op.ADD, SINK, ListKind.OPT_OUT, "app", (12015550000,))
    append_raw(client, STREAM, encode_entry(first))
    replica = start_replica()

    @FUZZ
    @given(entries=ENTRIES, plain=st.lists(st.booleans(), min_size=6, max_size=6))
    def appended(entries: list[Fields], plain: list[bool]) -> None:
        written: list[tuple[str, Fields]] = []
        unsequenced: set[str] = set()
        for fields, as_xadd in zip(entries, plain, strict=False):
            if as_xadd:
                entry_id = _xadd(client, fields)
                unsequenced.add(entry_id)
            else:
                entry_id = append_raw(client, STREAM, fields)  # type: ignore[arg-type]
            written.append((entry_id, fields))
        _check_accounted(replica, client, written, unsequenced)

    appended()
