from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from creatorpulse.observation import ContentKind, Platform
from creatorpulse.sources.base import ApiError, AuthExpired, Content, Response, Retry
from creatorpulse.sources.tiktok import VIDEO_FIELDS, TikTok
from tests.unit.fake_api import NOW, FakeApi, account, metrics, payload

ACCOUNT = account(Platform.TIKTOK, "723f24d7-e717-40f8-a2b6-cb8464cd23b4")
LIST = "/v2/video/list/"


def api_with(videos: str = "videos_page1", user: str = "user_info") -> FakeApi:
    api = FakeApi(TikTok(), "tiktok").on("/v2/user/info/", user)
    api.on(LIST, videos, method="POST", json_body={"max_count": 20})
    api.on(LIST, "videos_page2_empty", method="POST",
           json_body={"max_count": 20, "cursor": 1763799999000})
    api.on(LIST, "videos_page3_last", method="POST",
           json_body={"max_count": 20, "cursor": 1763000000000})
    return api


def test_user_and_videos_map_to_observations() -> None:
    poll = TikTok().fetch_account(api_with(), ACCOUNT, NOW)
    assert metrics(poll) == {"followers": 15234, "following": 312, "account_likes": 90210,
                             "media_count": 87}
    assert metrics(poll, "7380080137682881835") == {"likes": 1200, "comments": 45, "shares": 12,
                                                    "views": 48000}
    first = poll.content[0]
    assert first.kind is ContentKind.VIDEO
    assert first.published_at == datetime.fromtimestamp(1763900000, UTC)


def test_missing_stats_and_views_stay_missing() -> None:
    poll = TikTok().fetch_account(api_with(user="user_info_no_stats"), ACCOUNT, NOW)
    assert metrics(poll) == {}
    assert metrics(poll, "7380080137682881836") == {"likes": 3, "comments": 0, "shares": 0}


def test_video_list_is_a_post_paged_by_cursor_through_an_empty_page() -> None:
    api = api_with()
    poll = TikTok().fetch_account(api, ACCOUNT, NOW)
    posts = [c for c in api.calls if c.method == "POST"]
    assert [c.json.get("cursor") for c in posts] == [None, 1763799999000, 1763000000000]
    assert {c.params["fields"] for c in posts} == {VIDEO_FIELDS}
    assert "7380080137682881837" in {c.id for c in poll.content}


def test_a_bad_video_is_a_dead_letter_and_the_other_maps() -> None:
    poll = TikTok().fetch_account(api_with("videos_bad_item"), ACCOUNT, NOW)
    bad = json.loads(payload("tiktok", "videos_bad_item"))["data"]["videos"][0]
    assert [json.loads(d.payload) for d in poll.dead_letters] == [bad]
    assert "create_time" in poll.dead_letters[0].reason
    assert metrics(poll, "7380080137682881839")["likes"] == 11


def test_has_more_without_a_cursor_is_a_dead_letter_not_a_crash() -> None:
    api = FakeApi(TikTok(), "tiktok").on("/v2/user/info/", "user_info")
    api.on(LIST, method="POST", body={"data": {"videos": [], "has_more": True},
                                      "error": {"code": "ok", "message": "", "log_id": "1"}})
    poll = TikTok().fetch_account(api, ACCOUNT, NOW)
    assert "cursor" in poll.dead_letters[0].reason
    assert metrics(poll)["followers"] == 15234


def test_a_cursor_loop_is_an_api_error() -> None:
    api = FakeApi(TikTok(), "tiktok").on("/v2/user/info/", "user_info")
    api.on(LIST, "videos_loop", method="POST")  # its cursor leads back to itself
    with pytest.raises(ApiError, match="paging loop"):
        TikTok().fetch_account(api, ACCOUNT, NOW)
    assert len(api.calls) == 3


def test_targeted_poll_queries_ids_and_reports_the_absent_as_deleted() -> None:
    api = FakeApi(TikTok(), "tiktok").on("/v2/video/query/", "query", method="POST")
    ids = ["7380080137682881835", "7380080137682881999"]
    poll = TikTok().fetch_content(
        api, ACCOUNT, [Content(id=i, kind=ContentKind.VIDEO, published_at=NOW) for i in ids], NOW)
    assert api.calls[0].json == {"filters": {"video_ids": ids}}
    assert metrics(poll, ids[0]) == {"likes": 1250, "comments": 47, "shares": 13, "views": 50100}
    assert poll.deleted == [ids[1]]


def judge(name: str, status: int, headers: dict[str, str] | None = None) -> None:
    TikTok(clock=lambda: NOW).check(Response(status, headers or {}, payload("tiktok", name)))


def test_check_reads_the_error_envelope() -> None:
    assert TikTok().check(Response(200, {}, payload("tiktok", "user_info"))) is None
    with pytest.raises(Retry) as caught:
        judge("error_rate", 429, {"retry-after": "60"})
    assert caught.value.after == timedelta(seconds=60)
    with pytest.raises(Retry) as caught:
        judge("error_rate", 429)
    assert caught.value.after is None  # TikTok sends no rate-limit headers: backoff decides
    with pytest.raises(Retry):
        judge("error_internal", 500)
    with pytest.raises(AuthExpired):
        judge("error_token", 401)


def test_errors_inside_a_200_are_errors_and_a_missing_scope_is_not_a_token_problem() -> None:
    with pytest.raises(Retry):
        judge("error_rate", 200)
    with pytest.raises(ApiError) as caught:
        judge("error_scope", 401)
    assert caught.value.code == "scope_not_authorized"
    with pytest.raises(ApiError, match="max_count must be between 1 and 20"):
        judge("error_params", 400)


def test_paging_stops_at_the_cutoff_and_older_videos_produce_nothing() -> None:
    api = api_with()
    since = datetime.fromtimestamp(1763850000, UTC)
    poll = TikTok().fetch_account(api, ACCOUNT, NOW, since=since)
    assert [c.url for c in api.calls] == ["/v2/user/info/", LIST]  # no further page
    assert [c.id for c in poll.content] == ["7380080137682881835"]
    assert metrics(poll, "7380080137682881836") == {}
    assert "followers" in metrics(poll)
