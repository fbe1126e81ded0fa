"""YouTube, TikTok and X simulators, in process: shapes, paging, limits, tokens."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from starlette.testclient import TestClient

from creatorpulse.sources.simulator.clock import ManualClock
from creatorpulse.sources.simulator.common import Sim
from creatorpulse.sources.simulator.config import SimConfig
from creatorpulse.sources.simulator.tiktok import TikTokApp
from creatorpulse.sources.simulator.world import round_3_significant
from creatorpulse.sources.simulator.x import XApp
from creatorpulse.sources.simulator.youtube import YouTubeApp, pacific_day

T0 = 1_790_000_000.0


def start(app_type, **config):
    clock = ManualClock(T0)
    app = app_type(Sim(replace(SimConfig(accounts=20), **config), clock))
    client = TestClient(app.starlette())
    account = client.get("/_sim/accounts?limit=3").json()["accounts"][2]
    return app, client, clock, account


def bearer(account) -> dict[str, str]:
    return {"Authorization": f"Bearer {account['access_token']}"}


# --- YouTube -------------------------------------------------------------------------------


def test_youtube_channel_counts_are_strings_and_subscribers_rounded() -> None:
    app, client, _, acc = start(YouTubeApp)
    r = client.get("/youtube/v3/channels", params={"part": "snippet,statistics,contentDetails",
                                                   "mine": "true"}, headers=bearer(acc))
    assert r.status_code == 200
    assert not any(h.startswith("x-rate-limit") or h.startswith("x-app") for h in r.headers)
    item = r.json()["items"][0]
    stats = item["statistics"]
    assert item["id"] == acc["id"] and item["id"].startswith("UC")
    assert all(isinstance(stats[k], str) for k in ("viewCount", "subscriberCount", "videoCount"))
    followers = app.world.account("youtube", 2).followers(T0)
    assert int(stats["subscriberCount"]) == round_3_significant(followers)
    assert item["contentDetails"]["relatedPlaylists"]["uploads"] == "UU" + acc["id"][2:]
    by_handle = client.get("/youtube/v3/channels", params={
        "part": "id", "forHandle": "@" + acc["handle"]}, headers=bearer(acc)).json()
    assert by_handle["items"][0]["id"] == acc["id"]


def test_youtube_uploads_page_to_the_end_and_videos_have_string_stats() -> None:
    app, client, _, acc = start(YouTubeApp)
    params = {"part": "contentDetails,snippet", "playlistId": "UU" + acc["id"][2:],
              "maxResults": "7"}
    ids, token = [], None
    while True:
        r = client.get("/youtube/v3/playlistItems",
                       params={**params, **({"pageToken": token} if token else {})},
                       headers=bearer(acc))
        body = r.json()
        assert r.status_code == 200 and body["pageInfo"]["resultsPerPage"] == 7
        ids += [i["contentDetails"]["videoId"] for i in body["items"]]
        token = body.get("nextPageToken")
        if token is None:
            break
    account = app.world.account("youtube", 2)
    assert ids == [p.id for p in app.world.posts(account, T0)]
    r = client.get("/youtube/v3/videos", params={"part": "statistics,snippet,contentDetails",
                                                 "id": ",".join([*ids[:5], "nosuchvideo"])},
                   headers=bearer(acc))
    items = r.json()["items"]
    assert [i["id"] for i in items] == ids[:5]
    assert all(isinstance(v, str) for i in items for v in i["statistics"].values())
    assert items[0]["snippet"]["publishedAt"].endswith("Z")
    assert items[0]["contentDetails"]["duration"].startswith("PT")
    bad = client.get("/youtube/v3/playlistItems", params={**params, "pageToken": "garbage"},
                     headers=bearer(acc))
    assert bad.status_code == 400
    assert bad.json()["error"]["errors"][0]["reason"] == "invalidPageToken"


def test_youtube_quota_runs_out_with_403_and_resets_at_pacific_midnight() -> None:
    _app, client, clock, acc = start(YouTubeApp, youtube_quota=3, token_ttl={
        **SimConfig().token_ttl, "youtube": 3 * 86400.0})
    params = {"part": "statistics", "mine": "true"}
    codes = [client.get("/youtube/v3/channels", params=params, headers=bearer(acc))
             for _ in range(5)]
    assert [r.status_code for r in codes] == [200, 200, 200, 403, 403]
    error = codes[3].json()["error"]
    assert error["code"] == 403 and error["errors"][0]["reason"] == "quotaExceeded"
    assert error["errors"][0]["domain"] == "youtube.quota"
    stats = client.get("/_sim/stats").json()
    assert stats["over_limit"] == 2 and stats["credentials"][acc["id"]]["over_limit"] == 2
    clock.set(pacific_day(T0)[1] + 1)
    assert client.get("/youtube/v3/channels", params=params,
                      headers=bearer(acc)).status_code == 200


def test_pacific_day_starts_at_local_midnight() -> None:
    start_, end = pacific_day(T0)
    local = datetime.fromtimestamp(start_, UTC)
    assert local.hour in (7, 8) and local.minute == 0  # 00:00 in Los Angeles
    assert end - start_ in (82_800, 86_400, 90_000)


def test_youtube_expired_token_and_refresh() -> None:
    app, client, clock, acc = start(YouTubeApp)
    clock.advance(3600)
    r = client.get("/youtube/v3/channels", params={"part": "id", "mine": "true"},
                   headers=bearer(acc))
    assert r.status_code == 401 and r.json()["error"]["errors"][0]["reason"] == "authError"
    form = {"grant_type": "refresh_token", "refresh_token": acc["refresh_token"],
            "client_id": app.client.id, "client_secret": app.client.secret}
    fresh = client.post("/token", data=form).json()
    assert fresh["token_type"] == "Bearer" and fresh["expires_in"] == 3599
    assert "refresh_token" not in fresh
    assert client.get("/youtube/v3/channels", params={"part": "id", "mine": "true"}, headers={
        "Authorization": f"Bearer {fresh['access_token']}"}).status_code == 200
    again = client.post("/token", data=form)  # Google keeps the refresh token
    assert again.status_code == 200
    bad = client.post("/token", data={**form, "refresh_token": "1//nope"})
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_grant"


# --- TikTok --------------------------------------------------------------------------------


def test_tiktok_user_info_and_video_list_cursor_paging() -> None:
    app, client, _, acc = start(TikTokApp)
    r = client.get("/v2/user/info/", params={
        "fields": "open_id,display_name,follower_count,likes_count,video_count"},
        headers=bearer(acc))
    body = r.json()
    assert body["error"]["code"] == "ok" and body["error"]["log_id"]
    user = body["data"]["user"]
    assert user["open_id"] == acc["id"] and isinstance(user["follower_count"], int)
    fields = {"fields": "id,create_time,like_count,comment_count,share_count,view_count"}
    cursor, seen = None, []
    while True:
        r = client.post("/v2/video/list/", params=fields, headers=bearer(acc),
                        json={"max_count": 6, **({"cursor": cursor} if cursor else {})})
        data = r.json()["data"]
        seen += [v["id"] for v in data["videos"]]
        assert all(isinstance(v["id"], str) and isinstance(v["create_time"], int)
                   for v in data["videos"])
        if not data["has_more"]:
            break
        cursor = data["cursor"]
        assert cursor > 10**12  # milliseconds
    account = app.world.account("tiktok", 2)
    assert seen == [p.id for p in app.world.posts(account, T0)]
    r = client.post("/v2/video/query/", params=fields, headers=bearer(acc),
                    json={"filters": {"video_ids": seen[:3]}})
    assert [v["id"] for v in r.json()["data"]["videos"]] == seen[:3]
    r = client.post("/v2/video/list/", params=fields, headers=bearer(acc), json={"max_count": 50})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_params"


def test_tiktok_refresh_rotates_and_the_old_refresh_token_dies() -> None:
    app, client, clock, acc = start(TikTokApp)
    form = {"client_key": app.client.id, "client_secret": app.client.secret,
            "grant_type": "refresh_token", "refresh_token": acc["refresh_token"]}
    first = client.post("/v2/oauth/token/", data=form).json()
    assert first["access_token"].startswith("act.") and first["refresh_token"].startswith("rft.")
    assert first["refresh_token"] != acc["refresh_token"] and first["open_id"] == acc["id"]
    assert first["expires_in"] == 7200 and first["refresh_expires_in"] == 180 * 86400
    reused = client.post("/v2/oauth/token/", data=form)
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    second = client.post("/v2/oauth/token/", data={**form, "refresh_token":
                                                    first["refresh_token"]})
    assert second.status_code == 200
    clock.advance(7200)
    r = client.get("/v2/user/info/", params={"fields": "open_id"}, headers=bearer(acc))
    assert r.status_code == 401 and r.json()["error"]["code"] == "access_token_invalid"


def test_tiktok_limit_is_per_endpoint_and_answers_429() -> None:
    _, client, clock, acc = start(TikTokApp, tiktok_limit=2)
    info = [client.get("/v2/user/info/", params={"fields": "open_id"}, headers=bearer(acc))
            for _ in range(3)]
    assert [r.status_code for r in info] == [200, 200, 429]
    assert info[2].json()["error"]["code"] == "rate_limit_exceeded"
    assert not any(h.startswith("x-rate-limit") for h in info[2].headers)
    listed = client.post("/v2/video/list/", params={"fields": "id"}, headers=bearer(acc), json={})
    assert listed.status_code == 200
    assert client.get("/_sim/stats").json()["credentials"][acc["id"]]["over_limit"] == 1
    clock.advance(61)
    assert client.get("/v2/user/info/", params={"fields": "open_id"},
                      headers=bearer(acc)).status_code == 200


# --- X -------------------------------------------------------------------------------------


def test_x_timeline_pages_newest_first_with_headers_on_every_answer() -> None:
    app, client, _, acc = start(XApp)
    params = {"max_results": "5", "tweet.fields": "public_metrics,created_at"}
    seen, token = [], None
    while True:
        r = client.get(f"/2/users/{acc['id']}/tweets", headers=bearer(acc),
                       params={**params, **({"pagination_token": token} if token else {})})
        assert {"x-rate-limit-limit", "x-rate-limit-remaining", "x-rate-limit-reset"} <= set(
            r.headers)
        body = r.json()
        seen += [t["id"] for t in body.get("data", [])]
        token = body["meta"].get("next_token")
        if token is None:
            break
    account = app.world.account("x", 2)
    assert seen == [p.id for p in app.world.posts(account, T0)]
    assert seen == sorted(seen, reverse=True)
    first = client.get(f"/2/users/{acc['id']}/tweets", headers=bearer(acc), params=params).json()
    tweet = first["data"][0]
    assert set(tweet["public_metrics"]) == {"retweet_count", "reply_count", "like_count",
                                            "quote_count", "bookmark_count", "impression_count"}
    assert tweet["created_at"].endswith(".000Z")
    assert first["meta"]["newest_id"] == tweet["id"]
    newer = client.get(f"/2/users/{acc['id']}/tweets", headers=bearer(acc),
                       params={**params, "since_id": seen[2]}).json()
    assert [t["id"] for t in newer["data"]] == seen[:2]
    bad = client.get(f"/2/users/{acc['id']}/tweets", headers=bearer(acc),
                     params={"max_results": "1000"})
    assert bad.status_code == 400 and "between 5 and 100" in bad.json()["errors"][0]["message"]


def test_x_timeline_expands_its_author_with_the_user_fields_asked() -> None:
    _, client, _, acc = start(XApp)
    params = {"max_results": "5", "expansions": "author_id", "user.fields": "public_metrics"}
    body = client.get(f"/2/users/{acc['id']}/tweets", headers=bearer(acc), params=params).json()
    assert body["data"]
    [user] = body["includes"]["users"]
    plain = client.get(f"/2/users/{acc['id']}", headers=bearer(acc),
                       params={"user.fields": "public_metrics"}).json()["data"]
    assert user == plain and isinstance(user["public_metrics"]["followers_count"], int)
    assert "includes" not in client.get(f"/2/users/{acc['id']}/tweets", headers=bearer(acc),
                                        params={"max_results": "5"}).json()
    bad = client.get(f"/2/users/{acc['id']}/tweets", headers=bearer(acc),
                     params={**params, "expansions": "pinned_tweet"})
    assert bad.status_code == 400 and "expansions" in bad.json()["errors"][0]["message"]


def test_x_limit_answers_429_problem_with_remaining_zero() -> None:
    _, client, clock, acc = start(XApp, x_limit=2)
    rs = [client.get("/2/users/me", headers=bearer(acc)) for _ in range(3)]
    assert [r.status_code for r in rs] == [200, 200, 429]
    assert rs[1].headers["x-rate-limit-remaining"] == "0"
    assert rs[2].json() == {"title": "Too Many Requests", "detail": "Too Many Requests",
                            "type": "about:blank", "status": 429}
    assert int(rs[2].headers["x-rate-limit-reset"]) > clock.now()
    assert rs[2].headers["content-type"].startswith("application/problem+json")
    assert client.get("/_sim/stats").json()["credentials"][acc["id"]] == {
        "requests": 3, "over_limit": 1}
    clock.set(int(rs[2].headers["x-rate-limit-reset"]) + 1)
    assert client.get("/2/users/me", headers=bearer(acc)).status_code == 200


def test_x_deleted_tweet_is_a_partial_error_and_users_resolve() -> None:
    _app, client, _, acc = start(XApp)
    tweets = client.get(f"/2/users/{acc['id']}/tweets", headers=bearer(acc)).json()["data"]
    client.post("/_sim/delete", json={"content_id": tweets[0]["id"]})
    r = client.get("/2/tweets", params={"ids": f"{tweets[0]['id']},{tweets[1]['id']}",
                                        "tweet.fields": "public_metrics"}, headers=bearer(acc))
    body = r.json()
    assert r.status_code == 200 and [t["id"] for t in body["data"]] == [tweets[1]["id"]]
    assert body["errors"][0]["type"] == "https://api.twitter.com/2/problems/resource-not-found"
    user = client.get(f"/2/users/by/username/{acc['handle']}", headers=bearer(acc),
                      params={"user.fields": "public_metrics"}).json()["data"]
    assert user["id"] == acc["id"] and isinstance(user["public_metrics"]["followers_count"], int)
    missing = client.get("/2/users/by/username/nobody", headers=bearer(acc)).json()
    assert "data" not in missing and missing["errors"][0]["title"] == "Not Found Error"


def test_x_refresh_rotates_and_app_only_bearer() -> None:
    import base64

    app, client, clock, acc = start(XApp)
    form = {"grant_type": "refresh_token", "refresh_token": acc["refresh_token"],
            "client_id": app.client.id}
    clock.advance(7200)
    r = client.get("/2/users/me", headers=bearer(acc))
    assert r.status_code == 401 and r.json()["title"] == "Unauthorized"
    fresh = client.post("/2/oauth2/token", data=form).json()
    assert fresh["token_type"] == "bearer" and fresh["expires_in"] == 7200
    assert "offline.access" in fresh["scope"] and fresh["refresh_token"] != acc["refresh_token"]
    assert client.post("/2/oauth2/token", data=form).status_code == 400
    assert client.get("/2/users/me", headers={
        "Authorization": f"Bearer {fresh['access_token']}"}).status_code == 200
    basic = base64.b64encode(f"{app.client.id}:{app.client.secret}".encode()).decode()
    app_token = client.post("/oauth2/token", data={"grant_type": "client_credentials"},
                            headers={"Authorization": f"Basic {basic}"}).json()["access_token"]
    r = client.get(f"/2/users/{acc['id']}", headers={"Authorization": f"Bearer {app_token}"})
    assert r.status_code == 200 and r.headers["x-rate-limit-limit"] == "300"
    assert client.get("/2/users/me", headers={
        "Authorization": f"Bearer {app_token}"}).status_code == 403


def test_youtube_analytics_reports_gains_by_day() -> None:
    _, client, clock, acc = start(YouTubeApp, token_ttl={
        **SimConfig().token_ttl, "youtube": 7 * 86400.0})
    clock.advance(2 * 86400)
    day = datetime.fromtimestamp(T0, UTC).strftime("%Y-%m-%d")
    r = client.get("/v2/reports", headers=bearer(acc), params={
        "ids": "channel==MINE", "startDate": day, "endDate": day,
        "metrics": "views,likes,shares,subscribersGained", "dimensions": "day"})
    body = r.json()
    assert r.status_code == 200 and body["kind"] == "youtubeAnalytics#resultTable"
    assert [h["name"] for h in body["columnHeaders"]] == ["day", "views", "likes", "shares",
                                                          "subscribersGained"]
    assert body["rows"][0][0] == day and all(isinstance(v, int) for v in body["rows"][0][1:])
    assert body["rows"][0][4] > 0
    bad = client.get("/v2/reports", headers=bearer(acc), params={
        "ids": "channel==MINE", "startDate": day, "endDate": day, "metrics": "impressions"})
    assert bad.status_code == 400


def test_facebook_me_accounts_lists_the_page_and_its_instagram_account() -> None:
    from creatorpulse.sources.simulator.facebook import FacebookApp

    app, client, _, acc = start(FacebookApp)
    pages = client.get("/v25.0/me/accounts", params={"access_token": acc["access_token"]}).json()
    assert pages["data"][0]["id"] == acc["id"]
    assert pages["data"][0]["access_token"] == acc["access_token"]
    ig = client.get(f"/{acc['id']}", params={"fields": "instagram_business_account",
                                             "access_token": acc["access_token"]}).json()
    assert ig["instagram_business_account"]["id"] == app.world.ids.account("instagram", 2)


def test_forced_faults_use_each_platforms_bodies() -> None:
    from creatorpulse.sources.simulator.instagram import InstagramApp

    _, client, _, acc = start(XApp)
    client.post("/_sim/errors", json={"count": 1, "throttle": True})
    r = client.get("/2/users/me", headers=bearer(acc))
    assert r.status_code == 429 and r.headers["x-rate-limit-remaining"] == "0"
    client.post("/_sim/errors", json={"count": 1, "status": 503})
    r = client.get("/2/users/me", headers=bearer(acc))
    assert r.status_code == 503 and r.json()["title"] == "Service Unavailable"
    assert client.get("/2/users/me", headers=bearer(acc)).status_code == 200
    assert client.get("/_sim/stats").json()["over_limit"] == 0

    _, client, _, acc = start(InstagramApp)
    for code in (4, 17, 32, 613):
        client.post("/_sim/errors", json={"throttle": True, "code": code})
        r = client.get("/me", params={"access_token": acc["access_token"]})
        assert r.status_code == 400 and r.json()["error"]["code"] == code
        assert '"call_count": 100' in r.headers["x-app-usage"]

    _, client, _, acc = start(YouTubeApp)
    client.post("/_sim/errors", json={"throttle": True, "code": "rateLimitExceeded"})
    r = client.get("/youtube/v3/channels", params={"part": "id", "mine": "true"},
                   headers=bearer(acc))
    assert r.json()["error"]["errors"][0]["reason"] == "rateLimitExceeded"

    _, client, _, acc = start(TikTokApp)
    client.post("/_sim/errors", json={"throttle": True})
    r = client.get("/v2/user/info/", params={"fields": "open_id"}, headers=bearer(acc))
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limit_exceeded"


def test_malformed_numbers_get_the_platforms_parameter_error() -> None:
    _, client, _, acc = start(YouTubeApp)
    r = client.get("/youtube/v3/playlistItems", headers=bearer(acc), params={
        "part": "id", "playlistId": "UU" + acc["id"][2:], "maxResults": "lots"})
    assert r.status_code == 400 and r.json()["error"]["errors"][0]["reason"] == "invalidParameter"
