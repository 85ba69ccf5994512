"""Model test: random operations through the change log; every replica must equal a set model."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from suppression.entries import Entry, encode_entry
from suppression.errors import ConsentRequiredError
from suppression.lists import ListKind, Op, Version
from suppression.v1 import suppression_pb2 as pb
from suppression.writer import ChangeLogWriter
from tests.conftest import RedisServer, wait_for
from tests.integration.live_replicas import (  # noqa: F401 - a fixture
    ReplicaFactory,
    append_raw,
    redis_client,
    start_replica_fixture,
)

pytestmark = pytest.mark.integration

UNIVERSE = [8613800138000, 8613800138001, 8613800138002, 12125550123, 12125550124, 12125550125]
KINDS = {"internal": ListKind.OPT_OUT, "spring": ListKind.CAMPAIGN}
_streams = itertools.count()

OPERATION = st.tuples(
    st.sampled_from([Op.ADD, Op.REMOVE, Op.ADD_RANGE, Op.REMOVE_RANGE]),
    st.sampled_from(sorted(KINDS)),
    st.lists(st.sampled_from(UNIVERSE), min_size=1, max_size=4, unique=True),
    st.sampled_from(["in_call", "consent", "app"]),
    st.booleans(),  # with evidence
    st.booleans(),  # bypass producer validation (raw XADD)
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(operations=st.lists(OPERATION, min_size=1, max_size=25))
def test_replicas_converge_on_the_model(
    start_replica: ReplicaFactory, redis_server: RedisServer, operations: list[tuple]
) -> None:
    stream = f"model:{next(_streams)}"
    client = redis_client(redis_server)
    writer = ChangeLogWriter(client, stream, "model-test")
    model: dict[str, set[int]] = {name: {UNIVERSE[0]} for name in KINDS}
    writer.write([Entry(Op.ADD, name, kind, "app", (UNIVERSE[0],)) for name, kind in KINDS.items()])
    replicas = [start_replica(stream=stream, dead_letter_stream=f"{stream}:dead") for _ in range(2)]
    for op, name, numbers, source, with_evidence, raw in operations:
        kind = KINDS[name]
        evidence = "consent-form-1" if with_evidence else ""
        if op in (Op.ADD_RANGE, Op.REMOVE_RANGE):
            first = min(numbers)
            entry = Entry(op, name, kind, source, (), first, first + 1, evidence=evidence)
            affected = {first, first + 1}
        else:
            entry = Entry(op, name, kind, source, tuple(numbers), evidence=evidence)
            affected = set(numbers)
        removal = op in (Op.REMOVE, Op.REMOVE_RANGE)
        refused = removal and kind is ListKind.OPT_OUT and not (source == "consent" and evidence)
        if raw:  # a producer that skipped validation: the consumers must dead-letter it
            append_raw(client, stream, encode_entry(entry))
        elif refused:
            with pytest.raises(ConsentRequiredError):
                writer.write([entry], KINDS)
        else:
            writer.write([entry], KINDS)
        if refused:
            continue
        if removal:
            model[name] -= affected
        else:
            model[name] |= affected
    head = Version.parse(client.xrevrange(stream, count=1)[0][0].decode())
    universe = sorted(set(UNIVERSE) | {n + 1 for n in UNIVERSE})
    answers = []
    for replica in replicas:
        wait_for(lambda r=replica: r.lists.version == head, 10, "the replica to reach the head")
        per_list = {}
        for name in KINDS:
            response = replica.check(universe, [name])
            assert response.version == str(head)
            per_list[name] = {
                number
                for number, verdict in zip(universe, response.verdicts, strict=True)
                if verdict == pb.SUPPRESSED
            }
        answers.append(per_list)
        for replica_state in (replica.follower_state(),):
            assert replica_state.last_applied_id == str(head)
    assert answers[0] == answers[1] == model
    for replica in replicas:
        replica.stop()
