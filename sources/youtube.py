"""YouTube Data API v3.

- Account: ``GET /youtube/v3/channels?part=statistics,contentDetails&id=UC…``. The channel
  absent from ``items`` means the account is gone. ``subscriberCount`` is public only rounded
  down to 3 significant digits, so it is flagged ``rounded``; with ``hiddenSubscriberCount`` it
  is not reported at all (no observation).
- Content list: ``GET /youtube/v3/playlistItems`` over the uploads playlist (``UU…``), following
  ``nextPageToken`` back to the cutoff (``since``, read from ``videoPublishedAt``), then
  ``GET /youtube/v3/videos?part=statistics,snippet`` for up to 50 ids a call. A video listed but
  absent from ``videos.list`` was deleted or made private.
- Counts are uint64 sent as JSON strings. ``likeCount`` / ``commentCount`` are absent when
  hidden or disabled (missing, not zero); ``dislikeCount`` is private and ``favoriteCount`` dead.

Quota: every list call costs :data:`LIST_COST` unit of the daily 10,000, passed to the Api as
``cost``. ``quotaExceeded`` waits for the quota's reset at midnight Pacific time.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from creatorpulse.observation import ContentKind, Platform, Provenance
from creatorpulse.sources._common import (
    ConnectorBase,
    Malformed,
    Observer,
    body_json,
    is_transient,
    iso_time,
    items,
    lookup,
    map_each,
    newer,
    obj,
    pages,
    parse,
    reason,
    retry_after,
    text,
)
from creatorpulse.sources.base import (
    Account,
    Api,
    ApiError,
    AuthExpired,
    Content,
    Gone,
    Poll,
    Response,
    Retry,
)

BASE = "/youtube/v3"
LIST_COST = 1  # channels.list, playlistItems.list and videos.list: 1 unit a page
BATCH = 50
PAGE_SIZE = "50"
QUOTA_ZONE = ZoneInfo("America/Los_Angeles")

CHANNEL_METRICS = {"viewCount": "account_views", "videoCount": "media_count"}
SUBSCRIBERS = {"subscriberCount": "followers"}
VIDEO_METRICS = {"viewCount": "views", "likeCount": "likes", "commentCount": "comments"}

QUOTA_REASONS = frozenset({"quotaExceeded", "dailyLimitExceeded"})
RATE_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "RATE_LIMIT_EXCEEDED"})
NOT_FOUND_REASONS = frozenset({"channelNotFound", "playlistNotFound", "videoNotFound"})
_TAG = re.compile(r"<[^>]+>")


def quota_reset_wait(now: datetime) -> timedelta:
    """How long until the daily quota resets: the next midnight in Pacific time."""
    local = now.astimezone(QUOTA_ZONE)
    midnight = datetime.combine(local.date() + timedelta(days=1), time(0), tzinfo=QUOTA_ZONE)
    return midnight.astimezone(UTC) - now.astimezone(UTC)


class YouTube(ConnectorBase):
    platform: ClassVar[Platform] = Platform.YOUTUBE

    def fetch_account(
        self, api: Api, account: Account, now: datetime, since: datetime | None = None
    ) -> Poll:
        observe = Observer(self.platform, account, now, since)
        poll = Poll()
        body = api.get(f"{BASE}/channels", {
            "part": "statistics,contentDetails", "id": account.external_id}, cost=LIST_COST)
        parsed = parse(poll, body, _found, "channels")
        if parsed is None:
            return poll
        channels, _ = parsed
        if not channels:
            msg = f"youtube: channel {account.external_id} not found"
            raise Gone(msg)
        uploads: list[str] = []
        map_each(poll, channels[:1], lambda item, part: uploads.append(
            _channel(observe, item, part)), "channel")
        if not uploads:
            return poll
        ids: list[str] = []
        try:
            listing = newer(pages(poll, "playlistItems", lambda token: api.get(
                f"{BASE}/playlistItems", _page({"part": "contentDetails", "playlistId": uploads[0],
                                                "maxResults": PAGE_SIZE}, token), cost=LIST_COST),
                _split), since, _listed_at)
            map_each(poll, listing, lambda item, part: ids.append(text(obj(obj(
                item, "playlistItem").get("contentDetails"), "contentDetails"), "videoId")),
                "playlistItem")
        except Gone:
            pass  # a channel that never uploaded has no uploads playlist
        poll.extend(self._videos(api, observe, list(dict.fromkeys(ids))))
        return poll

    def fetch_content(
        self, api: Api, account: Account, content: Sequence[Content], now: datetime
    ) -> Poll:
        return self._videos(api, Observer(self.platform, account, now), [c.id for c in content])

    def _videos(self, api: Api, observe: Observer, ids: list[str]) -> Poll:
        poll = Poll()

        def fetch(batch: list[str]) -> Any:
            return api.get(f"{BASE}/videos", {"part": "statistics,snippet", "id": ",".join(batch)},
                           cost=LIST_COST)

        lookup(poll, "video", ids, BATCH, fetch, _found,
               lambda item, part: _video(observe, item, part))
        return poll

    def check(self, response: Response) -> timedelta | None:
        if 200 <= response.status < 300:
            return None
        now = self.clock()
        body = body_json(response)
        error = body.get("error") if isinstance(body, dict) else None
        error = error if isinstance(error, dict) else {}
        listed = [e for key in ("errors", "details") if isinstance(error.get(key), list)
                  for e in error[key] if isinstance(e, dict)]
        reasons = {e["reason"] for e in listed if isinstance(e.get("reason"), str)}
        message = _TAG.sub("", str(error.get("message") or "no error in the body"))
        what = reason(self.platform, response.status, message, ", ".join(sorted(reasons)))
        if response.status == 401:
            raise AuthExpired(what)
        if reasons & QUOTA_REASONS:
            raise Retry(what, quota_reset_wait(now))
        if reasons & RATE_REASONS or is_transient(response.status):
            raise Retry(what, retry_after(response.headers, now))
        if response.status == 404 or reasons & NOT_FOUND_REASONS:
            raise Gone(what)
        raise ApiError(what, response.status, min(reasons) if reasons else None)


def _listed_at(item: Any) -> datetime:
    """A playlist item's ``contentDetails.videoPublishedAt`` (Malformed when absent)."""
    details = obj(obj(item, "playlistItem").get("contentDetails"), "contentDetails")
    return iso_time(details, "videoPublishedAt")


