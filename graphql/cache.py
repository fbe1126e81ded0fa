"""Redis read-through cache for API answers, evicted by what they depend on when it changes.

An answer is stored under ``cp:api:cache:<tenant>:<kind>:<digest of the question>`` for
``CREATORPULSE_API_CACHE_TTL``, and listed in the dependency sets ``cp:api:deps:<dependency>``
of what it was computed from:

- :func:`influencer_dep` for an answer about one influencer (its series, its engagement rate),
  dropped when fresh aggregates for that influencer arrive, and on its update or erasure;
- :func:`tenant_dep` for an answer over a tenant's aggregates (totals, leaderboards), which any
  of its influencers' fresh aggregates can change;
- :func:`registry_dep` for an answer from a tenant's registry (its influencers), dropped when the
  registry announces a change (a mutation here, or ``NOTIFY`` from any other process).

:meth:`AggregateCache.invalidate` drains dependency sets in one atomic script and stamps each
dependency with Redis's clock. A miss notes that clock when it looks the key up, and its answer
is stored only if none of its dependencies was stamped since: an answer computed from rows read
before an invalidation can never be stored after it. Hits and misses are counted for the hit
ratio on ``/metrics``.

A Redis outage never fails a query: the cache is skipped and the database answers.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from creatorpulse.graphql.observability import ApiMetrics

log = logging.getLogger(__name__)

T = TypeVar("T")

PREFIX = "cp:api:cache:"
DEPS = "cp:api:deps:"
STAMPS = "cp:api:stamp:"
STAMP_MIN_MS = 60_000

# KEYS: dependency sets to drain, then (as many again) their stamps. ARGV[1]: stamp ttl in ms.
# Deletes every answer listed in the sets, then the sets, and stamps each dependency with now.
_INVALIDATE = """
local half = #KEYS / 2
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local dropped = 0
for i = 1, half do
  local keys = redis.call('SMEMBERS', KEYS[i])
  for _, key in ipairs(keys) do
    dropped = dropped + redis.call('DEL', key)
  end
  redis.call('DEL', KEYS[i])
  redis.call('SET', KEYS[half + i], now, 'PX', ARGV[1])
