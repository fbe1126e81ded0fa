"""The Subscription resolvers through ``schema.subscribe`` of the API's schema."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from creatorpulse.graphql.auth import Principal, Role
from creatorpulse.graphql.context import Context
from creatorpulse.graphql.live import LeaderboardKey, LiveHub, TenantDirectory
from creatorpulse.graphql.metrics import LeaderboardRow
from creatorpulse.graphql.schema import build_schema
from creatorpulse.settings import Settings
from tests.unit.test_api_live import FakeTenants, agg
from tests.waiting import until

pytestmark = pytest.mark.anyio

SETTINGS = Settings.from_env({}, dotenv=None)
SCHEMA = build_schema(SETTINGS, production=True)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


METRICS = """
subscription ($ids: [ID!], $metrics: [String!], $window: String, $platforms: [String!]) {
  metricUpdates(influencerIds: $ids, metrics: $metrics, window: $window, platforms: $platforms) {
    influencerId platform metric window windowStart windowEnd gain valueAtStart valueAtEnd
    provenance
  }
}"""

BOARD = """
subscription ($first: Int!) {
  leaderboardUpdates(metric: "likes", window: "1h", platform: INSTAGRAM, first: $first) {
    metric window platform entries { rank influencerId gain }
  }
}"""

END = datetime(2026, 11, 23, tzinfo=UTC)


class Boards:
    def __init__(self) -> None:
        self.gains = {"inf-a1": 1, "inf-a2": 2}
        self.calls = 0

    async def __call__(self, key: LeaderboardKey) -> tuple[LeaderboardRow, ...]:
        self.calls += 1
        ranked = sorted(self.gains.items(), key=lambda item: -item[1])[: key.first]
        return tuple(
            LeaderboardRow(n, i, key.platform, key.metric, key.window, END - timedelta(hours=1),
                           END, g, None, "measured")
            for n, (i, g) in enumerate(ranked, start=1))


def principal(tenant: str = "tenant-a", expires: datetime | None = None) -> Principal:
    return Principal(subject="alice", tenant_id=tenant, role=Role.VIEWER, expires_at=expires)


def context(hub: LiveHub | None, who: Principal | None, request: Any = None) -> Context:
    services = SimpleNamespace(settings=SETTINGS, live=hub)
    return Context(services=services, principal=who, client_key="test",  # type: ignore[arg-type]
                   request=request)


@pytest.fixture
def boards() -> Boards:
    return Boards()


@pytest.fixture
async def hub(boards: Boards) -> AsyncIterator[LiveHub]:
    h = LiveHub(tenants=TenantDirectory(FakeTenants()), leaderboard=boards)
    yield h
    await h.stop()


async def subscribe(query: str, ctx: Context, **variables: Any) -> Any:
    stream = await SCHEMA.subscribe(query, variable_values=variables, context_value=ctx)
    assert not hasattr(stream, "errors"), stream
    return stream


async def next_result(stream: Any) -> Any:
    return await asyncio.wait_for(anext(stream), 2)


async def test_metric_updates_pushes_each_fresh_aggregate_of_the_tenant(hub: LiveHub) -> None:
    stream = await subscribe(METRICS, context(hub, principal()),
                             metrics=["likes"])
    first = asyncio.ensure_future(next_result(stream))
    await until(lambda: hub.subscriber_count() == 1, 2, "the subscriber", 0.001)
    await hub.publish([agg("inf-b1"), agg("inf-a1", gain=7), agg("inf-a2", metric="views"),
                       agg("inf-a2", gain=-2)])
    got = (await first).data["metricUpdates"]
    assert got == {
        "influencerId": "inf-a1", "platform": "instagram", "metric": "likes", "window": "1h",
        "windowStart": "2026-11-23T11:00:00+00:00", "windowEnd": "2026-11-23T12:00:00+00:00",
        "gain": 7, "valueAtStart": 100, "valueAtEnd": 107, "provenance": "MEASURED",
    }
    second = (await next_result(stream)).data["metricUpdates"]
    assert (second["influencerId"], second["gain"]) == ("inf-a2", -2)
    await stream.aclose()
    assert hub.subscriber_count() == 0


async def test_many_subscribers_with_the_same_parameters_share_one_payload(hub: LiveHub) -> None:
    n = 25
    streams = [await subscribe(METRICS, context(hub, principal()), window="1h")
               for _ in range(n)]
    pending = [asyncio.ensure_future(next_result(s)) for s in streams]
    await until(lambda: hub.subscriber_count() == n, 2, f"{n} subscribers", 0.001)
    await hub.publish([agg(gain=3)])
    results = await asyncio.gather(*pending)
    assert {r.data["metricUpdates"]["gain"] for r in results} == {3}
    assert hub.stats.metric_payloads == 1
    assert hub.channel_count() == 1
    for s in streams:
        await s.aclose()


async def test_influencers_of_another_tenant_read_as_missing(hub: LiveHub) -> None:
    stream = await subscribe(METRICS, context(hub, principal()), ids=["inf-b1"])
    result = await next_result(stream)
    assert result.data is None
    assert "no influencer 'inf-b1'" in result.errors[0].message
    assert hub.subscriber_count() == 0


async def test_anonymous_callers_cannot_subscribe(hub: LiveHub) -> None:
    stream = await subscribe(METRICS, context(hub, None))
    result = await next_result(stream)
    assert result.errors and "authentication required" in result.errors[0].message


async def test_leaderboard_updates_start_with_the_current_ranking_and_follow_changes(
        hub: LiveHub, boards: Boards) -> None:
    ctx = context(hub, principal())
    streams = [await subscribe(BOARD, ctx, first=2) for _ in range(5)]
    firsts = [(await next_result(s)).data["leaderboardUpdates"] for s in streams]
    assert firsts[0] == {
        "metric": "likes", "window": "1h", "platform": "instagram",
        "entries": [{"rank": 1, "influencerId": "inf-a2", "gain": 2},
                    {"rank": 2, "influencerId": "inf-a1", "gain": 1}],
    }
    assert all(f == firsts[0] for f in firsts)
    assert boards.calls == 1
    pending = [asyncio.ensure_future(next_result(s)) for s in streams]
    boards.gains["inf-a1"] = 5
    await hub.publish([agg("inf-a1", platform="instagram", window="1h")])
    changed = [(await p).data["leaderboardUpdates"]["entries"][0] for p in pending]
    assert all(c["influencerId"] == "inf-a1" and c["gain"] == 5 for c in changed)
    assert boards.calls == 2
    for s in streams:
        await s.aclose()


async def test_leaderboard_size_is_bounded(hub: LiveHub) -> None:
    stream = await subscribe(BOARD, context(hub, principal()), first=1000)
    result = await next_result(stream)
    assert "first: must be between 1 and 100" in result.errors[0].message


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"window": "2h"}, "window: unknown window"),
        ({"platforms": ["myspace"]}, "platforms: unknown platform 'myspace'"),
        ({"metrics": ["likes; drop"]}, "metrics: a metric name"),
    ],
)
async def test_metric_updates_arguments_are_checked(hub: LiveHub, variables: dict[str, Any],
                                                    message: str) -> None:
    stream = await subscribe(METRICS, context(hub, principal()), **variables)
    result = await next_result(stream)
    assert message in result.errors[0].message
    assert hub.subscriber_count() == 0


async def test_platform_all_selects_the_totals(hub: LiveHub) -> None:
    stream = await subscribe(METRICS, context(hub, principal()), platforms=["all"])
    pending = asyncio.ensure_future(next_result(stream))
    await until(lambda: hub.subscriber_count() == 1, 2, "the subscriber", 0.001)
    await hub.publish([agg(platform="instagram", gain=1), agg(platform="all", gain=2)])
    got = (await pending).data["metricUpdates"]
    assert (got["platform"], got["gain"]) == ("all", 2)
    await stream.aclose()


async def test_the_socket_is_closed_when_the_token_expires(hub: LiveHub) -> None:
    class Socket:
        def __init__(self) -> None:
            self.closed: list[tuple[int, str]] = []

        async def close(self, code: int, reason: str) -> None:
            self.closed.append((code, reason))

    socket = Socket()
    soon = datetime.now(UTC) + timedelta(seconds=0.3)
    stream = await subscribe(METRICS, context(hub, principal(expires=soon), socket))
    with pytest.raises(StopAsyncIteration):
        await next_result(stream)
    assert socket.closed == [(4403, "Token expired")]
    assert hub.subscriber_count() == 0


