"""GraphQL subscriptions over ``graphql-transport-ws``: fresh aggregates and leaderboards.

Both subscriptions are served by the process's :class:`~creatorpulse.graphql.live.LiveHub`
(``context.live``), so the Kafka read, the matching and every leaderboard computation happen
once per distinct set of parameters, however many clients subscribe. Every subscription is
scoped to the caller's tenant (``context.principal``), authenticated once per connection by
:func:`authenticate_connection` from the ``connection_init`` payload:

- ``{"token": "<jwt>"}`` or ``{"Authorization": "Bearer <jwt>"}``;
- a missing or invalid token closes the socket with 4403 (the protocol's "Forbidden"); a
  ``subscribe`` before the server's ``connection_ack`` closes it with 4401, a second
  ``connection_init`` with 4429, no ``connection_init`` in time with 4408, a malformed message
  with 4400;
- the socket is closed with 4403 when the token expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncGenerator, Collection, Mapping, MutableMapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import strawberry
from strawberry.exceptions import ConnectionRejectionError
from strawberry.types import Info

from creatorpulse.aggregate import Aggregate
from creatorpulse.graphql.auth import AuthError, Principal, bearer_token, verify
from creatorpulse.graphql.live import (
    ALL_PLATFORMS,
    LeaderboardKey,
    LiveHub,
    MetricKey,
    SlowSubscriber,
)

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool

    from creatorpulse.settings import Settings

log = logging.getLogger(__name__)

MAX_LEADERBOARD = 100
"""The largest leaderboard (``first``) a subscription may ask for."""


class SubscriptionInputError(ValueError):
    """A subscription's arguments are out of bounds; the message says which."""


# --- payload types ----------------------------------------------------------------------------


@strawberry.type(description="A fresh rolling-window value of one influencer x platform x metric.")
class MetricUpdate:
    influencer_id: strawberry.ID
    platform: str = strawberry.field(description="A platform, or `all` for the total.")
    metric: str
    window: str = strawberry.field(description="The window's name, e.g. `1h`, `24h`, `7d`.")
    window_start: datetime
    window_end: datetime
    gain: float = strawberry.field(description="The counter's change over the window.")
    value_at_start: float | None = strawberry.field(
        description="The counter at the window's start, when known (missing is not zero).")
    value_at_end: float | None
    provenance: str = strawberry.field(description="`measured`, `estimated` or `rounded`.")

    @classmethod
    def of(cls, aggregate: Aggregate) -> MetricUpdate:
        return _metric_update(aggregate)


@functools.lru_cache(maxsize=8192)
def _metric_update(a: Aggregate) -> MetricUpdate:
    # Built once per aggregate and process, then shared by every subscriber that receives it.
    return MetricUpdate(
        influencer_id=strawberry.ID(a.influencer_id), platform=a.platform, metric=a.metric,
        window=a.window_name, window_start=a.window_start, window_end=a.window_end,
        gain=a.gain, value_at_start=a.value_at_start, value_at_end=a.value_at_end,
        provenance=a.provenance.value,
    )


@strawberry.type(description="One place on a leaderboard.")
class LeaderboardEntry:
    rank: int
    influencer_id: strawberry.ID
    name: str
    gain: float = strawberry.field(description="The influencer's gain in its latest window.")
    value_at_end: float | None
    window_end: datetime


@strawberry.type(description="The top influencers of the caller's tenant by one metric's gain.")
class LeaderboardUpdate:
    metric: str
    window: str
    platform: str
    entries: list[LeaderboardEntry]


# --- the leaderboard computation ------------------------------------------------------------

LEADERBOARD_SQL = """
SELECT latest.influencer_id, i.name, latest.gain, latest.value_at_end, latest.window_end
FROM (
    SELECT DISTINCT ON (r.influencer_id)
           r.influencer_id, r.gain, r.value_at_end, r.window_end
    FROM rolling_windows r
    JOIN influencers i ON i.id = r.influencer_id
    WHERE i.tenant_id = %(tenant)s AND r.metric = %(metric)s
      AND r.window_name = %(window)s AND r.platform = %(platform)s
    ORDER BY r.influencer_id, r.window_end DESC
) latest
JOIN influencers i ON i.id = latest.influencer_id
ORDER BY latest.gain DESC, latest.influencer_id
LIMIT %(first)s
"""


def pg_leaderboard(pool: AsyncConnectionPool[Any]) -> Any:
    """The hub's leaderboard computation: each influencer's latest window, ranked by gain."""

    async def compute(key: LeaderboardKey) -> LeaderboardUpdate:
        params = {"tenant": key.tenant_id, "metric": key.metric, "window": key.window,
                  "platform": key.platform, "first": key.first}
        async with pool.connection() as conn:
            cursor = await conn.execute(LEADERBOARD_SQL, params)
            rows = await cursor.fetchall()
        entries = [
            LeaderboardEntry(rank=n, influencer_id=strawberry.ID(row[0]), name=row[1],
                             gain=row[2], value_at_end=row[3], window_end=row[4])
            for n, row in enumerate(rows, start=1)
        ]
        return LeaderboardUpdate(metric=key.metric, window=key.window, platform=key.platform,
                                 entries=entries)

    return compute