end
return dropped
"""

# KEYS[1]: the answer; then n dependency sets, then their n stamps. ARGV: value, ttl in ms, the
# Redis time in ms at which the answer's computation began. Stores the answer and lists it
# under each dependency in one step, unless a dependency was invalidated since that time.
_STORE = """
local n = (#KEYS - 1) / 2
local since = tonumber(ARGV[3])
for i = 1, n do
  local stamp = tonumber(redis.call('GET', KEYS[1 + n + i]) or '-1')
  if stamp >= since then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
for i = 1, n do
  redis.call('SADD', KEYS[1 + i], KEYS[1])
  redis.call('PEXPIRE', KEYS[1 + i], ARGV[2])
end
return 1
"""


def influencer_dep(influencer_id: str) -> str:
    return influencer_id


def tenant_dep(tenant_id: str) -> str:
    return f"tenant:{tenant_id}"


def registry_dep(tenant_id: str) -> str:
    return f"registry:{tenant_id}"


def cache_key(tenant_id: str, kind: str, params: Any) -> str:
    digest = hashlib.sha256(
        json.dumps([kind, params], sort_keys=True, default=str).encode()).hexdigest()[:32]
    return f"{PREFIX}{tenant_id}:{kind}:{digest}"


class AggregateCache:
    """Read-through cache of JSON-able answers, evicted by dependency.

    ``tenant_of`` finds an influencer's tenant (for the tenant-wide answers) when the caller of
    :meth:`invalidate` does not say it.
    """

    def __init__(self, redis: Redis, ttl: timedelta, metrics: ApiMetrics,
                 tenant_of: Callable[[str], Awaitable[str | None]] | None = None) -> None:
        self._redis = redis
        self._tenant_of = tenant_of
        self._ttl_ms = max(1, int(ttl.total_seconds() * 1000))
        # A stamp must outlive any computation that began before it (and any answer stored).
        self._stamp_ms = max(self._ttl_ms, STAMP_MIN_MS)
        self._metrics = metrics
        self._invalidate = redis.register_script(_INVALIDATE)
        self._store = redis.register_script(_STORE)

    async def lookup(self, key: str) -> tuple[bytes | None, int | None]:
        """The stored text under ``key`` (None on a miss) and Redis's clock in ms, in one round
        trip; ``(None, None)`` when Redis is unavailable."""
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.get(key)
                pipe.time()
                raw, (seconds, micros) = await pipe.execute()
        except RedisError as exc:
            log.warning("cache unavailable, reading the database: %s", exc)
            return None, None
        self._metrics.cache_lookup(hit=raw is not None)
        return raw, seconds * 1000 + micros // 1000

    async def store(self, key: str, text: str, dependencies: Iterable[str],
                    since_ms: int | None) -> bool:
        """Store ``text`` under ``key``, listed under each dependency, unless one of them was
        invalidated at or after ``since_ms`` (the clock :meth:`lookup` returned)."""
        if since_ms is None:
            return False
        deps = sorted(set(dependencies))
        if not deps:
            return False  # an answer that depends on nothing known could never be evicted
        try:
            stored = await self._store(
                keys=[key, *(DEPS + d for d in deps), *(STAMPS + d for d in deps)],
                args=[text, self._ttl_ms, since_ms])
        except RedisError as exc:
            log.warning("cache unavailable, answer not stored: %s", exc)
            return False
        return bool(stored)

    async def get_or_compute(
        self,
        key: str,
        dependencies: Iterable[str],
        compute: Callable[[], Awaitable[T]],
        encode: Callable[[T], Any],
        decode: Callable[[Any], T],
    ) -> T:
        """The cached answer under ``key``, or ``compute()``'s, stored under ``dependencies``
        (:func:`influencer_dep`, :func:`tenant_dep`, :func:`registry_dep` names)."""
        raw, since = await self.lookup(key)
        if raw is not None:
            return decode(json.loads(raw))
        value = await compute()
        await self.store(key, json.dumps(encode(value), default=str), dependencies, since)
        return value

    async def invalidate(self, influencer_id: str, tenant_id: str | None = None) -> int:
        """Drop every cached answer that ``influencer_id``'s aggregates may have changed (its
        own and its tenant's aggregate answers); returns how many."""
        if tenant_id is None and self._tenant_of is not None:
            tenant_id = await self._tenant_of(influencer_id)
        deps = [influencer_dep(influencer_id)]
        if tenant_id is not None:
            deps.append(tenant_dep(tenant_id))
        return await self.invalidate_deps(deps)

    async def registry_changed(self, tenant_id: str) -> None:
        """Drop the tenant's registry answers: called after a registry change. A Redis outage
        is logged, not raised: the change itself is done."""
        try:
            await self.invalidate_deps([registry_dep(tenant_id)])
        except RedisError as exc:
            log.warning("registry answers of tenant %s not evicted: %s", tenant_id, exc)

    async def drop_registry_answers(self) -> int:
        """Drop the registry answers of every tenant (changes may have been missed)."""
        deps = [key.decode()[len(DEPS):] async for key in
                self._redis.scan_iter(match=f"{DEPS}{registry_dep('*')}", count=500)]
        dropped = 0
        for start in range(0, len(deps), 500):
            dropped += await self.invalidate_deps(deps[start:start + 500])
        return dropped

    async def invalidate_deps(self, dependencies: Iterable[str]) -> int:
        """Drop every answer listed under ``dependencies``; returns how many."""
        deps = sorted(set(dependencies))
        if not deps:
            return 0
        dropped = await self._invalidate(keys=[*(DEPS + d for d in deps),
                                               *(STAMPS + d for d in deps)],
                                         args=[self._stamp_ms])
        self._metrics.cache_invalidated(int(dropped))
        return int(dropped)
