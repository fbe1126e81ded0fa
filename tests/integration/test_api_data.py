"""What the API computes, against real PostgreSQL and Redis: aggregates, leaderboards, one query
per level for nested lists, and the token bucket's atomicity under concurrent charges."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from redis.asyncio import Redis
from starlette.testclient import TestClient

from creatorpulse.graphql import influencers as inf
from creatorpulse.graphql import metrics as met
from creatorpulse.graphql.limits import TokenBucket
from creatorpulse.settings import Settings
from tests.integration import api_world
from tests.integration.api_world import NOW, T0, World, gql

world, client = api_world.world, api_world.client  # the fixtures

RANGE = {"from": (T0 - timedelta(hours=1)).isoformat(), "to": NOW.isoformat()}
AGGREGATE = """query($g: GroupBy!, $f: InfluencerFilter, $from: DateTime!, $to: DateTime!) {
    aggregatedMetrics(metric: "likes", from: $from, to: $to, groupBy: $g, filter: $f) {
      key total observations } }"""


def totals(client: TestClient, w: World, group: str, f: dict[str, Any] | None = None
           ) -> dict[str, int]:
    body = gql(client, AGGREGATE, w.headers(w.tenant_a), g=group, f=f, **RANGE)
    assert "errors" not in body, body
    return {r["key"]: r["total"] for r in body["data"]["aggregatedMetrics"]}


def test_aggregates_by_platform_influencer_and_tag(client: TestClient, world: World) -> None:
    w = world
    assert totals(client, w, "PLATFORM") == {"instagram": 60}
    assert totals(client, w, "INFLUENCER") == {w.a1: 60}
    assert totals(client, w, "TAG") == {"fitness": 60, "food": 60}
    assert totals(client, w, "TAG", {"platform": "INSTAGRAM"}) == {"fitness": 60, "food": 60}
    assert totals(client, w, "INFLUENCER", {"tag": "none-such"}) == {}
    assert totals(client, w, "INFLUENCER", {"nameContains": "alice"}) == {w.a1: 60}
    narrow = gql(client, AGGREGATE, w.headers(w.tenant_a), g="PLATFORM", f=None,
                 **{"from": (T0 + timedelta(minutes=30)).isoformat(),
                    "to": (T0 + timedelta(minutes=90)).isoformat()})
    assert narrow["data"]["aggregatedMetrics"] == [
        {"key": "instagram", "total": 20, "observations": 4}]


def test_leaderboard_ranks_the_latest_window_of_the_tenant(
        client: TestClient, world: World, db: psycopg.Connection) -> None:
    w = world
    db.execute(
        "INSERT INTO rolling_windows (influencer_id, platform, metric, window_name, window_end, "
        "window_start, gain, value_at_start, value_at_end, provenance) "
        "VALUES (%s, 'all', 'likes', '24h', %s, %s, 95, 0, 95, 'estimated')",
        (w.a2, NOW, NOW - timedelta(hours=24)))
    query = """{ leaderboard(metric: "likes", window: "24h", first: 5) {
        rank influencerId gain provenance windowEnd influencer { name } } }"""
    board = gql(client, query, w.headers(w.tenant_a))["data"]["leaderboard"]
    assert [(e["rank"], e["influencerId"], e["gain"]) for e in board] == [
        (1, w.a2, 95), (2, w.a1, 60)]
    assert board[0]["provenance"] == "ESTIMATED"
    assert board[1]["influencer"]["name"].startswith("Alice")
    unknown = gql(client, '{ leaderboard(metric: "likes", window: "2h") { rank } }',
                  w.headers(w.tenant_a))
    assert unknown["errors"][0]["extensions"] == {
        "code": "BAD_USER_INPUT", "field": "window"}


def test_nested_lists_cost_one_query_per_level(
        client: TestClient, world: World, db: psycopg.Connection,
        monkeypatch: pytest.MonkeyPatch) -> None:
    w = world
    for i in range(4):
        db.execute("INSERT INTO influencers (id, tenant_id, name) VALUES (%s, %s, %s)",
                   (f"extra-{i}-{w.suffix}", w.tenant_a, f"Extra {i}"))
    calls: dict[str, int] = {"accounts": 0, "rates": 0, "influencers": 0}
    real_accounts, real_rates, real_by_ids = (inf.accounts_by_influencer, met.engagement_rates,
                                              inf.by_ids)

    async def accounts(*args: Any) -> Any:
        calls["accounts"] += 1
        return await real_accounts(*args)

    async def rates(*args: Any) -> Any:
        calls["rates"] += 1
        return await real_rates(*args)

    async def by_ids(*args: Any) -> Any:
        calls["influencers"] += 1
        return await real_by_ids(*args)

    monkeypatch.setattr(inf, "accounts_by_influencer", accounts)
    monkeypatch.setattr(met, "engagement_rates", rates)
    monkeypatch.setattr(inf, "by_ids", by_ids)
    body = gql(client, """{ influencers(first: 10) { edges { node { id
        accounts { id influencer { id name } } engagementRate { rate } } } } }""",
               w.headers(w.tenant_a))
    edges = body["data"]["influencers"]["edges"]
    assert len(edges) == 6
    assert calls == {"accounts": 1, "rates": 1, "influencers": 0}, calls


def test_concurrent_charges_never_overspend_the_bucket(settings: Settings, unique: str,
                                                       stack: object) -> None:
    async def scenario() -> list[bool]:
        redis = Redis.from_url(settings.redis_dsn.reveal())
        try:
            bucket = TokenBucket(redis, capacity=100, refill=1)
            charges = await asyncio.gather(*(bucket.charge(f"race-{unique}", 7)
                                              for _ in range(40)))
            await redis.delete(TokenBucket.PREFIX + f"race-{unique}")
        finally:
            await redis.aclose()
        return [c.allowed for c in charges]

    admitted = asyncio.run(scenario())
    # 100 points, 7 each: 14 fit (a point or two may refill while the 40 calls run).
    assert 14 <= sum(admitted) <= 15
