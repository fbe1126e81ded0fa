"""GraphQL object types, enums and scalars of the API, built from the service layer's rows.

Nested fields (an influencer's accounts, an account's influencer, a leaderboard entry's
influencer, an influencer's engagement rate) go through the request's DataLoaders, which are
scoped to the caller's tenant: no path reaches another tenant's rows. No type exposes a token.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, NewType

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from creatorpulse.graphql import influencers as inf
from creatorpulse.graphql import metrics as met
from creatorpulse.observation import Platform as PlatformValue

BigInt = NewType("BigInt", int)
"""Counts and gains: whole numbers that may exceed GraphQL's 32-bit Int."""

SCALARS = {
    BigInt: strawberry.scalar(
        name="BigInt", serialize=int, parse_value=int,
        description="A whole number that may exceed 32 bits (counts and gains)."),
}

# strawberry.enum marks the project's own enum in place, so one Platform serves both sides.
strawberry.enum(PlatformValue, name="Platform", description="A social platform.")
Platform = PlatformValue


@strawberry.enum(description="Bucket size of a series.")
class Interval(enum.Enum):
    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"


@strawberry.enum(description="How a value was obtained; the weakest input wins.")
class Provenance(enum.Enum):
    MEASURED = "measured"
    ESTIMATED = "estimated"
    ROUNDED = "rounded"


@strawberry.enum(description="What aggregatedMetrics groups by.")
class GroupBy(enum.Enum):
    PLATFORM = "platform"
    INFLUENCER = "influencer"
    TAG = "tag"


@strawberry.enum(description="Order of the influencers connection.")
class InfluencerOrder(enum.Enum):
    NAME_ASC = "NAME_ASC"
    NAME_DESC = "NAME_DESC"
    CREATED_ASC = "CREATED_ASC"
    CREATED_DESC = "CREATED_DESC"


@strawberry.enum(description=(
    "Engagement-rate formulas: engagements (likes + comments + shares + saves gained in the "
    "window) divided by the followers at the window's end, the views gained, or the reach."))
class EngagementFormula(enum.Enum):
    BY_FOLLOWERS = "by_followers"
    BY_VIEWS = "by_views"
    BY_REACH = "by_reach"


@strawberry.enum(description="Whether an account is polled.")
class AccountStatus(enum.Enum):
    ACTIVE = "active"
    PAUSED = "paused"


@strawberry.input(description="Conditions on influencers; all given ones must hold.")
class InfluencerFilter:
    name_contains: str | None = strawberry.field(
        default=None, description="Case-insensitive part of the name.")
    tag: str | None = None
    platform: Platform | None = strawberry.field(
        default=None, description="Has an account on this platform.")
    ids: list[strawberry.ID] | None = None

    def to_service(self) -> inf.InfluencerFilter:
        return inf.InfluencerFilter(
            name_contains=self.name_contains, tag=self.tag, platform=self.platform,
            ids=tuple(str(i) for i in self.ids) if self.ids is not None else None)


def to_service_filter(f: InfluencerFilter | None) -> inf.InfluencerFilter:
    return f.to_service() if f is not None else inf.InfluencerFilter()


def _ctx(info: Info) -> Any:
    return info.context


@strawberry.type(description="A platform account of an influencer and its polling state.")
class Account:
    id: strawberry.ID
    platform: Platform
    external_id: str
    handle: str | None
    status: AccountStatus
    poll_interval_seconds: int
    linked_at: datetime
    has_credentials: bool = strawberry.field(
        description="Whether OAuth tokens are stored (they are never readable).")
    last_poll_at: datetime | None = strawberry.field(description="Last poll, good or bad.")
    last_success_at: datetime | None = strawberry.field(description="Last successful poll.")
    next_poll_at: datetime | None = strawberry.field(description="When it is polled next.")
    last_error: str | None = strawberry.field(description="The last poll error (kept after a "
                                              "later success; see lastErrorAt).")
    last_error_at: datetime | None
    consecutive_failures: int = strawberry.field(description="Polls failed in a row (0: healthy).")
    influencer_id: strawberry.ID

    @strawberry.field(description="The influencer this account belongs to.")
    async def influencer(self, info: Info) -> Influencer | None:
        row = await _ctx(info).loaders.influencer.load(str(self.influencer_id))
        return Influencer.from_row(row) if row else None

    @classmethod
    def from_row(cls, row: inf.AccountRow) -> Account:
        return cls(
            id=strawberry.ID(row.id), platform=PlatformValue(row.platform),
            external_id=row.external_id, handle=row.handle, status=AccountStatus(row.status),
            poll_interval_seconds=int(row.poll_interval.total_seconds()),
            linked_at=row.created_at, has_credentials=row.has_credentials,
            last_poll_at=row.last_poll_at, last_success_at=row.last_success_at,
            next_poll_at=row.next_poll_at, last_error=row.last_error,
            last_error_at=row.last_error_at, consecutive_failures=row.consecutive_failures,
            influencer_id=strawberry.ID(row.influencer_id))


