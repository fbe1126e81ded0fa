"""Live updates against the running app: real Kafka, PostgreSQL and Redis, uvicorn on loopback.

A record produced on the test's own aggregates topic reaches the right tenant's subscribers over
graphql-transport-ws and /metrics/stream, never another tenant's; connection_init is
authenticated with the protocol's close codes; fresh aggregates evict cached answers.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from confluent_kafka.admin import AdminClient
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from creatorpulse.graphql import shared
from creatorpulse.settings import Settings
from tests.integration.live_server import NOW, Live, aggregate, running_api
from tests.waiting import until

pytestmark = pytest.mark.anyio

SUBPROTOCOL = "graphql-transport-ws"
METRICS = """subscription ($ids: [ID!]) {
  metricUpdates(influencerIds: $ids) { influencerId platform metric window gain valueAtEnd } }"""
BOARD = """subscription {
  leaderboardUpdates(metric: "likes", window: "1h", platform: INSTAGRAM, first: 5) {
    entries { rank influencerId gain } } }"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def live(settings: Settings, admin: AdminClient, unique: str) -> Iterator[Live]:
    with running_api(settings, admin, unique) as api:
        yield api


async def open_ws(live: Live, token: str | None) -> ClientConnection:
    ws = await connect(f"{live.ws_url}/graphql", subprotocols=[SUBPROTOCOL])
    payload = {} if token is None else {"token": token}
    await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
    return ws


async def acked(live: Live, token: str) -> ClientConnection:
    ws = await open_ws(live, token)
    assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
    return ws


async def subscribe(ws: ClientConnection, query: str, op: str = "1", **variables: Any) -> None:
    await ws.send(json.dumps({"id": op, "type": "subscribe",
                              "payload": {"query": query, "variables": variables}}))


async def receive(ws: ClientConnection, timeout: float = 20) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))  # type: ignore[no-any-return]


async def closed_with(ws: ClientConnection, timeout: float = 20) -> int | None:
    try:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None


async def test_fresh_aggregates_reach_their_tenant_only(live: Live) -> None:
    t = live.tenants
    ws_a = await acked(live, live.token(t.a))
    ws_b = await acked(live, live.token(t.b))
    await subscribe(ws_a, METRICS)
    await subscribe(ws_b, METRICS)
    await until(lambda: live.subscribers() == 2, 20, "two subscribers")

    # One partition keeps the order: if b's subscriber could see a1's record, it would see it
    # before b1's.
    live.produce(aggregate(t.a1, gain=11), aggregate(t.b1, gain=22))
    got_a = await receive(ws_a)
    got_b = await receive(ws_b)
    assert got_a["type"] == "next" and got_a["id"] == "1"
    assert got_a["payload"]["data"]["metricUpdates"] == {
        "influencerId": t.a1, "platform": "instagram", "metric": "likes", "window": "1h",
        "gain": 11, "valueAtEnd": 111}
    assert got_b["payload"]["data"]["metricUpdates"]["influencerId"] == t.b1

    # A record of an influencer nobody knows is dropped, not delivered.
    live.produce(aggregate("nobody-at-all", gain=1), aggregate(t.a2, gain=33))
    assert (await receive(ws_a))["payload"]["data"]["metricUpdates"]["influencerId"] == t.a2
    assert live.hub.stats.unknown_influencers >= 1
    for ws in (ws_a, ws_b):
        await ws.close()


async def test_another_tenants_influencer_reads_as_not_found(live: Live) -> None:
    t = live.tenants
    ws = await acked(live, live.token(t.a))
    await subscribe(ws, METRICS, ids=[t.b1])
    message = await receive(ws)
    assert message["type"] in ("next", "error")
    errors = message["payload"]["errors"] if message["type"] == "next" else message["payload"]
    assert f"no influencer '{t.b1}'" in errors[0]["message"]
    await ws.close()


async def test_connection_init_close_codes(live: Live) -> None:
    # No token, and a token that is not valid: 4403 Forbidden.
    assert await closed_with(await open_ws(live, None)) == 4403
    assert await closed_with(await open_ws(live, "not-a-token")) == 4403
    forged = Settings.from_env({"CREATORPULSE_JWT_SECRET": "y" * 40}, dotenv=None)
    from creatorpulse.graphql.auth import Role, mint

    token = mint(forged, subject="eve", tenant_id=live.tenants.a, role=Role.ADMIN)
    assert await closed_with(await open_ws(live, token)) == 4403

    # Subscribe before the server acknowledged: 4401 Unauthorized.
    ws = await connect(f"{live.ws_url}/graphql", subprotocols=[SUBPROTOCOL])
    await subscribe(ws, METRICS)
    assert await closed_with(ws) == 4401

    # A second connection_init: 4429; a message that is not the protocol's: 4400.
    ws = await acked(live, live.token(live.tenants.a))
    await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
    assert await closed_with(ws) == 4429
    ws = await acked(live, live.token(live.tenants.a))
    await ws.send(json.dumps({"type": "hello"}))
    assert await closed_with(ws) == 4400

    # No connection_init within the wait (shortened to 1 s here): 4408.
    ws = await connect(f"{live.ws_url}/graphql", subprotocols=[SUBPROTOCOL])
    assert await closed_with(ws, timeout=10) == 4408
    assert live.subscribers() == 0


