"""Instagram Graph API (business and creator accounts).

- Account and content list in one request (field expansion):
  ``GET /{ig-user-id}?fields=followers_count,follows_count,media_count,media.limit(50){…}``, the
  media with ``like_count`` and ``comments_count``; later pages of ``/{ig-user-id}/media``
  through ``paging.next``, back to the cutoff (``since``: older media are not polled).
- Targeted poll: ``GET /{ig-media-id}`` (the same fields) and ``GET /{ig-media-id}/insights``
  for ``views``, ``reach``, ``saved`` and ``shares`` (lifetime; stories: views and reach). Insights
  cost one call per media, so they are read on the content's own cadence, not on every account
  poll. "Not enough viewers" (code 10) and media older than the business account mean no
  insights: those metrics are missing, not zero. Hidden likes leave ``like_count`` out: missing.

Account insights (``reach``, ``follower_count``, ``views`` per day) are daily figures, not
cumulative counters, so they are not read: their gains would mean nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from creatorpulse.observation import ContentKind, Platform
from creatorpulse.sources._common import Observer, iso_time, obj, text
from creatorpulse.sources._graph import GraphConnector
from creatorpulse.sources.base import Poll

MEDIA_METRICS = {"like_count": "likes", "comments_count": "comments"}
INSIGHT_METRICS = {"views": "views", "reach": "reach", "saved": "saves", "shares": "shares"}
STORY_INSIGHTS = ("views", "reach")
KINDS = {"REELS": ContentKind.REEL, "STORY": ContentKind.STORY}


class Instagram(GraphConnector):
    platform: ClassVar[Platform] = Platform.INSTAGRAM
    account_fields = "id,username,followers_count,follows_count,media_count"
    account_metrics: ClassVar[Mapping[str, str]] = {
        "followers_count": "followers",
        "follows_count": "following",
        "media_count": "media_count",
    }
    content_edge = "media"
    published_field = "timestamp"
    item_fields = "id,media_type,media_product_type,timestamp,like_count,comments_count"

    def map_item(self, observe: Observer, item: Any, poll: Poll) -> None:
        item = obj(item, "media")
        media_id = text(item, "id")
        kind = KINDS.get(item.get("media_product_type"), ContentKind.POST)
        observe.content(poll, media_id, kind, iso_time(item, "timestamp"))
        observe.counts(poll, item, MEDIA_METRICS, content_id=media_id, kind=kind)

    def insight_metrics(self, item: Any) -> Mapping[str, str]:
        """Stories have no saves or shares insights; asking for them fails the whole request."""
        story = isinstance(item, dict) and item.get("media_product_type") == "STORY"
        return {k: v for k, v in INSIGHT_METRICS.items() if not story or k in STORY_INSIGHTS}
