"""Per-identity token buckets in shared memory: exhaustion, refill, retry hints, forked workers."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from prometheus_client import CollectorRegistry

from suppression.errors import ConfigError
from suppression.quota import IdentityMetrics, QuotaExceededError, QuotaLimits, SharedQuota


class Clock:
    """A clock the test moves by hand: no test waits for time to pass."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


LIMITS = QuotaLimits(per_minute=600, per_day=10_000, burst=100)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def quota(tmp_path: Path, clock: Clock) -> SharedQuota:
    table = SharedQuota.create(tmp_path, slots=8, clock=clock)
    yield table
    table.close(remove=True)


def test_a_fresh_identity_may_use_its_burst_then_is_refused(quota: SharedQuota) -> None:
    quota.charge("acme-dialer", LIMITS, 60)
    quota.charge("acme-dialer", LIMITS, 40)
    with pytest.raises(QuotaExceededError) as refused:
        quota.charge("acme-dialer", LIMITS, 1)
    # 600 a minute refill 10 a second: one number is 0.1 s away.
    assert refused.value.retry_after == pytest.approx(0.1)
    assert refused.value.retry_after_ms == 100
    assert "per minute" in str(refused.value) and "retry in 0.1 s" in str(refused.value)


def test_a_refused_batch_takes_nothing(quota: SharedQuota) -> None:
    quota.charge("acme-dialer", LIMITS, 90)
    with pytest.raises(QuotaExceededError):
        quota.charge("acme-dialer", LIMITS, 20)
    quota.charge("acme-dialer", LIMITS, 10)
    assert quota.remaining("acme-dialer", LIMITS)[0] == pytest.approx(0.0)


def test_buckets_refill_with_time_up_to_the_burst(quota: SharedQuota, clock: Clock) -> None:
    quota.charge("acme-dialer", LIMITS, 100)
    clock.now += 3.0
    assert quota.remaining("acme-dialer", LIMITS)[0] == pytest.approx(30.0)
    quota.charge("acme-dialer", LIMITS, 30)
    with pytest.raises(QuotaExceededError):
        quota.charge("acme-dialer", LIMITS, 1)
    clock.now += 3600.0
    assert quota.remaining("acme-dialer", LIMITS)[0] == pytest.approx(100.0)


def test_the_daily_quota_holds_across_minutes(quota: SharedQuota, clock: Clock) -> None:
    limits = QuotaLimits(per_minute=6000, per_day=250, burst=100)
    for _ in range(2):
        quota.charge("scraper", limits, 100)
        clock.now += 60.0
    quota.charge("scraper", limits, 50)
    clock.now += 60.0
    with pytest.raises(QuotaExceededError) as refused:
        quota.charge("scraper", limits, 100)
    assert "per day" in str(refused.value)
    # 250 a day refill one number every 345.6 s; 100 numbers minus what refilled in 3 minutes.
    assert refused.value.retry_after == pytest.approx((100 - 180 * 250 / 86400) * 86400 / 250)


def test_identities_have_their_own_buckets(quota: SharedQuota) -> None:
    quota.charge("a", LIMITS, 100)
    quota.charge("b", LIMITS, 100)
    with pytest.raises(QuotaExceededError):
        quota.charge("a", LIMITS, 1)


def test_a_batch_over_the_burst_can_never_pass(quota: SharedQuota) -> None:
    with pytest.raises(QuotaExceededError, match="send smaller batches") as refused:
        quota.charge("acme-dialer", LIMITS, 101)
    assert refused.value.retry_after is None
    assert refused.value.retry_after_ms is None


def test_a_full_table_refuses_new_identities(quota: SharedQuota) -> None:
    for index in range(8):
        quota.charge(f"identity-{index}", LIMITS, 1)
    with pytest.raises(QuotaExceededError, match="full"):
        quota.charge("one-too-many", LIMITS, 1)
    quota.charge("identity-3", LIMITS, 1)


def test_another_process_opens_the_same_table(quota: SharedQuota, clock: Clock) -> None:
    other = SharedQuota.open(quota.path, clock=clock)
    try:
        other.charge("acme-dialer", LIMITS, 100)
        with pytest.raises(QuotaExceededError):
            quota.charge("acme-dialer", LIMITS, 1)
    finally:
        other.close()


def test_open_refuses_what_is_not_a_table(tmp_path: Path) -> None:
    stranger = tmp_path / "stranger.bin"
    stranger.write_bytes(b"x" * 100)
    with pytest.raises(ConfigError, match="not a quota table"):
        SharedQuota.open(stranger)
    with pytest.raises(ConfigError, match="cannot open"):
        SharedQuota.open(tmp_path / "absent.bin")


