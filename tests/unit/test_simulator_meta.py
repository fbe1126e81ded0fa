"""Instagram and Facebook Graph API simulators, in process."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from starlette.testclient import TestClient

from creatorpulse.sources.simulator.clock import ManualClock
from creatorpulse.sources.simulator.common import Sim
from creatorpulse.sources.simulator.config import SimConfig
from creatorpulse.sources.simulator.facebook import FacebookApp
from creatorpulse.sources.simulator.instagram import InstagramApp

T0 = 1_790_000_000.0


def start(app_type, **config):
    clock = ManualClock(T0)
    app = app_type(Sim(replace(SimConfig(accounts=20), **config), clock))
    client = TestClient(app.starlette())
    account = client.get("/_sim/accounts?limit=3").json()["accounts"][1]
    return app, client, clock, account


def test_instagram_profile_fields_and_types() -> None:
    _, client, _, acc = start(InstagramApp)
    r = client.get("/v25.0/me", params={
        "fields": "id,username,followers_count,follows_count,media_count,ig_id",
        "access_token": acc["access_token"]})
    assert r.status_code == 200
    body = r.json()
    assert body["id"] == acc["id"] and isinstance(body["id"], str)
    assert body["username"] == acc["handle"]
    assert isinstance(body["followers_count"], int) and isinstance(body["ig_id"], int)
    usage = json.loads(r.headers["x-business-use-case-usage"])
    assert usage[acc["id"]][0]["type"] == "instagram"
    assert set(json.loads(r.headers["x-app-usage"])) == {"call_count", "total_time",
                                                         "total_cputime"}
    r = client.get(f"/{acc['id']}", params={"fields": "nonsense",
                                            "access_token": acc["access_token"]})
    assert r.status_code == 400 and r.json()["error"]["code"] == 100


def test_instagram_media_pages_to_the_end_with_cursors() -> None:
    app, client, _clock, acc = start(InstagramApp)
    url = f"/v25.0/{acc['id']}/media"
    params = {"fields": "id,like_count,comments_count,timestamp,media_type",
              "limit": "4", "access_token": acc["access_token"]}
    r = client.get(url, params=params)
    seen, pages = [], 0
    while True:
        body = r.json()
        assert r.status_code == 200
        seen += [m["id"] for m in body["data"]]
        pages += 1
        if "next" not in body.get("paging", {}):
            break
        assert body["paging"]["next"].startswith("http")
        r = client.get(body["paging"]["next"])
    account = app.world.account("instagram", 1)
    assert seen == [p.id for p in app.world.posts(account, T0)]
    assert pages >= len(seen) / 4
    assert "after" not in body["paging"]["cursors"] and "before" in body["paging"]["cursors"]
    item = client.get(url, params=params).json()["data"][0]
    assert item["timestamp"].endswith("+0000") and isinstance(item["like_count"], int)


@pytest.mark.parametrize(("app_type", "edge"), [(InstagramApp, "media"), (FacebookApp, "posts")])
def test_field_expansion_inlines_the_first_page_with_links_to_the_edge(app_type, edge) -> None:
    """``fields=...,media.limit(n){...}``: the edge's first page in the account's answer, one
    call against the limits; its next link walks the edge itself to the same items."""
    app, client, _clock, acc = start(app_type)
    token = acc["access_token"]
    inner = "id,like_count" if edge == "media" else "id,created_time"
    r = client.get(f"/v25.0/{acc['id']}", params={
        "fields": f"id,followers_count,{edge}.limit(2){{{inner}}}", "access_token": token})
    assert r.status_code == 200
    assert sum(c["requests"] for c in app.stats.snapshot()["apps"].values()) == 1
    body = r.json()
    assert isinstance(body["followers_count"], int)
    page = body[edge]
    assert len(page["data"]) <= 2 and all(set(m) == set(inner.split(",")) for m in page["data"])
    seen = [m["id"] for m in page["data"]]
    link = page["paging"]["next"]
    assert f"/v25.0/{acc['id']}/{edge}?" in link and "limit=2" in link
    while link:
        page = client.get(link).json()
        seen += [m["id"] for m in page["data"]]
        link = page.get("paging", {}).get("next")
    plain = client.get(f"/v25.0/{acc['id']}/{edge}", params={
        "fields": "id", "limit": "100", "access_token": token}).json()
    assert seen == [m["id"] for m in plain["data"]]
    bad = client.get(f"/v25.0/{acc['id']}", params={
        "fields": f"id,{edge}.order(x){{id}}", "access_token": token})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == 100


def test_meta_page_may_be_empty_and_still_have_next() -> None:
    app, client, _clock, acc = start(InstagramApp)
    newest = app.world.post(app.world.account("instagram", 1), app.world.latest(
        app.world.account("instagram", 1), T0))
    assert client.post("/_sim/delete", json={"content_id": newest.id}).status_code == 200
    body = client.get(f"/{acc['id']}/media", params={
        "limit": "1", "access_token": acc["access_token"]}).json()
    assert body["data"] == [] and "next" in body["paging"]
    assert client.get(f"/{newest.id}", params={"access_token": acc["access_token"]}).json()[
        "error"]["error_subcode"] == 33


def test_instagram_insights_and_removed_metrics() -> None:
    _app, client, _, acc = start(InstagramApp)
    media = client.get(f"/{acc['id']}/media", params={
        "access_token": acc["access_token"]}).json()["data"][0]["id"]
    r = client.get(f"/{media}/insights", params={"metric": "reach,likes,saved,views",
                                                 "access_token": acc["access_token"]})
    rows = r.json()["data"]
    assert [row["name"] for row in rows] == ["reach", "likes", "saved", "views"]
    assert rows[0]["id"] == f"{media}/insights/reach/lifetime"
    assert isinstance(rows[0]["values"][0]["value"], int)
    for removed in ("impressions", "plays", "video_views"):
        r = client.get(f"/{media}/insights", params={"metric": removed,
                                                     "access_token": acc["access_token"]})
        assert r.status_code == 400 and r.json()["error"]["code"] == 100
    r = client.get(f"/{acc['id']}/insights", params={
        "metric": "reach,follower_count", "period": "day", "since": str(int(T0 - 3 * 86400)),
        "until": str(int(T0)), "access_token": acc["access_token"]})
    body = r.json()
    assert r.status_code == 200 and len(body["data"][0]["values"]) == 3
    assert body["data"][1]["values"][0]["end_time"].endswith("T07:00:00+0000")
    assert "since=" in body["paging"]["next"]
    r = client.get(f"/{acc['id']}/insights", params={
        "metric": "views", "period": "day", "metric_type": "total_value",
        "access_token": acc["access_token"]})
    assert isinstance(r.json()["data"][0]["total_value"]["value"], int)


def test_meta_tokens_expire_and_refresh() -> None:
    _app, client, clock, acc = start(InstagramApp, token_ttl={
        **SimConfig().token_ttl, "instagram": 2 * 86400.0})
    params = {"access_token": acc["access_token"]}
    bad = client.get("/me", params={"access_token": "IGAASnotatoken"}).json()["error"]
    assert bad["code"] == 190 and bad["type"] == "OAuthException"
    early = client.get("/refresh_access_token", params={"grant_type": "ig_refresh_token",
                                                        **params})
    assert early.status_code == 400
    clock.advance(86400 + 1)
    fresh = client.get("/refresh_access_token", params={"grant_type": "ig_refresh_token",
                                                        **params}).json()
    assert fresh["token_type"] == "bearer" and fresh["expires_in"] == 2 * 86400
    clock.advance(86400)
    expired = client.get("/me", params=params)
    assert expired.status_code == 400
    assert expired.json()["error"]["code"] == 190
    assert expired.json()["error"]["error_subcode"] == 463
    assert client.get("/me", params={"access_token": fresh["access_token"]}).status_code == 200


def test_meta_throttles_per_business_object_and_counts_over_limit() -> None:
    _app, client, clock, acc = start(InstagramApp, meta_buc_limit=3, meta_buc_window=3600.0)
    params = {"access_token": acc["access_token"]}
    assert [client.get("/me", params=params).status_code for _ in range(3)] == [200] * 3
    r = client.get("/me", params=params)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == 80002
    usage = json.loads(r.headers["x-business-use-case-usage"])[acc["id"]][0]
    assert usage["call_count"] == 100 and usage["estimated_time_to_regain_access"] >= 1
    other = client.get("/_sim/accounts").json()["accounts"][2]
    assert client.get("/me", params={"access_token": other["access_token"]}).status_code == 200
    stats = client.get("/_sim/stats").json()
    assert stats["credentials"][acc["id"]] == {"requests": 4, "over_limit": 1}
    assert stats["credentials"][other["id"]] == {"requests": 1, "over_limit": 0}
    clock.advance(3601)
    assert client.get("/me", params=params).status_code == 200


def test_meta_app_limit_answers_code_4() -> None:
    _, client, _, acc = start(InstagramApp, meta_app_limit=2)
    params = {"access_token": acc["access_token"]}
    codes = [client.get("/me", params=params) for _ in range(3)]
    assert codes[2].json()["error"]["code"] == 4
    assert json.loads(codes[2].headers["x-app-usage"])["call_count"] == 100


def test_facebook_posts_with_summaries_and_insights() -> None:
    _app, client, _, acc = start(FacebookApp)
    r = client.get(f"/v25.0/{acc['id']}/posts", params={
        "fields": "id,message,created_time,shares,reactions.summary(total_count),"
                  "comments.summary(total_count)", "limit": "5",
        "access_token": acc["access_token"]})
    post = r.json()["data"][0]
    assert post["id"].startswith(acc["id"] + "_")
    assert isinstance(post["reactions"]["summary"]["total_count"], int)
    assert isinstance(post["comments"]["summary"]["total_count"], int)
    assert "shares" not in post or isinstance(post["shares"]["count"], int)
    r = client.get(f"/{post['id']}/insights", params={
        "metric": "post_media_view,post_reactions_by_type_total",
        "access_token": acc["access_token"]})
    by_type = r.json()["data"][1]["values"][0]["value"]
    assert sum(by_type.values()) == post["reactions"]["summary"]["total_count"]
    r = client.get(f"/{post['id']}/insights", params={"metric": "post_impressions",
                                                      "access_token": acc["access_token"]})
    assert r.json()["error"]["code"] == 100
    r = client.get(f"/{acc['id']}/insights", params={"access_token": acc["access_token"]})
    assert r.json()["error"]["code"] == 3001
    r = client.get(f"/{acc['id']}/insights", params={"metric": "page_fans", "period": "day",
                                                     "access_token": acc["access_token"]})
    assert r.json()["error"]["code"] == 100
    page = client.get(f"/{acc['id']}", params={"fields": "followers_count,fan_count,name",
                                               "access_token": acc["access_token"]}).json()
    assert page["fan_count"] < page["followers_count"]


def test_facebook_long_lived_token_exchange() -> None:
    app, client, _, acc = start(FacebookApp)
    r = client.get("/v25.0/oauth/access_token", params={
        "grant_type": "fb_exchange_token", "client_id": app.client.id,
        "client_secret": app.client.secret, "fb_exchange_token": acc["access_token"]})
    body = r.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 60 * 86400
    assert client.get("/me", params={"access_token": body["access_token"]}).json()["id"] == \
        acc["id"]
    r = client.get("/v25.0/oauth/access_token", params={
        "grant_type": "fb_exchange_token", "client_id": app.client.id,
        "client_secret": "wrong", "fb_exchange_token": acc["access_token"]})
    assert r.status_code == 400


def test_forced_errors_answer_the_graph_transient_error() -> None:
    _, client, _, acc = start(FacebookApp)
    client.post("/_sim/errors", json={"count": 1, "status": 503})
    r = client.get("/me", params={"access_token": acc["access_token"]})
    assert r.status_code == 503 and r.json()["error"]["is_transient"] is True
    assert client.get("/me", params={"access_token": acc["access_token"]}).status_code == 200


@pytest.mark.parametrize("app_type", [InstagramApp, FacebookApp])
def test_another_accounts_objects_are_not_readable(app_type) -> None:
    _, client, _, acc = start(app_type)
    other = client.get("/_sim/accounts").json()["accounts"][5]
    r = client.get(f"/{other['id']}", params={"access_token": acc["access_token"]})
    assert r.status_code == 400 and r.json()["error"]["error_subcode"] == 33


def test_business_discovery_reads_another_account_and_kind_specific_fields_are_left_out() -> None:
    _app, client, _, acc = start(InstagramApp)
    other = client.get("/_sim/accounts").json()["accounts"][4]
    r = client.get(f"/{acc['id']}", params={
        "fields": f"business_discovery.username({other['handle']}){{followers_count,media_count}}",
        "access_token": acc["access_token"]})
    found = r.json()["business_discovery"]
    assert found["id"] == other["id"] and isinstance(found["followers_count"], int)
    media = client.get(f"/{acc['id']}/media", params={
        "fields": "id,media_type,thumbnail_url,children{id}", "limit": "50",
        "access_token": acc["access_token"]}).json()["data"]
    for item in media:
        assert ("thumbnail_url" in item) == (item["media_type"] == "VIDEO")
        assert ("children" in item) == (item["media_type"] == "CAROUSEL_ALBUM")
    r = client.get("/me", headers={"Authorization": f"OAuth {acc['access_token']}"})
    assert r.status_code == 200


def test_brand_new_media_has_not_enough_viewers_for_insights() -> None:
    app, client, clock, acc = start(InstagramApp)
    account = app.world.account("instagram", 1)
    newest = app.world.post(account, app.world.latest(account, T0) + 1)
    clock.set(newest.published + 1)
    r = client.get(f"/{newest.id}/insights", params={"metric": "reach",
                                                     "access_token": acc["access_token"]})
    assert r.status_code == 400 and r.json()["error"]["code"] == 10
    clock.set(newest.published + 6 * 3600)
    r = client.get(f"/{newest.id}/insights", params={"metric": "reach",
                                                     "access_token": acc["access_token"]})
    assert r.status_code == 200 and r.json()["data"][0]["values"][0]["value"] > 0
