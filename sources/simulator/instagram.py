"""Instagram Graph API (business and creator accounts), on either login's host.

Paths (any ``/vNN.N`` prefix, or none): ``/me``, ``/{ig-user-id}`` (with
``business_discovery.username(x){...}``), ``/{ig-user-id}/media``, ``/{ig-user-id}/insights``,
``/{ig-media-id}``, ``/{ig-media-id}/insights``; tokens: ``/oauth/access_token``
(``fb_exchange_token``), ``/access_token`` (``ig_exchange_token``) and
``/refresh_access_token`` (``ig_refresh_token``, once the token is 24 h old).
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from creatorpulse.sources.simulator.common import Refusal, json_response
from creatorpulse.sources.simulator.meta import (
    OMIT,
    MetaApp,
    graph_error,
    graph_time,
    no_field,
)
from creatorpulse.sources.simulator.webhooks import Delivery
from creatorpulse.sources.simulator.world import Account, Post

_MEDIA_METRICS = {"views", "reach", "likes", "comments", "shares", "saved", "total_interactions",
                  "profile_visits", "follows", "profile_activity", "ig_reels_avg_watch_time",
                  "ig_reels_video_view_total_time", "total_likes", "total_comments",
                  "total_views"}
_REMOVED_MEDIA = {"impressions", "plays", "video_views", "clips_replays_count",
                  "ig_reels_aggregated_all_plays_count"}
_REMOVED_USER = {"impressions"}


class InstagramApp(MetaApp):
    platform = "instagram"
    new_content_event = "comments"
    account_node = "IGUser"
    post_node = "IGMedia"
    webhook_object = "instagram"
    buc_type = "instagram"
    buc_code = 80002
    content_edges = ("media",)
    buc_message = ("(#80002) There have been too many calls to this Instagram account. Wait a "
                   "bit and try again. For more info, please refer to "
                   "https://developers.facebook.com/docs/graph-api/overview/rate-limiting.")

    async def special(self, request: Request, parts: list[str]) -> Response | None:
        if parts == ["access_token"]:
            return self.ig_token(request, "ig_exchange_token")
        if parts == ["refresh_access_token"]:
            return self.ig_token(request, "ig_refresh_token")
        return None

    def ig_token(self, request: Request, grant_type: str) -> Response:
        q = request.query_params
        if q.get("grant_type") != grant_type:
            return graph_error(f"(#100) grant_type must be {grant_type}", 100)
        if grant_type == "ig_exchange_token" and q.get("client_secret") != self.client.secret:
            return graph_error("Error validating client secret.", 1)
        now = self.now()
        grant, problem = self.tokens.check(q.get("access_token"), now)
        if grant is None or problem:
            return self.auth_error(problem)
        if (grant_type == "ig_refresh_token"
                and now - grant.issued < self.config.instagram_refresh_min_age):
            return graph_error("(#100) The access token can be refreshed only once it is at "
                               "least 24 hours old", 100)
        ttl = self.config.ttl(self.platform)
        token = self.tokens.issue(grant.account, now, ttl)
        return json_response({"access_token": token, "token_type": "bearer",
                              "expires_in": int(ttl)})

    # --- objects -----------------------------------------------------------------------------

    def account_fields(self, account: Account, now: float) -> dict[str, Any]:
        def discovery(item: str) -> dict[str, Any]:
            match = re.match(r"business_discovery\.username\(([^)]*)\)(?:\{(.*)\})?$", item)
            if not match:
                raise Refusal(graph_error("(#100) business_discovery needs .username(...)", 100))
            other = self.world.find_handle(self.platform, match.group(1))
            if other is None:
                raise Refusal(graph_error(
                    f"Invalid user id: cannot find the business account {match.group(1)}", 110,
                    2207013))
            inner = [f.strip() for f in (match.group(2) or "id").split(",") if f.strip()]
            return self.select(self.account_fields_plain(other, now), inner, self.account_node)

        return {**self.account_fields_plain(account, now), "business_discovery": discovery}

    def account_fields_plain(self, account: Account, now: float) -> dict[str, Any]:
        return {
            "id": account.id, "ig_id": int(account.id[5:]) + 1_000_000,
            "username": account.handle, "name": account.name,
            "biography": f"{account.name} on Instagram", "website": f"https://{account.handle}.example",
            "profile_picture_url": f"https://scontent.example/{account.id}.jpg",
            "followers_count": account.followers(now), "follows_count": account.following,
            "media_count": self.world.post_count(account, now),
        }

    def post_fields(self, post: Post, now: float, fields: list[str]) -> dict[str, Any]:
        c = self.world.counters(post, now)
        reel = post.is_video and post.k % 3 != 0
        kind = "VIDEO" if post.is_video else ("CAROUSEL_ALBUM" if post.k % 5 == 0 else "IMAGE")
        shortcode = f"C{post.id[-9:]}x"
        out: dict[str, Any] = {
            "id": post.id, "ig_id": int(post.id), "caption": f"{post.title} by {post.account.name}",
            "media_type": kind, "media_product_type": "REELS" if reel else "FEED",
            "media_url": f"https://scontent.example/{post.id}.{'mp4' if post.is_video else 'jpg'}",
            "permalink": f"https://www.instagram.com/{'reel' if reel else 'p'}/{shortcode}/",
            "shortcode": shortcode, "timestamp": graph_time(post.published),
            "username": post.account.handle, "owner": {"id": post.account.id},
            "is_comment_enabled": True, "like_count": c.likes, "comments_count": c.comments,
            "shares_count": c.shares, "saved_count": c.saves, "reposts_count": c.shares // 4,
            "total_like_count": c.likes, "total_comments_count": c.comments,
            "total_views_count": c.views, "legacy_instagram_media_id": post.id,
        }
        # Fields a media of another kind does not have are left out, not refused.
        out["thumbnail_url"] = (f"https://scontent.example/{post.id}_thumb.jpg"
                                if post.is_video else OMIT)
        out["children"] = ({"data": [{"id": f"178{post.id[3:-1]}{n}"} for n in range(1, 3)]}
                           if kind == "CAROUSEL_ALBUM" else OMIT)
        return out

    # --- edges -------------------------------------------------------------------------------

    def account_edge(self, request: Request, account: Account, edge: str, fields: list[str],
                     now: float) -> Response:
        if edge == "media":
            return self.page_of_posts(request, account, fields, now)
        if edge == "insights":
            return self.user_insights(request, account, now)
        raise Refusal(no_field(edge, self.account_node))

    def user_insights(self, request: Request, account: Account, now: float) -> Response:
        w = self.world

        def gain(metric: str):
            def value(start: float, end: float) -> int:
                a, b = w.totals(account, start), w.totals(account, end)
                return max(0, getattr(b, metric) - getattr(a, metric))
            return value

        def interactions(start: float, end: float) -> int:
            return sum(gain(m)(start, end) for m in ("likes", "comments", "shares", "saves"))

        metrics = {
            "reach": ("Reach", gain("reach")), "views": ("Views", gain("views")),
            "likes": ("Likes", gain("likes")), "comments": ("Comments", gain("comments")),
            "shares": ("Shares", gain("shares")), "saves": ("Saves", gain("saves")),
            "total_interactions": ("Total interactions", interactions),
            "accounts_engaged": ("Accounts engaged",
                                 lambda s, e: interactions(s, e) * 7 // 10),
            "follower_count": ("Follower Count", lambda s, e: max(
                0, account.followers(e) - account.followers(s))),
            "profile_views": ("Profile views", lambda s, e: gain("reach")(s, e) // 50),
            "website_clicks": ("Website clicks", lambda s, e: gain("reach")(s, e) // 400),
        }
        self.check_metrics(request, set(metrics), _REMOVED_USER)
        if "period" not in request.query_params:
            return graph_error("(#100) The parameter period is required", 100)
        return self.daily_insights(request, account.id, metrics, now, first_end_hour=7)

    def post_edge(self, request: Request, post: Post, edge: str, now: float) -> Response:
        if edge != "insights":
            raise Refusal(no_field(edge, self.post_node))
        names = self.check_metrics(request, _MEDIA_METRICS, _REMOVED_MEDIA)
        c = self.world.counters(post, now)
        if c.views < 10:  # a brand-new media: Meta refuses rather than answering zeros
            return graph_error("(#10) Not enough viewers for the media to show insights", 10)
        values = {
            "views": c.views, "reach": c.reach, "likes": c.likes, "comments": c.comments,
            "shares": c.shares, "saved": c.saves,
            "total_interactions": c.likes + c.comments + c.shares + c.saves,
            "profile_visits": c.reach // 60, "follows": c.reach // 900,
            "profile_activity": c.reach // 45, "ig_reels_avg_watch_time": post.duration * 420,
            "ig_reels_video_view_total_time": c.views * post.duration * 420,
            "total_likes": c.likes, "total_comments": c.comments, "total_views": c.views,
        }
        rows = [{"name": n, "period": "lifetime", "values": [{"value": values[n]}],
                 "title": n.replace("_", " ").capitalize(),
                 "description": f"{n} of this media", "id": f"{post.id}/insights/{n}/lifetime"}
                for n in names]
        return self.insights(request, post.id, rows)

    # --- webhooks ----------------------------------------------------------------------------

    def delivery(self, event: str, account: Account, post: Post | None,
                 body: dict[str, Any]) -> list[Delivery]:
        post = post or next(self.world.posts(account, self.now()), None)
        field = event or "comments"
        ident, object_id = self.event_ids(field, account, post, body)
        fan = self.world.handle((account.index + 1) % self.world.size)
        value: dict[str, Any] = {"id": object_id, "text": str(body.get("text", "nice!")),
                                 "from": {"id": "21057" + object_id[5:], "username": fan}}
        if post is not None:
            value["media"] = {"id": post.id, "media_product_type": "FEED"}
        if field == "mentions":
            value = {"media_id": post.id if post else "", "comment_id": object_id}
        return self.meta_delivery(field, account, {"field": field, "value": value}, ident)
