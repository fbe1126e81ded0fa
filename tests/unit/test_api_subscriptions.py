"""The Subscription resolvers through ``schema.subscribe``, and connection_init authentication."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import strawberry
from strawberry.exceptions import ConnectionRejectionError

from creatorpulse.graphql.auth import Principal, Role, mint
from creatorpulse.graphql.live import LeaderboardKey, LiveHub, TenantDirectory
from creatorpulse.graphql.subscriptions import (
    LeaderboardEntry,
    LeaderboardUpdate,
    Subscription,
    authenticate_connection,
    connection_token,
)
from creatorpulse.settings import Settings
from tests.unit.test_api_live import FakeTenants, agg, wait_until

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@strawberry.type
class Query:
    ok: bool = True


SCHEMA = strawberry.Schema(query=Query, subscription=Subscription)

METRICS = """
subscription ($ids: [ID!], $metrics: [String!], $window: String) {
  metricUpdates(influencerIds: $ids, metrics: $metrics, window: $window) {
    influencerId platform metric window windowStart windowEnd gain valueAtStart valueAtEnd
    provenance
  }
}"""

BOARD = """
subscription ($first: Int!) {
  leaderboardUpdates(metric: "likes", window: "1h", platform: "instagram", first: $first) {
    metric window platform entries { rank influencerId name gain }
  }
}"""


class Boards:
    def __init__(self) -> None:
        self.gains = {"inf-a1": 1, "inf-a2": 2}
        self.calls = 0

    async def __call__(self, key: LeaderboardKey) -> LeaderboardUpdate:
        self.calls += 1
        ranked = sorted(self.gains.items(), key=lambda item: -item[1])[: key.first]
        entries = [LeaderboardEntry(rank=n, influencer_id=strawberry.ID(i), name=i.upper(),
                                    gain=g, value_at_end=None,
                                    window_end=datetime(2026, 11, 23, tzinfo=UTC))
                   for n, (i, g) in enumerate(ranked, start=1)]
        return LeaderboardUpdate(metric=key.metric, window=key.window, platform=key.platform,
                                 entries=entries)


def principal(tenant: str = "tenant-a") -> Principal:
    return Principal(subject="alice", tenant_id=tenant, role=Role.VIEWER)


@pytest.fixture
def boards() -> Boards:
    return Boards()


@pytest.fixture
async def hub(boards: Boards) -> AsyncIterator[LiveHub]:
    h = LiveHub(tenants=TenantDirectory(FakeTenants()), leaderboard=boards)
    yield h
    await h.stop()


async def subscribe(query: str, context: dict[str, Any], **variables: Any) -> Any:
    stream = await SCHEMA.subscribe(query, variable_values=variables, context_value=context)
    assert not hasattr(stream, "errors"), stream
    return stream


async def next_result(stream: Any) -> Any:
    return await asyncio.wait_for(anext(stream), 2)


async def test_metric_updates_pushes_each_fresh_aggregate_of_the_tenant(hub: LiveHub) -> None:
    stream = await subscribe(METRICS, {"live": hub, "principal": principal()},
                             metrics=["likes"])
    first = asyncio.ensure_future(next_result(stream))
    await wait_until(lambda: hub.subscriber_count() == 1)
    await hub.publish([agg("inf-b1"), agg("inf-a1", gain=7), agg("inf-a2", metric="views"),
                       agg("inf-a2", gain=-2)])
    got = (await first).data["metricUpdates"]
    assert got == {
        "influencerId": "inf-a1", "platform": "instagram", "metric": "likes", "window": "1h",
        "windowStart": "2026-11-23T11:00:00+00:00", "windowEnd": "2026-11-23T12:00:00+00:00",
        "gain": 7, "valueAtStart": 100, "valueAtEnd": 107, "provenance": "measured",
    }
    second = (await next_result(stream)).data["metricUpdates"]
    assert (second["influencerId"], second["gain"]) == ("inf-a2", -2)
    await stream.aclose()
    assert hub.subscriber_count() == 0


async def test_many_subscribers_with_the_same_parameters_share_one_payload(hub: LiveHub) -> None:
    n = 25
    streams = [await subscribe(METRICS, {"live": hub, "principal": principal()}, window="1h")
               for _ in range(n)]
    pending = [asyncio.ensure_future(next_result(s)) for s in streams]
    await wait_until(lambda: hub.subscriber_count() == n)
    await hub.publish([agg(gain=3)])
    results = await asyncio.gather(*pending)
    assert {r.data["metricUpdates"]["gain"] for r in results} == {3}
    assert hub.stats.metric_payloads == 1
    assert hub.channel_count() == 1
    for s in streams:
        await s.aclose()


async def test_influencers_of_another_tenant_read_as_missing(hub: LiveHub) -> None:
    stream = await subscribe(METRICS, {"live": hub, "principal": principal()}, ids=["inf-b1"])
    result = await next_result(stream)
    assert result.data is None
    assert "no influencer 'inf-b1'" in result.errors[0].message
    assert hub.subscriber_count() == 0


async def test_anonymous_callers_cannot_subscribe(hub: LiveHub) -> None:
    stream = await subscribe(METRICS, {"live": hub, "principal": None})
    result = await next_result(stream)
    assert result.errors and "authentication required" in result.errors[0].message


async def test_leaderboard_updates_start_with_the_current_ranking_and_follow_changes(
        hub: LiveHub, boards: Boards) -> None:
    context = {"live": hub, "principal": principal()}
    streams = [await subscribe(BOARD, context, first=2) for _ in range(5)]
    firsts = [(await next_result(s)).data["leaderboardUpdates"] for s in streams]
    assert firsts[0] == {
        "metric": "likes", "window": "1h", "platform": "instagram",
        "entries": [{"rank": 1, "influencerId": "inf-a2", "name": "INF-A2", "gain": 2},
                    {"rank": 2, "influencerId": "inf-a1", "name": "INF-A1", "gain": 1}],
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
    stream = await subscribe(BOARD, {"live": hub, "principal": principal()}, first=1000)
    result = await next_result(stream)
    assert "first: must be between 1 and 100" in result.errors[0].message


# --- connection_init ---


class Conn(dict[str, Any]):
    """A context as Strawberry's ASGI view builds it for a websocket."""


