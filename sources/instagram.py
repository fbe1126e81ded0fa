"""Instagram Graph API (business and creator accounts).

- Account: ``GET /{ig-user-id}?fields=followers_count,follows_count,media_count``.
- Content list: ``GET /{ig-user-id}/media`` with ``like_count`` and ``comments_count``, following
  ``paging.next`` to the end.
- Targeted poll: ``GET /{ig-media-id}`` (the same fields) and ``GET /{ig-media-id}/insights``
  for ``views``, ``reach``, ``saved`` and ``shares`` (lifetime; stories: views and reach). Insights
  cost one call per media, so they are read on the content's own cadence, not on every account
  poll. "Not enough viewers" (code 10) and media older than the business account mean no
  insights: those metrics are missing, not zero.

Account insights (``reach``, ``follower_count``, ``views`` per day) are daily figures, not
cumulative counters, so they are not read: their gains would mean nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar

from creatorpulse.observation import ContentKind, Platform
from creatorpulse.sources import _graph
from creatorpulse.sources._common import Observer, iso_time, map_each, obj, text
from creatorpulse.sources.base import Account, Api, Content, Poll

ACCOUNT_FIELDS = "id,username,followers_count,follows_count,media_count"
MEDIA_FIELDS = "id,media_type,media_product_type,timestamp,like_count,comments_count"
PAGE_SIZE = "50"

ACCOUNT_METRICS = {
    "followers_count": "followers",
    "follows_count": "following",
    "media_count": "media_count",
}
MEDIA_METRICS = {"like_count": "likes", "comments_count": "comments"}
INSIGHT_METRICS = {"views": "views", "reach": "reach", "saved": "saves", "shares": "shares"}
STORY_INSIGHTS = ("views", "reach")
KINDS = {"REELS": ContentKind.REEL, "STORY": ContentKind.STORY}


class Instagram(_graph.GraphConnector):
    platform: ClassVar[Platform] = Platform.INSTAGRAM

    def fetch_account(self, api: Api, account: Account, now: datetime) -> Poll:
        observe = Observer(self.platform, account, now)
        poll = Poll()
        profile = api.get(_graph.path(account.external_id), {"fields": ACCOUNT_FIELDS})
        map_each(poll, [profile], lambda item, part: observe.counts(
            part, obj(item, "account"), ACCOUNT_METRICS), "account")
        media = _graph.edge(api, poll, "media", _graph.path(account.external_id, "media"),
                            {"fields": MEDIA_FIELDS, "limit": PAGE_SIZE})
        map_each(poll, media, lambda item, part: self._media(observe, item, part), "media")
        return poll

    def fetch_content(
        self, api: Api, account: Account, content: Sequence[Content], now: datetime
    ) -> Poll:
        observe = Observer(self.platform, account, now)
        return self.fetch_objects(
            api, observe, content, "media", MEDIA_FIELDS,
            lambda item, part: self._media(observe, item, part), _insight_metrics)

    def _media(self, observe: Observer, item: Any, poll: Poll) -> None:
        item = obj(item, "media")
        media_id = text(item, "id")
        kind = KINDS.get(item.get("media_product_type"), ContentKind.POST)
        observe.content(poll, media_id, kind, iso_time(item, "timestamp"))
        observe.counts(poll, item, MEDIA_METRICS, content_id=media_id, kind=kind)


def _insight_metrics(media: Any) -> dict[str, str]:
    """Stories have no saves or shares insights; asking for them fails the whole request."""
    story = isinstance(media, dict) and media.get("media_product_type") == "STORY"
    return {k: v for k, v in INSIGHT_METRICS.items() if not story or k in STORY_INSIGHTS}
