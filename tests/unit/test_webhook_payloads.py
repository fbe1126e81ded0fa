"""Each platform's payloads read into poll hints and content events; unreadable ones refused."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime

import pytest

from creatorpulse.observation import Platform
from creatorpulse.sources.webhooks import meta, tiktok, x, youtube
from creatorpulse.sources.webhooks.mapping import Unmappable

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def dumps(data: object) -> bytes:
    return json.dumps(data).encode()


# --- Meta --------------------------------------------------------------------------------------

IG_COMMENT = dumps({"object": "instagram", "entry": [{"id": "17841405309211844", "time": 1755779280,
    "changes": [{"field": "comments", "value": {"id": "17919697626119712", "text": "nice!",
        "from": {"id": "2105722729836161", "username": "fan1"},
        "media": {"id": "18172143295349192", "media_product_type": "FEED"}}}]}]})


def test_instagram_comment_is_a_hint_and_its_text_goes_to_content() -> None:
    delivery = meta.read(IG_COMMENT, NOW)
    [hint] = delivery.hints
    assert (hint.platform, hint.external_account_id, hint.content_id, hint.reason) == (
        Platform.INSTAGRAM, "17841405309211844", "18172143295349192", "comments")
    assert hint.delivery_id == delivery.delivery_id and hint.received_at == NOW
    [comment] = delivery.content
    assert (comment.kind, comment.content_id, comment.text, comment.author) == (
        "comment", "18172143295349192", "nice!", "fan1")
    assert comment.occurred_at == datetime.fromtimestamp(1755779280, UTC)


def test_meta_delivery_id_is_stable_for_the_same_bytes_and_differs_otherwise() -> None:
    assert meta.read(IG_COMMENT, NOW).delivery_id == meta.read(IG_COMMENT, NOW).delivery_id
    other = IG_COMMENT.replace(b"nice!", b"nice?")
    assert meta.read(other, NOW).delivery_id != meta.read(IG_COMMENT, NOW).delivery_id


def test_a_batch_of_changes_gives_one_hint_per_account_content_and_field() -> None:
    change = {"field": "comments", "value": {"text": "x", "media": {"id": "m1"}}}
    body = dumps({"object": "instagram", "entry": [
        {"id": "a1", "time": 1, "changes": [change, change, {"field": "mentions",
                                                              "value": {"media_id": "m2"}}]},
        {"id": "a2", "time": 1, "changes": [change]}]})
    delivery = meta.read(body, NOW)
    assert sorted((h.external_account_id, h.content_id, h.reason) for h in delivery.hints) == [
        ("a1", "m1", "comments"), ("a1", "m2", "mentions"), ("a2", "m1", "comments")]
    assert len(delivery.content) == 3  # every comment's text, even when hints collapse


def test_facebook_feed_changes() -> None:
    def feed(item: str, verb: str, **extra: object) -> dict[str, object]:
        return {"field": "feed", "value": {"item": item, "verb": verb,
                                           "post_id": "104817474867218_1", "created_time":
                                           1520383571, "from": {"id": "9", "name": "Ann"},
                                           **extra}}
    body = dumps({"object": "page", "entry": [{"id": "104817474867218", "time": 1520383571,
        "changes": [feed("reaction", "add", reaction_type="like"),
                    feed("comment", "add", message="great post"),
                    feed("status", "add"), feed("post", "remove")]}]})
    delivery = meta.read(body, NOW)
    assert {h.reason for h in delivery.hints} == {"feed.reaction", "feed.comment", "feed.status",
                                                  "feed.post"}
    assert all(h.platform is Platform.FACEBOOK and h.content_id == "104817474867218_1"
               for h in delivery.hints)
    kinds = [(c.kind, c.text) for c in delivery.content]
    assert kinds == [("comment", "great post"), ("published", None), ("deleted", None)]
    # A reaction is a hint only: never a count, never content.
    assert not any(c.kind == "comment" and c.text is None for c in delivery.content)


@pytest.mark.parametrize(("body", "reason"), [
    (b"not json", "not JSON"),
    (b"[1]", "expected a JSON object"),
    (dumps({"object": "whatsapp_business_account", "entry": []}), "object"),
    (dumps({"object": "instagram", "entry": {}}), "entry"),
    (dumps({"object": "instagram", "entry": [{"time": 1}]}), "no event"),
])
def test_unreadable_meta_payloads(body: bytes, reason: str) -> None:
    with pytest.raises(Unmappable, match=reason):
        meta.read(body, NOW)


# --- YouTube -----------------------------------------------------------------------------------

UPLOAD = b"""<?xml version='1.0' encoding='UTF-8'?>
<feed xmlns:yt="http://www.youtube.com/xml/schemas/2015" xmlns="http://www.w3.org/2005/Atom">
 <link rel="hub" href="https://pubsubhubbub.appspot.com"/>
 <title>YouTube video feed</title><updated>2015-04-01T19:05:24.552394234+00:00</updated>
 <entry><id>yt:video:VIDEO_ID_01</id><yt:videoId>VIDEO_ID_01</yt:videoId>
  <yt:channelId>UCchannel0000000000000001</yt:channelId><title>Video title</title>
  <published>2015-03-06T21:40:57+00:00</published>
  <updated>2015-03-09T19:05:24.552394234+00:00</updated></entry>