def _charge_in_child(quota: SharedQuota, attempts: int) -> tuple[int, int]:
    """Fork a child that charges one number ``attempts`` times; returns (pid, read end)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        passed = 0
        for _ in range(attempts):
            try:
                quota.charge("acme-dialer", LIMITS, 1)
                passed += 1
            except QuotaExceededError:
                pass
        os.write(write, str(passed).encode())
        os._exit(0)
    os.close(write)
    return pid, read


def test_forked_workers_share_one_quota(tmp_path: Path) -> None:
    # A clock that stands still: nothing refills, so exactly the burst may pass in all.
    quota = SharedQuota.create(tmp_path, slots=8, clock=lambda: 5000.0)
    try:
        children = [_charge_in_child(quota, 80) for _ in range(2)]
        passed = 0
        for pid, read in children:
            with os.fdopen(read) as pipe:
                passed += int(pipe.read())
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
        assert passed == LIMITS.burst
        with pytest.raises(QuotaExceededError):
            quota.charge("acme-dialer", LIMITS, 1)
    finally:
        quota.close(remove=True)
    assert not quota.path.exists()


def test_identity_metrics_count_per_identity() -> None:
    registry = CollectorRegistry()
    metrics = IdentityMetrics(registry)
    metrics.count_checked("acme-dialer", 500)
    metrics.count_checked("acme-dialer", 0)
    metrics.count_suppressed("acme-dialer", 7)
    metrics.count_refused("acme-dialer", "quota")
    labels = {"identity": "acme-dialer"}
    assert registry.get_sample_value("suppression_identity_numbers_checked_total", labels) == 500
    assert registry.get_sample_value("suppression_identity_numbers_suppressed_total", labels) == 7
    assert (
        registry.get_sample_value(
            "suppression_identity_calls_refused_total", {**labels, "reason": "quota"}
        )
        == 1
    )


class _ModelBucket:
    """Two token buckets in plain floats: what SharedQuota must agree with."""

    def __init__(self, limits: QuotaLimits) -> None:
        self.limits = limits
        self.minute = float(limits.burst)
        self.day = float(limits.per_day)
        self.at: float | None = None

    def charge(self, now: float, numbers: int) -> bool:
        if numbers > min(self.limits.burst, self.limits.per_day):
            return False
        if self.at is not None:
            elapsed = now - self.at
            self.minute = min(
                self.limits.burst, self.minute + elapsed * self.limits.per_minute / 60
            )
            self.day = min(self.limits.per_day, self.day + elapsed * self.limits.per_day / 86400)
        self.at = now
        if self.minute >= numbers and self.day >= numbers:
            self.minute -= numbers
            self.day -= numbers
            return True
        return False


class QuotaMachine(RuleBasedStateMachine):
    """SharedQuota against the model, identities and clock moved by hypothesis."""

    LIMITS = QuotaLimits(per_minute=120, per_day=1_000, burst=50)

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="quota-model-"))
        self.clock = Clock()
        self.quota = SharedQuota.create(self.directory, slots=4, clock=self.clock)
        self.models = {name: _ModelBucket(self.LIMITS) for name in ("a", "b", "c")}

    @rule(name=st.sampled_from(["a", "b", "c"]), numbers=st.integers(0, 60))
    def charge(self, name: str, numbers: int) -> None:
        try:
            self.quota.charge(name, self.LIMITS, numbers)
            passed = True
        except QuotaExceededError as exc:
            passed = False
            assert exc.retry_after is None or exc.retry_after > 0
        expected = True if numbers == 0 else self.models[name].charge(self.clock.now, numbers)
        assert passed == expected

    @rule(seconds=st.floats(0, 3600, allow_nan=False))
    def wait(self, seconds: float) -> None:
        self.clock.now += seconds

    @invariant()
    def remaining_agrees(self) -> None:
        for name, model in self.models.items():
            if model.at is None:
                continue
            minute, day = self.quota.remaining(name, self.LIMITS)
            elapsed = self.clock.now - model.at
            assert minute == pytest.approx(
                min(self.LIMITS.burst, model.minute + elapsed * self.LIMITS.per_minute / 60)
            )
            assert day == pytest.approx(
                min(self.LIMITS.per_day, model.day + elapsed * self.LIMITS.per_day / 86400)
            )

    def teardown(self) -> None:
        self.quota.close()
        shutil.rmtree(self.directory, ignore_errors=True)


TestQuotaModel = QuotaMachine.TestCase


def test_a_lease_spends_locally_and_never_lets_more_through(tmp_path: Path) -> None:
    """With a lease the table is touched once per lease, and the quota still holds."""
    limits = QuotaLimits(per_minute=6_000, per_day=1_000_000, burst=1_000)
    table = SharedQuota.create(tmp_path, slots=8, clock=lambda: 100.0, lease=0.1)
    other = SharedQuota.open(table.path, clock=lambda: 100.0)  # another worker, exact
    table.charge("acme", limits, 10)  # takes 10 plus a lease of 100
    minute_left, _ = other.remaining("acme", limits)
    assert minute_left == 1_000 - 110
    for _ in range(10):
        table.charge("acme", limits, 10)  # spent from the lease: the table does not move
    assert other.remaining("acme", limits)[0] == 1_000 - 110
    allowed = 110
    with pytest.raises(QuotaExceededError):
        while True:
            table.charge("acme", limits, 10)
            allowed += 10
    assert allowed <= limits.burst, "a lease never lets more through than the quota"
