"""The Explain RPC over the network, on a replica that archives a real change log."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest
from prometheus_client import CollectorRegistry
from pyroaring import BitMap64

from suppression.archive import ArchiveOptions
from suppression.datasource import DataSource
from suppression.lists import ListInfo, ListKind, ListView, Version
from suppression.policy.store import PolicyStore
from suppression.replica import ChangeLogOptions, Replica, SnapshotOptions
from suppression.server import ServerOptions, create_server
from suppression.snapshot import write_snapshot
from suppression.v1 import suppression_pb2 as pb
from suppression.v1 import suppression_pb2_grpc as pb_grpc
from tests.conftest import RedisServer, client_channel, wait_for

pytestmark = pytest.mark.integration

CN = 8613800138000
US = 12125550123
NEIGHBOUR = 12125550124


@pytest.fixture
def stub(redis_server: RedisServer, tmp_path: Path) -> Iterator[pb_grpc.SuppressionStub]:
    with serving(redis_server, tmp_path) as started:
        yield started


@contextmanager
def serving(
    redis_server: RedisServer, tmp_path: Path, policies: PolicyStore | None = None
) -> Iterator[pb_grpc.SuppressionStub]:
    """A gRPC server over a replica that archives into tmp_path/archive."""
    archive = ArchiveOptions(tmp_path / "archive", snapshots=tmp_path)
    replica = Replica(
        DataSource(data_dir=tmp_path),
        ChangeLogOptions(redis_url=redis_server.url, max_staleness=5.0),
        SnapshotOptions(interval=3600.0, archive=archive),
        policies=policies,
    )
    process = create_server(replica, ServerOptions(port=0), CollectorRegistry(), "127.0.0.1:0")
    replica.start()
    process.sync_health()
    channel = client_channel(f"127.0.0.1:{process.port}")
    try:
        yield pb_grpc.SuppressionStub(channel)
    finally:
        channel.close()
        process.stop(0)
        replica.stop()


def suppress(stub: pb_grpc.SuppressionStub, numbers: list[int], **extra: str) -> Version:
    request = pb.SuppressRequest(e164=numbers, list="optout", create_list=True, **extra)
    return Version.parse(stub.Suppress(request, timeout=10).version)


def test_explain_tells_since_when_and_why_and_nothing_about_other_numbers(
    stub: pb_grpc.SuppressionStub,
) -> None:
    added = suppress(stub, [US, NEIGHBOUR], source="in_call", actor="agent-7", evidence="rec-1")
    released = Version.parse(
        stub.Release(
            pb.ReleaseRequest(
                e164=[US], list="optout", source="consent", actor="cs-2", evidence="form-17"
            ),
            timeout=10,
        ).version
    )
    on = stub.Explain(pb.ExplainRequest(number_e164=US, version=str(added)), timeout=10)
    assert on.verdict == pb.SUPPRESSED and on.at == str(added)
    assert on.number_masked != str(US) and str(US) not in on.SerializeToString().decode("latin-1")
    (optout,) = on.lists
    assert (optout.name, optout.kind, optout.on_list) == ("optout", "opt_out", True)
    assert (optout.since.version, optout.since.source, optout.since.actor) == (
        str(added),
        "in_call",
        "agent-7",
    )
    assert optout.since.evidence == "rec-1" and optout.since.numbers_in_change == 2
    assert str(NEIGHBOUR) not in on.SerializeToString().decode("latin-1")
    assert on.segments and len(on.segments[0].sha256) == 64
    off = stub.Explain(pb.ExplainRequest(number=f"+{US}", version=str(released)), timeout=10)
    assert off.verdict == pb.ALLOWED
    assert off.lists[0].since.op == "remove" and off.lists[0].since.evidence == "form-17"
    assert [change.op for change in off.lists[0].history] == ["add", "remove"]
    # A time after the last change: only once the fresh archiver can vouch that nothing
    # came since (it allows one second for the clocks of Redis and the replica).
    asked = pb.ExplainRequest(number_e164=US, at_ms=released.ms + 1)
    with pytest.raises(grpc.RpcError) as caught:
        stub.Explain(asked, timeout=10)
    assert "after the archive's last change" in caught.value.details()
    wait_for(lambda: _answers(stub, asked), 10, "the archiver to vouch for the present")
    assert stub.Explain(asked, timeout=10).verdict == pb.ALLOWED


def _answers(stub: pb_grpc.SuppressionStub, request: pb.ExplainRequest) -> bool:
    try:
        stub.Explain(request, timeout=10)
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.FAILED_PRECONDITION
        return False
    return True


def test_a_point_before_the_archive_begins_is_refused_not_guessed(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    # Data older than the archive: a snapshot at 5000-0 that already holds CN.
    view = ListView(
        Version(5000, 0), {"optout": BitMap64([CN])}, {"optout": ListInfo("optout")}, ()
    )
    write_snapshot(tmp_path, view)
    with serving(redis_server, tmp_path) as started:
        with pytest.raises(grpc.RpcError) as caught:
            started.Explain(pb.ExplainRequest(number_e164=CN, at_ms=4999), timeout=10)
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "before the archive begins (5000-0)" in caught.value.details()
        answer = started.Explain(pb.ExplainRequest(number_e164=CN, version="5000-0"), timeout=10)
        assert answer.verdict == pb.SUPPRESSED and answer.base_version == "5000-0"
        assert not answer.lists[0].HasField("since")
        assert "older than the archive" in answer.lists[0].since_note


def test_bad_questions_get_clear_errors(stub: pb_grpc.SuppressionStub) -> None:
    cases = [
        (pb.ExplainRequest(version="1-0"), "exactly one number"),
        (pb.ExplainRequest(number_e164=CN), "exactly one point in time"),
        (pb.ExplainRequest(number_e164=CN, version="yesterday"), "not of the form"),
        (pb.ExplainRequest(number_e164=123, version="1-0"), "not a valid phone number"),
    ]
    for request, message in cases:
        with pytest.raises(grpc.RpcError) as caught:
            stub.Explain(request, timeout=10)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert message in caught.value.details()


def test_check_as_of_an_earlier_version(stub: pb_grpc.SuppressionStub) -> None:
    added = suppress(stub, [US], source="in_call")
    stub.Release(
        pb.ReleaseRequest(e164=[US], list="optout", source="consent", evidence="form-17"),
        timeout=10,
    )
    now = stub.Check(pb.CheckRequest(e164=[US, CN]), timeout=10)
    assert list(now.verdicts) == [pb.ALLOWED, pb.ALLOWED]
    then = stub.Check(pb.CheckRequest(e164=[US, CN], as_of_version=str(added)), timeout=10)
    assert list(then.verdicts) == [pb.SUPPRESSED, pb.ALLOWED]
    assert then.version == str(added) and list(then.list_names) == ["optout"]
    before = stub.Check(pb.CheckRequest(e164=[US], as_of_version=f"{added.ms - 1}-0"), timeout=10)
    assert list(before.verdicts) == [pb.ALLOWED] and before.version == "0-0"
    with pytest.raises(grpc.RpcError) as caught:
        stub.Check(pb.CheckRequest(e164=[US], as_of_version="not-a-version"), timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


CONSENT_LIFTS_REGISTRY = """\
version = "e1"

