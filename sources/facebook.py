"""Facebook Pages through the Graph API.

- Account: ``GET /{page-id}?fields=followers_count,fan_count``.
- Content list: ``GET /{page-id}/posts`` with ``shares`` and the ``total_count`` summaries of
  ``reactions`` and ``comments``, following ``paging.next`` to the end.
- Targeted poll: ``GET /{post-id}`` (the same fields) and ``GET /{post-id}/insights`` for
  ``post_media_view`` (views) and ``post_total_media_view_unique`` (reach), lifetime.

Reactions of every type (like, love, wow, ...) count as ``likes``: they are the Page post's like
counter. Graph leaves ``shares`` out of a post nobody shared; that is missing, not zero, like any
absent field. Page insights (``page_media_view`` ...) are daily figures, not cumulative counters,
so they are not read; ``page_fans`` and the impressions metrics are deprecated.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar

from creatorpulse.observation import ContentKind, Platform
from creatorpulse.sources import _graph
from creatorpulse.sources._common import Observer, iso_time, map_each, obj, text
from creatorpulse.sources.base import Account, Api, Content, Poll

ACCOUNT_FIELDS = "id,name,followers_count,fan_count"
POST_FIELDS = "id,created_time,shares,reactions.summary(total_count),comments.summary(total_count)"
PAGE_SIZE = "50"

ACCOUNT_METRICS = {"followers_count": "followers", "fan_count": "page_likes"}
POST_METRICS = {
    "reactions.summary.total_count": "likes",
    "comments.summary.total_count": "comments",
    "shares.count": "shares",
}
INSIGHT_METRICS = {"post_media_view": "views", "post_total_media_view_unique": "reach"}


class Facebook(_graph.GraphConnector):
    platform: ClassVar[Platform] = Platform.FACEBOOK

    def fetch_account(self, api: Api, account: Account, now: datetime) -> Poll:
        observe = Observer(self.platform, account, now)
        poll = Poll()
        page = api.get(_graph.path(account.external_id), {"fields": ACCOUNT_FIELDS})
        map_each(poll, [page], lambda item, part: observe.counts(
            part, obj(item, "page"), ACCOUNT_METRICS), "page")
        posts = _graph.edge(api, poll, "posts", _graph.path(account.external_id, "posts"),
                            {"fields": POST_FIELDS, "limit": PAGE_SIZE})
        map_each(poll, posts, lambda item, part: _post(observe, item, part), "post")
        return poll

    def fetch_content(
        self, api: Api, account: Account, content: Sequence[Content], now: datetime
    ) -> Poll:
        observe = Observer(self.platform, account, now)
        return self.fetch_objects(
            api, observe, content, "post", POST_FIELDS,
            lambda item, part: _post(observe, item, part), lambda _: INSIGHT_METRICS)


def _post(observe: Observer, item: Any, poll: Poll) -> None:
    item = obj(item, "post")
    post_id = text(item, "id")
    observe.content(poll, post_id, ContentKind.POST, iso_time(item, "created_time"))
    observe.counts(poll, item, POST_METRICS, content_id=post_id, kind=ContentKind.POST)
