"""Redis read-through cache for aggregate answers, evicted per influencer when fresh data arrives.

An answer is stored under ``cp:api:cache:<tenant>:<digest of the question>`` for
``CREATORPULSE_API_CACHE_TTL``, and listed in a dependency set: ``cp:api:deps:<influencer id>``
for an answer about one influencer (its series, its engagement rate), ``cp:api:deps:tenant:<id>``
for an answer over the whole tenant (aggregates, leaderboards, which a new influencer can change
too). :meth:`AggregateCache.invalidate` (called when fresh aggregates for an influencer arrive,
on updates and on erasure) drains the influencer's set and its tenant's, in one atomic script.
Hits and misses are counted for the hit ratio on ``/metrics``.

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

# KEYS: the dependency sets to drain. Deletes every answer listed in them, then the sets.
_INVALIDATE = """
local dropped = 0
for _, deps in ipairs(KEYS) do
  local keys = redis.call('SMEMBERS', deps)
  for _, key in ipairs(keys) do
    dropped = dropped + redis.call('DEL', key)
  end
  redis.call('DEL', deps)
end
return dropped
"""

# KEYS[1]: the answer; KEYS[2..]: dependency sets. ARGV: value, ttl in ms. Stores the answer and
# lists it under each influencer in one step, so an invalidation never misses a fresh answer.
_STORE = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
for i = 2, #KEYS do
  redis.call('SADD', KEYS[i], KEYS[1])
  redis.call('PEXPIRE', KEYS[i], ARGV[2])
end
return 1
"""


def influencer_dep(influencer_id: str) -> str:
    return influencer_id


def tenant_dep(tenant_id: str) -> str:
    return f"tenant:{tenant_id}"


def cache_key(tenant_id: str, kind: str, params: dict[str, Any]) -> str:
    digest = hashlib.sha256(
        json.dumps([kind, params], sort_keys=True, default=str).encode()).hexdigest()[:32]
    return f"{PREFIX}{tenant_id}:{kind}:{digest}"


class AggregateCache:
    """Read-through cache of JSON-able answers; ``invalidate`` evicts an influencer's answers.

    ``tenant_of`` finds an influencer's tenant (for the tenant-wide answers) when the caller of
    :meth:`invalidate` does not say it.
    """

    def __init__(self, redis: Redis, ttl: timedelta, metrics: ApiMetrics,
                 tenant_of: Callable[[str], Awaitable[str | None]] | None = None) -> None:
        self._redis = redis
        self._tenant_of = tenant_of
        self._ttl_ms = max(1, int(ttl.total_seconds() * 1000))
        self._metrics = metrics
        self._invalidate = redis.register_script(_INVALIDATE)
        self._store = redis.register_script(_STORE)

    async def get_or_compute(
        self,
        key: str,
        compute: Callable[[], Awaitable[tuple[T, Iterable[str]]]],
        encode: Callable[[T], Any],
        decode: Callable[[Any], T],
    ) -> T:
        """The cached answer under ``key``, or ``compute()``'s (value, dependencies), stored.

        Dependencies are :func:`influencer_dep` / :func:`tenant_dep` names."""
        try:
            raw = await self._redis.get(key)
        except RedisError as exc:
            log.warning("cache unavailable, reading the database: %s", exc)
            raw = None
        if raw is not None:
            self._metrics.cache_lookup(hit=True)
            return decode(json.loads(raw))
        self._metrics.cache_lookup(hit=False)
        value, dependencies = await compute()
        deps = sorted({DEPS + d for d in dependencies})
        try:
            await self._store(keys=[key, *deps],
                              args=[json.dumps(encode(value), default=str), self._ttl_ms])
        except RedisError as exc:
            log.warning("cache unavailable, answer not stored: %s", exc)
        return value

    async def invalidate(self, influencer_id: str, tenant_id: str | None = None) -> int:
        """Drop every cached answer that ``influencer_id`` may have changed; returns how many."""
        if tenant_id is None and self._tenant_of is not None:
            tenant_id = await self._tenant_of(influencer_id)
        deps = [DEPS + influencer_dep(influencer_id)]
        if tenant_id is not None:
            deps.append(DEPS + tenant_dep(tenant_id))
        dropped = await self._invalidate(keys=deps)
        self._metrics.cache_invalidated(int(dropped))
        return int(dropped)
