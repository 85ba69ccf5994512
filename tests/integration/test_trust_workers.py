"""One quota for every pre-forked worker: real processes, real gRPC servers.

Run as a script, this file is the server: a parent creates the shared quota
table, then forks two workers *before any gRPC object exists* (as ``serve
--workers`` does); each worker serves the Suppression service behind the
:class:`~suppression.auth.AuthInterceptor` on its own port, so the test can
call each worker in turn and see that they draw on one quota.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def _worker(trust: Path, ports: Path, slot: int, quota: object) -> int:
    import threading
    from concurrent import futures

    import grpc

    from suppression.auth import AuthInterceptor, TrustStore
    from suppression.v1 import suppression_pb2_grpc as pb_grpc
    from tests.trust_samples import ShellServicer

    assert quota is not None
    interceptor = AuthInterceptor(TrustStore(trust), quota=quota)  # type: ignore[arg-type]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), interceptors=[interceptor])
    pb_grpc.add_SuppressionServicer_to_server(ShellServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    staging = ports / f"{slot}.tmp"
    staging.write_text(str(port))
    staging.replace(ports / str(slot))
    stop.wait()
    server.stop(None)
    return 0


def _serve(trust: Path, quota_dir: Path, ports: Path) -> int:
    from suppression.quota import SharedQuota

    quota = SharedQuota.create(quota_dir, slots=64)
    children = []
    for slot in range(2):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = _worker(trust, ports, slot, quota)
            finally:
                os._exit(code)
        children.append(pid)

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            os.kill(child, signum)

    signal.signal(signal.SIGTERM, forward)
    for child in children:
        os.waitpid(child, 0)
    quota.close(remove=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(_serve(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])))


SCRAPER = """
[identities.scraper]
tenant = "acme"
scopes = ["check"]
token_hashes = ["{hash}"]
quota = {{ numbers_per_minute = 1, numbers_per_day = 100, burst = 5 }}
"""


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[tuple[list[int], str]]:
    from suppression.auth import hash_token, new_token
    from tests.trust_samples import FAST, tokens, trust_toml

    token = new_token("scraper")
    trust = tmp_path / "trust.toml"
    trust.write_text(trust_toml(tokens(), SCRAPER.format(hash=hash_token(token, **FAST))))
    ports = tmp_path / "ports"
    ports.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, __file__, str(trust), str(tmp_path / "quota"), str(ports)], env=env
    )
    try:
        deadline = time.monotonic() + 30
        while len(list(ports.iterdir())) < 2 or any(p.suffix for p in ports.iterdir()):
            assert process.poll() is None, "the server exited"
            assert time.monotonic() < deadline, "the workers did not start"
            time.sleep(0.05)  # polling with a deadline, not waiting a fixed time
        yield [int((ports / str(slot)).read_text()) for slot in range(2)], token
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_forked_workers_share_one_quota(workers: tuple[list[int], str]) -> None:
    import grpc

    from suppression.auth import RETRY_AFTER_KEY
    from suppression.v1 import suppression_pb2 as pb
    from suppression.v1 import suppression_pb2_grpc as pb_grpc

    ports, token = workers
    metadata = (("authorization", f"Bearer {token}"),)
    channels = [grpc.insecure_channel(f"127.0.0.1:{port}") for port in ports]
    try:
        stubs = [pb_grpc.SuppressionStub(channel) for channel in channels]
        passed = refused = 0
        for attempt in range(10):
            try:
                answer = stubs[attempt % 2].Check(
                    pb.CheckRequest(e164=[1]), metadata=metadata, timeout=10
                )
                assert answer.version == "scraper"
                passed += 1
            except grpc.RpcError as error:
                assert isinstance(error, grpc.Call)
                assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
                assert int(dict(error.trailing_metadata() or ())[RETRY_AFTER_KEY]) > 0
                refused += 1
        # A burst of 5 in all, not 5 per worker (one more refills only after 60 s).
        assert passed == 5
        assert refused == 10 - passed
    finally:
        for channel in channels:
            channel.close()
