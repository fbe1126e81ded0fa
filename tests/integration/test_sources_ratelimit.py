"""The shared rate limiter against the real Redis, with several workers at once."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis

from creatorpulse.settings import Settings
from creatorpulse.sources.base import Retry
from creatorpulse.sources.ratelimit import PackedScript, RedisLimiter
from creatorpulse.stack import Stack

LIMITS = {
    "CREATORPULSE_APP_RATE_LIMITS": "instagram=20/1s,facebook=20/1s,youtube=20/1s,"
                                    "tiktok=20/1s,x=20/1s",
    "CREATORPULSE_ACCOUNT_RATE_LIMITS": "instagram=8/1s,facebook=8/1s,youtube=8/1s,"
                                        "tiktok=8/1s,x=8/1s",
    "CREATORPULSE_YOUTUBE_DAILY_QUOTA": "5",
}


@pytest.fixture
def client(stack: Stack, settings: Settings) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(settings.redis_dsn.reveal())
    yield c
    c.close()


@pytest.fixture
def prefix(client: redis.Redis) -> Iterator[str]:
    p = f"test-rl-{uuid.uuid4().hex[:10]}"
    yield p
    for key in client.scan_iter(f"{p}:*"):
        client.delete(key)


def _settings() -> Settings:
    return Settings.from_env(LIMITS, dotenv=None)


def test_concurrent_workers_never_exceed_the_app_rate(
    settings: Settings, prefix: str
) -> None:
    """Six workers on four credentials for 3 s: the app's 20/s holds, credentials' 8/s too."""
    stamps: list[tuple[float, str]] = []
    lock = threading.Lock()
    stop = time.monotonic() + 3.0

    def worker(n: int) -> None:
        client = redis.Redis.from_url(settings.redis_dsn.reveal())
        limiter = RedisLimiter(client, _settings(), prefix=prefix)
        credential = f"acct-{n % 4}"
        while time.monotonic() < stop:
            limiter.acquire("x", credential)
            with lock:
                stamps.append((time.monotonic(), credential))
        client.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    elapsed = max(s for s, _ in stamps) - started
    # Capacity 2 (a tenth of 20, rounded up) plus 20 per second of refill.
    assert len(stamps) <= 2 + 20 * elapsed + 1
    assert len(stamps) >= 0.8 * 20 * 3.0, "the limiter should let the full rate through"
    times = sorted(s for s, _ in stamps)
    for i, t in enumerate(times):  # any one-second window: at most capacity + 20 (+1 slack)
        assert sum(1 for u in times[i:] if u - t < 1.0) <= 23
    for cred in {c for _, c in stamps}:
        mine = [s for s, c in stamps if c == cred]
        assert len(mine) <= 1 + 8 * elapsed + 1


def test_a_platform_pause_holds_the_credential_in_every_worker(
    client: redis.Redis, prefix: str
) -> None:
    a = RedisLimiter(client, _settings(), prefix=prefix, max_wait=timedelta(seconds=10))
    b = RedisLimiter(client, _settings(), prefix=prefix, max_wait=timedelta(seconds=10))
    a.block("tiktok", "acct-1", datetime.now(UTC) + timedelta(milliseconds=800))
    started = time.monotonic()
    b.acquire("tiktok", "acct-1")
    assert time.monotonic() - started >= 0.7
    started = time.monotonic()
    b.acquire("tiktok", "acct-2")  # another credential is not held
    assert time.monotonic() - started < 0.3


def test_a_long_pause_becomes_a_retry_instead_of_a_blocked_thread(
    client: redis.Redis, prefix: str
) -> None:
    limiter = RedisLimiter(client, _settings(), prefix=prefix, max_wait=timedelta(seconds=1))
    limiter.block_app("instagram", datetime.now(UTC) + timedelta(minutes=10))
    with pytest.raises(Retry) as err:
        limiter.acquire("instagram", "acct-1")
    assert err.value.after is not None and err.value.after > timedelta(minutes=9)


def test_youtube_daily_quota_is_a_shared_budget_until_pacific_midnight(
    client: redis.Redis, prefix: str
) -> None:
    a = RedisLimiter(client, _settings(), prefix=prefix)
    b = RedisLimiter(client, _settings(), prefix=prefix)
    a.acquire("youtube", "acct-1", cost=3)
    b.acquire("youtube", "acct-2", cost=2)
    with pytest.raises(Retry) as err:
        a.acquire("youtube", "acct-3", cost=1)
    assert err.value.after is not None and timedelta(0) < err.value.after <= timedelta(hours=25)
    assert b.try_acquire("x", "acct-1") == timedelta(0)  # other platforms have no quota


def test_the_packed_script_loads_itself_and_survives_a_dropped_connection(
        client: redis.Redis, prefix: str) -> None:
    script = PackedScript(client, "return {KEYS[1], ARGV[1], ARGV[2]}")
    client.script_flush()  # Redis forgets every script: the call answers NOSCRIPT first
    assert script([f"{prefix}:k"], [7, 0.25]) == [f"{prefix}:k".encode(), b"7", b"0.25"]
    # Every idle connection is dropped by the server: the call reconnects and goes through.
    client.client_kill_filter(_type="normal", skipme=True)
    for conn in list(client.connection_pool._available_connections):
        conn.disconnect()  # and the ones it would reuse are stale on our side too
    assert script([f"{prefix}:k"], ["x", b"y"]) == [f"{prefix}:k".encode(), b"x", b"y"]
