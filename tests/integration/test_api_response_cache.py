"""Whole answers from the response cache, with real PostgreSQL and Redis: a hit runs no
resolver, and every change that could alter an answer evicts it."""

from __future__ import annotations

from datetime import timedelta

import psycopg
from starlette.testclient import TestClient

from creatorpulse.graphql.auth import Role
from creatorpulse.graphql.cache import PREFIX
from creatorpulse.graphql.response_cache import response_key
from creatorpulse.sinks import registry
from creatorpulse.stack.process import wait_until
from tests.integration import api_world
from tests.integration.api_world import NOW, T0, World, gql

world, client = api_world.world, api_world.client  # the fixtures

SERIES = """query($id: ID!, $from: DateTime!, $to: DateTime!) {
  metrics(influencerId: $id, from: $from, to: $to, metrics: ["likes"], interval: HOUR) {
    platform metric total } }"""
PEOPLE = "{ influencers(first: 10) { totalCount edges { node { name } } } }"


def series_args(w: World) -> dict[str, str]:
    return {"id": w.a1, "from": (T0 - timedelta(hours=1)).isoformat(), "to": NOW.isoformat()}


def redis_keys(client: TestClient, pattern: str) -> list[bytes]:
    redis = client.app.state.services.redis
    return list(client.portal.call(redis.keys, pattern))


def test_a_hit_runs_no_resolver_and_an_invalidation_recomputes(
        client: TestClient, world: World, db: psycopg.Connection) -> None:
    w, h = world, world.headers(world.tenant_a)
    first = gql(client, SERIES, h, **series_args(w))
    likes = {s["platform"]: s["total"] for s in first["data"]["metrics"]}
    assert likes == {"instagram": 60}
    key = response_key(w.tenant_a, "viewer", SERIES, None, series_args(w))
    assert redis_keys(client, key) == [key.encode()]
    # The rows change and the inner per-resolver answers are dropped from Redis: an answer that
    # still shows the old total came from the response cache without running the resolver.
    db.execute("UPDATE metric_buckets_1m SET gain = gain * 2 WHERE influencer_id = %s", (w.a1,))
    redis = client.app.state.services.redis
    inner = redis_keys(client, f"{PREFIX}{w.tenant_a}:series:*")
    assert inner
    client.portal.call(redis.delete, *inner)
    again = gql(client, SERIES, h, **series_args(w))
    assert again["data"] == first["data"]
    assert again["extensions"]["cost"]["requested"] == first["extensions"]["cost"]["requested"]
    assert redis_keys(client, f"{PREFIX}{w.tenant_a}:series:*") == []  # not looked up again
    # Fresh aggregates for the influencer evict it: the next answer is computed anew.
    assert client.portal.call(client.app.state.services.cache.invalidate, w.a1) >= 1
    fresh = gql(client, SERIES, h, **series_args(w))
    assert {s["platform"]: s["total"] for s in fresh["data"]["metrics"]} == {"instagram": 120}


def test_answers_are_kept_per_tenant(client: TestClient, world: World) -> None:
    w = world
    a = gql(client, PEOPLE, w.headers(w.tenant_a))["data"]["influencers"]
    b = gql(client, PEOPLE, w.headers(w.tenant_b))["data"]["influencers"]
    assert a["totalCount"] == 2 and b["totalCount"] == 1
    assert {e["node"]["name"].split()[0] for e in a["edges"]} == {"Alice", "Bob"}
    assert [e["node"]["name"].split()[0] for e in b["edges"]] == ["Carol"]
    # Both are cached now, and each tenant still reads its own.
    assert gql(client, PEOPLE, w.headers(w.tenant_b))["data"]["influencers"] == b
    assert gql(client, PEOPLE, w.headers(w.tenant_a))["data"]["influencers"] == a


def test_a_mutation_evicts_its_tenants_registry_answers_before_it_returns(
        client: TestClient, world: World) -> None:
    editor = world.headers(world.tenant_a, Role.EDITOR)
    assert gql(client, PEOPLE, editor)["data"]["influencers"]["totalCount"] == 2
    added = gql(client, 'mutation { addInfluencer(input: {name: "Dora"}) { __typename } }',
                editor)
    assert added["data"]["addInfluencer"]["__typename"] == "Influencer"
    assert gql(client, PEOPLE, editor)["data"]["influencers"]["totalCount"] == 3


