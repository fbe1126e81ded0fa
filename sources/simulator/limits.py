"""Rate-limit windows and the per-credential request counters.

A window answers "may this credential spend ``cost`` more now?" without counting refused
requests as usage; :class:`Stats` counts every request and, apart, every request beyond the
limit, per credential and per app: that over-limit count is how tests and the benchmark prove a
client respects the platform's limits.
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass


class SlidingWindow:
    """At most ``limit`` units in any ``seconds``-long stretch (rolling), per key.

    Usage is kept in ``slots`` buckets per key, so a key costs O(slots) memory whatever its rate.
    """

    def __init__(self, limit: int, seconds: float, slots: int = 60) -> None:
        self.limit = limit
        self.seconds = seconds
        self._slot = seconds / slots
        self._buckets: dict[str, deque[list[float]]] = defaultdict(deque)

    def _trim(self, key: str, now: float) -> deque[list[float]]:
        buckets = self._buckets[key]
        while buckets and buckets[0][0] <= now - self.seconds:
            buckets.popleft()
        return buckets

    def used(self, key: str, now: float) -> int:
        return int(sum(b[1] for b in self._trim(key, now)))

    def take(self, key: str, now: float, cost: int = 1) -> bool:
        """Spend ``cost`` units; False (and nothing spent) when that would pass the limit."""
        buckets = self._trim(key, now)
        if sum(b[1] for b in buckets) + cost > self.limit:
            return False
        start = math.floor(now / self._slot) * self._slot
        if buckets and buckets[-1][0] == start:
            buckets[-1][1] += cost
        else:
            buckets.append([start, cost])
        return True

    def regain_in(self, key: str, now: float) -> float:
        """Seconds until the oldest usage leaves the window."""
        buckets = self._trim(key, now)
        return max(0.0, buckets[0][0] + self.seconds - now) if buckets else 0.0


class FixedWindow:
    """At most ``limit`` units per window; ``window_start(now)`` says where a window begins."""

    def __init__(self, limit: int, window_start: Callable[[float], float],
                 window_end: Callable[[float], float]) -> None:
        self.limit = limit
        self._start = window_start
        self._end = window_end
        self._used: dict[str, tuple[float, int]] = {}

    @classmethod
    def every(cls, limit: int, seconds: float) -> FixedWindow:
        return cls(limit, lambda t: math.floor(t / seconds) * seconds,
                   lambda t: (math.floor(t / seconds) + 1) * seconds)

    def used(self, key: str, now: float) -> int:
        start, used = self._used.get(key, (0.0, 0))
        return used if start == self._start(now) else 0

    def take(self, key: str, now: float, cost: int = 1) -> bool:
        used = self.used(key, now)
        if used + cost > self.limit:
            return False
        self._used[key] = (self._start(now), used + cost)
        return True

    def remaining(self, key: str, now: float) -> int:
        return max(0, self.limit - self.used(key, now))

    def reset_at(self, now: float) -> float:
        return self._end(now)


@dataclass
class Count:
    requests: int = 0
    over_limit: int = 0


class Stats:
    """Requests and over-limit requests per credential and per app (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.credentials: dict[str, Count] = defaultdict(Count)
        self.apps: dict[str, Count] = defaultdict(Count)

    def record(self, credential: str, app: str, *, over_limit: bool) -> None:
        with self._lock:
            for count in (self.credentials[credential], self.apps[app]):
                count.requests += 1
                count.over_limit += over_limit

    def snapshot(self) -> dict[str, object]:
        with self._lock:
            creds = {k: vars(v).copy() for k, v in self.credentials.items()}
            apps = {k: vars(v).copy() for k, v in self.apps.items()}
        return {
            "credentials": creds,
            "apps": apps,
            "requests": sum(c["requests"] for c in apps.values()),
            "over_limit": sum(c["over_limit"] for c in apps.values()),
        }

    def reset(self) -> None:
        with self._lock:
            self.credentials.clear()
            self.apps.clear()
