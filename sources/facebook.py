"""Facebook Pages through the Graph API.

- Account and content list in one request (field expansion):
  ``GET /{page-id}?fields=followers_count,fan_count,posts.limit(50){…}``, the posts with
  ``shares`` and the ``total_count`` summaries of ``reactions`` and ``comments``; later pages of
  ``/{page-id}/posts`` through ``paging.next``, back to the cutoff (``since``: older posts are
  not polled).
- Targeted poll: ``GET /{post-id}`` (the same fields) and ``GET /{post-id}/insights`` for
  ``post_media_view`` (views) and ``post_total_media_view_unique`` (reach), lifetime.

Reactions of every type (like, love, wow, ...) count as ``likes``: they are the Page post's like
counter. Graph leaves ``shares`` out of a post nobody shared: since we ask for the field, its
absence means 0 shares (the one absent field that is not missing). Page insights
(``page_media_view`` ...) are daily figures, not cumulative counters, so they are not read;
``page_fans`` and the impressions metrics are deprecated.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from creatorpulse.observation import ContentKind, Platform
from creatorpulse.sources._common import Observer, iso_time, obj, text
from creatorpulse.sources._graph import GraphConnector
from creatorpulse.sources.base import Poll

POST_METRICS = {
    "reactions.summary.total_count": "likes",
    "comments.summary.total_count": "comments",
    "shares.count": "shares",
}
INSIGHT_METRICS = {"post_media_view": "views", "post_total_media_view_unique": "reach"}


class Facebook(GraphConnector):
    platform: ClassVar[Platform] = Platform.FACEBOOK
    account_fields = "id,name,followers_count,fan_count"
    account_metrics: ClassVar[Mapping[str, str]] = {
        "followers_count": "followers",
        "fan_count": "page_likes",
    }
    content_edge = "posts"
    published_field = "created_time"
    item_fields = (
        "id,created_time,shares,reactions.summary(total_count),comments.summary(total_count)")

    def map_item(self, observe: Observer, item: Any, poll: Poll) -> None:
        item = obj(item, "post")
        post_id = text(item, "id")
        observe.content(poll, post_id, ContentKind.POST, iso_time(item, "created_time"))
        observe.counts(poll, item, POST_METRICS, content_id=post_id, kind=ContentKind.POST)
        if "shares" not in item:  # asked for and left out: nobody shared the post
            observe.add(poll, "shares", 0, content_id=post_id, kind=ContentKind.POST)

    def insight_metrics(self, item: Any) -> Mapping[str, str]:
        return INSIGHT_METRICS
