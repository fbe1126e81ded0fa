"""TikTok Display API v2.

- Account: ``GET /v2/user/info/?fields=…`` (scope ``user.info.stats`` for the counts); the
  account is the token's user.
- Content list: ``POST /v2/video/list/?fields=…`` with the JSON body ``{"max_count": 20,
  "cursor": <ms>}``, following ``data.cursor`` while ``data.has_more`` is true, back to the
  cutoff (``since``).
- Targeted poll: ``POST /v2/video/query/?fields=…`` with ``{"filters": {"video_ids": […]}}``,
  20 ids a call; an id the answer leaves out is deleted (or no longer public).

The Display API has no saves, reach or impressions: those metrics are never reported. Every
answer carries ``error.code``, ``"ok"`` on success; ``rate_limit_exceeded`` (HTTP 429) sends no
rate-limit headers, so the wait is ``Retry-After`` when present, else the runtime's backoff.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar

from creatorpulse.observation import ContentKind, Platform
from creatorpulse.sources._common import (
    ConnectorBase,
    Malformed,
    Observer,
    body_json,
    is_transient,
    items,
    lookup,
    map_each,
    newer,
    obj,
    pages,
    reason,
    retry_after,
    text,
    unix_time,
)
from creatorpulse.sources.base import (
    Account,
    Api,
    ApiError,
    AuthExpired,
    Content,
    Poll,
    Response,
    Retry,
)

USER_FIELDS = "open_id,follower_count,following_count,likes_count,video_count"
VIDEO_FIELDS = "id,create_time,like_count,comment_count,share_count,view_count"
PAGE_SIZE = 20
QUERY_BATCH = 20

ACCOUNT_METRICS = {
    "follower_count": "followers",
    "following_count": "following",
    "likes_count": "account_likes",
    "video_count": "media_count",
}
VIDEO_METRICS = {
    "like_count": "likes",
    "comment_count": "comments",
    "share_count": "shares",
    "view_count": "views",
}
AUTH_CODES = frozenset({"access_token_invalid"})
RATE_CODES = frozenset({"rate_limit_exceeded"})
TRANSIENT_CODES = frozenset({"internal_error"})


class TikTok(ConnectorBase):
    platform: ClassVar[Platform] = Platform.TIKTOK

    def fetch_account(
        self, api: Api, account: Account, now: datetime, since: datetime | None = None
    ) -> Poll:
        observe = Observer(self.platform, account, now, since)
        poll = Poll()
        body = api.get("/v2/user/info/", {"fields": USER_FIELDS})
        map_each(poll, [body], lambda item, part: observe.counts(
            part, obj(obj(obj(item, "body").get("data"), "data").get("user"), "data.user"),
            ACCOUNT_METRICS), "user")
        videos = newer(pages(poll, "video/list", lambda cursor: api.post(
            "/v2/video/list/", json=_list_body(cursor), params={"fields": VIDEO_FIELDS}), _split),
            since, lambda item: unix_time(obj(item, "video"), "create_time"))
        map_each(poll, videos, lambda item, part: _video(observe, item, part), "video")
        return poll

    def fetch_content(
        self, api: Api, account: Account, content: Sequence[Content], now: datetime
    ) -> Poll:
        observe = Observer(self.platform, account, now)
        poll = Poll()

        def fetch(batch: list[str]) -> Any:
            return api.post("/v2/video/query/", json={"filters": {"video_ids": batch}},
                            params={"fields": VIDEO_FIELDS})

        lookup(poll, "video", [c.id for c in content], QUERY_BATCH, fetch, _found,
               lambda item, part: _video(observe, item, part))
        return poll

    def check(self, response: Response) -> timedelta | None:
        body = body_json(response)
        body = body if isinstance(body, dict) else {}
        error = body.get("error")
        if isinstance(error, dict):
            code, message = error.get("code"), error.get("message")
        elif isinstance(error, str):  # the OAuth endpoints' {"error", "error_description"}
            code, message = error, body.get("error_description")
        else:
            code, message = None, None
        if 200 <= response.status < 300 and code in (None, "ok"):
            return None
        code = code if isinstance(code, str) else None
        what = reason(self.platform, response.status, str(message or code or "no error"),
                      code or "")
        if code in AUTH_CODES or (response.status == 401 and code is None):
            raise AuthExpired(what)
        if code in RATE_CODES or code in TRANSIENT_CODES or is_transient(response.status):
            raise Retry(what, retry_after(response.headers, self.clock()))
        raise ApiError(what, response.status, code)


def _list_body(cursor: int | None) -> dict[str, int]:
    return {"max_count": PAGE_SIZE} if cursor is None else {"max_count": PAGE_SIZE,
                                                            "cursor": cursor}


def _found(body: Any) -> tuple[list[Any], set[str]]:
    return items(obj(obj(body, "body").get("data"), "data").get("videos"), "data.videos"), set()


def _split(page: Any) -> tuple[list[Any], int | None]:
    data = obj(obj(page, "page").get("data"), "data")
    videos = items(data.get("videos"), "data.videos")
    if data.get("has_more") is not True:
        return videos, None
    cursor = data.get("cursor")
    if isinstance(cursor, bool) or not isinstance(cursor, int):
        msg = f"data.cursor: has_more is true but the cursor is {cursor!r}"
        raise Malformed(msg)
    return videos, cursor


def _video(observe: Observer, item: Any, poll: Poll) -> None:
    video = obj(item, "video")
    video_id = text(video, "id")
    observe.content(poll, video_id, ContentKind.VIDEO, unix_time(video, "create_time"))
    observe.counts(poll, video, VIDEO_METRICS, content_id=video_id, kind=ContentKind.VIDEO)
