from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from creatorpulse.observation import ContentKind, Platform
from creatorpulse.sources.base import ApiError, Content, Gone, Response, Retry
from creatorpulse.sources.facebook import Facebook
from tests.unit.fake_api import NOW, FakeApi, account, metrics, payload

PAGE = "104817474867218"
ACCOUNT = account(Platform.FACEBOOK, PAGE)
NEXT = ("https://graph.facebook.com/v25.0/104817474867218/posts?access_token=EAAB-secret"
        "&limit=50&after=QVFIUmFj")
LAST = NEXT.replace("QVFIUmFj", "QVFIUmFk")
P1, P2, P3 = (f"{PAGE}_12210123456789{n}" for n in range(3))


def api_with_pages() -> FakeApi:
    api = FakeApi(Facebook(), "facebook").on_expanded(f"/v25.0/{PAGE}", "page", "posts",
                                                      "posts_page1")
    api.on(NEXT, "posts_page2_empty").on(LAST, "posts_page3_last")
    return api


def test_page_and_posts_map_to_observations() -> None:
    api = api_with_pages()
    poll = Facebook().fetch_account(api, ACCOUNT, NOW)

    assert metrics(poll) == {"followers": 5210, "page_likes": 4980}
    assert metrics(poll, P1) == {"likes": 41, "comments": 7, "shares": 3}
    assert metrics(poll, P3) == {"likes": 12, "comments": 0, "shares": 1}
    assert {c.id for c in poll.content} == {P1, P2, P3}
    assert {c.kind for c in poll.content} == {ContentKind.POST}
    assert api.calls[0].params["fields"] == (
        "id,name,followers_count,fan_count,posts.limit(50){id,created_time,shares,"
        "reactions.summary(total_count),comments.summary(total_count)}")


def test_pagination_goes_through_an_empty_page_to_the_end() -> None:
    api = api_with_pages()
    Facebook().fetch_account(api, ACCOUNT, NOW)
    assert api.urls() == [f"/v25.0/{PAGE}", NEXT, LAST]


def test_absent_shares_on_a_post_are_zero() -> None:
    """Graph leaves ``shares`` out of a post nobody shared, although the field was asked for."""
    poll = Facebook().fetch_account(api_with_pages(), ACCOUNT, NOW)
    assert metrics(poll, P2) == {"likes": 0, "comments": 2, "shares": 0}


def test_absent_shares_are_zero_in_a_targeted_poll_too() -> None:
    api = FakeApi(Facebook(), "facebook").on(f"/v25.0/{P2}", "post_unshared")
    api.on(f"/v25.0/{P2}/insights", "post_insights")
    poll = Facebook().fetch_content(api, ACCOUNT, [post(P2)], NOW)
    assert metrics(poll, P2)["shares"] == 0


def test_a_bad_post_is_a_dead_letter_and_the_others_map() -> None:
    api = FakeApi(Facebook(), "facebook").on_expanded(f"/v25.0/{PAGE}", "page", "posts",
                                                      "posts_bad_item")
    poll = Facebook().fetch_account(api, ACCOUNT, NOW)

    bad = json.loads(payload("facebook", "posts_bad_item"))["data"][1]
    assert [json.loads(d.payload) for d in poll.dead_letters] == [bad]
    assert "shares" in poll.dead_letters[0].reason
    assert metrics(poll, f"{PAGE}_122101234567893") == {"likes": 41, "comments": 7, "shares": 3}
    assert metrics(poll, f"{PAGE}_122101234567894") == {}


def test_a_cursor_loop_is_an_api_error() -> None:
    api = FakeApi(Facebook(), "facebook").on_expanded(f"/v25.0/{PAGE}", "page", "posts",
                                                      "posts_loop")
    api.on("https://graph.facebook.com/v25.0/104817474867218/posts?after=QVFIUmFj", "posts_loop")
    with pytest.raises(ApiError, match="paging loop"):
        Facebook().fetch_account(api, ACCOUNT, NOW)


def post(post_id: str) -> Content:
    return Content(id=post_id, kind=ContentKind.POST, published_at=NOW)


def test_targeted_poll_adds_views_and_reach_from_insights() -> None:
    api = FakeApi(Facebook(), "facebook").on(f"/v25.0/{P1}", "post")
    api.on(f"/v25.0/{P1}/insights", "post_insights")
    poll = Facebook().fetch_content(api, ACCOUNT, [post(P1)], NOW)
    assert metrics(poll, P1) == {"likes": 44, "comments": 8, "shares": 4, "views": 1830,
                                 "reach": 1290}
    assert api.calls[1].params["metric"] == "post_media_view,post_total_media_view_unique"


def test_unmappable_insights_are_a_dead_letter_while_the_post_counts() -> None:
    api = FakeApi(Facebook(), "facebook").on(f"/v25.0/{P1}", "post")
    api.on(f"/v25.0/{P1}/insights", "post_insights_bad")
    poll = Facebook().fetch_content(api, ACCOUNT, [post(P1)], NOW)
    assert metrics(poll, P1) == {"likes": 44, "comments": 8, "shares": 4}
    assert json.loads(poll.dead_letters[0].payload) == json.loads(
        payload("facebook", "post_insights_bad"))
    assert "post_media_view" in poll.dead_letters[0].reason


def test_a_deleted_post_stops_being_polled() -> None:
    gone = f"{PAGE}_122101234567899"
    api = FakeApi(Facebook(), "facebook").on(f"/v25.0/{gone}", "error_deleted", status=400)
    api.on(f"/v25.0/{P1}", "post").on(f"/v25.0/{P1}/insights", "post_insights")
    poll = Facebook().fetch_content(api, ACCOUNT, [post(gone), post(P1)], NOW)
    assert poll.deleted == [gone]
    assert metrics(poll, P1)["likes"] == 44


def test_a_deleted_page_is_gone() -> None:
    api = FakeApi(Facebook(), "facebook").on(f"/v25.0/{PAGE}", "error_deleted", status=400)
    with pytest.raises(Gone):
        Facebook().fetch_account(api, ACCOUNT, NOW)


def test_page_limit_throttle_waits_for_the_page_usage_estimate() -> None:
    usage = json.dumps({PAGE: [{"type": "pages", "call_count": 100, "total_cputime": 20,
                                "total_time": 30, "estimated_time_to_regain_access": 3}]})
    response = Response(400, {"x-business-use-case-usage": usage},
                        payload("facebook", "error_page_limit"))
    with pytest.raises(Retry) as caught:
        Facebook(clock=lambda: NOW).check(response)
    assert caught.value.after == timedelta(minutes=3)


def test_paging_stops_at_the_cutoff_and_older_posts_produce_nothing() -> None:
    api = api_with_pages()
    since = datetime(2026, 11, 19, tzinfo=UTC)
    poll = Facebook().fetch_account(api, ACCOUNT, NOW, since=since)
    assert [c.url for c in api.calls] == [f"/v25.0/{PAGE}"]  # no further page
    assert [c.id for c in poll.content] == ["104817474867218_122101234567890"]
    assert metrics(poll, "104817474867218_122101234567891") == {}
    assert "followers" in metrics(poll)
