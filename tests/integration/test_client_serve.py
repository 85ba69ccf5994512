"""The client against `suppression serve` processes: a killed replica, splitting, streaming."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from suppression.client import ClientConfig, RetryPolicy, SuppressionClient, Verdict
from tests.conftest import ServerSubprocess

US = 12125550123
RETRY = RetryPolicy(initial_backoff=0.001, max_backoff=0.01)


def _serve_two(
    serve_subprocess: Callable[..., ServerSubprocess], tmp_path: Path
) -> tuple[ServerSubprocess, ServerSubprocess, set[int]]:
    on = {US + k for k in range(0, 400, 3)}
    numbers = tmp_path / "national.txt"
    numbers.write_text("".join(f"+{n}\n" for n in sorted(on)))
    args = ("--list", f"national:registry={numbers}", "--region", "US", "--max-batch", "50")
    servers = serve_subprocess(*args), serve_subprocess(*args)
    for server in servers:
        server.wait_serving()
    return servers[0], servers[1], on


def test_checks_go_on_when_a_replica_is_killed(
    serve_subprocess: Callable[..., ServerSubprocess], tmp_path: Path
) -> None:
    first, second, on = _serve_two(serve_subprocess, tmp_path)
    e164 = [US + k for k in range(120)]
    texts = [f"(212) 555-{123 + k:04d}" for k in range(120, 200)] + ["not a number"]
    config = ClientConfig(targets=(first.target, second.target), retry=RETRY, region="US")
    with SuppressionClient(config) as suppression:
        assert suppression.status().max_batch == 50
        before = suppression.check(e164=e164, numbers=texts)
        first.kill()
        after = [suppression.check(e164=e164, numbers=texts) for _ in range(3)]
    for result in [before, *after]:
        assert len(result.parts) == 5  # 201 numbers, 50 a request
        expected = [Verdict.SUPPRESSED if US + k in on else Verdict.ALLOWED for k in range(200)]
        assert [r.verdict for r in result][:200] == expected
        assert result[200].verdict is Verdict.INVALID
        assert result.normalized[:200] == [US + k for k in range(200)]
    assert {part.target for result in after for part in result.parts} == {second.target}


def test_a_stream_of_batches_over_a_real_server(
    serve_subprocess: Callable[..., ServerSubprocess], tmp_path: Path
) -> None:
    first, _second, on = _serve_two(serve_subprocess, tmp_path)
    batches = [[US + k for k in range(start, start + 70)] for start in range(0, 700, 70)]
    config = ClientConfig(targets=(first.target,), retry=RETRY)
    with SuppressionClient(config) as suppression:
        results = list(suppression.check_stream(batches, in_flight=3))
    flat = [r.verdict for result in results for r in result]
    assert flat == [Verdict.SUPPRESSED if US + k in on else Verdict.ALLOWED for k in range(700)]
    assert all(len(result.parts) == 2 for result in results)
