"""Reading engagement for the API: series of buckets, aggregates, leaderboards, engagement rates.

All reads join through ``influencers.tenant_id``, so an influencer of another tenant has no data.

Series come from the tables the engagement job writes: minutes from ``metric_buckets_1m``, hours
and days from the ``metric_buckets_1h`` / ``metric_buckets_1d`` rollups (continuous aggregates on
TimescaleDB, views otherwise), weeks from the day rollup cut at Monday 00:00 UTC. The rollups
hold no provenance, so a bucket's provenance is the weakest among its minutes that are not
``measured`` (few rows: only rounded or estimated readings), and ``measured`` when there are none.

Gains are sums of counter changes; ``platform = 'all'`` rows hold the totals across platforms.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from creatorpulse.graphql.errors import InputError
from creatorpulse.graphql.influencers import InfluencerFilter, _filter_sql

ALL_PLATFORMS = "all"
PROVENANCE_ORDER = ("rounded", "estimated", "measured")  # weakest first


class Interval(enum.Enum):
    """Bucket sizes: (source relation, date_trunc unit or None when the relation already fits)."""

    MINUTE = ("metric_buckets_1m", None)
    HOUR = ("metric_buckets_1h", None)
    DAY = ("metric_buckets_1d", None)
    WEEK = ("metric_buckets_1d", "week")

    @property
    def unit(self) -> str:
        return self.value[1] or {"MINUTE": "minute", "HOUR": "hour", "DAY": "day"}[self.name]


class GroupBy(enum.Enum):
    PLATFORM = "platform"
    INFLUENCER = "influencer"
    TAG = "tag"


@dataclass(frozen=True)
class Bucket:
    start: datetime
    gain: int
    observations: int
    provenance: str


@dataclass(frozen=True)
class Series:
    influencer_id: str
    platform: str
    metric: str
    interval: Interval
    buckets: tuple[Bucket, ...]

    @property
    def provenance(self) -> str:
        return weakest(b.provenance for b in self.buckets)

    @property
    def total(self) -> int:
        return sum(b.gain for b in self.buckets)


@dataclass(frozen=True)
class AggregateRow:
    key: str
    total: int
    observations: int


@dataclass(frozen=True)
class LeaderboardRow:
    rank: int
    influencer_id: str
    platform: str
    metric: str
    window: str
    window_start: datetime
    window_end: datetime
    gain: int
    value_at_end: int | None
    provenance: str


@dataclass(frozen=True)
class Rate:
    influencer_id: str
    platform: str
    window: str
    formula: str
    window_end: datetime
    rate: float
    numerator: int
    denominator: int | None


def weakest(provenances: Any) -> str:
    seen = set(provenances)
    for p in PROVENANCE_ORDER:
        if p in seen:
            return p
    return "measured"


def check_range(start: datetime, end: datetime, field: str = "to") -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise InputError(field, "times need a time zone (e.g. 2026-11-25T10:00:00Z)")
    if end <= start:
        raise InputError(field, "must be later than from")


_RANK = "CASE provenance WHEN 'rounded' THEN 0 WHEN 'estimated' THEN 1 ELSE 2 END"


async def series(
    conn: AsyncConnection[Any],
    tenant_id: str,
    influencer_id: str,
    *,
    platforms: Sequence[str] | None,
    metrics: Sequence[str] | None,
    start: datetime,
    end: datetime,
    interval: Interval,
) -> list[Series]:
    """One series per (platform, metric), oldest bucket first: every bucket that starts before
    ``end`` and ends after ``start`` (the first one whole, as buckets are never split)."""
    check_range(start, end)
    relation, trunc = interval.value
    bucket = f"date_trunc('{trunc}', b.bucket_start, 'UTC')" if trunc else "b.bucket_start"
    weak_unit = interval.unit
    params: dict[str, Any] = {
        "tenant": tenant_id, "influencer": influencer_id, "start": start, "end": end,
        "platforms": list(platforms) if platforms else None,
        "metrics": list(metrics) if metrics else None,
    }
    query = f"""
        WITH gains AS (
            SELECT b.platform, b.metric, {bucket} AS bucket,
                   sum(b.gain)::bigint AS gain, sum(b.observations)::bigint AS observations
            FROM {relation} b
            JOIN influencers i ON i.id = b.influencer_id AND i.tenant_id = %(tenant)s
            WHERE b.influencer_id = %(influencer)s
              AND b.bucket_start >= date_trunc('{weak_unit}', %(start)s, 'UTC')
              AND b.bucket_start < %(end)s
              AND (%(platforms)s::text[] IS NULL OR b.platform = ANY (%(platforms)s))
              AND (%(metrics)s::text[] IS NULL OR b.metric = ANY (%(metrics)s))
            GROUP BY 1, 2, 3
        ), weak AS (
            SELECT m.platform, m.metric, date_trunc('{weak_unit}', m.bucket_start, 'UTC') AS bucket,
                   min({_RANK}) AS rank
            FROM metric_buckets_1m m
            WHERE m.influencer_id = %(influencer)s AND m.provenance <> 'measured'
              AND m.bucket_start >= date_trunc('{weak_unit}', %(start)s, 'UTC')
              AND m.bucket_start < %(end)s
            GROUP BY 1, 2, 3
        )
        SELECT g.platform, g.metric, g.bucket, g.gain, g.observations,
               coalesce((ARRAY['rounded', 'estimated', 'measured'])[w.rank + 1], 'measured')
                   AS provenance
        FROM gains g LEFT JOIN weak w USING (platform, metric, bucket)
        ORDER BY g.platform, g.metric, g.bucket"""  # noqa: S608 (relation and unit are enum values)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        rows = await cur.fetchall()
    grouped: dict[tuple[str, str], list[Bucket]] = {}
    for r in rows:
        grouped.setdefault((r["platform"], r["metric"]), []).append(
            Bucket(r["bucket"], int(r["gain"]), int(r["observations"]), r["provenance"]))
    return [Series(influencer_id, p, m, interval, tuple(b)) for (p, m), b in grouped.items()]


async def aggregate(
    conn: AsyncConnection[Any],
    tenant_id: str,
    *,
    metric: str,
    start: datetime,
    end: datetime,
    group_by: GroupBy,
    f: InfluencerFilter,
) -> list[AggregateRow]:
    """Total gain of ``metric`` in [start, end) over the tenant's influencers matching ``f``.

    By platform, the per-platform rows are summed; by influencer or tag, the cross-platform
    totals (or the one platform the filter names).
    """
    check_range(start, end)
    where, params = _filter_sql(tenant_id, f)
    platform_cond, platform_params = "b.platform = %s", [
        f.platform.value if f.platform else ALL_PLATFORMS]
    tag_join = ""
    if group_by is GroupBy.PLATFORM:
        key = "b.platform"
        if f.platform is None:
            platform_cond, platform_params = "b.platform <> 'all'", []
    elif group_by is GroupBy.INFLUENCER:
        key = "i.id"
    else:
        key, tag_join = "t.tag", " CROSS JOIN LATERAL unnest(i.tags) AS t(tag)"
    query = f"""
        SELECT {key} AS key, sum(b.gain)::bigint AS total,
               sum(b.observations)::bigint AS observations
        FROM influencers i{tag_join}
        JOIN metric_buckets_1m b ON b.influencer_id = i.id
        WHERE {where} AND b.metric = %s AND {platform_cond}
          AND b.bucket_start >= %s AND b.bucket_start < %s
        GROUP BY 1 ORDER BY total DESC, key"""  # noqa: S608 (fragments are constants)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, [*params, metric, *platform_params, start, end])
        rows = await cur.fetchall()
    return [AggregateRow(r["key"], int(r["total"]), int(r["observations"])) for r in rows]


async def leaderboard(
    conn: AsyncConnection[Any],
    tenant_id: str,
    *,
    metric: str,
    window: str,
    platform: str | None,
    first: int,
) -> list[LeaderboardRow]:
    """The tenant's top influencers by gain in the latest ``window`` that has data."""
    plat = platform or ALL_PLATFORMS
    # The latest window end with data in this tenant: a backward scan of the index on
    # (window_name, metric, platform, window_end) that stops at the first tenant row.
    query = """
        WITH latest AS (
            SELECT r.window_end FROM rolling_windows r
            JOIN influencers i ON i.id = r.influencer_id AND i.tenant_id = %(tenant)s
            WHERE r.window_name = %(window)s AND r.metric = %(metric)s
              AND r.platform = %(platform)s
            ORDER BY r.window_end DESC LIMIT 1
        )
        SELECT r.influencer_id, r.platform, r.metric, r.window_name, r.window_start,
               r.window_end, r.gain, r.value_at_end, r.provenance
        FROM rolling_windows r
        JOIN latest l ON r.window_end = l.window_end
        JOIN influencers i ON i.id = r.influencer_id AND i.tenant_id = %(tenant)s
        WHERE r.window_name = %(window)s AND r.metric = %(metric)s AND r.platform = %(platform)s
        ORDER BY r.gain DESC, r.influencer_id LIMIT %(first)s"""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, {"tenant": tenant_id, "window": window, "metric": metric,
                                  "platform": plat, "first": first})
        rows = await cur.fetchall()
    return [
        LeaderboardRow(rank, r["influencer_id"], r["platform"], r["metric"], r["window_name"],
                       r["window_start"], r["window_end"], int(r["gain"]), r["value_at_end"],
                       r["provenance"])
        for rank, r in enumerate(rows, start=1)
    ]