[lists]
registry = "registry"
consent = "exemption"

[policies.tsr]
suppress = ["registry"]

[[policies.tsr.exemptions]]
list = "consent"
lifts = ["registry"]
"""


def test_explain_gives_the_policy_verdict_then_with_its_exemptions(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    start = Version(1_700_000_000_000, 0)
    view = ListView(
        start,
        {"registry": BitMap64([US]), "consent": BitMap64()},
        {
            "registry": ListInfo("registry", ListKind.REGISTRY),
            "consent": ListInfo("consent", ListKind.CAMPAIGN),
        },
        (),
    )
    write_snapshot(tmp_path, view)
    policy_file = tmp_path / "policies.toml"
    policy_file.write_text(CONSENT_LIFTS_REGISTRY)
    with serving(redis_server, tmp_path, PolicyStore(policy_file)) as started:
        consented = Version.parse(
            started.Suppress(
                pb.SuppressRequest(e164=[US], list="consent", source="crm", evidence="ebr-9"),
                timeout=10,
            ).version
        )
        before = started.Explain(pb.ExplainRequest(number_e164=US, version=str(start)))
        assert before.verdict == pb.SUPPRESSED and before.policy.verdict == pb.SUPPRESSED
        assert (before.policy.policy, before.policy.policy_version) == ("tsr", "e1")
        assert any("registry" in rule for rule in before.policy.rules)
        assert before.policy.decided_at_ms == start.ms and not before.policy.exemptions
        after = started.Explain(pb.ExplainRequest(number_e164=US, version=str(consented)))
        # Still on the registry, so the list verdict says SUPPRESSED; the policy lifts it.
        assert after.verdict == pb.SUPPRESSED and after.policy.verdict == pb.ALLOWED
        assert list(after.policy.exemptions) == ["consent"] and not after.policy.rules
        assert "not earlier policy files" in after.policy.note
        with pytest.raises(grpc.RpcError) as unknown:
            started.Explain(pb.ExplainRequest(number_e164=US, version=str(start), policy="x"))
        assert unknown.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        # Check as of those versions decides under the same policy, at each version's time.
        then = started.Check(pb.CheckRequest(e164=[US], as_of_version=str(start)))
        assert list(then.verdicts) == [pb.SUPPRESSED] and then.policy == "tsr"
        later = started.Check(pb.CheckRequest(e164=[US], as_of_version=str(consented)))
        assert list(later.verdicts) == [pb.ALLOWED] and list(later.exemptions) == [1]
        assert list(later.exemption_names) == ["consent"]


def test_explain_without_policies_gives_none_and_refuses_policy_fields(
    stub: pb_grpc.SuppressionStub,
) -> None:
    added = suppress(stub, [US], source="in_call")
    answer = stub.Explain(pb.ExplainRequest(number_e164=US, version=str(added)), timeout=10)
    assert not answer.HasField("policy")
    with pytest.raises(grpc.RpcError) as refused:
        stub.Explain(pb.ExplainRequest(number_e164=US, version=str(added), policy="tsr"))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