def test_a_registry_change_from_another_process_evicts_through_notify(
        client: TestClient, world: World, db: psycopg.Connection) -> None:
    w, h = world, world.headers(world.tenant_a)
    listener = client.app.state.registry_listener
    wait_until(lambda: listener.listening.is_set() or None, part="api",
               what="the registry listener listens", timeout=10)
    assert gql(client, PEOPLE, h)["data"]["influencers"]["totalCount"] == 2
    other = gql(client, PEOPLE, w.headers(w.tenant_b))["data"]["influencers"]
    # As the CLI would: the registry's own data access, on a connection of its own.
    registry.add_influencer(db, w.tenant_a, "Eve", ["cli"])
    wait_until(lambda: gql(client, PEOPLE, h)["data"]["influencers"]["totalCount"] == 3 or None,
               part="api", what="the new influencer shows", timeout=10)
    other_key = response_key(w.tenant_b, "viewer", PEOPLE, None, {})
    assert redis_keys(client, other_key) == [other_key.encode()]  # tenant B's answer stays
    assert gql(client, PEOPLE, w.headers(w.tenant_b))["data"]["influencers"] == other


def test_errors_and_nested_resolvers_are_never_stored(client: TestClient, world: World) -> None:
    w, h = world, world.headers(world.tenant_a)
    bad = '{ leaderboard(metric: "likes", window: "13h") { rank } }'
    assert gql(client, bad, h)["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    nested = '{ leaderboard(metric: "likes") { rank influencer { name } } }'
    assert gql(client, nested, h)["data"]["leaderboard"][0]["influencer"]["name"]
    plain = '{ leaderboard(metric: "likes") { rank } }'
    assert gql(client, plain, h)["data"]["leaderboard"]
    stored = {q: redis_keys(client, response_key(w.tenant_a, "viewer", q, None, {}))
              for q in (bad, nested, plain)}
    assert stored == {bad: [], nested: [],
                      plain: [response_key(w.tenant_a, "viewer", plain, None, {}).encode()]}


def test_a_hit_still_spends_the_callers_budget(client: TestClient, world: World) -> None:
    h = world.headers(world.tenant_a)
    query = '{ leaderboard(metric: "likes") { rank gain } }'
    first = gql(client, query, h)["extensions"]["cost"]
    second = gql(client, query, h)["extensions"]["cost"]
    assert second["requested"] == first["requested"] > 0
    assert second["remaining"] < first["remaining"]


def test_an_answer_computed_before_an_invalidation_is_not_stored(
        client: TestClient, world: World) -> None:
    cache = client.app.state.services.cache
    key = f"{PREFIX}{world.tenant_a}:test:{world.suffix}"
    raw, since = client.portal.call(cache.lookup, key)
    assert raw is None and since is not None
    # Fresh data arrives while the answer is being computed from the old rows ...
    client.portal.call(cache.invalidate_deps, [world.a1])
    # ... so the stale answer is refused; one begun afterwards is stored.
    assert client.portal.call(cache.store, key, '"stale"', [world.a1], since) is False
    assert redis_keys(client, key) == []
    _, later = client.portal.call(cache.lookup, key)
    assert client.portal.call(cache.store, key, '"fresh"', [world.a1], later) is True
    assert client.portal.call(cache.lookup, key)[0] == b'"fresh"'


def test_a_query_over_a_websocket_gets_the_cached_answer_too(client: TestClient,
                                                             world: World) -> None:
    w = world
    query = '{ leaderboard(metric: "likes") { rank influencerId gain } }'
    over_http = gql(client, query, w.headers(w.tenant_a))["data"]
    key = response_key(w.tenant_a, "viewer", query, None, {})
    assert redis_keys(client, key) == [key.encode()]
    with client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        token = w.token(w.tenant_a, Role.VIEWER)
        ws.send_json({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
        assert ws.receive_json()["type"] == "connection_ack"
        ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": query}})
        answer = ws.receive_json()
        assert answer["type"] == "next" and answer["id"] == "1"
        assert answer["payload"]["data"] == over_http
        assert ws.receive_json() == {"id": "1", "type": "complete"}
