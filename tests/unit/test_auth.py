"""Identities, scopes, tenants and the trust file; the auth interceptor on a real gRPC server.

The server is an in-process ``grpc.server`` on port 0 with the real
:class:`AuthInterceptor` in front of :class:`ShellServicer`, a small servicer for
the real ``suppression.v1.Suppression`` methods that does what the production
servicer is to do with an identity: resolve lists for the tenant, check the
list-level scopes, record the identity as the actor.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry

from suppression.auth import (
    DEFAULT_QUOTA,
    RETRY_AFTER_KEY,
    AuthInterceptor,
    Identity,
    PermissionDeniedError,
    Scope,
    Tenant,
    TrustStore,
    UnauthenticatedError,
    actor_for,
    authorize,
    current_identity,
    hash_token,
    load_trust_file,
    method_scopes,
    new_token,
    parse_trust_config,
    required_scopes,
    resolve_lists,
    resolve_write_list,
    verify_token,
    visible_lists,
)
from suppression.auth.trustfile import main as auth_main
from suppression.errors import ConfigError, UnknownListError
from suppression.interceptor import MetricsInterceptor
from suppression.metrics import GrpcServerMetrics
from suppression.quota import IdentityMetrics, QuotaLimits, SharedQuota
from suppression.v1 import suppression_pb2 as pb
from suppression.v1 import suppression_pb2_grpc as pb_grpc
from tests.certs import make_ca, make_cert, secure_channel, server_cert
from tests.trust_samples import (
    FAST,
    LIST_KINDS,
    NOW,
    ShellServicer,
    bearer,
    tokens,
    trust_toml,
)

"""Cheap scrypt parameters, so the tests hash quickly; production uses the defaults."""


# -- a small servicer that uses the identity as the real one will --------------------


def start_server(
    interceptor: AuthInterceptor,
    servicer: ShellServicer,
    credentials: grpc.ServerCredentials | None = None,
) -> tuple[grpc.Server, int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), interceptors=[interceptor])
    pb_grpc.add_SuppressionServicer_to_server(servicer, server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if credentials is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    return server, port


class Setup:
    def __init__(self, tmp_path: Path) -> None:
        self.tokens = tokens()
        self.path = tmp_path / "trust.toml"
        self.path.write_text(trust_toml(self.tokens))
        self.trust = TrustStore(self.path, clock=lambda: NOW)
        self.registry = CollectorRegistry()
        self.metrics = IdentityMetrics(self.registry)
        self.quota = SharedQuota.create(tmp_path / "quota", slots=64, clock=lambda: 100.0)
        self.interceptor = AuthInterceptor(self.trust, quota=self.quota, metrics=self.metrics)
        self.server, self.port = start_server(self.interceptor, ShellServicer(self.metrics))
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        self.stub = pb_grpc.SuppressionStub(self.channel)

    def close(self) -> None:
        self.channel.close()
        self.server.stop(None)
        self.quota.close(remove=True)

    def as_(self, name: str) -> tuple[tuple[str, str], ...]:
        return bearer(self.tokens[name])


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    built = Setup(tmp_path)
    yield built
    built.close()


def _code(call: object) -> tuple[grpc.StatusCode, str]:
    assert callable(call)
    with pytest.raises(grpc.RpcError) as refused:
        call()
    error = refused.value
    assert isinstance(error, grpc.Call)
    return error.code(), error.details() or ""


# -- pure functions ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "kwargs", "scopes"),
    [
        ("Check", {}, {Scope.CHECK}),
        ("/suppression.v1.Suppression/CheckStream", {}, {Scope.CHECK}),
        ("Explain", {}, {Scope.EXPLAIN}),
        ("GetStatus", {}, set()),
        ("GetStatus", {"details": True}, {Scope.ADMIN}),
        ("Suppress", {}, {Scope.WRITE}),
        ("Suppress", {"creates_list": True}, {Scope.WRITE, Scope.ADMIN}),
        ("Release", {}, {Scope.WRITE}),
        ("Release", {"blocks": True}, {Scope.WRITE}),
        ("Release", {"opt_out": True}, {Scope.CONSENT}),
        ("Release", {"opt_out": True, "blocks": True}, {Scope.CONSENT, Scope.ADMIN}),
        ("Snapshot", {}, {Scope.ADMIN}),
    ],
)
def test_required_scopes(method: str, kwargs: dict[str, bool], scopes: set[Scope]) -> None:
    assert required_scopes(method, **kwargs) == scopes


def test_a_method_no_scope_grants_is_refused() -> None:
    assert method_scopes("/suppression.v1.Suppression/DropEverything") is None
    assert method_scopes("/other.v1.Service/Check") is None
    assert method_scopes("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo") == set()
    with pytest.raises(ConfigError, match="no scope grants"):
        required_scopes("DropEverything")


ACME = Tenant(
    "acme",
    lists=frozenset({"acme_campaign"}),
    shared=frozenset({"national"}),
    shared_writable=frozenset({"internal"}),
    default_lists=("national", "acme_campaign"),
)


def test_visible_lists_are_own_and_shared() -> None:
    assert visible_lists(ACME, LIST_KINDS) == ("acme_campaign", "internal", "national")
    assert visible_lists(Tenant("ops", all_lists=True), LIST_KINDS) == tuple(sorted(LIST_KINDS))


def test_resolve_lists_defaults_and_requests() -> None:
    assert resolve_lists(ACME, [], LIST_KINDS) == ("national", "acme_campaign")
    assert resolve_lists(ACME, ["internal"], LIST_KINDS) == ("internal",)
    no_defaults = Tenant("b", shared=frozenset({"national", "absent"}))
    assert resolve_lists(no_defaults, [], LIST_KINDS) == ("national",)


def test_another_tenants_list_looks_like_an_unknown_one() -> None:
    with pytest.raises(UnknownListError) as hidden:
        resolve_lists(ACME, ["globex_campaign"], LIST_KINDS)
    with pytest.raises(UnknownListError) as absent:
        resolve_lists(ACME, ["no_such_list"], LIST_KINDS)
    assert "globex" not in str(hidden.value).replace("'globex_campaign'", "")
    assert str(hidden.value).replace("globex_campaign", "X") == str(absent.value).replace(
        "no_such_list", "X"
    )


def test_a_missing_default_list_fails_loudly() -> None:
    with pytest.raises(UnknownListError, match="not loaded on this server"):
        resolve_lists(ACME, [], {"national": "registry"})


def test_resolve_write_list() -> None:
    assert resolve_write_list(ACME, "acme_campaign", LIST_KINDS) is True
    assert resolve_write_list(ACME, "internal", LIST_KINDS) is True
    declared = Tenant("acme", lists=frozenset({"acme_new"}))
    assert resolve_write_list(declared, "acme_new", LIST_KINDS) is False
    with pytest.raises(PermissionDeniedError, match="read-only"):
        resolve_write_list(ACME, "national", LIST_KINDS)
    with pytest.raises(UnknownListError):
        resolve_write_list(ACME, "globex_campaign", LIST_KINDS)
    with pytest.raises(UnknownListError, match="declared"):
        resolve_write_list(ACME, "brand_new", LIST_KINDS)


def test_authorize_names_the_missing_scope() -> None:
    identity = Identity("agent", ACME, frozenset({Scope.WRITE}), token_hashes=("x",))
    authorize(identity, {Scope.WRITE})
    with pytest.raises(PermissionDeniedError, match="lacks scope admin, consent"):
        authorize(identity, {Scope.CONSENT, Scope.ADMIN, Scope.WRITE})


def test_actor_is_the_authenticated_identity() -> None:
    identity = Identity("acme-dialer", ACME, frozenset(), token_hashes=("x",))
    assert actor_for(identity, "") == "acme-dialer"
    assert actor_for(identity, "acme-dialer") == "acme-dialer"
    assert actor_for(identity, "agent-17") == "acme-dialer/agent-17"
    assert actor_for(None, "agent-17") == "agent-17"


def test_token_hashes_verify_only_their_token() -> None:
    token = new_token("acme-dialer")
    assert token.startswith("acme-dialer.")
    stored = hash_token(token)
    assert stored.startswith("scrypt:16384:8:1:")
    assert token not in stored
    assert verify_token(token, stored)
    assert not verify_token(token + "x", stored)
    assert not verify_token(token, "scrypt:1:2")
    assert not verify_token(token, "md5:" + stored[7:])
    with pytest.raises(ConfigError):
        new_token("no spaces please")


# -- the trust file ------------------------------------------------------------------


def test_trust_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "trust.toml"
    path.write_text(trust_toml(tokens()))
    config = load_trust_file(path)
    assert config.identities["checker"].tenant.name == "acme"
    assert config.identities["tiny"].quota == QuotaLimits(60, 1000, 5)
    assert config.identities["checker"].quota == QuotaLimits(60000, 1000000, 60000)
    assert config.identities["admin"].quota is None
    assert config.by_certificate_name["dialer.acme.example"].name == "checker"
    assert config.identities["expired"].expires == dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"tenant": {}}, "unknown key tenant"),
        ({"identities": {"a": {"tenant": "nope", "token_hashes": []}}}, "not one of the tenants"),
        (
            {"tenants": {"t": {}}, "identities": {"a": {"tenant": "t", "scopes": ["root"]}}},
            "scopes are check, write",
        ),
        ({"tenants": {"t": {}}, "identities": {"a": {"tenant": "t"}}}, "nobody can use it"),
        (
            {"tenants": {"t": {}}, "identities": {"a": {"tenant": "t", "token_hashes": ["pw"]}}},
            "not a scrypt hash",
        ),
        ({"tenants": {"t": {"default_lists": ["x"]}}}, "does not see"),
        (
            {
                "tenants": {"t": {}},
                "identities": {
                    "a": {"tenant": "t", "certificate_names": ["c"]},
                    "b": {"tenant": "t", "certificate_names": ["c"]},
                },
            },
            "claimed by both",
        ),
        ({"defaults": {"quota": {"numbers_per_minute": 5}}}, "numbers_per_day"),
        (
            {"tenants": {"t": {}}, "identities": {"a b": {"tenant": "t"}}},
            "identity name must match",
        ),
    ],
)
def test_trust_file_errors_say_what_to_fix(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_trust_config(data)


def test_a_broken_trust_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "trust.toml"
    path.write_text("[tenants\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_trust_file(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_trust_file(tmp_path / "absent.toml")


# -- the interceptor on a real server ------------------------------------------------


def test_calls_without_credentials_are_unauthenticated(setup: Setup) -> None:
    code, details = _code(lambda: setup.stub.Check(pb.CheckRequest(e164=[1])))
    assert code is grpc.StatusCode.UNAUTHENTICATED
    assert "authorization: Bearer" in details
    code, details = _code(
        lambda: setup.stub.Check(pb.CheckRequest(), metadata=(("authorization", "Basic eA=="),))
    )
    assert code is grpc.StatusCode.UNAUTHENTICATED and "Bearer <token>" in details
    assert (
        setup.registry.get_sample_value(
            "suppression_identity_calls_refused_total",
            {"identity": "(none)", "reason": "unauthenticated"},
        )
        == 2
    )


def test_reflection_needs_only_authentication(tmp_path: Path) -> None:
    from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

    the_tokens = tokens()
    path = tmp_path / "trust.toml"
    path.write_text(trust_toml(the_tokens))
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=2),
        interceptors=[AuthInterceptor(TrustStore(path, clock=lambda: NOW))],
    )
    reflection.enable_server_reflection((reflection.SERVICE_NAME,), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            ask = reflection_pb2.ServerReflectionRequest(list_services="")
            answer = next(
                stub.ServerReflectionInfo(iter([ask]), metadata=bearer(the_tokens["writer"]))
            )
            assert answer.list_services_response.service
            code, _ = _code(lambda: next(stub.ServerReflectionInfo(iter([ask]))))
            assert code is grpc.StatusCode.UNAUTHENTICATED
    finally:
        server.stop(None)


def test_health_answers_without_credentials(setup: Setup) -> None:
    stub = health_pb2_grpc.HealthStub(setup.channel)
    assert stub.Check(health_pb2.HealthCheckRequest()).status == (
        health_pb2.HealthCheckResponse.SERVING
    )


def test_a_wrong_token_is_unauthenticated_and_not_echoed(setup: Setup) -> None:
    forged = setup.tokens["checker"][:-4] + "AAAA"
    for token in (forged, "checker", "nobody.secret", "."):
        code, details = _code(
            lambda t=token: setup.stub.Check(pb.CheckRequest(), metadata=bearer(t))
        )
        assert code is grpc.StatusCode.UNAUTHENTICATED
        assert forged not in details


def test_expired_and_revoked_tokens_are_unauthenticated(setup: Setup) -> None:
    code, details = _code(
        lambda: setup.stub.Check(pb.CheckRequest(), metadata=setup.as_("expired"))
    )
    assert code is grpc.StatusCode.UNAUTHENTICATED and "expired at 2026-11-01" in details
    code, details = _code(
        lambda: setup.stub.Check(pb.CheckRequest(), metadata=setup.as_("revoked"))
    )
    assert code is grpc.StatusCode.UNAUTHENTICATED and "revoked" in details


def test_the_handler_sees_the_callers_identity(setup: Setup) -> None:
    answer = setup.stub.Check(pb.CheckRequest(e164=[1, 2]), metadata=setup.as_("checker"))
    assert answer.version == "checker"
    assert list(answer.list_names) == ["national", "internal", "acme_campaign"]
    answers = list(
        setup.stub.CheckStream(
            iter([pb.CheckRequest(e164=[1], request_id=i) for i in range(3)]),
            metadata=setup.as_("checker"),
        )
    )
    assert [a.version for a in answers] == ["checker"] * 3
    assert current_identity() is None


@pytest.mark.parametrize(
    ("identity", "allowed"),
    [("checker", True), ("admin", True), ("writer", False), ("consenter", False)],
)
def test_check_needs_the_check_scope(setup: Setup, identity: str, allowed: bool) -> None:
    def call() -> object:
        return setup.stub.Check(pb.CheckRequest(e164=[1]), metadata=setup.as_(identity))

    if allowed:
        call()
        return
    code, details = _code(call)
    assert code is grpc.StatusCode.PERMISSION_DENIED
    assert f"identity '{identity}' lacks scope check for Check" in details


def test_check_stream_needs_the_check_scope(setup: Setup) -> None:
    code, details = _code(
        lambda: list(
            setup.stub.CheckStream(iter([pb.CheckRequest(e164=[1])]), metadata=setup.as_("writer"))
        )
    )
    assert code is grpc.StatusCode.PERMISSION_DENIED and "scope check for CheckStream" in details


def test_get_status_details_need_admin(setup: Setup) -> None:
    plain = setup.stub.GetStatus(pb.GetStatusRequest(), metadata=setup.as_("explainer"))
    assert plain.ready and not plain.lists
    detailed = setup.stub.GetStatus(pb.GetStatusRequest(), metadata=setup.as_("admin"))
    assert [s.name for s in detailed.lists] == sorted(LIST_KINDS)


def test_suppress_needs_write_and_records_the_identity(setup: Setup) -> None:
    written = setup.stub.Suppress(
        pb.SuppressRequest(e164=[1], list="internal", actor="agent-17"),
        metadata=setup.as_("writer"),
    )
    assert written.version == "writer/agent-17"
    code, details = _code(
        lambda: setup.stub.Suppress(
            pb.SuppressRequest(e164=[1], list="internal"), metadata=setup.as_("checker")
        )
    )
    assert code is grpc.StatusCode.PERMISSION_DENIED and "write or consent" not in details
    assert "lacks scope write for Suppress" in details


def test_release_from_an_opt_out_list_needs_consent(setup: Setup) -> None:
    release = pb.ReleaseRequest(e164=[1], list="internal", source="consent", evidence="f-1")
    code, details = _code(lambda: setup.stub.Release(release, metadata=setup.as_("writer")))
    assert code is grpc.StatusCode.PERMISSION_DENIED and "lacks scope consent" in details
    assert setup.stub.Release(release, metadata=setup.as_("consenter")).version == "consenter"


def test_release_from_other_lists_needs_write(setup: Setup) -> None:
    release = pb.ReleaseRequest(e164=[1], list="acme_campaign")
    assert setup.stub.Release(release, metadata=setup.as_("writer")).applied == 1
    code, details = _code(lambda: setup.stub.Release(release, metadata=setup.as_("consenter")))
    assert code is grpc.StatusCode.PERMISSION_DENIED and "lacks scope write" in details
    code, details = _code(lambda: setup.stub.Release(release, metadata=setup.as_("checker")))
    assert code is grpc.StatusCode.PERMISSION_DENIED and "consent or write for Release" in details


def test_releasing_a_block_from_an_opt_out_list_also_needs_admin(setup: Setup) -> None:
    block = pb.ReleaseRequest(numbers=["+1900xxxxxxx"], list="internal", source="consent")
    code, details = _code(lambda: setup.stub.Release(block, metadata=setup.as_("consenter")))
    assert code is grpc.StatusCode.PERMISSION_DENIED and "lacks scope admin" in details
    assert setup.stub.Release(block, metadata=setup.as_("admin")).applied == 1


def test_creating_a_list_needs_admin(setup: Setup) -> None:
    new = pb.SuppressRequest(e164=[1], list="ops_new")
    assert setup.stub.Suppress(new, metadata=setup.as_("admin")).applied == 1


def test_explain_needs_its_scope(setup: Setup) -> None:
    assert method_scopes("/suppression.v1.Suppression/Explain") == {Scope.EXPLAIN}


def test_tenants_see_only_their_lists(setup: Setup) -> None:
    code, details = _code(
        lambda: setup.stub.Check(
            pb.CheckRequest(e164=[1], lists=["acme_campaign"]), metadata=setup.as_("globex")
        )
    )
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert "lists you can check: globex_campaign, internal, national" in details
    shared = setup.stub.Check(
        pb.CheckRequest(e164=[1], lists=["national"]), metadata=setup.as_("globex")
    )
    assert list(shared.list_names) == ["national"]
    # Globex sees the company opt-out list but may not add to it; Acme may.
    code, details = _code(
        lambda: setup.stub.Suppress(
            pb.SuppressRequest(e164=[1], list="internal"), metadata=setup.as_("globex")
        )
    )
    assert code is grpc.StatusCode.PERMISSION_DENIED and "read-only" in details
    code, _ = _code(
        lambda: setup.stub.Suppress(
            pb.SuppressRequest(e164=[1], list="acme_campaign"), metadata=setup.as_("globex")
        )
    )
    assert code is grpc.StatusCode.INVALID_ARGUMENT


def test_over_quota_is_resource_exhausted_with_a_retry_hint(setup: Setup) -> None:
    setup.stub.Check(pb.CheckRequest(e164=[1, 2, 3, 4, 5]), metadata=setup.as_("tiny"))
    with pytest.raises(grpc.RpcError) as refused:
        setup.stub.Check(pb.CheckRequest(e164=[1, 2]), metadata=setup.as_("tiny"))
    error = refused.value
    assert isinstance(error, grpc.Call)
    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "retry in 2.0 s" in (error.details() or "")
    assert dict(error.trailing_metadata() or ())[RETRY_AFTER_KEY] == "2000"
    labels = {"identity": "tiny"}
    assert (
        setup.registry.get_sample_value("suppression_identity_numbers_checked_total", labels) == 5
    )
    assert (
        setup.registry.get_sample_value("suppression_identity_numbers_suppressed_total", labels)
        == 5
    )
    refused_labels = {"identity": "tiny", "reason": "quota"}
    assert (
        setup.registry.get_sample_value("suppression_identity_calls_refused_total", refused_labels)
        == 1
    )


def test_packed_numbers_count_against_the_quota(setup: Setup) -> None:
    def packed(count: int) -> bytes:
        return b"".join(number.to_bytes(8, "little") for number in range(1, count + 1))

    setup.stub.Check(pb.CheckRequest(e164_packed=packed(5)), metadata=setup.as_("tiny"))
    with pytest.raises(grpc.RpcError) as refused:
        setup.stub.Check(pb.CheckRequest(e164_packed=packed(2)), metadata=setup.as_("tiny"))
    error = refused.value
    assert isinstance(error, grpc.Call)
    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    labels = {"identity": "tiny"}
    assert (
        setup.registry.get_sample_value("suppression_identity_numbers_checked_total", labels) == 5
    )


def test_quota_counts_every_request_of_a_stream(setup: Setup) -> None:
    requests = [pb.CheckRequest(e164=[1, 2], request_id=i) for i in range(3)]
    responses = setup.stub.CheckStream(iter(requests), metadata=setup.as_("tiny"))
    assert next(responses).request_id == 0
    assert next(responses).request_id == 1
    with pytest.raises(grpc.RpcError) as refused:
        next(responses)
    error = refused.value
    assert isinstance(error, grpc.Call)
    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert RETRY_AFTER_KEY in dict(error.trailing_metadata() or ())


def test_an_unlimited_identity_has_no_quota(setup: Setup) -> None:
    for _ in range(3):
        setup.stub.Check(pb.CheckRequest(e164=list(range(100_000))), metadata=setup.as_("admin"))


def test_trust_file_changes_apply_without_restart(setup: Setup) -> None:
    setup.stub.Check(pb.CheckRequest(e164=[1]), metadata=setup.as_("checker"))
    text = setup.path.read_text().replace(
        "[identities.checker]", "[identities.checker]\nrevoked = true"
    )
    staging = setup.path.with_suffix(".new")
    staging.write_text(text)
    staging.replace(setup.path)
    code, details = _code(
        lambda: setup.stub.Check(pb.CheckRequest(e164=[1]), metadata=setup.as_("checker"))
    )
    assert code is grpc.StatusCode.UNAUTHENTICATED and "revoked" in details


def test_a_broken_edit_keeps_the_previous_trust(setup: Setup) -> None:
    staging = setup.path.with_suffix(".new")
    staging.write_text("[identities.checker\n")
    staging.replace(setup.path)
    setup.stub.Check(pb.CheckRequest(e164=[1]), metadata=setup.as_("checker"))
    assert setup.trust.reload_failures == 1


# -- identities by client certificate ------------------------------------------------


def test_a_client_certificate_names_its_identity(tmp_path: Path) -> None:
    from suppression.tls import ReloadingCertificates, TlsFiles

    ca = make_ca(tmp_path, "ca")
    other_ca = make_ca(tmp_path, "other-ca")
    server = server_cert(tmp_path, ca)
    known = make_cert(tmp_path, ca, "acme-dialer-7", ("DNS:dialer.acme.example",))
    stranger = make_cert(tmp_path, ca, "stranger", ("DNS:stranger.example",))
    rogue = make_cert(tmp_path, other_ca, "rogue", ("DNS:dialer.acme.example",))
    the_tokens = tokens()
    path = tmp_path / "trust.toml"
    path.write_text(trust_toml(the_tokens))
    interceptor = AuthInterceptor(TrustStore(path, clock=lambda: NOW))
    credentials = ReloadingCertificates(
        TlsFiles(server.cert, server.key, client_ca_file=ca.cert)
    ).credentials()
    grpc_server, port = start_server(interceptor, ShellServicer(), credentials)
    try:
        with secure_channel(port, ca, known) as channel:
            stub = pb_grpc.SuppressionStub(channel)
            assert stub.Check(pb.CheckRequest(e164=[1])).version == "checker"
            # A token wins over the certificate.
            answer = stub.Check(pb.CheckRequest(e164=[1]), metadata=bearer(the_tokens["admin"]))
            assert answer.version == "admin"
        with secure_channel(port, ca, stranger) as channel:
            code, details = _code(
                lambda: pb_grpc.SuppressionStub(channel).Check(pb.CheckRequest(e164=[1]))
            )
            assert code is grpc.StatusCode.UNAUTHENTICATED and "certificate_names" in details
        with secure_channel(port, ca, rogue) as channel:
            code, _ = _code(
                lambda: pb_grpc.SuppressionStub(channel).Check(pb.CheckRequest(e164=[1]), timeout=5)
            )
            assert code is grpc.StatusCode.UNAVAILABLE, "the handshake refuses another CA"
        with secure_channel(port, ca, stranger) as channel:
            # A certificate that names no identity, plus a token: the token decides.
            answer = pb_grpc.SuppressionStub(channel).Check(
                pb.CheckRequest(e164=[1]), metadata=bearer(the_tokens["globex"])
            )
            assert answer.version == "globex"
        with secure_channel(port, ca) as channel:
            code, _ = _code(
                lambda: pb_grpc.SuppressionStub(channel).Check(
                    pb.CheckRequest(e164=[1]), metadata=bearer(the_tokens["checker"]), timeout=5
                )
            )
            assert code is grpc.StatusCode.UNAVAILABLE, "mutual TLS requires a certificate"
    finally:
        grpc_server.stop(None)


def test_store_authenticates_certificate_names(tmp_path: Path) -> None:
    path = tmp_path / "trust.toml"
    path.write_text(trust_toml(tokens()))
    store = TrustStore(path, clock=lambda: NOW)
    assert store.authenticate_certificate(["x", "dialer.acme.example"]).name == "checker"
    with pytest.raises(UnauthenticatedError):
        store.authenticate_certificate(["x"])


def test_without_a_quota_in_the_file_identities_get_the_default() -> None:
    config = parse_trust_config(
        {"tenants": {"t": {}}, "identities": {"a": {"tenant": "t", "certificate_names": ["a"]}}}
    )
    assert config.identities["a"].quota == DEFAULT_QUOTA


def test_a_hash_added_to_the_file_works_for_a_token_refused_before(tmp_path: Path) -> None:
    the_tokens = tokens()
    path = tmp_path / "trust.toml"
    path.write_text(trust_toml(the_tokens))
    store = TrustStore(path, clock=lambda: NOW)
    second = new_token("checker")
    for _ in range(2):
        with pytest.raises(UnauthenticatedError):
            store.authenticate_token(second)
    rotated = trust_toml(the_tokens).replace(
        'token_hashes = ["scrypt', f'token_hashes = ["{hash_token(second, **FAST)}", "scrypt', 1
    )
    staging = path.with_suffix(".new")
    staging.write_text(rotated)
    staging.replace(path)
    assert store.authenticate_token(second).name == "checker"
    assert store.authenticate_token(the_tokens["checker"]).name == "checker"


def test_new_token_command_prints_a_token_and_its_hash(capsys: pytest.CaptureFixture[str]) -> None:
    assert auth_main(["new-token", "acme-dialer"]) == 0
    out = capsys.readouterr().out
    token = out.split("shown only once): ")[1].split()[0]
    stored = out.split('token_hashes = ["')[1].split('"')[0]
    assert verify_token(token, stored)
    assert "[identities.acme-dialer]" in out
    assert auth_main(["new-token", "bad name"]) == 2
    assert "must match" in capsys.readouterr().err


def test_refusals_are_counted_by_the_metrics_interceptor(tmp_path: Path) -> None:
    the_tokens = tokens()
    path = tmp_path / "trust.toml"
    path.write_text(trust_toml(the_tokens))
    registry = CollectorRegistry()
    quota = SharedQuota.create(tmp_path, slots=16, clock=lambda: 1.0)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=2),
        interceptors=[
            MetricsInterceptor(GrpcServerMetrics(registry)),
            AuthInterceptor(TrustStore(path, clock=lambda: NOW), quota=quota),
        ],
    )
    pb_grpc.add_SuppressionServicer_to_server(ShellServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.SuppressionStub(channel)
            request = pb.CheckRequest(e164=[1, 2, 3])
            calls = [
                lambda: stub.Check(request),
                lambda: stub.Check(request, metadata=bearer(the_tokens["writer"])),
                lambda: stub.Check(request, metadata=bearer(the_tokens["tiny"])),
                lambda: stub.Check(request, metadata=bearer(the_tokens["tiny"])),
            ]
            for call in calls:
                try:
                    call()
                except grpc.RpcError:
                    pass
        labels = {"grpc_type": "unary", "grpc_service": "suppression.v1.Suppression"}
        for code, count in (
            ("Unauthenticated", 1),
            ("PermissionDenied", 1),
            ("OK", 1),
            ("ResourceExhausted", 1),
        ):
            sample = registry.get_sample_value(
                "grpc_server_handled_total", {**labels, "grpc_method": "Check", "grpc_code": code}
            )
            assert sample == count, code
    finally:
        server.stop(None)
        quota.close(remove=True)
