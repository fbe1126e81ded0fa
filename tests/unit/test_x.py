from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from creatorpulse.observation import ContentKind, Platform
from creatorpulse.sources.base import ApiError, AuthExpired, Content, Gone, Response, Retry
from creatorpulse.sources.x import X
from tests.unit.fake_api import NOW, FakeApi, account, metrics, payload

USER = "2244994945"
ACCOUNT = account(Platform.X, USER)
TIMELINE = f"/2/users/{USER}/tweets"
TOKEN1 = "7140dibdnow9c7btw421dyz6jism75z99gyxd8egarsc4"
TOKEN2 = "7140dibdnow9c7btw421dyz6jism75z99gyxd8egarsc5"
RESET = int((NOW + timedelta(minutes=7)).timestamp())


def api_with(user: str = "user", first: str = "tweets_page1") -> FakeApi:
    """The user's answers; the timeline's first page with the user expanded in it (as
    ``expansions=author_id`` answers) when the user exists."""
    api = FakeApi(X(clock=lambda: NOW), "x").on(f"/2/users/{USER}", user)
    page = json.loads(payload("x", first))
    found = json.loads(payload("x", user)).get("data")
    if found:
        page["includes"] = {"users": [found]}
    api.on(TIMELINE, body=page)
    api.on(TIMELINE, "tweets_page2_empty", params={"pagination_token": TOKEN1})
    api.on(TIMELINE, "tweets_page3_last", params={"pagination_token": TOKEN2})
    return api


def test_user_and_tweets_map_to_observations() -> None:
    poll = X().fetch_account(api_with(), ACCOUNT, NOW)
    assert metrics(poll) == {"followers": 513958, "following": 2039, "media_count": 3635,
                             "listed": 1672, "likes_given": 2145}
    assert metrics(poll, "1524796546306478083") == {
        "likes": 20, "comments": 1, "shares": 4, "quotes": 0, "saves": 2, "views": 3100}
    assert poll.content[0].kind is ContentKind.POST
    assert poll.content[0].published_at == datetime(2026, 11, 24, 17, 0, tzinfo=UTC)


def test_metrics_the_platform_did_not_send_stay_missing() -> None:
    poll = X().fetch_account(api_with("user_old_metrics"), ACCOUNT, NOW)
    assert "likes_given" not in metrics(poll)
    assert metrics(poll, "1524796546306478084") == {"likes": 7, "comments": 0, "shares": 1,
                                                    "quotes": 1}


def test_timeline_is_paged_by_next_token_through_an_empty_page() -> None:
    api = api_with()
    poll = X().fetch_account(api, ACCOUNT, NOW)
    assert api.urls() == [TIMELINE] * 3  # the user came expanded in the first page
    assert [c.params.get("pagination_token") for c in api.calls] == [None, TOKEN1, TOKEN2]
    assert api.calls[0].params["exclude"] == "retweets"
    assert api.calls[0].params["max_results"] == "100"
    assert api.calls[0].params["expansions"] == "author_id"
    assert api.calls[0].params["user.fields"] == "public_metrics"
    assert "1524796546306478085" in {c.id for c in poll.content}


def test_a_user_without_tweets_is_asked_for_since_there_is_no_author_to_expand() -> None:
    api = FakeApi(X(), "x").on(f"/2/users/{USER}", "user")
    api.on(TIMELINE, body={"meta": {"result_count": 0}})
    poll = X().fetch_account(api, ACCOUNT, NOW)
    assert api.urls() == [TIMELINE, f"/2/users/{USER}"]
    assert metrics(poll)["followers"] == 513958 and not poll.content and not poll.dead_letters


def test_a_user_answer_without_data_is_a_dead_letter_with_its_bytes() -> None:
    api = FakeApi(X(), "x").on(f"/2/users/{USER}", body={"weird": True})
    api.on(TIMELINE, body={"meta": {"result_count": 0}})
    poll = X().fetch_account(api, ACCOUNT, NOW)
    assert [json.loads(d.payload) for d in poll.dead_letters] == [{"weird": True}]
    assert "data: expected a JSON object" in poll.dead_letters[0].reason
    assert not poll.observations


