from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from creatorpulse.observation import ContentKind, Platform, Provenance
from creatorpulse.sources.base import ApiError, AuthExpired, Content
from creatorpulse.sources.instagram import Instagram
from tests.unit.fake_api import NOW, FakeApi, account, metrics, payload

IG = "17841405309211844"
ACCOUNT = account(Platform.INSTAGRAM, IG)
PAGE2 = ("https://graph.facebook.com/v25.0/17841405309211844/media?fields=id%2Clike_count"
         "&limit=50&access_token=IGQVJ-secret-token&after=QVFIUkpsW1")
PAGE3 = PAGE2.replace("QVFIUkpsW1", "QVFIUkpsW2")


def api_with_pages() -> FakeApi:
    api = FakeApi(Instagram(clock=lambda: NOW), "instagram")
    api.on_expanded(f"/v25.0/{IG}", "account", "media", "media_page1")
    api.on(PAGE2, "media_page2_empty")
    api.on(PAGE3, "media_page3_last")
    return api


def test_account_and_media_map_to_observations_named_apart() -> None:
    api = api_with_pages()
    poll = Instagram(clock=lambda: NOW).fetch_account(api, ACCOUNT, NOW)

    assert metrics(poll) == {"followers": 1230, "following": 15, "media_count": 260}
    assert metrics(poll, "17895695668004550") == {"likes": 12, "comments": 2}
    account_obs = [o for o in poll.observations if o.content_id is None]
    assert {o.content_kind for o in account_obs} == {ContentKind.ACCOUNT}
    assert all(o.observed_at == NOW and o.provenance is Provenance.MEASURED
               and o.account_id == "acc-instagram" and o.influencer_id == "inf-1"
               for o in poll.observations)
    kinds = {c.id: c.kind for c in poll.content}
    assert kinds == {"17895695668004550": ContentKind.REEL, "17895695668004551": ContentKind.POST,
                     "17895695668004552": ContentKind.POST}
    assert poll.content[0].published_at.isoformat() == "2026-11-20T19:20:02+00:00"
    assert not poll.dead_letters and not poll.deleted


def test_pagination_follows_next_links_as_given_through_an_empty_page_to_the_end() -> None:
    api = api_with_pages()
    poll = Instagram().fetch_account(api, ACCOUNT, NOW)

    assert api.urls() == [f"/v25.0/{IG}", PAGE2, PAGE3]  # the first page came with the account
    assert api.calls[1].params == {}  # the next link already carries every parameter
    fields = api.calls[0].params["fields"]
    assert fields.startswith("id,username,followers_count,")
    assert fields.endswith(",media.limit(50){id,media_type,media_product_type,timestamp,"
                           "like_count,comments_count}")
    assert "17895695668004552" in {c.id for c in poll.content}  # the page after the empty one


def test_missing_counts_are_missing_not_zero() -> None:
    api = FakeApi(Instagram(), "instagram").on_expanded(
        f"/v25.0/{IG}", "account_no_counts", "media", "media_page3_last")
    poll = Instagram().fetch_account(api, ACCOUNT, NOW)
    assert metrics(poll) == {"following": 15}

    poll = Instagram().fetch_account(api_with_pages(), ACCOUNT, NOW)
    # hidden likes: like_count absent, comments_count 0 is a real zero
    assert metrics(poll, "17895695668004551") == {"comments": 0}


def test_a_bad_item_is_a_dead_letter_with_its_bytes_and_the_rest_still_maps() -> None:
    api = FakeApi(Instagram(), "instagram").on_expanded(
        f"/v25.0/{IG}", "account", "media", "media_bad_item")
    poll = Instagram().fetch_account(api, ACCOUNT, NOW)

    assert len(poll.dead_letters) == 1
    letter = poll.dead_letters[0]
    original = json.loads(payload("instagram", "media_bad_item"))["data"][0]
    assert json.loads(letter.payload) == original
    assert "17895695668004560" in letter.reason and "like_count" in letter.reason
    assert metrics(poll, "17895695668004561") == {"likes": 9, "comments": 1}
    assert "17895695668004560" not in {c.id for c in poll.content}
    assert metrics(poll)["followers"] == 1230


def test_a_malformed_page_is_a_dead_letter_and_polling_goes_on() -> None:
    api = FakeApi(Instagram(), "instagram").on_expanded(
        f"/v25.0/{IG}", "account", "media", page_body={"data": {"id": "1"}})
    poll = Instagram().fetch_account(api, ACCOUNT, NOW)
    assert [json.loads(d.payload) for d in poll.dead_letters] == [{"data": {"id": "1"}}]
    assert "data: expected a JSON array" in poll.dead_letters[0].reason
    assert metrics(poll)["followers"] == 1230


def test_a_dead_letter_never_carries_the_token_of_a_paging_link() -> None:
    page = json.loads(payload("instagram", "media_page1"))
    page["paging"]["previous"], page["paging"]["next"] = page["paging"]["next"], 42
    api = FakeApi(Instagram(), "instagram").on_expanded(
        f"/v25.0/{IG}", "account", "media", page_body=page)
    poll = Instagram().fetch_account(api, ACCOUNT, NOW)
    assert len(poll.dead_letters) == 1
    assert b"IGQVJ-secret-token" not in poll.dead_letters[0].payload
    assert b"access_token=***" in poll.dead_letters[0].payload
    assert "paging.next: expected a URL, got 42" in poll.dead_letters[0].reason