# --- context and authentication -------------------------------------------------------------


def _context_value(context: Any, name: str) -> Any:
    if isinstance(context, Mapping):
        return context.get(name)
    return getattr(context, name, None)


def live_context(info: Info[Any, Any]) -> tuple[LiveHub, Principal]:
    """The hub and the caller of a subscription; an error when the caller is anonymous."""
    principal = _context_value(info.context, "principal")
    if not isinstance(principal, Principal):
        raise AuthError("missing", "authentication required")
    hub = _context_value(info.context, "live")
    if not isinstance(hub, LiveHub):
        msg = "live updates are not available on this server"
        raise RuntimeError(msg)
    return hub, principal


def connection_token(params: Mapping[str, Any]) -> str | None:
    """The token of a ``connection_init`` payload: ``token``, or an ``Authorization`` header."""
    token = params.get("token")
    if isinstance(token, str) and token:
        return token
    for name in ("Authorization", "authorization"):
        header = params.get(name)
        if isinstance(header, str):
            return bearer_token(header)
    return None


async def authenticate_connection(context: Any, settings: Settings) -> Principal:
    """``on_ws_connect``: check the ``connection_init`` token and keep its principal.

    Raises :class:`ConnectionRejectionError` (close 4403) when the token is missing or invalid;
    the reason is logged, never the token. Closes the socket with 4403 when the token expires.
    """
    params = _context_value(context, "connection_params")
    try:
        token = connection_token(params if isinstance(params, Mapping) else {})
        if token is None:
            raise AuthError("missing", "no token in connection_init")
        principal = verify(token, settings)
    except AuthError as exc:
        log.info("websocket rejected: %s", exc.reason)
        raise ConnectionRejectionError({"reason": exc.reason}) from None
    if isinstance(context, MutableMapping):
        context["principal"] = principal
    else:
        context.principal = principal
    websocket = _context_value(context, "request") or _context_value(context, "websocket")
    if principal.expires_at is not None and websocket is not None:
        _close_at_expiry(websocket, principal.expires_at)
    return principal


def _close_at_expiry(websocket: Any, expires_at: datetime) -> None:
    async def close() -> None:
        await asyncio.sleep(max(0.0, (expires_at - datetime.now(UTC)).total_seconds()))
        with contextlib.suppress(Exception):  # the socket may already be gone
            await websocket.close(code=4403, reason="Token expired")

    task = asyncio.get_running_loop().create_task(close())
    _EXPIRY_TASKS.add(task)
    task.add_done_callback(_EXPIRY_TASKS.discard)


_EXPIRY_TASKS: set[asyncio.Task[None]] = set()


# --- the Subscription type --------------------------------------------------------------------


def _strings(values: Collection[str] | None, what: str, limit: int = 100) -> list[str] | None:
    if values is None:
        return None
    if len(values) > limit:
        msg = f"{what}: at most {limit} values"
        raise SubscriptionInputError(msg)
    return [str(v) for v in values]


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Each fresh rolling-window value matching the filters, as it is computed. "
        "A missing filter matches everything of the caller's tenant."
    )
    async def metric_updates(
        self,
        info: Info[Any, Any],
        influencer_ids: list[strawberry.ID] | None = None,
        platforms: list[str] | None = None,
        metrics: list[str] | None = None,
        window: str | None = None,
    ) -> AsyncGenerator[MetricUpdate, None]:
        hub, principal = live_context(info)
        key = MetricKey.of(
            principal.tenant_id,
            influencer_ids=_strings(influencer_ids, "influencerIds"),
            platforms=_strings(platforms, "platforms"),
            metrics=_strings(metrics, "metrics"),
            window=window,
        )
        async with hub.metric_updates(key) as updates:
            try:
                async for batch in updates:
                    for aggregate in batch:
                        yield MetricUpdate.of(aggregate)
            except SlowSubscriber:
                log.info("metricUpdates: a subscriber of tenant %s fell behind and was dropped",
                         principal.tenant_id)
                raise

    @strawberry.subscription(
        description="The caller's top influencers by one metric's gain in a window: the current "
        "ranking first, then a new one each time fresh aggregates change it."
    )
    async def leaderboard_updates(
        self,
        info: Info[Any, Any],
        metric: str,
        window: str,
        platform: str = ALL_PLATFORMS,
        first: int = 10,
    ) -> AsyncGenerator[LeaderboardUpdate, None]:
        hub, principal = live_context(info)
        if not 1 <= first <= MAX_LEADERBOARD:
            msg = f"first: must be between 1 and {MAX_LEADERBOARD}"
            raise SubscriptionInputError(msg)
        key = LeaderboardKey(principal.tenant_id, metric, window, platform, first)
        async with hub.leaderboard_updates(key) as boards:
            async for board in boards:
                yield board