def test_a_user_the_timeline_reports_not_found_is_gone() -> None:
    api = FakeApi(X(), "x").on(TIMELINE, "user_not_found")
    with pytest.raises(Gone):
        X().fetch_account(api, ACCOUNT, NOW)
    assert api.urls() == [TIMELINE]


def test_a_bad_tweet_is_a_dead_letter_and_the_other_maps() -> None:
    poll = X().fetch_account(api_with(first="tweets_bad_item"), ACCOUNT, NOW)
    bad = json.loads(payload("x", "tweets_bad_item"))["data"][0]
    assert [json.loads(d.payload) for d in poll.dead_letters] == [bad]
    assert "public_metrics.like_count" in poll.dead_letters[0].reason
    assert metrics(poll, "1524796546306478087")["views"] == 80


def test_a_cursor_loop_is_an_api_error() -> None:
    api = FakeApi(X(), "x").on(f"/2/users/{USER}", "user").on(TIMELINE, "tweets_loop")
    with pytest.raises(ApiError, match="paging loop"):
        X().fetch_account(api, ACCOUNT, NOW)


def test_a_user_that_no_longer_exists_is_gone() -> None:
    with pytest.raises(Gone):
        X().fetch_account(api_with("user_not_found"), ACCOUNT, NOW)


def test_targeted_poll_reports_not_found_tweets_as_deleted_but_not_protected_ones() -> None:
    api = FakeApi(X(), "x").on("/2/tweets", "lookup")
    ids = ["1524796546306478083", "1524796546306478099", "1524796546306478098",
           "1524796546306478097"]
    poll = X().fetch_content(
        api, ACCOUNT, [Content(id=i, kind=ContentKind.POST, published_at=NOW) for i in ids], NOW)
    assert api.calls[0].params["ids"] == ",".join(ids)
    assert metrics(poll, ids[0])["likes"] == 25
    # not found, and left out without any error; not the one we may not see
    assert poll.deleted == [ids[1], ids[3]]


def judge(name: str | None, status: int, **headers: str) -> timedelta | None:
    body = payload("x", name) if name else b'{"data":{}}'
    shown = {k.replace("_", "-"): v for k, v in headers.items()}
    return X(clock=lambda: NOW).check(Response(status, shown, body))


def test_success_pauses_only_when_nothing_remains_until_the_reset() -> None:
    limits = {"x_rate_limit_limit": "900", "x_rate_limit_reset": str(RESET)}
    assert judge(None, 200, x_rate_limit_remaining="12", **limits) is None
    assert judge(None, 200, x_rate_limit_remaining="0", **limits) == timedelta(minutes=7)


def test_too_many_requests_waits_until_the_reset() -> None:
    with pytest.raises(Retry) as caught:
        judge("error_429", 429, x_rate_limit_remaining="0", x_rate_limit_reset=str(RESET))
    assert caught.value.after == timedelta(minutes=7)
    with pytest.raises(Retry) as caught:
        judge("error_429", 429, retry_after="20")
    assert caught.value.after == timedelta(seconds=20)


def test_the_monthly_usage_cap_waits_for_the_next_month() -> None:
    with pytest.raises(Retry) as caught:
        judge("error_usage_capped", 429)
    assert caught.value.after == datetime(2026, 12, 1, tzinfo=UTC) - NOW


def test_auth_and_request_errors() -> None:
    with pytest.raises(AuthExpired):
        judge("error_401", 401)
    with pytest.raises(ApiError) as caught:
        judge("error_invalid_request", 400)
    assert caught.value.code == "invalid-request"
    assert "not between 5 and 100" in str(caught.value)
    with pytest.raises(ApiError, match="Client Forbidden"):
        judge("error_forbidden", 403)
    with pytest.raises(Retry):
        judge(None, 503)


def test_paging_stops_at_the_cutoff_and_older_tweets_produce_nothing() -> None:
    api = api_with()
    since = datetime(2026, 11, 24, tzinfo=UTC)
    poll = X().fetch_account(api, ACCOUNT, NOW, since=since)
    assert [c.url for c in api.calls] == [TIMELINE]  # no further page
    assert [c.id for c in poll.content] == ["1524796546306478083"]
    assert metrics(poll, "1524796546306478084") == {}
    assert metrics(poll)["followers"] == 513958  # the account's own counters still count
