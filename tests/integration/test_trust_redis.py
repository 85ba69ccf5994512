"""The change log over TLS with an ACL user: a real redis-server, a real replica, one URL.

Checks what docs/security.md says: ``rediss://user:password@host:port/0?ssl_ca_certs=...``
is all a replica needs, and the ACL there (the default user off, the service's
user limited to its streams and commands) lets it follow, write and answer.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from suppression.datasource import DataSource
from suppression.errors import ChangeLogError
from suppression.lists import Op
from suppression.redisconn import connect, redis_errors
from suppression.replica import ChangeLogOptions, Replica
from tests.certs import Pem, make_ca, server_cert
from tests.conftest import free_port, wait_for

pytestmark = pytest.mark.integration

ACL = (
    "user default off\n"
    "user suppression on >s3cret-pw ~suppression:* resetchannels -@all "
    "+xadd +xread +xrange +xtrim +xlen +xinfo +xsetid +xgroup|create +xgroup|destroy "
    "+eval +evalsha +script|load +hget +hmget +hset +hincrby +hexists +exists +del "
    "+multi +exec +ping\n"
)


@dataclass
class TlsRedis:
    port: int
    ca: Pem

    def url(self, user: str = "suppression", password: str = "s3cret-pw") -> str:
        return (
            f"rediss://{user}:{password}@localhost:{self.port}/0"
            f"?ssl_ca_certs={self.ca.cert}&ssl_cert_reqs=required"
        )


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[TlsRedis]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed; run `make test`, which installs it")
    ca = make_ca(tmp_path, "redis-ca")
    server = server_cert(tmp_path, ca, "redis")
    acl = tmp_path / "users.acl"
    acl.write_text(ACL)
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            "--port", "0",
            "--tls-port", str(port),
            "--tls-cert-file", str(server.cert),
            "--tls-key-file", str(server.key),
            "--tls-ca-cert-file", str(ca.cert),
            "--tls-auth-clients", "no",
            "--aclfile", str(acl),
            "--bind", "127.0.0.1",
            "--dir", str(tmp_path),
            "--save", "",
            "--logfile", str(tmp_path / "redis.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    tls = TlsRedis(port, ca)

    def answers() -> bool:
        if process.poll() is not None:
            log = (tmp_path / "redis.log").read_text()
            pytest.fail(f"redis-server exited: {log.splitlines()[-1]}")
        try:
            return bool(connect(tls.url(), socket_timeout=1.0).ping())
        except redis.RedisError:
            return False

    try:
        wait_for(answers, 15.0, f"redis-server with TLS on port {port}")
        yield tls
    finally:
        process.terminate()
        process.wait(10)


def test_a_replica_follows_and_writes_over_tls_with_an_acl_user(tls_redis: TlsRedis) -> None:
    replica = Replica(DataSource(), ChangeLogOptions(redis_url=tls_redis.url(), max_staleness=5.0))
    replica.start()
    try:
        assert replica.serving
        version = replica.submit(
            Op.ADD, "internal", [8613800138000], source="in_call", create_list=True
        )
        outcome, freshness = replica.check([8613800138000, 12125550123])
        assert outcome.version == version
        assert list(outcome.verdicts) == [2, 1]  # SUPPRESSED, ALLOWED
        assert not freshness.stale
    finally:
        replica.stop()


def test_wrong_credentials_and_plain_connections_are_refused(tls_redis: TlsRedis) -> None:
    for url in (
        tls_redis.url(password="wrong"),
        tls_redis.url(user="default", password="x"),
        f"redis://localhost:{tls_redis.port}/0",
    ):
        with pytest.raises(ChangeLogError), redis_errors("pinging the change log"):
            connect(url, socket_timeout=2.0).ping()


def test_the_acl_user_cannot_touch_other_keys(tls_redis: TlsRedis) -> None:
    client = connect(tls_redis.url(), socket_timeout=2.0)
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.xadd("billing:events", {"x": "1"})
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.flushall()
