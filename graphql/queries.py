"""The Query root: every field requires a token (viewer or above) and reads the caller's tenant.

Aggregate answers (series, aggregatedMetrics, leaderboard, engagementRate) go through the Redis
read-through cache (:mod:`creatorpulse.graphql.cache`), keyed by tenant and arguments. The
fields of :data:`RESPONSE_CACHED` say what their answer depends on (``ctx.depends_on``), so
that a whole operation made of them can be answered from the response cache
(:mod:`creatorpulse.graphql.response_cache`).
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

import strawberry
from strawberry.types import Info

from creatorpulse.graphql import influencers as inf
from creatorpulse.graphql import metrics as met
from creatorpulse.graphql.cache import cache_key, influencer_dep, registry_dep, tenant_dep
from creatorpulse.graphql.errors import InputError
from creatorpulse.graphql.types import (
    Account,
    AccountStatus,
    AggregatedMetric,
    EngagementFormula,
    EngagementRate,
    GroupBy,
    Influencer,
    InfluencerConnection,
    InfluencerEdge,
    InfluencerFilter,
    InfluencerOrder,
    Interval,
    LeaderboardEntry,
    MetricSeries,
    PageInfo,
    Platform,
    to_service_filter,
)

DEFAULT_FIRST = 20
# Root fields whose resolvers declare every dependency of their answer (GraphQL names).
RESPONSE_CACHED = frozenset({
    "influencer", "influencers", "metrics", "aggregatedMetrics", "leaderboard", "engagementRate",
})
METRIC_NAME_MAX = 64


def _first(first: int, info: Info, field: str = "first") -> int:
    """``first`` within 1..API_MAX_FIRST (the cost limiter refuses literals outside it first)."""
    cap = info.context.settings.api_max_first
    if not 1 <= first <= cap:
        raise InputError(field, f"must be between 1 and {cap}")
    return first


def _metric(name: str, field: str) -> str:
    if not name or len(name) > METRIC_NAME_MAX or not name.replace("_", "").isalnum():
        raise InputError(field, "a metric name is letters, digits and '_' (e.g. likes)")
    return name


def _window(name: str, info: Info, field: str = "window") -> str:
    known = [w.name for w in info.context.settings.windows]
    if name not in known:
        raise InputError(field, f"unknown window; expected one of {', '.join(known)}")
    return name


# --- cached answers are stored as JSON: encoders and decoders of the service rows --------------

def _series_encode(rows: list[met.Series]) -> list[dict[str, Any]]:
    return [{"influencer_id": s.influencer_id, "platform": s.platform, "metric": s.metric,
             "interval": s.interval.name,
             "buckets": [[b.start.isoformat(), b.gain, b.observations, b.provenance]
                         for b in s.buckets]} for s in rows]


def _series_decode(data: list[dict[str, Any]]) -> list[met.Series]:
    return [met.Series(d["influencer_id"], d["platform"], d["metric"], met.Interval[d["interval"]],
                       tuple(met.Bucket(datetime.fromisoformat(b[0]), b[1], b[2], b[3])
                             for b in d["buckets"])) for d in data]


def _leader_encode(rows: list[met.LeaderboardRow]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rows]


def _leader_decode(data: list[dict[str, Any]]) -> list[met.LeaderboardRow]:
    return [met.LeaderboardRow(**{**d, "window_start": datetime.fromisoformat(d["window_start"]),
                                  "window_end": datetime.fromisoformat(d["window_end"])})
            for d in data]


def _rate_encode(rate: met.Rate | None) -> dict[str, Any] | None:
    return asdict(rate) if rate else None


def _rate_decode(data: dict[str, Any] | None) -> met.Rate | None:
    if data is None:
        return None
    return met.Rate(**{**data, "window_end": datetime.fromisoformat(data["window_end"])})


@strawberry.type
class Query:
    @strawberry.field(description="One influencer of your tenant (null when there is none).")
    async def influencer(self, info: Info, id: strawberry.ID) -> Influencer | None:
        info.context.depends_on(registry_dep(info.context.tenant()))
        row = await info.context.loaders.influencer.load(str(id))
        return Influencer.from_row(row) if row else None

    @strawberry.field(description="Your tenant's influencers, a page at a time.")
    async def influencers(
        self,
        info: Info,
        filter: InfluencerFilter | None = None,
        order_by: InfluencerOrder = InfluencerOrder.NAME_ASC,
        first: int = DEFAULT_FIRST,
        after: str | None = None,
    ) -> InfluencerConnection:
        ctx = info.context
        tenant = ctx.tenant()
        ctx.depends_on(registry_dep(tenant))
        async with ctx.services.pool.connection() as conn:
            page = await inf.page(conn, tenant, to_service_filter(filter),
                                  inf.Order[order_by.value], _first(first, info), after)
        for row in page.rows:
            ctx.loaders.influencer.prime(row.id, row)
        edges = [InfluencerEdge(cursor=c, node=Influencer.from_row(r))
                 for r, c in zip(page.rows, page.cursors, strict=True)]
        return InfluencerConnection(
            edges=edges,
            page_info=PageInfo(has_next_page=page.has_next,
                               end_cursor=page.cursors[-1] if page.cursors else None),
            total_count=page.total)

    @strawberry.field(description="Series of gains per platform and metric, in buckets.")
    async def metrics(
        self,
        info: Info,
        influencer_id: strawberry.ID,
        from_: Annotated[datetime, strawberry.argument(name="from")],
        to: datetime,
        platforms: list[Platform] | None = None,
        metrics: list[str] | None = None,
        interval: Interval = Interval.HOUR,
        include_total: Annotated[bool, strawberry.argument(
            description="Also return the `all` (every platform) series.")] = False,
    ) -> list[MetricSeries]:
        ctx = info.context
        tenant = ctx.tenant()
        met.check_range(from_, to)
        plats = [p.value for p in platforms] if platforms else None
        if plats is not None and include_total:
            plats.append(met.ALL_PLATFORMS)
        names = [_metric(m, f"metrics[{i}]") for i, m in enumerate(metrics or [])] or None
        params = {"influencer": str(influencer_id), "platforms": plats, "metrics": names,
                  "from": from_.isoformat(), "to": to.isoformat(), "interval": interval.name}

        async def compute() -> list[met.Series]:
            async with ctx.services.pool.connection() as conn:
                return await met.series(conn, tenant, str(influencer_id), platforms=plats,
                                        metrics=names, start=from_, end=to,
                                        interval=met.Interval[interval.name])

        deps = ctx.depends_on(influencer_dep(str(influencer_id)))
        rows = await ctx.services.cache.get_or_compute(
            cache_key(tenant, "series", params), deps, compute, _series_encode, _series_decode)
        if plats is None and not include_total:
            rows = [s for s in rows if s.platform != met.ALL_PLATFORMS]
        return [MetricSeries.from_series(s) for s in rows]

    @strawberry.field(description="Total gain of one metric over a range, grouped.")
    async def aggregated_metrics(
        self,
        info: Info,
        metric: str,
        from_: Annotated[datetime, strawberry.argument(name="from")],
        to: datetime,
        group_by: GroupBy = GroupBy.PLATFORM,
        filter: InfluencerFilter | None = None,
    ) -> list[AggregatedMetric]:
        ctx = info.context
        tenant = ctx.tenant()
        met.check_range(from_, to)
        name = _metric(metric, "metric")
        f = to_service_filter(filter)
        params = {"metric": name, "from": from_.isoformat(), "to": to.isoformat(),
                  "group": group_by.name, "filter": repr(f)}

        async def compute() -> list[met.AggregateRow]:
            async with ctx.services.pool.connection() as conn:
                return await met.aggregate(conn, tenant, metric=name, start=from_, end=to,
                                           group_by=met.GroupBy[group_by.name], f=f)

        deps = ctx.depends_on(tenant_dep(tenant))
        rows = await ctx.services.cache.get_or_compute(
            cache_key(tenant, "aggregate", params), deps, compute,
            lambda rows: [asdict(r) for r in rows],
            lambda data: [met.AggregateRow(**d) for d in data])
        return [AggregatedMetric(key=r.key, metric=name, total=r.total,
                                 observations=r.observations, group_by=group_by) for r in rows]

    @strawberry.field(description="Top influencers by gain in the latest sliding window.")
    async def leaderboard(
        self,
        info: Info,
        metric: str,
        window: str = "24h",
        platform: Platform | None = None,
        first: int = 10,
    ) -> list[LeaderboardEntry]:
        ctx = info.context
        tenant = ctx.tenant()
        name, win, n = _metric(metric, "metric"), _window(window, info), _first(first, info)
        plat = platform.value if platform else None
        params = {"metric": name, "window": win, "platform": plat, "first": n}

        async def compute() -> list[met.LeaderboardRow]:
            async with ctx.services.pool.connection() as conn:
                return await met.leaderboard(conn, tenant, metric=name, window=win,
                                             platform=plat, first=n)

        deps = ctx.depends_on(tenant_dep(tenant))
        rows = await ctx.services.cache.get_or_compute(
            cache_key(tenant, "leaderboard", params), deps, compute, _leader_encode,
            _leader_decode)
        return [LeaderboardEntry.from_row(r) for r in rows]

    @strawberry.field(description=(
        "The latest engagement rate of an influencer under a named formula, with numerator "
        "and denominator; null when the denominator is missing."))
    async def engagement_rate(
        self,
        info: Info,
        influencer_id: strawberry.ID,
        window: str = "24h",
        formula: EngagementFormula = EngagementFormula.BY_FOLLOWERS,
        platform: Platform | None = None,
    ) -> EngagementRate | None:
        ctx = info.context
        tenant = ctx.tenant()
        key = met.RateKey(str(influencer_id), platform.value if platform else met.ALL_PLATFORMS,
                          _window(window, info), formula.value)

        async def compute() -> met.Rate | None:
            async with ctx.services.pool.connection() as conn:
                found = await met.engagement_rates(conn, tenant, [key])
            return found.get(key)

        deps = ctx.depends_on(influencer_dep(key.influencer_id))
        rate = await ctx.services.cache.get_or_compute(
            cache_key(tenant, "rate", asdict(key)), deps, compute, _rate_encode, _rate_decode)
        return EngagementRate.from_rate(rate) if rate else None

    @strawberry.field(description="Your tenant's platform accounts with their polling state.")
    async def accounts(
        self,
        info: Info,
        influencer_id: strawberry.ID | None = None,
        platform: Platform | None = None,
        status: AccountStatus | None = None,
    ) -> list[Account]:
        ctx = info.context
        tenant = ctx.tenant()
        async with ctx.services.pool.connection() as conn:
            rows = await inf.accounts(conn, tenant,
                                      influencer_id=str(influencer_id) if influencer_id else None,
                                      platform=platform, status=status.value if status else None)
        return [Account.from_row(r) for r in rows]

