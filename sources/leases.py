"""Account leases in Redis: each account is polled by exactly one live worker.

A worker holds an account by a Redis key ``<prefix>:lease:<account>`` whose value is its id and
whose TTL is the lease period (``CREATORPULSE_LEASE_TTL``); it renews its keys every third of the
period. A worker that dies stops renewing, its keys expire, and the next worker to look claims
the accounts (``SET NX``): the takeover happens within the lease period plus one sync. Workers
also announce themselves in a sorted set, so each can compute its fair share and leave the
surplus for a newcomer (:func:`plan`). Renewing and releasing only touch keys that still hold
the worker's own id (Lua), so a worker that paused past its lease never steals one back.
"""

from __future__ import annotations

import functools
import hashlib
import math
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta

import redis

_RENEW = """
local lost = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
  else
    table.insert(lost, i)
  end
end
return lost
"""

_RELEASE = """
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then redis.call('DEL', key) end
end
return 0
"""


@functools.lru_cache(maxsize=1 << 17)
def preference(worker_id: str, account_id: str) -> str:
    """Rendezvous order: each worker tries accounts in its own order, so claims rarely collide."""
    return hashlib.sha256(f"{worker_id}\x1f{account_id}".encode()).hexdigest()


def plan(
    worker_id: str, active: Sequence[str], held: Iterable[str], live_workers: int
) -> tuple[list[str], list[str]]:
    """``(accounts to try to claim, in order; accounts to release)`` for a fair share.

    Held accounts no longer active are released; beyond ``ceil(active / live)`` the surplus is
    released (the least preferred first) so that a worker that joins gets work.
    """
    active_set = set(active)
    held_set = set(held)
    release = sorted(held_set - active_set)
    keep = sorted(held_set & active_set, key=lambda a: preference(worker_id, a), reverse=True)
    share = math.ceil(len(active_set) / max(1, live_workers))
    if len(keep) > share:
        release += keep[share:]
        keep = keep[:share]
    room = share - len(keep)
    candidates = sorted(active_set - held_set, key=lambda a: preference(worker_id, a),
                        reverse=True)
    return (candidates if room > 0 else []), release


class Leases:
    """One worker's leases and heartbeat."""

    def __init__(
        self,
        client: redis.Redis[bytes],
        worker_id: str,
        ttl: timedelta,
        *,
        prefix: str = "creatorpulse",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = client
        self.worker_id = worker_id
        self._ttl_ms = int(ttl.total_seconds() * 1000)
        self._prefix = prefix
        self._clock = clock
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    def _key(self, account_id: str) -> str:
        return f"{self._prefix}:lease:{account_id}"

    @property
    def _workers(self) -> str:
        return f"{self._prefix}:workers"

    def heartbeat(self) -> int:
        """Say this worker is alive; returns how many workers are."""
        now_ms = int(self._clock() * 1000)
        pipe = self._redis.pipeline()
        pipe.zadd(self._workers, {self.worker_id: now_ms})
        pipe.zremrangebyscore(self._workers, "-inf", now_ms - self._ttl_ms)
        pipe.zcard(self._workers)
        return int(pipe.execute()[-1])

    def leave(self) -> None:
        self._redis.zrem(self._workers, self.worker_id)

    def claim(self, account_id: str) -> bool:
        return bool(self._redis.set(self._key(account_id), self.worker_id, nx=True,
                                    px=self._ttl_ms))

    def claim_many(self, account_ids: Sequence[str]) -> list[str]:
        """:meth:`claim` each, in one round trip; returns the accounts claimed."""
        if not account_ids:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for account_id in account_ids:
            pipe.set(self._key(account_id), self.worker_id, nx=True, px=self._ttl_ms)
        return [a for a, ok in zip(account_ids, pipe.execute(), strict=True) if ok]

    def renew(self, account_ids: Sequence[str]) -> list[str]:
        """Extend the leases; returns the accounts whose lease was lost (expired or taken)."""
        if not account_ids:
            return []
        lost = self._renew(keys=[self._key(a) for a in account_ids],
                           args=[self.worker_id, self._ttl_ms])
        return [account_ids[int(i) - 1] for i in lost]

    def release(self, account_ids: Sequence[str]) -> None:
        if account_ids:
            self._release(keys=[self._key(a) for a in account_ids], args=[self.worker_id])

    def holder(self, account_id: str) -> str | None:
        value = self._redis.get(self._key(account_id))
        return value.decode() if isinstance(value, bytes) else value