def test_a_cursor_loop_is_an_api_error() -> None:
    api = FakeApi(Instagram(), "instagram").on_expanded(
        f"/v25.0/{IG}", "account", "media", "media_loop")
    api.on("https://graph.facebook.com/v25.0/17841405309211844/media?after=QVFIUkpsW1",
           "media_loop")
    with pytest.raises(ApiError, match="same next-page cursor twice"):
        Instagram().fetch_account(api, ACCOUNT, NOW)


def content(media_id: str, kind: ContentKind = ContentKind.REEL) -> Content:
    return Content(id=media_id, kind=kind, published_at=NOW)


def test_targeted_poll_reads_fields_and_insights() -> None:
    api = FakeApi(Instagram(), "instagram")
    api.on("/v25.0/17895695668004550", "media_item")
    api.on("/v25.0/17895695668004550/insights", "media_insights")
    poll = Instagram().fetch_content(api, ACCOUNT, [content("17895695668004550")], NOW)

    assert metrics(poll, "17895695668004550") == {
        "likes": 15, "comments": 3, "views": 5100, "reach": 2006, "saves": 7, "shares": 4}
    assert api.calls[1].params == {"metric": "views,reach,saved,shares", "period": "lifetime"}
    assert [c.id for c in poll.content] == ["17895695668004550"]


def test_stories_ask_only_for_their_insights_and_absent_ones_stay_missing() -> None:
    api = FakeApi(Instagram(), "instagram")
    api.on("/v25.0/17895695668004570", "media_story")
    api.on("/v25.0/17895695668004570/insights", "story_insights_partial")
    poll = Instagram().fetch_content(
        api, ACCOUNT, [content("17895695668004570", ContentKind.STORY)], NOW)
    assert api.calls[1].params["metric"] == "views,reach"
    assert metrics(poll, "17895695668004570") == {"views": 320}


@pytest.mark.parametrize("answer", ["insights_empty", "error_not_enough_viewers"])
def test_no_insights_means_missing_metrics_not_a_failure(answer: str) -> None:
    api = FakeApi(Instagram(), "instagram")
    api.on("/v25.0/17895695668004550", "media_item")
    api.on("/v25.0/17895695668004550/insights", answer,
           status=200 if answer == "insights_empty" else 400)
    poll = Instagram().fetch_content(api, ACCOUNT, [content("17895695668004550")], NOW)
    assert metrics(poll, "17895695668004550") == {"likes": 15, "comments": 3}


def test_deleted_media_is_reported_and_the_others_still_poll() -> None:
    api = FakeApi(Instagram(), "instagram")
    api.on("/v25.0/17895695668004551", "error_deleted", status=400)
    api.on("/v25.0/17895695668004550", "media_item")
    api.on("/v25.0/17895695668004550/insights", "insights_empty")
    poll = Instagram().fetch_content(
        api, ACCOUNT, [content("17895695668004551"), content("17895695668004550")], NOW)
    assert poll.deleted == ["17895695668004551"]
    assert metrics(poll, "17895695668004550") == {"likes": 15, "comments": 3}


def test_other_insights_errors_are_not_hidden() -> None:
    api = FakeApi(Instagram(), "instagram")
    api.on("/v25.0/17895695668004550", "media_item")
    api.on("/v25.0/17895695668004550/insights", "error_invalid_metric", status=400)
    with pytest.raises(ApiError, match="metric"):
        Instagram().fetch_content(api, ACCOUNT, [content("17895695668004550")], NOW)


def test_an_expired_token_on_the_account_is_auth_expired() -> None:
    api = FakeApi(Instagram(), "instagram").on(f"/v25.0/{IG}", "error_token", status=400)
    with pytest.raises(AuthExpired) as caught:
        Instagram().fetch_account(api, ACCOUNT, NOW)
    assert "secret-token" not in str(caught.value)


def test_paging_stops_at_the_cutoff_and_older_media_produce_nothing() -> None:
    api = api_with_pages()
    since = datetime(2026, 11, 19, 12, tzinfo=UTC)
    poll = Instagram().fetch_account(api, ACCOUNT, NOW, since=since)
    assert [c.url for c in api.calls] == [f"/v25.0/{IG}"]  # no further page
    assert [c.id for c in poll.content] == ["17895695668004550"]
    assert metrics(poll, "17895695668004551") == {}
    assert "followers" in metrics(poll)


def test_an_account_without_media_is_one_request_and_no_dead_letter() -> None:
    """The Graph API leaves an empty edge out of the expanded answer."""
    api = FakeApi(Instagram(), "instagram").on(f"/v25.0/{IG}", "account")
    poll = Instagram().fetch_account(api, ACCOUNT, NOW)
    assert api.urls() == [f"/v25.0/{IG}"]
    assert metrics(poll)["followers"] == 1230
    assert not poll.content and not poll.dead_letters