</feed>"""

TOMBSTONE = b"""<feed xmlns:at="http://purl.org/atompub/tombstones/1.0"
 xmlns="http://www.w3.org/2005/Atom">
 <at:deleted-entry ref="yt:video:VIDEO_ID_01" when="2024-09-09T22:34:19.642702+00:00">
  <link href="https://www.youtube.com/watch?v=VIDEO_ID_01"/>
  <at:by><name>Channel title</name>
   <uri>https://www.youtube.com/channel/UCchannel0000000000000001</uri></at:by>
 </at:deleted-entry></feed>"""


def test_youtube_upload() -> None:
    delivery = youtube.read(UPLOAD, NOW)
    [hint] = delivery.hints
    assert (hint.platform, hint.external_account_id, hint.content_id) == (
        Platform.YOUTUBE, "UCchannel0000000000000001", "VIDEO_ID_01")
    [event] = delivery.content
    assert event.kind == "published"
    assert event.occurred_at == datetime(2015, 3, 6, 21, 40, 57, tzinfo=UTC)


def test_youtube_tombstone_finds_the_channel_in_at_by() -> None:
    delivery = youtube.read(TOMBSTONE, NOW)
    [hint] = delivery.hints
    assert (hint.external_account_id, hint.content_id, hint.reason) == (
        "UCchannel0000000000000001", "VIDEO_ID_01", "deleted")
    [event] = delivery.content
    assert event.kind == "deleted"
    assert event.occurred_at == datetime(2024, 9, 9, 22, 34, 19, 642000, tzinfo=UTC)


def test_youtube_delivery_id_is_the_entry_and_its_update() -> None:
    again = UPLOAD.replace(b"<title>Video title</title>", b"<title>Video title </title>")
    assert youtube.read(again, NOW).delivery_id == youtube.read(UPLOAD, NOW).delivery_id
    updated = UPLOAD.replace(b"19:05:24.552394234+00:00</updated></entry>",
                             b"19:06:00+00:00</updated></entry>")
    assert youtube.read(updated, NOW).delivery_id != youtube.read(UPLOAD, NOW).delivery_id
    assert youtube.read(TOMBSTONE, NOW).delivery_id != youtube.read(UPLOAD, NOW).delivery_id


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE feed [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;">]>
<feed xmlns="http://www.w3.org/2005/Atom"><title>&lol2;</title></feed>"""

EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE feed [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<feed xmlns="http://www.w3.org/2005/Atom"><title>&xxe;</title></feed>"""

PLAIN_DTD = b"""<?xml version="1.0"?><!DOCTYPE feed>
<feed xmlns="http://www.w3.org/2005/Atom"></feed>"""


@pytest.mark.parametrize("body", [BILLION_LAUGHS, EXTERNAL, PLAIN_DTD])
def test_xml_with_a_dtd_or_entities_is_refused(body: bytes) -> None:
    with pytest.raises(Unmappable, match="XML refused"):
        youtube.read(body, NOW)


@pytest.mark.parametrize(("body", "reason"), [
    (b"<feed", "not XML"),
    (b"<rss/>", "expected an Atom feed"),
    (b'<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>x</id></entry></feed>', "no entry"),
])
def test_unreadable_youtube_payloads(body: bytes, reason: str) -> None:
    with pytest.raises(Unmappable, match=reason):
        youtube.read(body, NOW)


# --- TikTok ------------------------------------------------------------------------------------


def tiktok_event(event: str, content: object, **extra: object) -> bytes:
    return dumps({"client_key": "bwo2m45353a6k85", "event": event, "create_time": 1615338610,
                  "user_openid": "act.example12345", "content": json.dumps(content), **extra})


def test_tiktok_publish_completed() -> None:
    delivery = tiktok.read(tiktok_event("video.publish.completed",
                                        {"video_id": "7412345678901234567"}), NOW)
    [hint] = delivery.hints
    assert (hint.platform, hint.external_account_id, hint.content_id, hint.reason) == (
        Platform.TIKTOK, "act.example12345", "7412345678901234567", "video.publish.completed")
    [event] = delivery.content
    assert (event.kind, event.content_id) == ("published", "7412345678901234567")
    assert event.occurred_at == datetime.fromtimestamp(1615338610, UTC)


def test_tiktok_other_events_are_hints_only() -> None:
    delivery = tiktok.read(tiktok_event("authorization.removed", {"reason": 1}), NOW)
    assert [h.reason for h in delivery.hints] == ["authorization.removed"]
    assert delivery.content == ()


def test_tiktok_delivery_id_is_the_events_own_fields() -> None:
    body = tiktok_event("authorization.removed", {"reason": 1})
    spaced = body.replace(b'", "', b'",  "')  # the same event, written differently
    assert spaced != body
    assert tiktok.read(spaced, NOW).delivery_id == tiktok.read(body, NOW).delivery_id
    later = tiktok_event("authorization.removed", {"reason": 1}, create_time=1615338611)
    assert tiktok.read(later, NOW).delivery_id != tiktok.read(body, NOW).delivery_id


@pytest.mark.parametrize("body", [dumps({"event": "x"}), dumps({"user_openid": "a"}), b"{"])
def test_unreadable_tiktok_payloads(body: bytes) -> None:
    with pytest.raises(Unmappable):
        tiktok.read(body, NOW)


# --- X -----------------------------------------------------------------------------------------

ME = "2244994945"


def test_x_own_post_reply_like_and_delete() -> None:
    body = dumps({"for_user_id": ME,
        "tweet_create_events": [
            {"id_str": "100", "text": "hello", "timestamp_ms": "1522082006140",
             "user": {"id_str": ME, "screen_name": "me"}},
            {"id_str": "101", "text": "@me nice", "in_reply_to_status_id_str": "100",
             "in_reply_to_user_id_str": ME, "timestamp_ms": "1522082007000",
             "user": {"id_str": "7", "screen_name": "fan"}}],
        "favorite_events": [{"id": "a7ba", "favorited_status": {"id_str": "100"},
                             "user": {"id_str": "7"}}],
        "tweet_delete_events": [{"status": {"id": "99", "user_id": ME},
                                 "timestamp_ms": "1522082008000"}],
        "follow_events": [{"type": "follow"}]})
    delivery = x.read(body, NOW)
    assert {(h.content_id, h.reason) for h in delivery.hints} == {
        ("100", "tweet_create_events"), ("100", "favorite_events"),
        ("99", "tweet_delete_events"), (None, "follow_events")}
    assert all(h.external_account_id == ME for h in delivery.hints)
    assert [(c.kind, c.content_id, c.text, c.author) for c in delivery.content] == [
        ("published", "100", None, None), ("comment", "100", "@me nice", "fan"),
        ("deleted", "99", None, None)]


def test_x_activity_envelope() -> None:
    payload = {"id": "200", "author_id": ME, "created_at": "2026-11-25T08:00:00.000Z"}
    body = dumps({"data": {"event_uuid": "u1", "event_type": "post.create",
                           "filter": {"user_id": ME}, "payload": payload}})
    delivery = x.read(body, NOW)
    assert [(h.content_id, h.reason) for h in delivery.hints] == [("200", "post.create")]
    assert delivery.content[0].occurred_at == datetime(2026, 11, 25, 8, tzinfo=UTC)


@pytest.mark.parametrize("body", [dumps({"tweet_create_events": []}), dumps({"for_user_id": ME}),
                                  dumps({"data": {"event_type": "post.create"}})])
def test_unreadable_x_payloads(body: bytes) -> None:
    with pytest.raises(Unmappable):
        x.read(body, NOW)


# --- any JSON: a reader answers with a delivery or Unmappable, never another exception ---------

KEYS = ["object", "entry", "id", "time", "changes", "field", "value", "media", "media_id", "text",
        "from", "item", "verb", "post_id", "message", "created_time", "event", "user_openid",
        "create_time", "content", "for_user_id", "tweet_create_events", "favorite_events",
        "tweet_delete_events", "user_event", "data", "event_type", "filter", "user_id", "payload",
        "author_id", "id_str", "user", "in_reply_to_status_id_str", "in_reply_to_user_id_str",
        "timestamp_ms", "status", "favorited_status", "retweeted_status", "created_at"]
WORDS = ["", "x", "instagram", "page", "comments", "feed", "comment", "add", "remove", "post",
         "1", "video.publish.completed", "post.create", "2026-01-01T00:00:00Z", '{"video_id": 5}']


def arbitrary(rng: random.Random, depth: int = 0) -> object:
    choice = rng.randrange(8 if depth < 4 else 5)
    if choice == 0:
        return rng.choice([None, True, float("nan"), float("inf")])
    if choice == 1:
        return rng.randrange(-5, 10**13)
    if choice == 2:
        return rng.random() * 1e12
    if choice in (3, 4):
        return rng.choice(WORDS)
    if choice == 5:
        return [arbitrary(rng, depth + 1) for _ in range(rng.randrange(3))]
    return {rng.choice(KEYS): arbitrary(rng, depth + 1) for _ in range(rng.randrange(5))}


@pytest.mark.parametrize("reader", [meta.read, tiktok.read, x.read])
def test_arbitrary_json_never_breaks_a_reader(reader: object) -> None:
    rng = random.Random(20261125)
    read = reader  # type: ignore[assignment]
    mapped = 0
    for _ in range(3000):
        data = arbitrary(rng)
        if isinstance(data, dict) and rng.random() < 0.3:
            data["object"] = rng.choice(["instagram", "page", {}, []])
        try:
            read(json.dumps(data).encode(), NOW)  # type: ignore[operator]
            mapped += 1
        except Unmappable:
            pass
    assert mapped < 3000
