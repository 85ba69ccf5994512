"""The client against real in-process servers: retries, splitting, errors, credentials."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from prometheus_client import CollectorRegistry
from pyroaring import BitMap64

from suppression.auth import AuthInterceptor, TrustStore, hash_token, new_token
from suppression.client import (
    ClientConfig,
    ClientError,
    DeadlineExceededError,
    InvalidRequestError,
    NotReadyError,
    PermissionDeniedError,
    QuotaExceededError,
    RetryPolicy,
    ServerError,
    SuppressionClient,
    UnauthenticatedError,
    UnavailableError,
    Verdict,
)
from suppression.e164 import Normalizer
from suppression.lists import ListInfo, ListKind, SuppressionLists, Version
from suppression.metrics import ServiceMetrics
from suppression.quota import SharedQuota
from suppression.replica import Replica
from suppression.service import SuppressionServicer
from suppression.v1 import suppression_pb2 as pb
from suppression.v1 import suppression_pb2_grpc as pb_grpc
from tests.conftest import InProcessServer, free_port, replica_data

CN = 8613800138000
US = 12125550123
FAST_RETRY = RetryPolicy(max_attempts=3, initial_backoff=0.001, max_backoff=0.01)


def demo_lists() -> SuppressionLists:
    return SuppressionLists(
        {"internal": BitMap64([CN]), "national": BitMap64([US])},
        infos=[ListInfo("national", ListKind.REGISTRY)],
        version=Version(1700000000000, 7),
    )


def started(server: InProcessServer, method: str) -> float:
    """Calls of ``method`` the server has started, from its own metrics."""
    return sum(
        sample.value
        for metric in server.registry.collect()
        for sample in metric.samples
        if sample.name == "grpc_server_started_total" and sample.labels.get("grpc_method") == method
    )


def client(*targets: str, **overrides: object) -> SuppressionClient:
    config = ClientConfig(targets=targets, retry=FAST_RETRY, **overrides)  # type: ignore[arg-type]
    return SuppressionClient(config)


def test_a_down_target_is_skipped(start_server: Callable[..., InProcessServer]) -> None:
    server = start_server(demo_lists())
    down = f"127.0.0.1:{free_port()}"
    with client(down, server.target) as suppression:
        for _ in range(4):  # every call, whichever target its turn starts at
            result = suppression.check(e164=[US, 12025550147])
            assert [r.verdict for r in result] == [Verdict.SUPPRESSED, Verdict.ALLOWED]
            assert result.target == server.target
            assert result.version == "1700000000000-7"
        assert suppression.status().target == server.target


def test_every_target_down_is_unavailable_after_the_attempts() -> None:
    downs = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    with client(*downs) as suppression, pytest.raises(UnavailableError) as caught:
        suppression.check(e164=[US])
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    assert "after 3 attempts" in str(caught.value)
    assert "suppression serve" in str(caught.value)


def test_a_batch_larger_than_max_batch_is_split_and_reassembled(
    start_server: Callable[..., InProcessServer],
) -> None:
    rng = random.Random(13)
    on_list = {US + rng.randrange(10_000) for _ in range(300)}
    lists = SuppressionLists({"national": BitMap64(on_list)}, version=Version(1700000000000, 7))
    server = start_server(lists, max_batch=7)
    e164 = [US + rng.randrange(10_000) for _ in range(40)]
    texts = [f"+{US + rng.randrange(10_000)}" for _ in range(30)] + ["nonsense", "+1 212"]
    with client(server.target) as suppression:
        result = suppression.check(e164=e164, numbers=texts)
        assert suppression.max_batch() == 7  # read once from GetStatus
    assert started(server, "GetStatus") == 1
    assert started(server, "Check") == -(-len(e164 + texts) // 7)
    assert [(p.start, p.count) for p in result.parts][:2] == [(0, 7), (7, 7)]
    values = [*e164, *(int(t[1:]) for t in texts[:30])]
    for index, value in enumerate(values):
        expected = Verdict.SUPPRESSED if value in on_list else Verdict.ALLOWED
        assert result[index].verdict is expected, index
        assert result[index].e164 == value
        assert result[index].lists == (("national",) if value in on_list else ())
    assert result.invalid_indexes() == [70, 71]
    assert result.version == "1700000000000-7"


def test_an_invalid_request_is_never_retried(
    start_server: Callable[..., InProcessServer],
) -> None:
    first, second = start_server(demo_lists()), start_server(demo_lists())
    with client(first.target, second.target) as suppression:
        with pytest.raises(InvalidRequestError) as caught:
            suppression.check(e164=[US], lists=["no_such_list"])
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "no_such_list" in caught.value.details
    assert started(first, "Check") + started(second, "Check") == 1


def test_a_loading_server_is_not_ready(start_server: Callable[..., InProcessServer]) -> None:
    server = start_server(demo_lists(), loaded=False)
    with client(server.target) as suppression, pytest.raises(NotReadyError):
        suppression.check(e164=[US])
    assert started(server, "Check") == FAST_RETRY.max_attempts


def test_a_loading_server_is_skipped_for_a_ready_one(
    start_server: Callable[..., InProcessServer],
) -> None:
    loading, ready = start_server(demo_lists(), loaded=False), start_server(demo_lists())
    with client(loading.target, ready.target) as suppression:
        assert suppression.check_one(US)[0].verdict is Verdict.SUPPRESSED


# -- error mapping, from a real server that answers with each status ----------


class _Refusing(pb_grpc.SuppressionServicer):  # type: ignore[misc]
    def __init__(self, code: grpc.StatusCode, trailing: tuple[tuple[str, str], ...]) -> None:
        self.code, self.trailing = code, trailing

    def Check(self, request: pb.CheckRequest, context: grpc.ServicerContext) -> None:  # noqa: N802
        context.set_trailing_metadata(self.trailing)
        context.abort(self.code, f"refused with {self.code.name}")


def _serve(
    servicer: pb_grpc.SuppressionServicer, interceptors: tuple[grpc.ServerInterceptor, ...] = ()
) -> tuple[grpc.Server, str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), interceptors=interceptors)
    pb_grpc.add_SuppressionServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, InvalidRequestError),
        (grpc.StatusCode.UNAUTHENTICATED, UnauthenticatedError),
        (grpc.StatusCode.PERMISSION_DENIED, PermissionDeniedError),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, QuotaExceededError),
        (grpc.StatusCode.FAILED_PRECONDITION, ServerError),
        (grpc.StatusCode.INTERNAL, ServerError),
        (grpc.StatusCode.UNAVAILABLE, UnavailableError),
        (grpc.StatusCode.DEADLINE_EXCEEDED, DeadlineExceededError),
    ],
)
def test_each_status_becomes_its_exception(code: grpc.StatusCode, error: type[ClientError]) -> None:
    server, target = _serve(_Refusing(code, ()))
    try:
        with client(target) as suppression, pytest.raises(error) as caught:
            suppression.check(e164=[US])
    finally:
        server.stop(None)
    assert type(caught.value) is error
    assert caught.value.code == code and caught.value.target == target
    assert f"refused with {code.name}" in str(caught.value)


def test_quota_exceeded_carries_retry_after() -> None:
    server, target = _serve(
        _Refusing(grpc.StatusCode.RESOURCE_EXHAUSTED, (("retry-after-ms", "1500"),))
    )
    try:
        with client(target) as suppression, pytest.raises(QuotaExceededError) as caught:
            suppression.check(e164=[US])
    finally:
        server.stop(None)
    assert caught.value.retry_after == 1.5
    assert "retry in 1.5 s" in str(caught.value)


# -- credentials, against the real auth interceptor --------------------------

_FAST_SCRYPT = {"n": 1 << 10, "r": 8, "p": 1}


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """The real servicer behind the real auth interceptor; yields its target and tokens."""
    tokens = {name: new_token(name) for name in ("dialer", "writer", "tiny")}
    scopes = {"dialer": "check", "writer": "write", "tiny": "check"}
    lines = ["[tenants.acme]", "all_lists = true", ""]
    for name, token in tokens.items():
        lines += [
            f"[identities.{name}]",
            'tenant = "acme"',
            f'scopes = ["{scopes[name]}"]',
            f'token_hashes = ["{hash_token(token, **_FAST_SCRYPT)}"]',
        ]
        if name == "tiny":
            lines.append("quota = { numbers_per_minute = 60, numbers_per_day = 1000, burst = 2 }")
        lines.append("")
    trust_file = tmp_path / "trust.toml"
    trust_file.write_text("\n".join(lines))
    quota = SharedQuota.create(tmp_path / "quota", slots=8, clock=lambda: 10.0)
    replica = Replica(replica_data(demo_lists()))
    replica.start()
    servicer = SuppressionServicer(
        replica, ServiceMetrics(CollectorRegistry()), normalizer=Normalizer(100)
    )
    server, target = _serve(servicer, (AuthInterceptor(TrustStore(trust_file), quota=quota),))
    try:
        yield target, tokens
    finally:
        server.stop(None)
        quota.close(remove=True)


def test_bearer_tokens_and_what_the_server_refuses(guarded: tuple[str, dict[str, str]]) -> None:
    target, tokens = guarded
    with client(target, token=tokens["dialer"]) as suppression:
        assert suppression.check(e164=[US, CN]).suppressed() == [US, CN]
    with client(target) as suppression, pytest.raises(UnauthenticatedError):
        suppression.check(e164=[US])
    with client(target, token="dialer.wrong") as suppression, pytest.raises(UnauthenticatedError):
        suppression.check(e164=[US])
    with client(target, token=tokens["writer"]) as suppression:
        with pytest.raises(PermissionDeniedError) as denied:
            suppression.check(e164=[US])
    assert "scope" in str(denied.value)
    with client(target, token=tokens["tiny"], max_batch=10) as suppression:
        with pytest.raises(QuotaExceededError) as never:
            suppression.check(e164=[US] * 3)  # more than its burst: it never passes
        assert suppression.check(e164=[US, CN]).version == "1700000000000-7"
        with pytest.raises(QuotaExceededError) as spent:
            suppression.check(e164=[US, CN])
    assert never.value.retry_after is None
    assert spent.value.retry_after is not None and spent.value.retry_after > 0


def test_configuration_mistakes_say_what_to_do() -> None:
    with pytest.raises(ValueError, match="at least one target"):
        ClientConfig(targets=())
    with pytest.raises(TypeError, match="not one string"):
        ClientConfig(targets="localhost:50051")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)


def test_targets_get_the_services_port() -> None:
    config = ClientConfig(targets=("localhost", "[::1]", "10.0.0.7:6000", "dns:///replicas:1"))
    assert config.targets == (
        "localhost:50051",
        "[::1]:50051",
        "10.0.0.7:6000",
        "dns:///replicas:1",
    )
    with pytest.raises(ValueError, match="port must be a number"):
        ClientConfig(targets=("localhost:99999",))