def settings() -> Settings:
    return Settings.from_env({}, dotenv=None)


async def test_connection_init_with_a_valid_token_keeps_the_principal() -> None:
    s = settings()
    token = mint(s, subject="bob", tenant_id="tenant-b", role=Role.EDITOR)
    for params in ({"token": token}, {"Authorization": f"Bearer {token}"}):
        context = Conn(connection_params=params)
        got = await authenticate_connection(context, s)
        assert context["principal"] == got
        assert (got.subject, got.tenant_id, got.role) == ("bob", "tenant-b", Role.EDITOR)


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"token": ""},
        {"token": "not-a-jwt"},
        {"Authorization": "Basic abc"},
        {"token": 42},
    ],
)
async def test_connection_init_without_a_valid_token_is_rejected(params: dict[str, Any]) -> None:
    context = Conn(connection_params=params)
    with pytest.raises(ConnectionRejectionError):
        await authenticate_connection(context, settings())
    assert "principal" not in context


async def test_expired_and_foreign_tokens_are_rejected() -> None:
    s = settings()
    old = mint(s, subject="a", tenant_id="t", role=Role.VIEWER, ttl=timedelta(minutes=5),
               now=datetime.now(UTC) - timedelta(hours=1))
    with pytest.raises(ConnectionRejectionError) as caught:
        await authenticate_connection(Conn(connection_params={"token": old}), s)
    assert caught.value.payload == {"reason": "expired"}
    other = Settings.from_env({"CREATORPULSE_JWT_SECRET": "x" * 40}, dotenv=None)
    forged = mint(other, subject="a", tenant_id="t", role=Role.ADMIN)
    with pytest.raises(ConnectionRejectionError) as caught:
        await authenticate_connection(Conn(connection_params={"token": forged}), s)
    assert caught.value.payload == {"reason": "bad_signature"}


async def test_the_socket_is_closed_when_the_token_expires() -> None:
    class Socket:
        def __init__(self) -> None:
            self.closed: list[tuple[int, str]] = []

        async def close(self, code: int, reason: str) -> None:
            self.closed.append((code, reason))

    s = settings()
    token = mint(s, subject="a", tenant_id="t", role=Role.VIEWER, ttl=timedelta(seconds=1),
                 now=datetime.now(UTC) - timedelta(seconds=0.8))
    socket = Socket()
    await authenticate_connection(Conn(connection_params={"token": token}, request=socket), s)
    await wait_until(lambda: socket.closed, timeout=3)
    assert socket.closed == [(4403, "Token expired")]


def test_connection_token_forms() -> None:
    assert connection_token({"token": "abc"}) == "abc"
    assert connection_token({"authorization": "Bearer xyz"}) == "xyz"
    assert connection_token({"other": 1}) is None
