"""Fuzzing the request space over real gRPC: no call ends in INTERNAL or UNKNOWN.

Hypothesis sends Check, CheckStream, GetStatus, Suppress and Release with
arbitrary field values (numbers as arbitrary unicode and huge integers, list
names, regions, sources, actors, evidence, create_list, request_id) to two
real in-process servers whose replicas follow one real redis-server: one with
authentication (the sample trust file, quotas) and one without. Every call
either answers or is refused with a clear status and a short, non-empty
message, and both servers stay SERVING.

Examples are bounded (``max_examples`` per method, short fields), so the whole
module runs in a few seconds; ``HYPOTHESIS_PROFILE=dev`` or a larger
``--hypothesis-seed`` sweep explores further.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from pyroaring import BitMap64

from suppression.lists import ListInfo, ListKind, SuppressionLists, Version
from suppression.quota import SharedQuota
from suppression.replica import ChangeLogOptions
from suppression.replica import Replica as ReplicaCore
from suppression.security import SecurityOptions
from suppression.server import ServerOptions, ServingProcess, create_server
from suppression.v1 import suppression_pb2 as pb
from suppression.v1 import suppression_pb2_grpc as pb_grpc
from tests.conftest import RedisServer, client_channel, replica_data
from tests.trust_samples import SCOPES_BY_IDENTITY, bearer, tokens, trust_toml

pytestmark = pytest.mark.integration

CN, US, OTHER = 8613800138000, 12125550123, 12025550147
MAX_BATCH = 40
"""Small, so that "too many numbers" is reachable with short lists."""

CLEAR_CODES = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.UNAVAILABLE,
    }
)
"""Refusals a caller can act on. INTERNAL and UNKNOWN (an exception that escaped the
servicer) are never acceptable; nor are codes this service never means to send."""

MAX_MESSAGE_BYTES = 1024

FUZZ = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


# -- servers ----------------------------------------------------------------------------


@dataclass
class Target:
    """One serving process and a channel to it."""

    name: str
    process: ServingProcess
    core: ReplicaCore
    channel: grpc.Channel
    stub: pb_grpc.SuppressionStub


@dataclass
class Servers:
    plain: Target
    secured: Target
    tokens: dict[str, str]

    def all(self) -> tuple[Target, Target]:
        return (self.plain, self.secured)


def _lists() -> SuppressionLists:
    return SuppressionLists(
        {
            "national": BitMap64([US]),
            "internal": BitMap64([CN]),
            "acme_campaign": BitMap64([OTHER]),
            "globex_campaign": BitMap64([OTHER]),
        },
        infos=[
            ListInfo("national", ListKind.REGISTRY),
            ListInfo("acme_campaign", ListKind.CAMPAIGN),
            ListInfo("globex_campaign", ListKind.CAMPAIGN),
        ],
        version=Version(1, 0),
    )


def _start(name: str, redis_url: str, security: SecurityOptions | None) -> Target:
    core = ReplicaCore(
        replica_data(_lists()), ChangeLogOptions(redis_url=redis_url, max_staleness=5.0)
    )
    core.start()
    process = create_server(
        core,
        ServerOptions(port=0, max_batch=MAX_BATCH),
        CollectorRegistry(),
        "127.0.0.1:0",
        security=security,
    )
    process.sync_health()
    channel = client_channel(f"127.0.0.1:{process.port}", MAX_BATCH)
    stub = pb_grpc.SuppressionStub(channel)  # type: ignore[no-untyped-call]
    return Target(name, process, core, channel, stub)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    """Two replicas following one real redis-server: one plain, one with a trust file."""
    directory = tmp_path_factory.mktemp("fuzz-requests")
    (directory / "redis").mkdir()
    redis_server = RedisServer(directory / "redis")
    redis_server.start()
    issued = tokens()
    trust = directory / "trust.toml"
    trust.write_text(trust_toml(issued))
    quota = SharedQuota.create(directory, slots=1024)
    started: list[Target] = []
    try:
        started.append(_start("plain", redis_server.url, None))
        started.append(
            _start("secured", redis_server.url, SecurityOptions(trust_file=trust, quota=quota))
        )
        yield Servers(started[0], started[1], issued)
    finally:
        for target in started:
            target.channel.close()
            target.process.stop(0)
            target.core.stop()
        quota.close(remove=True)
        redis_server.kill()


# -- what a request may hold ------------------------------------------------------------

UINT64 = st.integers(min_value=0, max_value=2**64 - 1)
VALID_E164 = st.sampled_from([CN, US, OTHER, 442071838750, 19005550100])
# Hypothesis picks the branches of one_of evenly: the valid shapes come first and
# twice, so that most examples get past validation into the deeper code.
E164 = st.one_of(
    st.lists(VALID_E164, max_size=5),
    st.lists(st.one_of(VALID_E164, UINT64), max_size=8),
    st.lists(st.one_of(VALID_E164, UINT64), max_size=MAX_BATCH + 5),
)

TEXT_NUMBER = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "+8613800138000",
            "+1 212 555 0123",
            "(212) 555-0123",
            "+1900xxxxxxx",
            "+1212555xxxx",
            "+x",
            "xxxxxxxxxx",
            "\uff0b\uff18\uff16\uff11\uff13\uff18\uff10\uff10\uff11\uff13\uff18\uff10\uff10\uff10",
            "0086-138-0013-8000",
            "+",
            "",
            " ",
            "+0",
            "+" + "9" * 40,
        ]
    ),
    # Huge integers as text, with and without "+".
    st.integers(min_value=0, max_value=10**60).map(str),
    st.integers(min_value=0, max_value=10**60).map(lambda value: f"+{value}"),
)
NUMBERS: st.SearchStrategy[list[str]] = st.one_of(st.just([]), st.lists(TEXT_NUMBER, max_size=8))
REGION = st.one_of(
    st.sampled_from(["", "US", "CN", "GB", "us", "XX", "ZZ", "001"]), st.text(max_size=5)
)
KNOWN_LIST = st.sampled_from(["national", "internal", "acme_campaign", "globex_campaign"])
LIST_NAME = st.one_of(
    KNOWN_LIST,
    KNOWN_LIST,
    st.sampled_from(["new_list", "fuzz.created:1", "", "x" * 64, "x" * 65, "-x"]),
    st.text(max_size=20),
)
# At most 8 arbitrary names: a refusal names every unknown list, so more of them
# make an over-long message, which test_many_unknown_lists_... covers on its own.
LISTS: st.SearchStrategy[list[str]] = st.one_of(
    st.just([]),
    st.lists(KNOWN_LIST, max_size=4),
    st.lists(KNOWN_LIST, min_size=60, max_size=70),
    st.lists(LIST_NAME, max_size=8),
)
SOURCE = st.one_of(
    st.sampled_from(["in_call", "app", "consent", "registry"]),
    st.sampled_from(["in_call", "consent"]),
    st.sampled_from(["", "In_Call", "x" * 32, "x" * 33, "9x"]),
    st.text(max_size=20),
)
FREE_TEXT = st.one_of(
    st.sampled_from(["", "agent-7", "form-1"]),
    st.sampled_from([" ", "x" * 500, "x" * 501]),
    st.text(max_size=40),
)
GARBAGE_TOKEN = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=30
)
IDENTITY = st.sampled_from(sorted(SCOPES_BY_IDENTITY))
CREDENTIALS = st.one_of(
    IDENTITY,
    IDENTITY,
    st.sampled_from(["admin", "writer", "consenter", "checker"]),
    st.none(),
    GARBAGE_TOKEN.map(lambda token: ("authorization", f"Bearer {token}")),
    GARBAGE_TOKEN.map(lambda token: ("authorization", token)),
)

CHECK_REQUESTS = st.builds(
    pb.CheckRequest,
    e164=E164,
    numbers=NUMBERS,
    default_region=REGION,
    lists=LISTS,
    request_id=UINT64,
)
SUPPRESS_REQUESTS = st.builds(
    pb.SuppressRequest,
    e164=E164,
    numbers=NUMBERS,
    default_region=REGION,
    list=LIST_NAME,
    source=SOURCE,
    actor=FREE_TEXT,
    evidence=FREE_TEXT,
    create_list=st.booleans(),
)
RELEASE_REQUESTS = st.builds(
    pb.ReleaseRequest,
    e164=E164,
    numbers=NUMBERS,
    default_region=REGION,
    list=LIST_NAME,
    source=SOURCE,
    actor=FREE_TEXT,
    evidence=FREE_TEXT,
)


# -- the properties ---------------------------------------------------------------------


def _metadata(servers: Servers, credentials: object) -> tuple[tuple[str, str], ...]:
    if credentials is None:
        return ()
    if isinstance(credentials, tuple):
        return (credentials,)
    return bearer(servers.tokens[str(credentials)])


def _assert_clear_refusal(error: grpc.RpcError, what: str) -> None:
    code = error.code()
    message = error.details() or ""
    assert code in CLEAR_CODES, f"{what} ended in {code}: {message!r}"
    assert message.strip(), f"{what} was refused with {code} and no message"
    size = len(message.encode())
    assert size < MAX_MESSAGE_BYTES, f"{what}: {code} message of {size} bytes: {message[:200]!r}"


def _still_serving(target: Target) -> None:
    health = health_pb2_grpc.HealthStub(target.channel)
    answer = health.Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING, target.name
    assert target.core.serving, target.name


def _unary(target: Target, method: str, request: object, metadata: object) -> None:
    call = getattr(target.stub, method)
    try:
        call(request, metadata=metadata, timeout=30)
    except grpc.RpcError as error:
        event(f"{target.name}: {error.code().name}")
        _assert_clear_refusal(error, f"{method} on the {target.name} server")
    else:
        event(f"{target.name}: OK")


@FUZZ
@given(request=CHECK_REQUESTS, credentials=CREDENTIALS)
def test_check_refuses_clearly(
    servers: Servers, request: pb.CheckRequest, credentials: object
) -> None:
    _unary(servers.plain, "Check", request, ())
    _unary(servers.secured, "Check", request, _metadata(servers, credentials))


@FUZZ
@given(requests=st.lists(CHECK_REQUESTS, min_size=0, max_size=4), credentials=CREDENTIALS)
def test_check_stream_refuses_clearly(
    servers: Servers, requests: list[pb.CheckRequest], credentials: object
) -> None:
    for target, metadata in (
        (servers.plain, ()),
        (servers.secured, _metadata(servers, credentials)),
    ):
        answers = target.stub.CheckStream(iter(requests), metadata=metadata, timeout=30)
        received = 0
        try:
            for answer in answers:
                assert answer.request_id == requests[received].request_id
                received += 1
        except grpc.RpcError as error:
            _assert_clear_refusal(error, f"CheckStream on the {target.name} server")
        else:
            assert received == len(requests)


@settings(FUZZ, max_examples=15)
@given(credentials=CREDENTIALS)
def test_get_status_refuses_clearly(servers: Servers, credentials: object) -> None:
    _unary(servers.plain, "GetStatus", pb.GetStatusRequest(), ())
    _unary(servers.secured, "GetStatus", pb.GetStatusRequest(), _metadata(servers, credentials))


@FUZZ
@given(request=SUPPRESS_REQUESTS, credentials=CREDENTIALS)
def test_suppress_refuses_clearly(
    servers: Servers, request: pb.SuppressRequest, credentials: object
) -> None:
    _unary(servers.plain, "Suppress", request, ())
    _unary(servers.secured, "Suppress", request, _metadata(servers, credentials))


@FUZZ
@given(request=RELEASE_REQUESTS, credentials=CREDENTIALS)
def test_release_refuses_clearly(
    servers: Servers, request: pb.ReleaseRequest, credentials: object
) -> None:
    _unary(servers.plain, "Release", request, ())
    _unary(servers.secured, "Release", request, _metadata(servers, credentials))


@settings(FUZZ, max_examples=20)
@given(
    method=st.sampled_from(["Check", "GetStatus", "Suppress", "Release"]),
    raw=st.binary(min_size=1, max_size=64),
)
def test_undecodable_requests_are_refused_clearly(
    servers: Servers, method: str, raw: bytes
) -> None:
    for target in servers.all():
        call = target.channel.unary_unary(f"/suppression.v1.Suppression/{method}")
        try:
            call(raw, timeout=30)
        except grpc.RpcError as error:
            _assert_clear_refusal(
                error, f"{method} of undecodable bytes on the {target.name} server"
            )


@pytest.mark.parametrize(("count", "length"), [(64, 20), (1000, 4)])
def test_many_unknown_lists_are_refused_with_a_short_message(
    servers: Servers, count: int, length: int
) -> None:
    names = [f"{index:0{length}d}" for index in range(count)]
    request = pb.CheckRequest(e164=[US], lists=names)
    for target in servers.all():
        metadata = bearer(servers.tokens["admin"]) if target is servers.secured else ()
        with pytest.raises(grpc.RpcError) as caught:
            target.stub.Check(request, metadata=metadata, timeout=10)
        _assert_clear_refusal(caught.value, f"Check of {count} unknown lists on {target.name}")


def test_servers_are_serving_after_the_fuzzing(servers: Servers) -> None:
    """Runs last in this module (pytest keeps file order): nothing above broke a server."""
    for target in servers.all():
        _still_serving(target)
        # And they still answer a plain, valid check.
        metadata = bearer(servers.tokens["admin"]) if target is servers.secured else ()
        answer = target.stub.Check(
            pb.CheckRequest(e164=[US], lists=["national"]), metadata=metadata, timeout=10
        )
        # The fuzzing may have released it: any verdict but INVALID is right.
        assert list(answer.verdicts) in ([pb.SUPPRESSED], [pb.ALLOWED])
