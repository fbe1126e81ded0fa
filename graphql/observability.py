"""The API's own Prometheus metrics, in a registry per app (so tests can build many apps).

Exported on ``/metrics``: requests by route and status, operation cost charged, rate-limit
rejections, and the aggregate cache's hits, misses, evictions and hit ratio.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("creatorpulse_api_requests", "HTTP requests served",
                                ["route", "status"], registry=self.registry)
        self.latency = Histogram("creatorpulse_api_request_seconds", "HTTP request latency",
                                 ["route"], registry=self.registry)
        self.cost = Counter("creatorpulse_api_operation_cost_points",
                            "Estimated cost charged for GraphQL operations",
                            registry=self.registry)
        self.throttled = Counter("creatorpulse_api_rate_limited",
                                 "Operations refused because the client's budget was spent",
                                 registry=self.registry)
        self.cache_requests = Counter("creatorpulse_api_cache_lookups",
                                      "Aggregate cache lookups", ["result"],
                                      registry=self.registry)
        self.cache_evictions = Counter("creatorpulse_api_cache_invalidated",
                                       "Cached answers dropped because fresh data arrived",
                                       registry=self.registry)
        self.cache_ratio = Gauge("creatorpulse_api_cache_hit_ratio",
                                 "Share of aggregate cache lookups answered from the cache",
                                 registry=self.registry)
        self._hits = 0
        self._lookups = 0

    def cache_lookup(self, *, hit: bool) -> None:
        self.cache_requests.labels("hit" if hit else "miss").inc()
        self._lookups += 1
        self._hits += hit
        self.cache_ratio.set(self._hits / self._lookups)

    def cache_invalidated(self, count: int) -> None:
        self.cache_evictions.inc(count)

    @property
    def hit_ratio(self) -> float:
        return self._hits / self._lookups if self._lookups else 0.0

    def render(self) -> bytes:
        return generate_latest(self.registry)
