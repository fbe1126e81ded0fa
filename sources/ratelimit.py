"""Rate limits shared by every worker: token buckets in Redis, platform pauses, YouTube's quota.

Each request takes ``cost`` tokens from two buckets at once, or from neither: the credential's
(one account's token) and the platform app's. A bucket holds at most ``capacity`` tokens and
refills at ``(requests - capacity) / period``, so a full bucket and a whole period of refill
together stay within the platform's window; the arithmetic is :func:`take`, and the Redis script
below does the same in one atomic step for all workers. Several accounts of one platform each
have their own credential bucket, so their load spreads while the app bucket keeps the sum under
the app's limit.

The platform's own signals win: a ``Retry`` with a wait, or a pause asked on a success (Meta
usage near 100 %, ``x-rate-limit-remaining: 0``), blocks the credential in Redis until the time
the platform said (:meth:`RedisLimiter.block`), for every worker. YouTube's daily quota is a
counter of units per Pacific-time day, per app; once spent, requests wait for midnight PT.

Waiting is the default (not failing): :meth:`RedisLimiter.acquire` sleeps until its tokens are
there, up to ``max_wait``; a longer wait (a spent quota, a long platform pause) raises
:class:`~creatorpulse.sources.base.Retry` so the scheduler moves the poll instead of holding a
thread. Retries of failed requests use :func:`backoff` (exponential, full jitter). The clock, the
sleep and the randomness are injected.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

import redis

from creatorpulse.settings import RateLimit, Settings
from creatorpulse.sources.base import Retry

PACIFIC = ZoneInfo("America/Los_Angeles")
# A bucket holds a tenth of a period's requests: bursts stay small, so a platform's fixed window
# never sees much more than its limit even when the window and our bucket are out of phase.
BURST = 0.1


@dataclass(frozen=True)
class Bucket:
    """A token bucket: ``capacity`` tokens, refilled at ``rate`` tokens per millisecond."""

    capacity: float
    rate: float

    @classmethod
    def of(cls, limit: RateLimit) -> Bucket:
        """A bucket that lets at most ``limit.requests`` through in any ``limit.period``.

        A full bucket plus a period of refill must not pass the limit, so the refill is the
        limit minus the capacity per period (a platform's window counts the burst too).
        """
        period_ms = limit.period.total_seconds() * 1000
        capacity = max(1.0, math.ceil(limit.requests * BURST))
        refill = limit.requests - capacity if limit.requests > capacity else limit.requests
        return cls(capacity, refill / period_ms)


@dataclass(frozen=True)
class State:
    tokens: float
    at_ms: int


def take(bucket: Bucket, state: State | None, now_ms: int, cost: float) -> tuple[State, int]:
    """``(new state, wait in ms)``: wait 0 means the tokens were taken; else nothing was taken.

    An unknown bucket starts full; time running backwards (another worker's clock) refills
    nothing. A cost above the capacity is taken when the bucket is full (it goes negative), or
    a large request could never pass.
    """
    if state is None:
        tokens = bucket.capacity
    else:
        elapsed = max(0, now_ms - state.at_ms)
        tokens = min(bucket.capacity, state.tokens + elapsed * bucket.rate)
    need = min(cost, bucket.capacity)
    if tokens >= need:
        return State(tokens - cost, max(now_ms, state.at_ms if state else now_ms)), 0
    return State(tokens, max(now_ms, state.at_ms if state else now_ms)), math.ceil(
        (need - tokens) / bucket.rate
    )


def backoff(attempt: int, base: timedelta, cap: timedelta, rand: Callable[[], float]) -> timedelta:
    """Wait before retry ``attempt`` (0-based): uniform in [0, min(cap, base * 2**attempt)]."""
    ceiling = min(cap.total_seconds(), base.total_seconds() * 2 ** min(attempt, 32))
    return timedelta(seconds=ceiling * rand())


def next_pacific_midnight(now: datetime) -> datetime:
    """When YouTube's daily quota resets: the next midnight in Pacific time."""
    local = now.astimezone(PACIFIC)
    tomorrow = (local + timedelta(days=1)).date()
    return datetime(tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=PACIFIC).astimezone(UTC)


class Limiter(Protocol):
    def acquire(self, platform: str, credential: str, cost: int = 1) -> None: ...

    def block(self, platform: str, credential: str, until: datetime) -> None: ...


# KEYS: credential bucket, app bucket, credential block, app block, quota counter ("" if none).
# ARGV: now_ms, cost, cred capacity, cred rate, app capacity, app rate, quota budget, quota ttl ms.
# Returns 0 when taken, else the wait in ms (-1: the quota is spent until its reset).
_TAKE = """
local now = tonumber(ARGV[1])
local cost = tonumber(ARGV[2])
local wait = 0
for i = 3, 4 do
  local untl = tonumber(redis.call('GET', KEYS[i]) or '0')
  if untl - now > wait then wait = untl - now end
end
local state = {}
for i = 1, 2 do
  local cap = tonumber(ARGV[1 + 2 * i])
  local rate = tonumber(ARGV[2 + 2 * i])
  local h = redis.call('HMGET', KEYS[i], 't', 'ts')
  local tokens = cap
  local ts = now
  if h[1] then
    tokens = tonumber(h[1])
    ts = tonumber(h[2])
    if now > ts then
      tokens = math.min(cap, tokens + (now - ts) * rate)
      ts = now
    end
  end
  state[i] = {tokens, ts}
  local need = math.min(cost, cap)
  if tokens < need then
    local w = math.ceil((need - tokens) / rate)
    if w > wait then wait = w end
  end
end
local budget = tonumber(ARGV[7])
if budget > 0 then
  local used = tonumber(redis.call('GET', KEYS[5]) or '0')
  if used + cost > budget then return -1 end
end
if wait > 0 then return wait end
for i = 1, 2 do
  local cap = tonumber(ARGV[1 + 2 * i])
  local rate = tonumber(ARGV[2 + 2 * i])
  redis.call('HSET', KEYS[i], 't', tostring(state[i][1] - cost), 'ts', tostring(state[i][2]))
  redis.call('PEXPIRE', KEYS[i], math.ceil(cap / rate) + 60000)
end
if budget > 0 then
  redis.call('INCRBY', KEYS[5], cost)
  redis.call('PEXPIRE', KEYS[5], tonumber(ARGV[8]))
end
return 0
"""

# KEYS: the block key. ARGV: until_ms, ttl_ms. Only ever moves the block later.
_BLOCK = """
local untl = tonumber(ARGV[1])
if untl > tonumber(redis.call('GET', KEYS[1]) or '0') then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return 0
"""


def pack_command(*parts: bytes) -> bytes:
    """A Redis command in RESP, the wire format."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out += (b"$%d\r\n" % len(part), part, b"\r\n")
    return b"".join(out)


def _arg(value: object) -> bytes:
    return value if isinstance(value, bytes) else (
        repr(value) if isinstance(value, float) else str(value)).encode()


class PackedScript:
    """A Lua script called with ``EVALSHA``, its command packed here rather than by redis-py.

    Every request of a poll takes its tokens through one such call; redis-py's generic
    argument encoding was most of its cost. The script is loaded when Redis does not know it
    (``NOSCRIPT``), a broken connection is replaced once, and errors are redis-py's own."""

    def __init__(self, client: redis.Redis[bytes], script: str) -> None:
        self._client = client
        self._script = script
        self._sha = client.register_script(script).sha.encode()

    def __call__(self, keys: list[str], args: list[object]) -> object:
        command = pack_command(b"EVALSHA", self._sha, b"%d" % len(keys),
                               *(k.encode() for k in keys), *(_arg(a) for a in args))
        pool = self._client.connection_pool
        for attempt in (0, 1, 2):
            conn = pool.get_connection()
            try:
                conn.send_packed_command([command])
                return conn.read_response()
            except redis.exceptions.NoScriptError:
                if attempt == 2:
                    raise
                self._client.script_load(self._script)
            except (redis.ConnectionError, redis.TimeoutError):
                conn.disconnect()
                if attempt == 2:
                    raise
            finally:
                pool.release(conn)
        raise AssertionError("not reached")


class RedisLimiter:
    """The shared limiter: buckets, blocks and quota counters under ``prefix`` in Redis."""

    def __init__(
        self,
        client: redis.Redis[bytes],
        settings: Settings,
        *,
        prefix: str = "creatorpulse:rl",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
        max_wait: timedelta = timedelta(seconds=60),
    ) -> None:
        self._redis = client
        self._settings = settings
        self._prefix = prefix
        self._clock = clock
        self._sleep = sleep
        self._max_wait = max_wait
        self._take = PackedScript(client, _TAKE)
        self._block = client.register_script(_BLOCK)
        # Per platform: (credential bucket, app bucket, quota budget), from the settings.
        self._limits: dict[str, tuple[Bucket, Bucket, int]] = {}
        self._day: tuple[datetime, str, int] | None = None  # YouTube's quota day: reset, name

    def _keys(self, platform: str, credential: str, day: str) -> list[str]:
        p = f"{self._prefix}:{platform}"
        quota = f"{p}:quota:{day}" if platform == "youtube" else f"{p}:quota:none"
        return [f"{p}:cred:{credential}", f"{p}:app", f"{p}:cred:{credential}:block",
                f"{p}:app:block", quota]

    def _limits_of(self, platform: str) -> tuple[Bucket, Bucket, int]:
        limits = self._limits.get(platform)
        if limits is None:
            limits = self._limits[platform] = (
                Bucket.of(self._settings.rate_limit(platform, "account")),
                Bucket.of(self._settings.rate_limit(platform, "app")),
                self._settings.youtube_daily_quota if platform == "youtube" else 0)
        return limits

    def _quota_day(self, now: datetime) -> tuple[str, int]:
        """The current quota day's name and the ms of its reset (worked out once a day)."""
        if self._day is None or now >= self._day[0]:
            reset = next_pacific_midnight(now)
            self._day = (reset, reset.astimezone(PACIFIC).date().isoformat(),
                         int(reset.timestamp() * 1000))
        return self._day[1], self._day[2]

    def try_acquire(self, platform: str, credential: str, cost: int = 1) -> timedelta:
        """Take the tokens now and return zero, or take nothing and return how long to wait."""
        now = self._clock()
        cred, app, budget = self._limits_of(platform)
        day, reset_ms = self._quota_day(now)
        now_ms = int(now.timestamp() * 1000)
        wait = int(self._take(
            self._keys(platform, credential, day),
            [now_ms, cost, cred.capacity, cred.rate, app.capacity, app.rate, budget,
             reset_ms - now_ms + 3_600_000],
        ))
        if wait < 0:
            return timedelta(milliseconds=reset_ms - now_ms)
        return timedelta(milliseconds=wait)

    def acquire(self, platform: str, credential: str, cost: int = 1) -> None:
        """Wait until ``cost`` tokens are taken; raise Retry when the wait exceeds ``max_wait``."""
        while True:
            wait = self.try_acquire(platform, credential, cost)
            if not wait:
                return
            if wait > self._max_wait:
                msg = f"{platform} rate limit or quota: next request in {wait}"
                raise Retry(msg, after=wait)
            self._sleep(wait.total_seconds())

    def block(self, platform: str, credential: str, until: datetime) -> None:
        """Hold every request of ``credential`` on ``platform`` until ``until``, in every worker."""
        until_ms = int(until.timestamp() * 1000)
        ttl = max(1, until_ms - int(self._clock().timestamp() * 1000))
        self._block(keys=[f"{self._prefix}:{platform}:cred:{credential}:block"],
                    args=[until_ms, ttl])

    def block_app(self, platform: str, until: datetime) -> None:
        """Hold every request to ``platform`` (the whole app) until ``until``."""
        until_ms = int(until.timestamp() * 1000)
        ttl = max(1, until_ms - int(self._clock().timestamp() * 1000))
        self._block(keys=[f"{self._prefix}:{platform}:app:block"], args=[until_ms, ttl])


class MemoryLimiter:
    """The same rules in one process, for tests and single-process tools."""

    def __init__(self, settings: Settings, clock: Callable[[], datetime],
                 sleep: Callable[[float], None]) -> None:
        self._settings = settings
        self._clock = clock
        self._sleep = sleep
        self._states: dict[str, State] = {}
        self._blocks: dict[str, datetime] = {}
        self.taken = 0

    def acquire(self, platform: str, credential: str, cost: int = 1) -> None:
        while True:
            now = self._clock()
            until = max(self._blocks.get(f"{platform}:{credential}", now),
                        self._blocks.get(platform, now))
            if until > now:
                self._sleep((until - now).total_seconds())
                continue
            now_ms = int(now.timestamp() * 1000)
            cred_key, app_key = f"{platform}:cred:{credential}", f"{platform}:app"
            cred, app = (Bucket.of(self._settings.rate_limit(platform, s))
                         for s in ("account", "app"))
            cred_state, cred_wait = take(cred, self._states.get(cred_key), now_ms, cost)
            app_state, app_wait = take(app, self._states.get(app_key), now_ms, cost)
            wait = max(cred_wait, app_wait)
            if not wait:
                self._states[cred_key], self._states[app_key] = cred_state, app_state
                self.taken += cost
                return
            self._sleep(wait / 1000)

    def block(self, platform: str, credential: str, until: datetime) -> None:
        key = f"{platform}:{credential}"
        self._blocks[key] = max(until, self._blocks.get(key, until))


def system_random() -> Callable[[], float]:
    """The jitter source of production (not for security: jitter only spreads retries)."""
    return random.Random().random  # noqa: S311