@strawberry.type(description="The latest engagement rate under one formula, with its parts.")
class EngagementRate:
    influencer_id: strawberry.ID
    platform: str = strawberry.field(description="A platform, or `all` for the total.")
    window: str
    formula: EngagementFormula
    window_end: datetime
    rate: float
    numerator: BigInt
    denominator: BigInt | None

    @classmethod
    def from_rate(cls, r: met.Rate) -> EngagementRate:
        return cls(influencer_id=strawberry.ID(r.influencer_id), platform=r.platform,
                   window=r.window, formula=EngagementFormula(r.formula),
                   window_end=r.window_end, rate=r.rate, numerator=r.numerator,
                   denominator=r.denominator)


@strawberry.type(description="An influencer of the caller's tenant.")
class Influencer:
    id: strawberry.ID
    name: str
    tags: list[str]
    metadata: JSON
    created_at: datetime
    updated_at: datetime

    @strawberry.field(description="Linked platform accounts with their polling state.")
    async def accounts(self, info: Info) -> list[Account]:
        rows = await _ctx(info).loaders.accounts.load(str(self.id))
        return [Account.from_row(r) for r in rows]

    @strawberry.field(description="The latest engagement rate (null when it is missing).")
    async def engagement_rate(
        self,
        info: Info,
        window: str = "24h",
        formula: EngagementFormula = EngagementFormula.BY_FOLLOWERS,
        platform: Platform | None = None,
    ) -> EngagementRate | None:
        key = met.RateKey(str(self.id), PlatformValue(platform).value if platform
                          else met.ALL_PLATFORMS,
                          window, formula.value)
        rate = await _ctx(info).loaders.engagement_rate.load(key)
        return EngagementRate.from_rate(rate) if rate else None

    @classmethod
    def from_row(cls, row: inf.InfluencerRow) -> Influencer:
        return cls(id=strawberry.ID(row.id), name=row.name, tags=list(row.tags),
                   metadata=row.metadata, created_at=row.created_at, updated_at=row.updated_at)


@strawberry.type
class InfluencerEdge:
    cursor: str
    node: Influencer


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type(description="A page of influencers (pass endCursor as `after` for the next).")
class InfluencerConnection:
    edges: list[InfluencerEdge]
    page_info: PageInfo
    total_count: int


@strawberry.type(description="Gain of a counter in one bucket.")
class Bucket:
    start: datetime
    gain: BigInt
    observations: int
    provenance: Provenance


@strawberry.type(description="Buckets of one metric on one platform (`all`: every platform).")
class MetricSeries:
    influencer_id: strawberry.ID
    platform: str
    metric: str
    interval: Interval
    provenance: Provenance
    total: BigInt
    buckets: list[Bucket]

    @classmethod
    def from_series(cls, s: met.Series) -> MetricSeries:
        return cls(
            influencer_id=strawberry.ID(s.influencer_id), platform=s.platform, metric=s.metric,
            interval=Interval(s.interval.name.lower()), provenance=Provenance(s.provenance),
            total=s.total,
            buckets=[Bucket(start=b.start, gain=b.gain, observations=b.observations,
                            provenance=Provenance(b.provenance)) for b in s.buckets])


@strawberry.type(description="One group of aggregatedMetrics.")
class AggregatedMetric:
    key: str = strawberry.field(description="The platform, influencer id or tag of the group.")
    metric: str
    total: BigInt
    observations: BigInt
    group_by: GroupBy

    @strawberry.field(description="The influencer, when grouped by INFLUENCER.")
    async def influencer(self, info: Info) -> Influencer | None:
        if self.group_by is not GroupBy.INFLUENCER:
            return None
        row = await _ctx(info).loaders.influencer.load(self.key)
        return Influencer.from_row(row) if row else None


@strawberry.type(description="A place on a leaderboard: gain in the latest window with data.")
class LeaderboardEntry:
    rank: int
    influencer_id: strawberry.ID
    platform: str
    metric: str
    window: str
    window_start: datetime
    window_end: datetime
    gain: BigInt
    value_at_end: BigInt | None
    provenance: Provenance

    @strawberry.field
    async def influencer(self, info: Info) -> Influencer | None:
        row = await _ctx(info).loaders.influencer.load(str(self.influencer_id))
        return Influencer.from_row(row) if row else None

    @classmethod
    def from_row(cls, r: met.LeaderboardRow) -> LeaderboardEntry:
        return cls(rank=r.rank, influencer_id=strawberry.ID(r.influencer_id),
                   platform=r.platform, metric=r.metric, window=r.window,
                   window_start=r.window_start, window_end=r.window_end, gain=r.gain,
                   value_at_end=r.value_at_end, provenance=Provenance(r.provenance))
