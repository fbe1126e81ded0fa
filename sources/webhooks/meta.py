"""Meta webhook payloads (Instagram ``object: instagram``, Facebook Pages ``object: page``).

``entry[]`` holds one item per account (``id``: the IG user or Page id, ``time``: unix seconds),
each with ``changes[]`` of ``{field, value}``. Every change is a hint on its account (and on its
media or post when the value names one). Comments carry their text to the content topic; a Page's
new or removed post is a ``published`` / ``deleted`` content event. Meta sends no delivery id:
the body's hash is one (a redelivery is byte-identical).
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
    from_unix,
    ident,
    load_json_object,
    text_of,
)

OBJECTS = {"instagram": Platform.INSTAGRAM, "page": Platform.FACEBOOK}
COMMENT_FIELDS = ("comments", "live_comments")
POST_ITEMS = ("status", "post", "photo", "video", "share")


def read(body: bytes, received_at: datetime) -> Delivery:
    data = load_json_object(body)
    kind = data.get("object")
    platform = OBJECTS.get(kind) if isinstance(kind, str) else None
    if platform is None:
        msg = f"object: expected one of {', '.join(OBJECTS)}, got {data.get('object')!r}"
        raise Unmappable(msg)
    entries = data.get("entry")
    if not isinstance(entries, list):
        msg = "entry: expected a list"
        raise Unmappable(msg)
    out = Collector(body_id(body), received_at)
    for entry in entries:
        account = ident(entry.get("id")) if isinstance(entry, dict) else None
        if account is None:
            continue
        at = from_unix(entry.get("time"), received_at)
        changes = entry.get("changes")
        if not isinstance(changes, list):
            # Messaging and other entries without changes still say the account moved.
            out.hint(platform, account, None, "update")
            continue
        for change in changes:
            if not isinstance(change, dict) or not isinstance(change.get("field"), str):
                continue
            value = change.get("value") if isinstance(change.get("value"), dict) else {}
            if platform is Platform.INSTAGRAM:
                _instagram(out, account, change["field"], value, at)
            else:
                _page(out, account, change["field"], value, at)
    return out.done()


def _instagram(out: Collector, account: str, field: str, value: dict[str, Any],
               at: datetime) -> None:
    media = value.get("media") if isinstance(value.get("media"), dict) else {}
    media_id = ident(media.get("id")) or ident(value.get("media_id"))
    out.hint(Platform.INSTAGRAM, account, media_id, field)
    text = text_of(value.get("text"))
    if field in COMMENT_FIELDS and media_id and text is not None:
        sender = value.get("from") if isinstance(value.get("from"), dict) else {}
        author = text_of(sender.get("username")) or ident(sender.get("id"))
        out.event(Platform.INSTAGRAM, account, media_id, "comment", at, text, author)


def _page(out: Collector, account: str, field: str, value: dict[str, Any], at: datetime) -> None:
    item, verb = text_of(value.get("item")), text_of(value.get("verb"))
    post_id = ident(value.get("post_id"))
    out.hint(Platform.FACEBOOK, account, post_id, f"{field}.{item}" if item else field)
    if field != "feed" or post_id is None:
        return
    at = from_unix(value.get("created_time"), at)
    sender = value.get("from") if isinstance(value.get("from"), dict) else {}
    author = text_of(sender.get("name")) or ident(sender.get("id"))
    message = text_of(value.get("message"))
    if item == "comment" and verb in ("add", "edited") and message is not None:
        out.event(Platform.FACEBOOK, account, post_id, "comment", at, message, author)
    elif item in POST_ITEMS and verb == "add":
        out.event(Platform.FACEBOOK, account, post_id, "published", at, author=author)
    elif item in POST_ITEMS and verb == "remove":
        out.event(Platform.FACEBOOK, account, post_id, "deleted", at, author=author)
