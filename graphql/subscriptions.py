"""GraphQL subscriptions over ``graphql-transport-ws``: fresh aggregates and leaderboards.

Both subscriptions are served by the process's :class:`~creatorpulse.graphql.live.LiveHub`
(``context.services.live``), so the Kafka read, the matching and every leaderboard computation
happen once per distinct set of parameters, however many clients subscribe; the GraphQL object
for an aggregate or a leaderboard is also built once and shared, and the schema's executor and
WebSocket handler (:mod:`~creatorpulse.graphql.shared`) execute each event's selection set and
encode its data once per distinct operation, variables, tenant and role.

Every subscription is scoped to the caller's tenant. The connection is authenticated once, by the
app's ``on_ws_connect`` from the ``connection_init`` payload (a missing or invalid token closes
the socket with 4403; the protocol's own codes cover the rest: 4401 subscribe before
``connection_ack``, 4429 a second ``connection_init``, 4408 none in time, 4400 a malformed
message). Each subscription checks the caller when it starts and ends when the caller's token
expires: the socket is then closed with 4403, so no socket outlives its token.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncGenerator, Iterator, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

import strawberry
from strawberry.types import Info

from creatorpulse.aggregate import Aggregate
from creatorpulse.graphql.auth import Principal
from creatorpulse.graphql.errors import InputError
from creatorpulse.graphql.live import (
    ALL_PLATFORMS,
    LeaderboardKey,
    LiveHub,
    MetricKey,
    SlowSubscriber,
    Subscriber,
    TokenExpired,
)
from creatorpulse.graphql.types import BigInt, LeaderboardEntry, Platform, Provenance
from creatorpulse.observation import Platform as PlatformValue

log = logging.getLogger(__name__)


MAX_FILTER_VALUES = 100
"""The most values one filter list of ``metricUpdates`` may hold."""

METRIC_NAME_MAX = 64


# --- payload types ----------------------------------------------------------------------------


@strawberry.type(description="A fresh rolling-window value of one influencer x platform x metric.")
class MetricUpdate:
    influencer_id: strawberry.ID
    platform: str = strawberry.field(description="A platform, or `all` for the total.")
    metric: str
    window: str = strawberry.field(description="The window's name, e.g. `1h`, `24h`, `7d`.")
    window_start: datetime
    window_end: datetime
    gain: BigInt = strawberry.field(
        description="The counter's change over the window (negative when it fell).")
    value_at_start: BigInt | None = strawberry.field(
        description="The counter at the window's start, when known (missing is not zero).")
    value_at_end: BigInt | None
    provenance: Provenance

    @classmethod
    def of(cls, aggregate: Aggregate) -> MetricUpdate:
        """The update for ``aggregate``, built once per aggregate and process."""
        return _metric_update(aggregate)


def _big(value: int | None) -> BigInt | None:
    return None if value is None else BigInt(value)


@functools.lru_cache(maxsize=8192)
def _metric_update(a: Aggregate) -> MetricUpdate:
    return MetricUpdate(
        influencer_id=strawberry.ID(a.influencer_id), platform=a.platform, metric=a.metric,
        window=a.window_name, window_start=a.window_start, window_end=a.window_end,
        gain=BigInt(a.gain), value_at_start=_big(a.value_at_start),
        value_at_end=_big(a.value_at_end),
        provenance=Provenance(a.provenance.value),
    )


@strawberry.type(description="A leaderboard of the caller's tenant, as it is now.")
class LeaderboardUpdate:
    metric: str
    window: str
    platform: str = strawberry.field(description="A platform, or `all` for the total.")
    entries: list[LeaderboardEntry]


@functools.lru_cache(maxsize=1024)
def _leaderboard_update(key: LeaderboardKey, rows: tuple[Any, ...]) -> LeaderboardUpdate:
    # Built once per distinct leaderboard, then shared by every subscriber of it.
    return LeaderboardUpdate(metric=key.metric, window=key.window, platform=key.platform,
                             entries=[LeaderboardEntry.from_row(r) for r in rows])


# --- arguments and the caller ---------------------------------------------------------------


def _live(info: Info[Any, Any]) -> tuple[LiveHub, Principal]:
    """The hub and the caller; AuthError when the caller is anonymous."""
    context = info.context
    context.tenant()  # raises AuthError for an anonymous caller
    hub = context.services.live
    if not isinstance(hub, LiveHub):
        msg = "live updates are not enabled on this server"
        raise RuntimeError(msg)
    return hub, context.principal


def _values(values: Sequence[Any] | None, field: str) -> list[str] | None:
    if values is None:
        return None
    if len(values) > MAX_FILTER_VALUES:
        raise InputError(field, f"at most {MAX_FILTER_VALUES} values")
    return [str(v) for v in values]


def _platforms(values: Sequence[str] | None) -> list[str] | None:
    names = _values(values, "platforms")
    known = {p.value for p in PlatformValue} | {ALL_PLATFORMS}
    for name in names or ():
        if name not in known:
            raise InputError("platforms", f"unknown platform {name!r}; expected one of "
                             f"{', '.join(sorted(known))}")
    return names


def _metric(name: str, field: str) -> str:
    if not name or len(name) > METRIC_NAME_MAX or not name.replace("_", "").isalnum():
        raise InputError(field, "a metric name is letters, digits and '_' (e.g. likes)")
    return name


def _window(name: str, info: Info[Any, Any]) -> str:
    known = [w.name for w in info.context.settings.windows]
    if name not in known:
        raise InputError("window", f"unknown window; expected one of {', '.join(known)}")
    return name


@contextlib.contextmanager
def _expiring(subscriber: Subscriber[Any], principal: Principal) -> Iterator[None]:
    """End ``subscriber``'s iteration with :class:`TokenExpired` when the caller's token
    expires: one timer for the subscription, nothing per event."""
    expires = principal.expires_at
    if expires is None:
        yield
        return
    loop = asyncio.get_running_loop()
    handle = subscriber.expire_at(loop.time() + (expires - datetime.now(UTC)).total_seconds())
    try:
        yield
    finally:
        handle.cancel()


async def _close_expired(info: Info[Any, Any]) -> None:
    """Close the caller's socket with 4403: its token expired."""
    websocket = getattr(info.context, "request", None)
    if websocket is not None and hasattr(websocket, "close"):
        with contextlib.suppress(Exception):  # the socket may be gone already
            await websocket.close(code=4403, reason="Token expired")


