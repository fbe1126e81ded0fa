"""TikTok API v2 (Display API) and its OAuth token endpoint.

Paths: ``GET /v2/user/info/?fields=``, ``POST /v2/video/list/?fields=`` (body ``cursor``,
``max_count``), ``POST /v2/video/query/?fields=`` (body ``filters.video_ids``),
``POST /v2/oauth/token/`` (``refresh_token``: the old refresh token stops working at once;
``client_credentials``). Limits: per endpoint, per credential, in a sliding minute; beyond it 429
``rate_limit_exceeded``. No rate-limit headers.
"""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from creatorpulse.sources.simulator import signing
from creatorpulse.sources.simulator.common import (
    Call,
    PlatformApp,
    Refusal,
    Sim,
    form_of,
    json_response,
)
from creatorpulse.sources.simulator.limits import SlidingWindow
from creatorpulse.sources.simulator.webhooks import Delivery, delivery_id
from creatorpulse.sources.simulator.world import Account, Post

SCOPES = "user.info.basic,user.info.profile,user.info.stats,video.list"
_USER_FIELDS = {
    "open_id": "user.info.basic", "union_id": "user.info.basic", "avatar_url": "user.info.basic",
    "avatar_url_100": "user.info.basic", "avatar_large_url": "user.info.basic",
    "display_name": "user.info.basic", "bio_description": "user.info.profile",
    "profile_deep_link": "user.info.profile", "is_verified": "user.info.profile",
    "username": "user.info.profile", "follower_count": "user.info.stats",
    "following_count": "user.info.stats", "likes_count": "user.info.stats",
    "video_count": "user.info.stats",
}
_VIDEO_FIELDS = {"id", "title", "video_description", "create_time", "duration", "cover_image_url",
                 "share_url", "embed_html", "embed_link", "like_count", "comment_count",
                 "share_count", "view_count", "height", "width", "is_aigc"}
_log_ids = itertools.count(1)


def log_id() -> str:
    return time.strftime("%Y%m%d%H%M%S", time.gmtime()) + f"{next(_log_ids):018X}"


def tiktok_body(data: dict[str, Any], code: str = "ok", message: str = "") -> dict[str, Any]:
    return {"data": data, "error": {"code": code, "message": message, "log_id": log_id()}}


def tiktok_error(status: int, code: str, message: str) -> Response:
    return json_response(tiktok_body({}, code, message), status)


