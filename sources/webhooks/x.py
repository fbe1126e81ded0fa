"""X webhook payloads: Account Activity events, and the newer X Activity envelope.

Account Activity: ``for_user_id`` (the subscribed account) and one array per event type with
v1.1 objects (``id_str``, ``timestamp_ms``). A post by the account is ``published``; a reply to
one of its posts is a ``comment`` on that post; a deleted post is ``deleted``; likes, follows and
every other event are hints only. X Activity: ``{"data": {"event_type", "filter": {"user_id"},
"payload"}}``. X sends no delivery id: the body's hash is one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from creatorpulse.observation import Platform
from creatorpulse.sources.webhooks.mapping import (
    Collector,
    Delivery,
    Unmappable,
    body_id,
    from_iso,
    from_unix,
    ident,
    load_json_object,
    text_of,
)

X = Platform.X


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def read(body: bytes, received_at: datetime) -> Delivery:
    data = load_json_object(body)
    out = Collector(body_id(body), received_at)
    if isinstance(data.get("data"), dict):
        _activity(out, data["data"], received_at)
        return out.done()
    account = ident(data.get("for_user_id"))
    if account is None:
        msg = "for_user_id: expected a string (or an X Activity data envelope)"
        raise Unmappable(msg)
    for name, events in data.items():
        if name == "for_user_id" or not isinstance(events, list):
            continue
        for event in events:
            if not isinstance(event, dict):
                continue
            if name == "tweet_create_events":
                _tweet(out, account, event, received_at)
            elif name == "favorite_events":
                status = ident(_dict(event.get("favorited_status")).get("id_str"))
                out.hint(X, account, status, name)
            elif name == "tweet_delete_events":
                status = ident(_dict(event.get("status")).get("id"))
                out.hint(X, account, status, name)
                if status:
                    at = from_unix(event.get("timestamp_ms"), received_at)
                    out.event(X, account, status, "deleted", at)
            else:
                out.hint(X, account, None, name)
    if isinstance(data.get("user_event"), dict):
        out.hint(X, account, None, "user_event")
    return out.done()


def _tweet(out: Collector, account: str, tweet: dict[str, Any], received_at: datetime) -> None:
    status = ident(tweet.get("id_str"))
    author = _dict(tweet.get("user"))
    at = from_unix(tweet.get("timestamp_ms"), received_at)
    if ident(author.get("id_str")) == account and status:
        out.hint(X, account, status, "tweet_create_events")
        out.event(X, account, status, "published", at)
        return
    parent = ident(tweet.get("in_reply_to_status_id_str"))
    if parent and ident(tweet.get("in_reply_to_user_id_str")) == account:
        out.hint(X, account, parent, "tweet_create_events")
        text = text_of(_dict(tweet.get("extended_tweet")).get("full_text")) or text_of(
            tweet.get("text"))
        if text is not None:
            out.event(X, account, parent, "comment", at, text, text_of(author.get("screen_name")))
        return
    # A mention, retweet or quote: the account moved, the content is somebody else's.
    quoted = _dict(tweet.get("retweeted_status") or tweet.get("quoted_status"))
    mine = ident(_dict(quoted.get("user")).get("id_str")) == account
    out.hint(X, account, ident(quoted.get("id_str")) if mine else None, "tweet_create_events")


def _activity(out: Collector, data: dict[str, Any], received_at: datetime) -> None:
    event_type = text_of(data.get("event_type"))
    account = ident(_dict(data.get("filter")).get("user_id"))
    if not event_type or account is None:
        msg = "data: expected event_type and filter.user_id"
        raise Unmappable(msg)
    payload = _dict(data.get("payload"))
    post = ident(payload.get("id"))
    out.hint(X, account, post, event_type)
    if event_type == "post.create" and post and ident(payload.get("author_id")) == account:
        out.event(X, account, post, "published", from_iso(payload.get("created_at"), received_at))