def _page(params: dict[str, str], token: str | None) -> dict[str, str]:
    return {**params, "pageToken": token} if token else params


def _split(page: Any) -> tuple[list[Any], str | None]:
    page = obj(page, "page")
    token = page.get("nextPageToken")
    if token is not None and (not isinstance(token, str) or not token):
        msg = f"nextPageToken: expected a string, got {token!r}"
        raise Malformed(msg)
    return items(page.get("items"), "items"), token


def _found(body: Any) -> tuple[list[Any], set[str]]:
    """The ``items`` of a list answer (channels, videos); no id is ever reported otherwise."""
    return items(obj(body, "answer").get("items"), "items"), set()


def _channel(observe: Observer, item: Any, poll: Poll) -> str:
    """Maps the channel's counters; returns its uploads playlist id."""
    channel = obj(item, "channel")
    channel_id = text(channel, "id")
    stats = obj(channel.get("statistics", {}), "statistics")
    observe.counts(poll, stats, CHANNEL_METRICS, strings=True)
    if stats.get("hiddenSubscriberCount") is not True:
        observe.counts(poll, stats, SUBSCRIBERS, strings=True, provenance=Provenance.ROUNDED)
    details = obj(channel.get("contentDetails", {}), "contentDetails")
    playlists = obj(details.get("relatedPlaylists", {}), "contentDetails.relatedPlaylists")
    if "uploads" in playlists:
        return text(playlists, "uploads")
    return "UU" + channel_id[2:]  # the uploads playlist shares the channel id's tail


def _video(observe: Observer, item: Any, poll: Poll) -> None:
    video = obj(item, "video")
    video_id = text(video, "id")
    published = iso_time(obj(video.get("snippet"), "snippet"), "publishedAt")
    if not observe.current(published):
        return  # listed without videoPublishedAt, but past polling all the same
    observe.content(poll, video_id, ContentKind.VIDEO, published)
    stats = obj(video.get("statistics", {}), "statistics")
    observe.counts(poll, stats, VIDEO_METRICS, content_id=video_id, kind=ContentKind.VIDEO,
                   strings=True)