class TikTokApp(PlatformApp):
    platform = "tiktok"
    new_content_event = "video.publish.completed"
    rotate_refresh = True

    def __init__(self, sim: Sim) -> None:
        super().__init__(sim)
        self.windows: dict[str, SlidingWindow] = {}

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/v2/user/info/", self.api("user_info", self.user_info)),
            Route("/v2/video/list/", self.api("video_list", self.video_list), methods=["POST"]),
            Route("/v2/video/query/", self.api("video_query", self.video_query),
                  methods=["POST"]),
            Route("/v2/oauth/token/", self.token, methods=["POST"]),
        ]

    def auth_error(self, problem: str) -> Response:
        return tiktok_error(401, "access_token_invalid",
                            "The access token is invalid or not found in the request.")

    def limit(self, endpoint: str, call: Call, cost: int) -> tuple[dict[str, str], Response | None]:
        window = self.windows.setdefault(
            endpoint, SlidingWindow(self.config.tiktok_limit, self.config.tiktok_window))
        if window.take(call.credential, call.now, cost):
            return {}, None
        return {}, tiktok_error(429, "rate_limit_exceeded",
                                "The API rate limit was exceeded. Please try again later.")

    def forced_throttle(self, code: Any) -> Response:
        return tiktok_error(429, "rate_limit_exceeded",
                            "The API rate limit was exceeded. Please try again later.")

    def bad_parameter(self, message: str) -> Response:
        return tiktok_error(400, "invalid_params", f"The request parameters are malformed: "
                            f"{message}.")

    def transient_error(self, status: int) -> Response:
        return tiktok_error(status, "internal_error",
                            "Something went wrong. Please try again later.")

    def fields(self, request: Request, allowed: set[str] | dict[str, str]) -> list[str]:
        fields = [f.strip() for f in request.query_params.get("fields", "").split(",")
                  if f.strip()]
        unknown = [f for f in fields if f not in allowed]
        if not fields or unknown:
            what = f"unknown field {unknown[0]}" if unknown else "fields is required"
            raise Refusal(tiktok_error(400, "invalid_params",
                                       f"The request parameters are malformed: {what}."))
        return fields

    async def json_body(self, request: Request) -> dict[str, Any]:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise Refusal(tiktok_error(400, "invalid_params", "The request body is not JSON."))
        return body

    def user_of(self, call: Call) -> Account:
        if call.account is None:
            raise Refusal(tiktok_error(401, "scope_not_authorized",
                                       "The user did not authorize the scope required."))
        return call.account

    async def user_info(self, request: Request, call: Call) -> Response:
        account = self.user_of(call)
        fields = self.fields(request, _USER_FIELDS)
        now = call.now
        values: dict[str, Any] = {
            "open_id": account.id, "union_id": "u" + account.id[1:],
            "avatar_url": f"https://p16.tiktokcdn.example/{account.id}.jpeg",
            "avatar_url_100": f"https://p16.tiktokcdn.example/{account.id}_100.jpeg",
            "avatar_large_url": f"https://p16.tiktokcdn.example/{account.id}_1080.jpeg",
            "display_name": account.name, "bio_description": f"{account.name} makes videos",
            "profile_deep_link": f"https://vm.tiktok.com/{account.handle}/",
            "is_verified": account.base_followers > 1_000_000, "username": account.handle,
            "follower_count": account.followers(now), "following_count": account.following,
        }
        if "likes_count" in fields:
            values["likes_count"] = self.world.totals(account, now).likes
        if "video_count" in fields:
            values["video_count"] = self.world.post_count(account, now)
        return json_response(tiktok_body({"user": {f: values[f] for f in fields}}))

    def video(self, post: Post, fields: list[str], now: float) -> dict[str, Any]:
        c = self.world.counters(post, now)
        a = post.account
        share = f"https://www.tiktok.com/@{a.handle}/video/{post.id}?utm_campaign=tt4d_open_api"
        values: dict[str, Any] = {
            "id": post.id, "title": post.title, "video_description": f"{post.title} #fyp",
            "create_time": int(post.published), "duration": post.duration,
            "cover_image_url": f"https://p16.tiktokcdn.example/{post.id}.jpeg",
            "share_url": share, "embed_link": f"https://www.tiktok.com/player/v1/{post.id}",
            "embed_html": f'<blockquote class="tiktok-embed" cite="{share}"></blockquote>',
            "like_count": c.likes, "comment_count": c.comments, "share_count": c.shares,
            "view_count": c.views, "height": 1920, "width": 1080, "is_aigc": False,
        }
        return {f: values[f] for f in fields}

    async def video_list(self, request: Request, call: Call) -> Response:
        account = self.user_of(call)
        fields = self.fields(request, _VIDEO_FIELDS)
        body = await self.json_body(request)
        size = body.get("max_count", 10)
        cursor = body.get("cursor")
        if not isinstance(size, int) or not 1 <= size <= 20:
            raise Refusal(tiktok_error(400, "invalid_params",
                                       "max_count must be an integer from 1 to 20."))
        if cursor is not None and not isinstance(cursor, int):
            raise Refusal(tiktok_error(400, "invalid_params", "cursor must be an int64."))
        now = call.now
        # cursor: unix milliseconds; videos created strictly before it.
        before = now if cursor is None else min(now, cursor / 1000 - 0.001)
        start = account.published_count(before) - 1
        posts = self.world.posts(account, now, start)
        page = [p for _, p in zip(range(size), posts, strict=False)]
        more = next(posts, None) is not None
        next_cursor = int(page[-1].published * 1000) if page else (cursor or int(now * 1000))
        return json_response(tiktok_body({"videos": [self.video(p, fields, now) for p in page],
                                          "cursor": next_cursor, "has_more": more}))

    async def video_query(self, request: Request, call: Call) -> Response:
        account = self.user_of(call)
        fields = self.fields(request, _VIDEO_FIELDS)
        body = await self.json_body(request)
        ids = (body.get("filters") or {}).get("video_ids")
        if not isinstance(ids, list) or not 1 <= len(ids) <= 20:
            raise Refusal(tiktok_error(400, "invalid_params",
                                       "filters.video_ids must list 1 to 20 video ids."))
        videos = []
        for ident in ids:
            post = self.world.find_post(self.platform, str(ident))
            if post and post.account.index == account.index and self.world.exists(post, call.now):
                videos.append(self.video(post, fields, call.now))
        return json_response(tiktok_body({"videos": videos, "cursor": 0, "has_more": False}))

    async def token(self, request: Request) -> Response:
        form = await form_of(request)

        def oauth_error(error: str, description: str) -> Response:
            return json_response({"error": error, "error_description": description,
                                  "log_id": log_id()}, 400)

        client = (form.get("client_key"), form.get("client_secret"))
        if client != (self.client.id, self.client.secret):
            return oauth_error("invalid_client", "Client key or secret is invalid.")
        now = self.now()
        if form.get("grant_type") == "client_credentials":
            token = self.tokens.issue(None, now, 7200, prefix="clt.")
            return json_response({"access_token": token,
                                  "expires_in": 7200, "token_type": "Bearer"})
        if form.get("grant_type") != "refresh_token":
            return oauth_error("unsupported_grant_type", "The grant type is not supported.")
        issued = self.tokens.refresh(form.get("refresh_token"), now, rotate=True)
        if issued is None:
            return oauth_error("invalid_grant", "Refresh token is invalid or expired.")
        grant = self.tokens.lookup(issued[0])
        assert grant is not None and grant.account is not None
        return json_response({
            "open_id": self.world.account(self.platform, grant.account).id, "scope": SCOPES,
            "access_token": issued[0], "expires_in": int(self.config.ttl(self.platform)),
            "refresh_token": issued[1], "refresh_expires_in": int(self.config.tiktok_refresh_ttl),
            "token_type": "Bearer"})

    def delivery(self, event: str, account: Account, post: Post | None,
                 body: dict[str, Any]) -> list[Delivery]:
        now = int(self.now())
        event = event or "video.publish.completed"
        if event == "authorization.removed":
            content: dict[str, Any] = {"reason": int(body.get("reason", 1))}
        else:
            post = post or next(self.world.posts(account, now), None)
            content = {"share_id": f"video.{account.index}.{post.id if post else ''}",
                       "video_id": post.id if post else ""}
        payload = {"client_key": self.client.id, "event": event, "create_time": now,
                   "user_openid": account.id, "content": json.dumps(content)}
        raw = json.dumps(payload, separators=(",", ":")).encode()
        ident = delivery_id(self.platform, event, account.id, content, body.get("seq", ""), now)
        secret = self.client.secret

        def sign(data: bytes) -> dict[str, str]:
            # t is the wall clock of the attempt, as receivers check it against theirs.
            return {"TikTok-Signature": signing.tiktok_signature(secret, int(time.time()), data)}

        return [Delivery(ident, self.platform, event, self.webhook_url(), raw,
                         "application/json", sign)]
