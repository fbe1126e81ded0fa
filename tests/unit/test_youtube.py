from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from creatorpulse.observation import ContentKind, Platform, Provenance
from creatorpulse.sources.base import ApiError, AuthExpired, Content, Gone, Response, Retry
from creatorpulse.sources.youtube import YouTube, quota_reset_wait
from tests.unit.fake_api import NOW, FakeApi, account, metrics, only, payload

CHANNEL = "UC_x5XG1OV2P6uZZ5FSM9Ttw"
UPLOADS = "UU_x5XG1OV2P6uZZ5FSM9Ttw"
ACCOUNT = account(Platform.YOUTUBE, CHANNEL)
ALL_IDS = "dQw4w9WgXcQ,j-65rcdfbaA,X99xRghBa0k"


def api_with(channel: str = "channel", videos: str = "videos") -> FakeApi:
    api = FakeApi(YouTube(clock=lambda: NOW), "youtube")
    api.on("/youtube/v3/channels", channel, params={"id": CHANNEL})
    api.on("/youtube/v3/playlistItems", "uploads_page1", params={"playlistId": UPLOADS})
    for name, token in (("uploads_page2_empty", "CAIQAA"), ("uploads_page3_last", "CAQQAA")):
        api.on("/youtube/v3/playlistItems", name,
               params={"playlistId": UPLOADS, "pageToken": token})
    api.on("/youtube/v3/videos", videos, params={"id": ALL_IDS})
    return api


def test_channel_and_videos_map_with_rounded_subscribers() -> None:
    poll = YouTube().fetch_account(api_with(), ACCOUNT, NOW)

    assert metrics(poll) == {"followers": 2340000, "account_views": 123456, "media_count": 810}
    assert only(poll, "followers").provenance is Provenance.ROUNDED
    assert only(poll, "account_views").provenance is Provenance.MEASURED
    assert metrics(poll, "dQw4w9WgXcQ") == {"views": 1500, "likes": 120, "comments": 14}
    assert {c.id: c.kind for c in poll.content} == {"dQw4w9WgXcQ": ContentKind.VIDEO,
                                                    "X99xRghBa0k": ContentKind.VIDEO}
    published = {c.id: c.published_at for c in poll.content}
    assert published["X99xRghBa0k"] == datetime(2026, 10, 1, 8, 0, 0, 123000, tzinfo=UTC)


def test_hidden_or_disabled_counts_stay_missing() -> None:
    poll = YouTube().fetch_account(api_with("channel_hidden_subscribers"), ACCOUNT, NOW)
    assert metrics(poll) == {"account_views": 123456, "media_count": 810}  # no followers
    assert metrics(poll, "X99xRghBa0k") == {"views": 98000}  # likes hidden, comments off


def test_uploads_are_paged_to_the_end_at_one_quota_unit_a_call() -> None:
    api = api_with()
    poll = YouTube().fetch_account(api, ACCOUNT, NOW)

    assert [(c.url, c.params.get("pageToken")) for c in api.calls] == [
        ("/youtube/v3/channels", None),
        ("/youtube/v3/playlistItems", None),
        ("/youtube/v3/playlistItems", "CAIQAA"),  # an empty page that still has a next token
        ("/youtube/v3/playlistItems", "CAQQAA"),
        ("/youtube/v3/videos", None),
    ]
    assert {c.cost for c in api.calls} == {1}
    assert api.calls[4].params["part"] == "statistics,snippet"
    assert poll.deleted == ["j-65rcdfbaA"]  # listed, but absent from videos.list


def test_a_bad_video_is_a_dead_letter_and_the_other_maps() -> None:
    poll = YouTube().fetch_account(api_with(videos="videos_bad_item"), ACCOUNT, NOW)
    bad = json.loads(payload("youtube", "videos_bad_item"))["items"][0]
    assert [json.loads(d.payload) for d in poll.dead_letters] == [bad]
    assert "viewCount" in poll.dead_letters[0].reason
    assert metrics(poll, "X99xRghBa0k") == {"views": 98000, "likes": 700, "comments": 31}
    assert poll.deleted == ["j-65rcdfbaA"]  # the bad one is there, only unmappable


def test_a_cursor_loop_is_an_api_error() -> None:
    api = FakeApi(YouTube(), "youtube").on("/youtube/v3/channels", "channel")
    api.on("/youtube/v3/playlistItems", "uploads_loop")
    with pytest.raises(ApiError, match="paging loop"):
        YouTube().fetch_account(api, ACCOUNT, NOW)


