"""The running app over HTTP with real PostgreSQL, Redis and Kafka: tokens, probes, REST routes,
series and pagination, the cache, the rate limit, erasure, production hygiene, WebSocket auth."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import psycopg
import pytest
from confluent_kafka import Consumer, TopicPartition
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from creatorpulse.graphql.app import create_app
from creatorpulse.graphql.auth import Role, mint
from creatorpulse.graphql.cache import DEPS, PREFIX
from creatorpulse.settings import Settings
from creatorpulse.topics import AGGREGATES
from tests.integration import api_world
from tests.integration.api_world import NOW, T0, World, app_settings, codes, gql

world, client = api_world.world, api_world.client  # the fixtures

RANGE = {"from": (T0 - timedelta(hours=1)).isoformat(), "to": NOW.isoformat()}
ACCOUNTS = "{ accounts { id } }"


# --- tokens over HTTP -----------------------------------------------------------------------


def _claims(w: World, **overrides: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": "eve", "tenant": w.tenant_a, "role": "admin", "iss": w.settings.jwt_issuer,
        "aud": w.settings.jwt_audience, "iat": now, "nbf": now, "exp": now + timedelta(hours=1)}
    claims.update(overrides)
    return claims


def _bad_tokens(w: World) -> dict[str, str]:
    from creatorpulse.graphql.auth import signing_key

    key = signing_key(w.settings).reveal()
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(json.dumps(
        _claims(w), default=lambda d: int(d.timestamp())).encode()).rstrip(b"=").decode()
    good = mint(w.settings, subject="eve", tenant_id=w.tenant_a, role=Role.VIEWER)
    h, p, s = good.split(".")
    forged = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
    forged["tenant"] = w.tenant_b
    forged_p = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    past = datetime.now(UTC) - timedelta(hours=3)
    return {
        "alg none": f"{header}.{body}.",
        "wrong key": jwt.encode(_claims(w), "z" * 48, algorithm="HS256"),
        "expired": jwt.encode(_claims(w, iat=past, nbf=past, exp=past + timedelta(hours=1)),
                              key, algorithm="HS256"),
        "wrong audience": jwt.encode(_claims(w, aud="someone-else"), key, algorithm="HS256"),
        "tampered": f"{h}.{forged_p}.{s}",
        "garbage": "not.a.token",
    }


@pytest.mark.parametrize("case", ["alg none", "wrong key", "expired", "wrong audience",
                                  "tampered", "garbage"])
def test_bad_tokens_get_401_everywhere(client: TestClient, world: World, case: str) -> None:
    token = _bad_tokens(world)[case]
    headers = {"authorization": f"Bearer {token}"}
    response = client.post("/graphql", json={"query": ACCOUNTS}, headers=headers)
    assert response.status_code == 401
    assert token not in response.text
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    rest = client.get(f"/influencers/{world.a1}/metrics", headers=headers)
    assert rest.status_code == 401
    assert rest.headers["www-authenticate"].startswith("Bearer")
    assert world.a1 not in response.text + rest.text


def test_a_good_token_reads_its_tenant(client: TestClient, world: World) -> None:
    body = gql(client, ACCOUNTS, world.headers(world.tenant_a))
    assert [a["id"] for a in body["data"]["accounts"]] == [world.account_a1]


# --- probes and metrics ---------------------------------------------------------------------


def test_health_readiness_and_prometheus(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"postgres": "ok", "redis": "ok", "kafka": "ok"}
    text = client.get("/metrics").text
    assert "creatorpulse_api_cache_hit_ratio" in text
    assert 'creatorpulse_api_requests_total{route="/readyz",status="200"} 1.0' in text


def test_readiness_reports_a_dependency_that_is_down(world: World, stack: object) -> None:
    settings = app_settings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1")
    with TestClient(create_app(settings, producer=_NoKafka())) as c:
        ready = c.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["kafka"].startswith("down")
    assert ready.json()["checks"]["postgres"] == "ok"


class _NoKafka:
    def produce(self, *args: Any, **kwargs: Any) -> None:
        msg = "no broker"
        raise RuntimeError(msg)

    def flush(self, timeout: float = 0) -> int:
        return 0


# --- series, provenance, pagination ---------------------------------------------------------


def test_series_by_minute_hour_and_week_with_provenance(client: TestClient,
                                                        world: World) -> None:
    query = """query($id: ID!, $from: DateTime!, $to: DateTime!, $i: Interval!) {
        metrics(influencerId: $id, from: $from, to: $to, interval: $i,
                platforms: [INSTAGRAM], metrics: ["followers", "likes"]) {
          platform metric interval provenance total buckets { start gain provenance } } }"""
    h = world.headers(world.tenant_a)
    minute = gql(client, query, h, id=world.a1, i="MINUTE", **RANGE)["data"]["metrics"]
    by = {(s["platform"], s["metric"]): s for s in minute}
    assert set(by) == {("instagram", "followers"), ("instagram", "likes")}
    assert len(by["instagram", "likes"]["buckets"]) == 6
    assert by["instagram", "likes"]["total"] == 60
    assert by["instagram", "followers"]["provenance"] == "ROUNDED"
    assert [b["provenance"] for b in by["instagram", "followers"]["buckets"]].count(
        "ROUNDED") == 1
    hour = gql(client, query, h, id=world.a1, i="HOUR", **RANGE)["data"]["metrics"]
    likes = next(s for s in hour if s["metric"] == "likes")
    assert likes["interval"] == "HOUR"
    assert sum(b["gain"] for b in likes["buckets"]) == 60
    assert all(b["start"].endswith(":00:00+00:00") for b in likes["buckets"])
    followers = next(s for s in hour if s["metric"] == "followers")
    assert "ROUNDED" in [b["provenance"] for b in followers["buckets"]]
    week = gql(client, query, h, id=world.a1, i="WEEK", **RANGE)["data"]["metrics"]
    assert sum(b["gain"] for s in week if s["metric"] == "likes" for b in s["buckets"]) == 60


def test_a_range_without_time_zone_or_backwards_is_a_typed_input_error(
        client: TestClient, world: World) -> None:
    query = """query($id: ID!, $from: DateTime!, $to: DateTime!) {
        metrics(influencerId: $id, from: $from, to: $to) { metric } }"""
    body = gql(client, query, world.headers(world.tenant_a), id=world.a1,
               **{"from": RANGE["to"], "to": RANGE["from"]})
    assert codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["extensions"]["field"] == "to"


def test_cursor_pagination_walks_every_influencer_once(client: TestClient, world: World) -> None:
    query = """query($after: String) { influencers(first: 1, after: $after,
        orderBy: NAME_DESC) { totalCount edges { node { name } }
        pageInfo { hasNextPage endCursor } } }"""
    names, after = [], None
    for _ in range(5):
        page = gql(client, query, world.headers(world.tenant_a), after=after)
        conn = page["data"]["influencers"]
        assert conn["totalCount"] == 2
        names += [e["node"]["name"] for e in conn["edges"]]
        after = conn["pageInfo"]["endCursor"]
        if not conn["pageInfo"]["hasNextPage"]:
            break
    assert [n.split()[0] for n in names] == ["Bob", "Alice"]


# --- REST -----------------------------------------------------------------------------------


def test_rest_metrics_and_aggregates(client: TestClient, world: World) -> None:
    h = world.headers(world.tenant_a)
    got = client.get(f"/influencers/{world.a1}/metrics",
                     params={"platform": "instagram", "metric": "likes", "period": "6h"},
                     headers=h)
    assert got.status_code == 200
    series = got.json()["series"]
    assert [(s["platform"], s["metric"], s["interval"], s["total"]) for s in series] == [
        ("instagram", "likes", "minute", 60)]
    agg = client.get("/aggregated/metrics", headers=h, params={
        "metric": "likes", "start": RANGE["from"], "end": RANGE["to"]})
    assert agg.status_code == 200
    assert agg.json()["groups"] == [{"key": "instagram", "total": 60, "observations": 12}]
    assert client.get(f"/influencers/{world.b1}/metrics", headers=h).status_code == 404
    bad = client.get("/aggregated/metrics", headers=h, params={"metric": "likes",
                                                               "start": "yesterday"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "start"
    assert client.get("/aggregated/metrics").status_code == 401


def test_rest_post_influencers(client: TestClient, world: World, db: psycopg.Connection) -> None:
    viewer = client.post("/influencers", json={"name": "Dan"},
                         headers=world.headers(world.tenant_a))
    assert viewer.status_code == 403
    bad = client.post("/influencers", json={"name": " ", "tags": ["a b"]},
                      headers=world.headers(world.tenant_a, Role.EDITOR))
    assert bad.status_code == 422
    assert [e["field"] for e in bad.json()["errors"]] == ["name", "tags[0]"]
    made = client.post("/influencers", json={"name": "Dan", "tags": ["x"]},
                       headers=world.headers(world.tenant_a, Role.EDITOR))
    assert made.status_code == 201
    row = db.execute("SELECT tenant_id, name FROM influencers WHERE id = %s",
                     (made.json()["id"],)).fetchone()
    assert row == (world.tenant_a, "Dan")


# --- mutations: typed input errors, tokens sealed --------------------------------------------


def test_invalid_input_names_every_field(client: TestClient, world: World) -> None:
    body = gql(client, """mutation { addInfluencer(input: {name: "", tags: ["ok", "b a d"],
        metadata: [1]}) { __typename ... on ValidationErrors { errors { field message } } } }""",
               world.headers(world.tenant_a, Role.EDITOR))
    result = body["data"]["addInfluencer"]
    assert result["__typename"] == "ValidationErrors"
    assert [e["field"] for e in result["errors"]] == ["input.name", "input.tags[1]",
                                                      "input.metadata"]


def test_linked_tokens_are_sealed_and_a_disabled_platform_refuses_links(
        client: TestClient, world: World, db: psycopg.Connection) -> None:
    link = """mutation($id: ID!, $p: Platform!) { linkAccount(input: {influencerId: $id,
        platform: $p, externalId: "acct-9", accessToken: "sentinel-token-123"}) {
        __typename ... on Account { id hasCredentials }
        ... on ValidationErrors { errors { field message } } } }"""
    admin = world.headers(world.tenant_a, Role.ADMIN)
    done = gql(client, link, admin, id=world.a1, p="YOUTUBE")["data"]["linkAccount"]
    assert done["hasCredentials"] is True
    stored = db.execute("SELECT access_token_enc FROM oauth_credentials WHERE account_id = %s",
                        (done["id"],)).fetchone()
    assert stored is not None
    assert b"sentinel-token-123" not in bytes(stored[0])
    gql(client, "mutation { setPlatformEnabled(platform: TIKTOK, enabled: false) { __typename } }",
        admin)
    refused = gql(client, link, admin, id=world.a1, p="TIKTOK")["data"]["linkAccount"]
    assert refused["__typename"] == "ValidationErrors"
    assert refused["errors"][0]["field"] == "input.platform"


# --- cache ----------------------------------------------------------------------------------


def test_cache_hit_then_invalidation_when_fresh_aggregates_arrive(
        client: TestClient, world: World, db: psycopg.Connection) -> None:
    query = """query($id: ID!) { engagementRate(influencerId: $id) { rate numerator } }"""
    h = world.headers(world.tenant_a)
    services = client.app.state.services
    metrics = client.app.state.metrics
    first = gql(client, query, h, id=world.a1)["data"]["engagementRate"]
    assert first == {"rate": 0.06, "numerator": 60}
    hits_before = metrics._hits
    db.execute("UPDATE derived_figures SET numerator = 90, figure_value = 0.09 "
               "WHERE influencer_id = %s", (world.a1,))
    cached = gql(client, query, h, id=world.a1)["data"]["engagementRate"]
    assert cached == first, "the second read must come from the cache"
    assert metrics._hits == hits_before + 1
    dropped = client.portal.call(services.cache.invalidate, world.a1)
    assert dropped >= 1
    fresh = gql(client, query, h, id=world.a1)["data"]["engagementRate"]
    assert fresh == {"rate": 0.09, "numerator": 90}
    text = client.get("/metrics").text
    assert 'creatorpulse_api_cache_lookups_total{result="hit"}' in text
    ratio = [line for line in text.splitlines()
             if line.startswith("creatorpulse_api_cache_hit_ratio ")]
    assert ratio
    assert 0 < float(ratio[0].split()[1]) < 1


# --- rate limit -----------------------------------------------------------------------------


def test_a_spent_budget_is_refused_with_when_to_retry(world: World, stack: object) -> None:
    settings = app_settings(API_RATE_BUDGET="30", API_RATE_REFILL="1")
    token = mint(settings, subject=f"spender-{world.suffix}", tenant_id=world.tenant_a,
                 role=Role.VIEWER)
    query = "{ influencers(first: 10) { edges { node { id } } } }"  # 1 + 10 + 10 points
    with TestClient(create_app(settings)) as c:
        h = {"authorization": f"Bearer {token}"}
        ok = gql(c, query, h)
        assert "errors" not in ok
        assert ok["extensions"]["cost"]["requested"] == 21
        raw = c.post("/graphql", json={"query": query}, headers=h)
        assert raw.status_code == 200
        assert raw.headers["x-ratelimit-limit"] == "30"
        refused = raw.json()
        assert raw.headers["retry-after"] == str(refused["errors"][0]["extensions"]["retryAfter"])
        assert codes(refused) == ["RATE_LIMITED"]
        assert refused["data"] is None
        retry = refused["errors"][0]["extensions"]["retryAfter"]
        assert 1 <= retry <= 21
        assert f"retry in {retry} s" in refused["errors"][0]["message"]
        other = mint(settings, subject=f"other-{world.suffix}", tenant_id=world.tenant_a,
                     role=Role.VIEWER)
        assert "errors" not in gql(c, query, {"authorization": f"Bearer {other}"})


@pytest.mark.parametrize(("query", "code_or_text"), [
    ("{ " + " ".join(f"a{i}: accounts {{ id }}" for i in range(20)) + " }", "aliases"),
    ("{ influencers(first: 500) { totalCount } }", "BAD_USER_INPUT"),
    ("{ accounts { influencer { accounts { influencer { accounts { influencer { accounts {"
     " influencer { accounts { influencer { accounts { id } } } } } } } } } } } }", "depth"),
])
def test_limits_refuse_over_http(client: TestClient, world: World, query: str,
                                 code_or_text: str) -> None:
    body = gql(client, query, world.headers(world.tenant_a))
    assert body["data"] is None
    assert code_or_text in codes(body) or code_or_text in body["errors"][0]["message"]


# --- erasure --------------------------------------------------------------------------------


def _high_watermarks(settings: Settings) -> tuple[Consumer, list[TopicPartition]]:
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap,
                         "group.id": f"api-erasure-check-{time.time_ns()}",
                         "enable.auto.commit": False})
    meta = consumer.list_topics(AGGREGATES.name, timeout=10)
    parts = []
    for p in meta.topics[AGGREGATES.name].partitions:
        _, high = consumer.get_watermark_offsets(TopicPartition(AGGREGATES.name, p), timeout=10)
        parts.append(TopicPartition(AGGREGATES.name, p, high))
    return consumer, parts


def test_erasure_removes_the_influencer_everywhere(
        client: TestClient, world: World, db: psycopg.Connection) -> None:
    w, admin = world, world.headers(world.tenant_a, Role.ADMIN)
    gql(client, "query($id: ID!) { engagementRate(influencerId: $id) { rate } }", admin, id=w.a1)
    redis = client.app.state.services.redis
    assert client.portal.call(redis.scard, DEPS + w.a1) >= 1
    consumer, start = _high_watermarks(w.settings)
    try:
        body = gql(client, """mutation($id: ID!) { removeInfluencer(id: $id, erase: true) {
            __typename ... on Erased { erasureId rows cacheEntries tombstoneTopics pending }
            } }""",
                   admin, id=w.a1)
        erased = body["data"]["removeInfluencer"]
        assert erased["__typename"] == "Erased"
        assert erased["rows"]["metric_buckets_1m"] == 24
        assert erased["rows"]["observations"] == 6
        assert erased["cacheEntries"] >= 1
        assert erased["tombstoneTopics"] == [AGGREGATES.name]
        assert erased["pending"] == []
        for table in ("observations", "metric_buckets_1m", "rolling_windows", "derived_figures",
                      "influencers", "platform_accounts"):
            column = "id" if table == "influencers" else "influencer_id"
            left = db.execute(f"SELECT count(*) FROM {table} WHERE {column} = %s",
                              (w.a1,)).fetchone()
            assert left == (0,), table
        assert client.portal.call(redis.exists, DEPS + w.a1) == 0
        keys = client.portal.call(redis.keys, f"{PREFIX}{w.tenant_a}:*")
        assert keys == []
        record = db.execute("SELECT tenant_id, account_ids, scope FROM erasures WHERE id = %s",
                            (erased["erasureId"],)).fetchone()
        assert record is not None
        assert record[0] == w.tenant_a
        assert record[1] == [w.account_a1]
        assert record[2]["tombstones"] == [AGGREGATES.name]
        assert "Alice" not in json.dumps(record[2])
        consumer.assign(start)
        tombstone = None
        deadline = time.monotonic() + 30
        while tombstone is None and time.monotonic() < deadline:
            msg = consumer.poll(1)
            if msg is not None and msg.error() is None and msg.key() == w.a1.encode():
                tombstone = msg
        assert tombstone is not None, "no tombstone on the aggregates topic"
        assert tombstone.value() is None
    finally:
        consumer.close()
    gone = gql(client, "query($id: ID!) { influencer(id: $id) { id } }", admin, id=w.a1)
    assert gone["data"]["influencer"] is None
    again = gql(client, "mutation($id: ID!) { removeInfluencer(id: $id, erase: true) {"
                " __typename } }", admin, id=w.a1)
    assert again["data"]["removeInfluencer"]["__typename"] == "NotFound"


# --- production hygiene ---------------------------------------------------------------------


def test_production_serves_no_ide_no_get_queries_and_no_introspection(
        world: World, stack: object) -> None:
    settings = app_settings(ENV="production", JWT_SECRET="p" * 40,
                            TOKEN_KEYS=base64.urlsafe_b64encode(b"k" * 32).decode())
    token = mint(settings, subject="ops", tenant_id=world.tenant_a, role=Role.VIEWER)
    h = {"authorization": f"Bearer {token}"}
    with TestClient(create_app(settings)) as c:
        page = c.get("/graphql", headers={"accept": "text/html"})
        assert "graphiql" not in page.text.lower()
        got = c.get("/graphql", params={"query": ACCOUNTS}, headers=h)
        assert got.status_code in (400, 405)
        intro = gql(c, "{ __schema { types { name } } }", h)
        assert "introspection" in intro["errors"][0]["message"].lower()
        typo = gql(c, "{ acounts { id } }", h)
        assert "Did you mean" not in typo["errors"][0]["message"]
        assert gql(c, ACCOUNTS, h)["data"]["accounts"][0]["id"] == world.account_a1


def test_development_serves_graphiql(client: TestClient) -> None:
    page = client.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200
    assert "graphiql" in page.text.lower()


# --- WebSocket authentication on connection_init ---------------------------------------------


def test_websocket_needs_a_valid_token_in_connection_init(client: TestClient,
                                                          world: World) -> None:
    with client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        token = world.token(world.tenant_a, Role.VIEWER)
        ws.send_json({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
        assert ws.receive_json()["type"] == "connection_ack"
    for payload in ({}, {"authorization": "Bearer junk"},
                    {"authorization": _bad_tokens(world)["expired"]}):
        with client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
            ws.send_json({"type": "connection_init", "payload": payload})
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_json()
            assert closed.value.code == 4403


# --- accounts' polling state ------------------------------------------------------------------


def test_accounts_show_the_pollers_state(client: TestClient, world: World,
                                         db: psycopg.Connection) -> None:
    from creatorpulse.sinks import registry

    polled = NOW - timedelta(minutes=2)
    registry.record_poll(db, world.account_a1, "worker-1", polled - timedelta(minutes=5),
                         next_poll_at=polled, observations=3)
    registry.record_poll(db, world.account_a1, "worker-1", polled,
                         next_poll_at=polled + timedelta(minutes=5), error="HTTP 429 from x")
    body = gql(client, """{ accounts { id lastPollAt lastSuccessAt nextPollAt lastError
        consecutiveFailures } }""", world.headers(world.tenant_a))
    (account,) = body["data"]["accounts"]
    assert datetime.fromisoformat(account["lastPollAt"]) == polled
    assert datetime.fromisoformat(account["lastSuccessAt"]) == polled - timedelta(minutes=5)
    assert datetime.fromisoformat(account["nextPollAt"]) == polled + timedelta(minutes=5)
    assert account["lastError"] == "HTTP 429 from x"
    assert account["consecutiveFailures"] == 1


def test_erasure_with_kafka_down_erases_rows_and_reports_the_tombstone_pending(
        world: World, db: psycopg.Connection, stack: object) -> None:
    w = world
    with TestClient(create_app(w.settings, producer=_NoKafka())) as c:
        body = gql(c, """mutation($id: ID!) { removeInfluencer(id: $id, erase: true) {
            ... on Erased { erasureId tombstoneTopics pending } } }""",
                   w.headers(w.tenant_a, Role.ADMIN), id=w.a1)
    erased = body["data"]["removeInfluencer"]
    assert erased["tombstoneTopics"] == []
    assert erased["pending"] == [f"tombstone:{AGGREGATES.name}"]
    assert db.execute("SELECT count(*) FROM metric_buckets_1m WHERE influencer_id = %s",
                      (w.a1,)).fetchone() == (0,)
    scope = db.execute("SELECT scope FROM erasures WHERE id = %s",
                       (erased["erasureId"],)).fetchone()
    assert scope is not None
    assert scope[0]["pending"] == [f"tombstone:{AGGREGATES.name}"]


def test_tenant_wide_answers_are_evicted_by_any_influencer_of_the_tenant(
        client: TestClient, world: World, db: psycopg.Connection) -> None:
    w = world
    query = '{ leaderboard(metric: "likes", window: "24h") { influencerId gain } }'
    h = w.headers(w.tenant_a)
    before = gql(client, query, h)["data"]["leaderboard"]
    assert [e["influencerId"] for e in before] == [w.a1]
    db.execute(
        "INSERT INTO rolling_windows (influencer_id, platform, metric, window_name, window_end, "
        "window_start, gain, value_at_start, value_at_end, provenance) "
        "VALUES (%s, 'all', 'likes', '24h', %s, %s, 500, 0, 500, 'measured')",
        (w.a2, NOW, NOW - timedelta(hours=24)))
    assert gql(client, query, h)["data"]["leaderboard"] == before  # cached
    cache = client.app.state.services.cache
    assert client.portal.call(cache.invalidate, w.b1) == 0  # another tenant's news: kept
    assert gql(client, query, h)["data"]["leaderboard"] == before
    assert client.portal.call(cache.invalidate, w.a2) >= 1  # a2 had no cached answer of its own
    after = gql(client, query, h)["data"]["leaderboard"]
    assert [e["influencerId"] for e in after] == [w.a2, w.a1]


def test_no_form_posts_and_no_mutations_over_get(client: TestClient, world: World) -> None:
    h = world.headers(world.tenant_a, Role.ADMIN)
    form = client.post("/graphql", data={"query": ACCOUNTS}, headers=h)
    assert form.status_code == 400
    mutation = "mutation { setPlatformEnabled(platform: X, enabled: false) { __typename } }"
    got = client.get("/graphql", params={"query": mutation}, headers=h)
    assert got.status_code == 400
    assert "not allowed" in got.text


def test_a_websocket_from_a_foreign_origin_is_refused(client: TestClient,
                                                      world: World) -> None:
    token = world.token(world.tenant_a, Role.VIEWER)
    init = {"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}
    with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect(
            "/graphql", subprotocols=["graphql-transport-ws"],
            headers={"origin": "https://evil.example"}) as ws:
        ws.send_json(init)
        ws.receive_json()
    assert refused.value.code != 4403  # refused at the handshake, before the token is read
    with client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"],
                                  headers={"origin": "http://testserver"}) as ws:
        ws.send_json(init)
        assert ws.receive_json()["type"] == "connection_ack"


def test_rest_calls_spend_the_same_budget(world: World, stack: object) -> None:
    settings = app_settings(API_RATE_BUDGET="12", API_RATE_REFILL="1")
    token = mint(settings, subject=f"rest-{world.suffix}", tenant_id=world.tenant_a,
                 role=Role.VIEWER)
    h = {"authorization": f"Bearer {token}"}
    with TestClient(create_app(settings)) as c:
        statuses = [c.get(f"/influencers/{world.a1}/metrics", headers=h).status_code
                    for _ in range(3)]
        assert statuses == [200, 200, 429]
        refused = c.get(f"/influencers/{world.a1}/metrics", headers=h)
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 5


def test_readings_still_in_flight_never_rewrite_an_erased_influencers_rows(
        client: TestClient, world: World, db: psycopg.Connection) -> None:
    w, admin = world, world.headers(world.tenant_a, Role.ADMIN)
    body = gql(client, "mutation($id: ID!) { removeInfluencer(id: $id, erase: true) {"
               " __typename } }", admin, id=w.a1)
    assert body["data"]["removeInfluencer"]["__typename"] == "Erased"
    # What the engagement job would still upsert for a1 (and, alongside, for b1).
    late = NOW + timedelta(minutes=1)
    for influencer in (w.a1, w.b1):
        db.execute("INSERT INTO metric_buckets_1m (influencer_id, platform, metric, bucket_start,"
                   " gain, observations, provenance) VALUES (%s, 'all', 'likes', %s, 5, 1,"
                   " 'measured') ON CONFLICT (influencer_id, platform, metric, bucket_start)"
                   " DO UPDATE SET gain = excluded.gain", (influencer, late))
        db.execute("INSERT INTO observations (event_id, observed_at, platform, account_id,"
                   " influencer_id, content_id, content_kind, metric, value, provenance)"
                   " VALUES (%s, %s, 'instagram', 'acc', %s, 'p', 'post', 'likes', 1,"
                   " 'measured')", (f"late-{influencer}", late, influencer))
    for table in ("metric_buckets_1m", "observations"):
        counts = dict(db.execute(f"SELECT influencer_id, count(*) FROM {table} "
                                 "WHERE influencer_id IN (%s, %s) GROUP BY 1",
                                 (w.a1, w.b1)).fetchall())
        assert w.a1 not in counts, table  # refused: the erasure stands
        assert counts[w.b1] >= 1, table  # everyone else's rows are written as ever