# --- the Subscription type --------------------------------------------------------------------


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Each fresh rolling-window value matching the filters, as the engagement "
        "job computes it. A filter left out matches everything of the caller's tenant; an "
        "influencer of another tenant reads as not found."
    )
    async def metric_updates(
        self,
        info: Info[Any, Any],
        influencer_ids: list[strawberry.ID] | None = None,
        platforms: Annotated[list[str] | None, strawberry.argument(
            description="Platforms, and `all` for the totals across them.")] = None,
        metrics: list[str] | None = None,
        window: str | None = None,
    ) -> AsyncGenerator[MetricUpdate, None]:
        hub, principal = _live(info)
        key = MetricKey.of(
            principal.tenant_id,
            influencer_ids=_values(influencer_ids, "influencerIds"),
            platforms=_platforms(platforms),
            metrics=[_metric(m, "metrics") for m in _values(metrics, "metrics") or []]
            if metrics is not None else None,
            window=_window(window, info) if window is not None else None,
        )
        async with hub.metric_updates(key, principal.subject) as updates:
            try:
                with _expiring(updates, principal):
                    async for batch in updates:
                        for aggregate in batch:
                            yield MetricUpdate.of(aggregate)
            except TokenExpired:
                await _close_expired(info)
            except SlowSubscriber:
                log.info("metricUpdates: a subscriber of tenant %s fell behind and was dropped",
                         principal.tenant_id)
                raise

    @strawberry.subscription(
        description="The caller's top influencers by one metric's gain in the latest window: "
        "the current ranking first, then a new one each time fresh aggregates change it."
    )
    async def leaderboard_updates(
        self,
        info: Info[Any, Any],
        metric: str,
        window: str = "24h",
        platform: Platform | None = None,
        first: int = 10,
    ) -> AsyncGenerator[LeaderboardUpdate, None]:
        hub, principal = _live(info)
        cap = info.context.settings.api_max_first
        if not 1 <= first <= cap:
            raise InputError("first", f"must be between 1 and {cap}")
        key = LeaderboardKey(principal.tenant_id, _metric(metric, "metric"),
                             _window(window, info),
                             platform.value if platform is not None else ALL_PLATFORMS, first)
        async with hub.leaderboard_updates(key, principal.subject) as boards:
            try:
                with _expiring(boards, principal):
                    async for rows in boards:
                        yield _leaderboard_update(key, rows)
            except TokenExpired:
                await _close_expired(info)
