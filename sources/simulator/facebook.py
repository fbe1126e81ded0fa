"""Facebook Graph API for Pages.

Paths (any ``/vNN.N`` prefix, or none): ``/me``, ``/{page-id}``, ``/{page-id}/posts`` (also
``/published_posts`` and ``/feed``), ``/{page-id}/insights``, ``/{post-id}`` (``{page}_{post}``),
``/{post-id}/insights``, ``/{post-id}/reactions``, ``/{post-id}/comments``; tokens:
``/oauth/access_token`` (``fb_exchange_token``); webhooks: ``/{app-id}/subscriptions``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from creatorpulse.sources.simulator.common import Refusal, json_response
from creatorpulse.sources.simulator.meta import OMIT, MetaApp, graph_error, graph_time, no_field
from creatorpulse.sources.simulator.webhooks import Delivery
from creatorpulse.sources.simulator.world import Account, Counters, Post

_REACTIONS = (("love", 12), ("wow", 3), ("haha", 3), ("sad", 1), ("angry", 1), ("care", 2))
_POST_METRICS = {"post_media_view", "post_total_media_view_unique",
                 "post_reactions_by_type_total", "post_clicks", "post_reactions_like_total",
                 "post_video_views"}
_REMOVED_POST = {"post_impressions", "post_impressions_unique", "post_impressions_paid",
                 "post_impressions_organic", "post_engaged_users"}
_REMOVED_PAGE = {"page_impressions", "page_impressions_unique", "page_impressions_paid",
                 "page_fans", "page_fan_adds", "page_fan_removes", "page_fan_adds_unique",
                 "page_engaged_users"}


def reactions_by_type(likes: int) -> dict[str, int]:
    """Split a reaction total across types (the rest are likes); the parts add up to it."""
    parts = {name: likes * share // 100 for name, share in _REACTIONS}
    return {"like": likes - sum(parts.values()), **parts}


class FacebookApp(MetaApp):
    platform = "facebook"
    new_content_event = "status"
    account_node = "Page"
    post_node = "PagePost"
    webhook_object = "page"
    buc_type = "pages"
    buc_code = 80001
    content_edges = ("posts", "published_posts", "feed")
    buc_message = ("(#80001) There have been too many calls to this Page account. Wait a bit "
                   "and try again. For more info, please refer to "
                   "https://developers.facebook.com/docs/graph-api/overview/rate-limiting.")

    def account_fields(self, account: Account, now: float) -> dict[str, Any]:
        followers = account.followers(now)
        return {
            "id": account.id, "name": account.name, "username": account.handle,
            "about": f"The official page of {account.name}", "category": "Digital creator",
            "link": f"https://www.facebook.com/{account.handle}",
            "followers_count": followers, "fan_count": followers * 9 // 10,
            "verification_status": "not_verified",
            # The Instagram account of the same creator (same index in the seeded world).
            "instagram_business_account": {
                "id": self.world.ids.account("instagram", account.index)},
        }

    def post_fields(self, post: Post, now: float, fields: list[str]) -> dict[str, Any]:
        c = self.world.counters(post, now)

        def summary(count: int, extra: dict[str, Any]):
            def render(item: str) -> dict[str, Any]:
                body: dict[str, Any] = {"data": []}
                if ".summary(" in item:
                    body["summary"] = {"total_count": count, **extra}
                return body
            return render

        out: dict[str, Any] = {
            "id": post.id, "message": f"{post.title} from {post.account.name}",
            "created_time": graph_time(post.published),
            "updated_time": graph_time(post.published),
            "permalink_url": f"https://www.facebook.com/{post.account.handle}/posts/"
                             f"{post.id.partition('_')[2]}",
            "status_type": "added_video" if post.is_video else "added_photos",
            "full_picture": f"https://scontent.example/{post.id}.jpg",
            "from": {"id": post.account.id, "name": post.account.name},
            "is_published": True,
            "reactions": summary(c.likes, {"viewer_reaction": "NONE"}),
            "likes": summary(reactions_by_type(c.likes)["like"], {"can_like": True}),
            "comments": summary(c.comments, {"order": "ranked", "can_comment": True}),
        }
        # The Graph API leaves out "shares" while there are none.
        out["shares"] = {"count": c.shares} if c.shares else OMIT
        return out

    def account_edge(self, request: Request, account: Account, edge: str, fields: list[str],
                     now: float) -> Response:
        if edge == "accounts" and request.state.parts[0] == "me":
            # The Pages the token may act for: a Page token lists its own Page and token.
            return json_response({"data": [{
                "id": account.id, "name": account.name, "category": "Digital creator",
                "access_token": self.token_of(request),
                "tasks": ["ANALYZE", "ADVERTISE", "MODERATE", "CREATE_CONTENT"]}],
                "paging": {"cursors": {"before": "QVFI", "after": "QVFI"}}})
        if edge in ("posts", "published_posts", "feed"):
            return self.page_of_posts(request, account, fields, now)
        if edge == "insights":
            return self.page_insights(request, account, now)
        raise Refusal(no_field(edge, self.account_node))

    def page_insights(self, request: Request, account: Account, now: float) -> Response:
        if not request.query_params.get("metric"):
            return graph_error("(#100) No metric was specified", 3001, 1504028)
        w = self.world

        def gain(fn):
            def value(start: float, end: float) -> int:
                return max(0, fn(w.totals(account, end)) - fn(w.totals(account, start)))
            return value

        def follows(start: float, end: float) -> int:
            return max(0, account.followers(end) - account.followers(start))

        def engagements(c: Counters) -> int:
            return c.likes + c.comments + c.shares

        metrics = {
            "page_media_view": ("Media views", gain(lambda c: c.views)),
            "page_total_media_view_unique": ("Media viewers", gain(lambda c: c.reach)),
            "page_post_engagements": ("Post engagements", gain(engagements)),
            "page_views_total": ("Page views", gain(lambda c: c.reach // 20)),
            "page_follows": ("Follows", lambda s, e: account.followers(e)),
            "page_daily_follows": ("Daily follows", follows),
            "page_daily_follows_unique": ("Daily follows", follows),
            "page_daily_unfollows_unique": ("Daily unfollows", lambda s, e: follows(s, e) // 20),
            "page_video_views": ("Video views", gain(lambda c: c.views)),
            "page_total_actions": ("Total actions", gain(lambda c: c.reach // 200)),
            "page_actions_post_reactions_like_total": ("Likes", gain(lambda c: c.likes)),
        }
        self.check_metrics(request, set(metrics), _REMOVED_PAGE)
        return self.daily_insights(request, account.id, metrics, now, first_end_hour=8)

    def post_edge(self, request: Request, post: Post, edge: str, now: float) -> Response:
        c = self.world.counters(post, now)
        if edge in ("reactions", "likes", "comments"):
            count = {"reactions": c.likes, "likes": reactions_by_type(c.likes)["like"],
                     "comments": c.comments}[edge]
            body: dict[str, Any] = {"data": []}
            if request.query_params.get("summary"):
                body["summary"] = {"total_count": count}
            return json_response(body)
        if edge != "insights":
            raise Refusal(no_field(edge, self.post_node))
        names = self.check_metrics(request, _POST_METRICS, _REMOVED_POST)
        by_type = reactions_by_type(c.likes)
        values: dict[str, Any] = {
            "post_media_view": c.views, "post_total_media_view_unique": c.reach,
            "post_reactions_by_type_total": by_type, "post_clicks": c.views // 50,
            "post_reactions_like_total": by_type["like"],
            "post_video_views": c.views if post.is_video else 0,
        }
        rows = [{"name": n, "period": "lifetime", "values": [{"value": values[n]}],
                 "title": n.replace("_", " ").capitalize(), "description": f"{n} of this post",
                 "id": f"{post.id}/insights/{n}/lifetime"} for n in names]
        return self.insights(request, post.id, rows)

    def delivery(self, event: str, account: Account, post: Post | None,
                 body: dict[str, Any]) -> list[Delivery]:
        post = post or next(self.world.posts(account, self.now()), None)
        item = str(body.get("item", event if event not in ("", "feed") else "comment"))
        ident, object_id = self.event_ids(item, account, post, body)
        fan = self.world.handle((account.index + 1) % self.world.size)
        value: dict[str, Any] = {"item": item, "verb": str(body.get("verb", "add")),
                                 "post_id": post.id if post else "",
                                 "from": {"id": "10" + object_id[2:15], "name": fan},
                                 "created_time": int(self.now())}
        if item == "reaction":
            value["reaction_type"] = str(body.get("reaction_type", "like"))
        elif item == "comment":
            value["comment_id"] = f"{post.id if post else account.id}_{object_id}"
            value["message"] = str(body.get("text", "nice!"))
        return self.meta_delivery(item, account, {"field": "feed", "value": value}, ident)