def test_a_channel_that_no_longer_exists_is_gone() -> None:
    api = FakeApi(YouTube(), "youtube").on("/youtube/v3/channels", "channel_none")
    with pytest.raises(Gone):
        YouTube().fetch_account(api, ACCOUNT, NOW)


def test_a_channel_without_an_uploads_playlist_has_no_content() -> None:
    api = FakeApi(YouTube(), "youtube").on("/youtube/v3/channels", "channel")
    api.on("/youtube/v3/playlistItems", "error_playlist_not_found", status=404)
    poll = YouTube().fetch_account(api, ACCOUNT, NOW)
    assert metrics(poll)["media_count"] == 810 and not poll.content


def test_targeted_poll_batches_ids_and_reports_deleted_videos() -> None:
    api = FakeApi(YouTube(), "youtube").on("/youtube/v3/videos", "videos")
    content = [Content(id=i, kind=ContentKind.VIDEO, published_at=NOW) for i in ALL_IDS.split(",")]
    poll = YouTube().fetch_content(api, ACCOUNT, content, NOW)
    assert poll.deleted == ["j-65rcdfbaA"]
    assert metrics(poll, "dQw4w9WgXcQ")["likes"] == 120

    many = [Content(id=f"vid{n:08d}", kind=ContentKind.VIDEO, published_at=NOW)
            for n in range(120)]
    api = FakeApi(YouTube(), "youtube").on("/youtube/v3/videos", "videos")
    YouTube().fetch_content(api, ACCOUNT, many, NOW)
    assert [len(c.params["id"].split(",")) for c in api.calls] == [50, 50, 20]


def check(name: str, status: int, headers: dict[str, str] | None = None,
          now: datetime = NOW) -> Retry:
    response = Response(status, headers or {}, payload("youtube", name))
    with pytest.raises(Retry) as caught:
        YouTube(clock=lambda: now).check(response)
    return caught.value


def test_quota_exceeded_waits_until_midnight_pacific() -> None:
    # 12:00 UTC on 25 November is 04:00 PST: 20 hours to go
    assert check("error_quota", 403).after == timedelta(hours=20)


def test_quota_reset_follows_daylight_saving_time() -> None:
    summer = datetime(2026, 7, 1, 6, 30, tzinfo=UTC)  # 23:30 PDT
    assert quota_reset_wait(summer) == timedelta(minutes=30)
    spring_forward = datetime(2026, 3, 8, 8, 0, tzinfo=UTC)  # 00:00 PST, a 23-hour day
    assert quota_reset_wait(spring_forward) == timedelta(hours=23)


def test_rate_limits_use_retry_after_or_the_backoff() -> None:
    assert check("error_rate", 403).after is None
    assert check("error_429", 429, {"retry-after": "30"}).after == timedelta(seconds=30)


def test_auth_and_other_errors() -> None:
    with pytest.raises(AuthExpired):
        YouTube().check(Response(401, {}, payload("youtube", "error_auth")))
    with pytest.raises(ApiError) as caught:
        YouTube().check(Response(400, {}, payload("youtube", "error_bad_token")))
    assert caught.value.code == "invalidPageToken"
    assert "invalid page token" in str(caught.value)
    assert "<a" not in check("error_quota", 403).reason  # HTML tags of the message dropped
    assert YouTube().check(Response(200, {}, b"{}")) is None
    with pytest.raises(Retry):
        YouTube().check(Response(503, {}, b"Service Unavailable"))


def test_paging_stops_at_the_cutoff_and_older_videos_produce_nothing() -> None:
    api = api_with()
    api.on("/youtube/v3/videos", "videos", params={"id": "dQw4w9WgXcQ"})
    since = datetime(2026, 11, 15, tzinfo=UTC)
    poll = YouTube().fetch_account(api, ACCOUNT, NOW, since=since)
    listed = [c for c in api.calls if c.url == "/youtube/v3/playlistItems"]
    assert len(listed) == 1  # no further page
    assert [c.params["id"] for c in api.calls if c.url == "/youtube/v3/videos"] == ["dQw4w9WgXcQ"]
    # the answer also carries an old video: it is past polling, so it yields nothing
    assert [c.id for c in poll.content] == ["dQw4w9WgXcQ"]
    assert metrics(poll, "X99xRghBa0k") == {}
    assert "followers" in metrics(poll)
