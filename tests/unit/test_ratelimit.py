from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from creatorpulse.settings import RateLimit, Settings
from creatorpulse.sources.ratelimit import (
    Bucket,
    MemoryLimiter,
    State,
    backoff,
    next_pacific_midnight,
    take,
)

SECOND = 1000


def test_a_bucket_holds_a_tenth_of_a_period_and_refills_evenly() -> None:
    bucket = Bucket.of(RateLimit("x", 900, timedelta(minutes=15)))
    assert bucket.capacity == 90
    assert bucket.rate == pytest.approx(0.9 / SECOND)
    assert Bucket.of(RateLimit("x", 3, timedelta(seconds=1))).capacity == 1


def test_a_full_bucket_and_a_period_of_refill_stay_within_the_limit() -> None:
    """The platform's window counts the initial burst: capacity + refill <= requests."""
    for requests, period in ((900, 900), (600, 60), (20, 1), (3, 1), (1, 60)):
        bucket = Bucket.of(RateLimit("x", requests, timedelta(seconds=period)))
        assert bucket.capacity + bucket.rate * period * SECOND <= max(requests, 1) + 1e-9 or (
            requests == 1 and bucket.capacity == 1)
        state, taken = None, 0
        for ms in range(0, period * SECOND, max(1, period * SECOND // 5000)):
            state, wait = take(bucket, state, ms, 1)
            taken += wait == 0
        assert taken <= requests


def test_take_starts_full_then_waits_for_the_refill() -> None:
    bucket = Bucket(capacity=2, rate=1 / SECOND)
    state, wait = take(bucket, None, 0, 1)
    assert (state.tokens, wait) == (1, 0)
    state, wait = take(bucket, state, 0, 1)
    assert (state.tokens, wait) == (0, 0)
    same, wait = take(bucket, state, 250, 1)
    assert wait == 750 and same.tokens == pytest.approx(0.25)
    state, wait = take(bucket, state, 1000, 1)
    assert (state.tokens, wait) == (0, 0)


def test_refill_is_capped_and_a_clock_going_back_refills_nothing() -> None:
    bucket = Bucket(capacity=2, rate=1 / SECOND)
    state, _ = take(bucket, State(0, 10_000), 1_000_000, 1)
    assert state.tokens == 1
    state, wait = take(bucket, State(0, 10_000), 5_000, 1)
    assert wait == 1000 and state.at_ms == 10_000


def test_a_cost_above_capacity_passes_on_a_full_bucket_and_goes_negative() -> None:
    bucket = Bucket(capacity=2, rate=1 / SECOND)
    state, wait = take(bucket, None, 0, 5)
    assert (state.tokens, wait) == (-3, 0)
    _, wait = take(bucket, state, 0, 1)
    assert wait == 4000


def test_backoff_is_exponential_with_full_jitter_and_a_cap() -> None:
    base, cap = timedelta(seconds=1), timedelta(seconds=30)
    assert [backoff(n, base, cap, lambda: 1.0).total_seconds() for n in range(7)] == [
        1, 2, 4, 8, 16, 30, 30]
    assert backoff(3, base, cap, lambda: 0.5) == timedelta(seconds=4)
    assert backoff(500, base, cap, lambda: 0.0) == timedelta(0)


def test_youtube_quota_resets_at_pacific_midnight() -> None:
    # 07:59 UTC on 2026-11-25 is 23:59 PST on the 24th: the reset is one minute later.
    assert next_pacific_midnight(datetime(2026, 11, 25, 7, 59, tzinfo=UTC)) == datetime(
        2026, 11, 25, 8, 0, tzinfo=UTC)
    # Summer time: midnight PDT is 07:00 UTC.
    assert next_pacific_midnight(datetime(2026, 7, 1, 12, 0, tzinfo=UTC)) == datetime(
        2026, 7, 2, 7, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
        self.slept: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)


def test_memory_limiter_never_exceeds_the_app_rate_and_honours_blocks() -> None:
    settings = Settings.from_env({
        "CREATORPULSE_APP_RATE_LIMITS":
            "instagram=1/1s,facebook=1/1s,youtube=1/1s,tiktok=10/1s,x=1/1s",
    }, dotenv=None)
    clock = FakeClock()
    limiter = MemoryLimiter(settings, clock, clock.sleep)
    start = clock.now
    for n in range(21):
        limiter.acquire("tiktok", f"acct-{n % 3}")
    # Capacity 1, refilled at 10 - 1 per second: 21 requests need 20/9 s after the first.
    assert clock.now - start == pytest.approx(timedelta(seconds=20 / 9),
                                              abs=timedelta(milliseconds=30))
    limiter.block("tiktok", "acct-0", clock.now + timedelta(seconds=30))
    before = clock.now
    limiter.acquire("tiktok", "acct-0")
    assert clock.now - before >= timedelta(seconds=30)


def test_commands_are_packed_in_resp() -> None:
    from creatorpulse.sources.ratelimit import pack_command

    assert pack_command(b"EVALSHA", b"ab", b"1", b"k") == (
        b"*4\r\n$7\r\nEVALSHA\r\n$2\r\nab\r\n$1\r\n1\r\n$1\r\nk\r\n")
    assert pack_command(b"GET", b"") == b"*2\r\n$3\r\nGET\r\n$0\r\n\r\n"
