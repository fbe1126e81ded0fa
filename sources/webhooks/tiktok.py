"""TikTok webhook events: ``{client_key, event, create_time, user_openid, content}``.

``content`` is itself a JSON-encoded string. Every event is a hint on the account
(``user_openid``); ``video.publish.completed`` naming a video is also a ``published`` content
event. TikTok has no engagement webhooks: counts are always polled. The delivery id is a hash of
the event's own fields, which a retry repeats.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from creatorpulse.observation import Platform
from creatorpulse.sources.webhooks.mapping import (
    Collector,
    Delivery,
    Unmappable,
    fields_id,
    from_unix,
    ident,
    load_json_object,
)

PUBLISHED = "video.publish.completed"


def _content(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        try:
            decoded = json.loads(value)
        except ValueError:
            return {}
        return decoded if isinstance(decoded, dict) else {}
    return {}


def read(body: bytes, received_at: datetime) -> Delivery:
    data = load_json_object(body)
    event, account = data.get("event"), ident(data.get("user_openid"))
    if not isinstance(event, str) or not event:
        msg = "event: expected a string"
        raise Unmappable(msg)
    if account is None:
        msg = "user_openid: expected a string"
        raise Unmappable(msg)
    key = fields_id(data.get("client_key"), event, data.get("create_time"), account,
                    data.get("content"))
    out = Collector(key, received_at)
    content = _content(data.get("content"))
    video = ident(content.get("video_id")) or ident(content.get("item_id"))
    out.hint(Platform.TIKTOK, account, video, event)
    if event == PUBLISHED and video:
        at = from_unix(data.get("create_time"), received_at)
        out.event(Platform.TIKTOK, account, video, "published", at)
    return out.done()