async def test_the_socket_closes_when_the_token_expires(live: Live) -> None:
    ws = await acked(live, live.token(live.tenants.a, ttl=timedelta(seconds=2)))
    await subscribe(ws, METRICS)
    await until(lambda: live.subscribers() == 1, 20, "the subscriber")
    assert await closed_with(ws, timeout=10) == 4403
    await until(lambda: live.subscribers() == 0, 20, "the subscription to end")


async def test_subscribers_share_one_execution_and_encoding_per_event(live: Live) -> None:
    t = live.tenants
    sockets = [await acked(live, live.token(t.a)) for _ in range(3)]
    other = await acked(live, live.token(t.b))
    for n, ws in enumerate(sockets):
        await subscribe(ws, METRICS, op=f"s{n}")
    await subscribe(other, METRICS, op="b")
    await until(lambda: live.subscribers() == 4, 20, "four subscribers")
    shared.reset()

    live.produce(aggregate(t.a1, gain=41), aggregate(t.b1, gain=42))
    got = [await receive(ws) for ws in sockets]
    assert [(m["type"], m["id"]) for m in got] == [("next", "s0"), ("next", "s1"), ("next", "s2")]
    assert {json.dumps(m["payload"]["data"]) for m in got} == {json.dumps(
        {"metricUpdates": {"influencerId": t.a1, "platform": "instagram", "metric": "likes",
                           "window": "1h", "gain": 41, "valueAtEnd": 141}})}
    got_b = await receive(other)
    assert got_b["id"] == "b"
    assert got_b["payload"]["data"]["metricUpdates"]["influencerId"] == t.b1
    # One execution and one encoding per tenant's event, however many subscribers.
    assert (shared.stats.executions, shared.stats.encodings) == (2, 2)
    assert shared.stats.shared == 2
    for ws in (*sockets, other):
        await ws.close()


def set_gain(settings: Settings, influencer: str, gain: int) -> None:
    with psycopg.connect(settings.database_dsn.reveal(), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO rolling_windows (influencer_id, platform, metric, window_name,"
            " window_end, window_start, gain, value_at_start, value_at_end, provenance)"
            " VALUES (%s, 'instagram', 'likes', '1h', %s, %s, %s, 0, %s, 'measured')"
            " ON CONFLICT (influencer_id, platform, metric, window_name, window_end)"
            " DO UPDATE SET gain = EXCLUDED.gain, value_at_end = EXCLUDED.value_at_end",
            [influencer, NOW, NOW - timedelta(hours=1), gain, gain])


async def test_leaderboard_updates_follow_fresh_aggregates(live: Live) -> None:
    t = live.tenants
    set_gain(live.settings, t.a1, 10)
    set_gain(live.settings, t.a2, 20)
    set_gain(live.settings, t.b1, 99)
    ws = await acked(live, live.token(t.a))
    await subscribe(ws, BOARD)
    first = (await receive(ws))["payload"]["data"]["leaderboardUpdates"]["entries"]
    assert [(e["influencerId"], e["gain"]) for e in first] == [(t.a2, 20), (t.a1, 10)]

    set_gain(live.settings, t.a1, 30)
    live.produce(aggregate(t.a1, gain=30))
    changed = (await receive(ws))["payload"]["data"]["leaderboardUpdates"]["entries"]
    assert [(e["rank"], e["influencerId"], e["gain"]) for e in changed] == [
        (1, t.a1, 30), (2, t.a2, 20)]
    await ws.close()


async def test_fresh_aggregates_evict_cached_answers(live: Live) -> None:
    import httpx2

    t = live.tenants
    set_gain(live.settings, t.a1, 10)
    query = {"query": '{ leaderboard(metric: "likes", window: "1h", platform: INSTAGRAM) '
                      "{ influencerId gain } }"}
    headers = {"Authorization": f"Bearer {live.token(t.a)}"}
    async with httpx2.AsyncClient(base_url=live.http_url, headers=headers) as http:
        async def gains() -> list[int]:
            answer = (await http.post("/graphql", json=query)).json()
            return [e["gain"] for e in answer["data"]["leaderboard"]]

        assert await gains() == [10]
        set_gain(live.settings, t.a1, 40)
        assert await gains() == [10]  # served from the cache
        live.produce(aggregate(t.a1, gain=40))
        async def fresh() -> bool:
            return await gains() == [40]

        await until(fresh, 20, "the fresh gain of 40 in the answer", 0.05)
    assert live.hub.stats.invalidation_errors == 0


async def test_metrics_stream_route(live: Live) -> None:
    t = live.tenants
    async with connect(f"{live.ws_url}/metrics/stream") as ws:
        await ws.send(json.dumps({"token": live.token(t.b), "metrics": ["likes"]}))
        assert await receive(ws) == {"type": "subscribed"}
        live.produce(aggregate(t.a1, gain=1), aggregate(t.b1, metric="views"),
                     aggregate(t.b1, gain=7))
        got = await receive(ws)
    assert got["type"] == "aggregates"
    assert [(d["influencer_id"], d["metric"], d["gain"]) for d in got["data"]] == [
        (t.b1, "likes", 7)]
    async with connect(f"{live.ws_url}/metrics/stream") as ws:
        await ws.send(json.dumps({"token": "forged"}))
        assert await closed_with(ws) == 4403