@dataclass(frozen=True)
class RateKey:
    """Which engagement rate: influencer, platform (``all`` for the total), window, formula."""

    influencer_id: str
    platform: str
    window: str
    formula: str


async def engagement_rates(
    conn: AsyncConnection[Any], tenant_id: str, keys: Sequence[RateKey]
) -> dict[RateKey, Rate]:
    """The latest engagement rate for each key; a key without one (missing) is left out."""
    query = """
        SELECT DISTINCT ON (d.influencer_id, d.platform, d.window_name, d.formula)
               d.influencer_id, d.platform, d.window_name, d.formula, d.window_end,
               d.figure_value, d.numerator, d.denominator
        FROM derived_figures d
        JOIN influencers i ON i.id = d.influencer_id AND i.tenant_id = %s
        JOIN unnest(%s::text[], %s::text[], %s::text[], %s::text[])
             AS k(influencer_id, platform, window_name, formula)
          ON k.influencer_id = d.influencer_id AND k.platform = d.platform
         AND k.window_name = d.window_name AND k.formula = d.formula
        WHERE d.figure = 'engagement_rate'
        ORDER BY d.influencer_id, d.platform, d.window_name, d.formula, d.window_end DESC"""
    columns = [[k.influencer_id for k in keys], [k.platform for k in keys],
               [k.window for k in keys], [k.formula for k in keys]]
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, (tenant_id, *columns))
        rows = await cur.fetchall()
    found = {}
    for r in rows:
        key = RateKey(r["influencer_id"], r["platform"], r["window_name"], r["formula"])
        found[key] = Rate(r["influencer_id"], r["platform"], r["window_name"], r["formula"],
                          r["window_end"], float(r["figure_value"]), int(r["numerator"]),
                          None if r["denominator"] is None else int(r["denominator"]))
    return found
