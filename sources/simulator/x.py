"""X API v2 and its OAuth 2.0 token endpoints and webhooks.

Paths: ``/2/users/me``, ``/2/users/:id``, ``/2/users?ids=``, ``/2/users/by/username/:username``,
``/2/users/by?usernames=``, ``/2/users/:id/tweets`` (``max_results`` 5-100,
``pagination_token``, ``since_id``, ``until_id``, ``start_time``, ``end_time``), ``/2/tweets/:id``,
``/2/tweets?ids=``; ``POST /2/oauth2/token`` (refresh, rotating), ``POST /oauth2/token``
(app-only bearer); ``/2/webhooks`` (CRC on register and on ``PUT``). Limits per endpoint per
user token (or per app for an app bearer) in 15-minute windows, with ``x-rate-limit-*`` on every
answer; beyond them 429.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
from datetime import UTC, datetime
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
    iso_z,
    json_response,
)
from creatorpulse.sources.simulator.limits import FixedWindow
from creatorpulse.sources.simulator.webhooks import Delivery, delivery_id
from creatorpulse.sources.simulator.world import Account, Post

# endpoint -> (per app, per user) requests per 15 minutes
LIMITS = {
    "users_tweets": (10_000, 900), "tweets": (3_500, 5_000), "tweet": (450, 900),
    "users_by_username": (300, 900), "users": (300, 900), "users_me": (75, 75),
    "webhooks": (15, 15),
}
SCOPE = "tweet.read users.read offline.access"
_USER_FIELDS = {"id", "name", "username", "created_at", "description", "profile_image_url",
                "public_metrics", "verified", "protected", "location", "url"}
_TWEET_FIELDS = {"id", "text", "edit_history_tweet_ids", "created_at", "public_metrics",
                 "author_id", "non_public_metrics", "organic_metrics", "lang",
                 "conversation_id", "possibly_sensitive"}
PROBLEM = "application/problem+json"


def problem(status: int, title: str, detail: str | None = None,
            kind: str = "about:blank") -> Response:
    return json_response({"title": title, "detail": detail or title, "type": kind,
                          "status": status}, status, media_type=PROBLEM)


def invalid_request(parameter: str, value: str, message: str) -> Refusal:
    return Refusal(json_response({
        "errors": [{"parameters": {parameter: [value]}, "message": message}],
        "title": "Invalid Request", "detail": "One or more parameters to your request was invalid.",
        "type": "https://api.twitter.com/2/problems/invalid-request"}, 400, media_type=PROBLEM))


def not_found(kind: str, parameter: str, value: str) -> dict[str, Any]:
    return {"value": value, "detail": f"Could not find {kind} with {parameter}: [{value}].",
            "title": "Not Found Error", "resource_type": kind, "parameter": parameter,
            "resource_id": value, "type": "https://api.twitter.com/2/problems/resource-not-found"}


def page_token(k: int, owner: str) -> str:
    """An opaque ``next_token``: the post index to resume from, bound to the timeline's owner."""
    raw = f"{k}:{owner}:{hashlib.sha256(f'{k}:{owner}'.encode()).hexdigest()[:12]}"
    return base64.b32encode(raw.encode()).decode().rstrip("=").lower()


def read_page_token(token: str, owner: str) -> int:
    raw = base64.b32decode(token.upper() + "=" * (-len(token) % 8)).decode()
    k = raw.partition(":")[0]
    if page_token(int(k), owner) != token:
        msg = "not a token of this timeline"
        raise ValueError(msg)
    return int(k)


def v1_time(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%a %b %d %H:%M:%S +0000 %Y")


def parse_time(text: str, parameter: str) -> float:
    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise invalid_request(parameter, text, f"Invalid {parameter} (RFC 3339)") from None
    if stamp.tzinfo is None:
        raise invalid_request(parameter, text, f"Invalid {parameter} (no zone)")
    return stamp.timestamp()


class XApp(PlatformApp):
    platform = "x"
    new_content_event = "tweet_create_events"
    rotate_refresh = True

    def __init__(self, sim: Sim) -> None:
        super().__init__(sim)
        self.windows: dict[tuple[str, bool], FixedWindow] = {}
        self.webhooks: dict[str, dict[str, Any]] = {}

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/2/users/me", self.api("users_me", self.users_me)),
            Route("/2/users/by/username/{username}",
                  self.api("users_by_username", self.user_by_username)),
            Route("/2/users/by", self.api("users_by_username", self.users_by_usernames)),
            Route("/2/users/{id}/tweets", self.api("users_tweets", self.timeline)),
            Route("/2/users/{id}", self.api("users", self.user)),
            Route("/2/users", self.api("users", self.users)),
            Route("/2/tweets/{id}", self.api("tweet", self.tweet)),
            Route("/2/tweets", self.api("tweets", self.tweets)),
            Route("/2/oauth2/token", self.token, methods=["POST"]),
            Route("/oauth2/token", self.app_token, methods=["POST"]),
            Route("/2/webhooks", self.api("webhooks", self.webhooks_root),
                  methods=["GET", "POST"]),
            Route("/2/webhooks/{id}", self.api("webhooks", self.webhook_one),
                  methods=["PUT", "DELETE"]),
        ]

    # --- pipeline hooks ----------------------------------------------------------------------

    def auth_error(self, problem_: str) -> Response:
        return problem(401, "Unauthorized")

    def limit(self, endpoint: str, call: Call, cost: int) -> tuple[dict[str, str], Response | None]:
        user = call.account is not None
        window = self.windows.get((endpoint, user))
        if window is None:
            per_app, per_user = LIMITS[endpoint]
            cap = self.config.x_limit or (per_user if user else per_app)
            window = self.windows[(endpoint, user)] = FixedWindow.every(cap, self.config.x_window)
        ok = window.take(call.credential, call.now, cost)
        headers = {"x-rate-limit-limit": str(window.limit),
                   "x-rate-limit-remaining": str(window.remaining(call.credential, call.now)),
                   "x-rate-limit-reset": str(int(window.reset_at(call.now)))}
        return headers, None if ok else problem(429, "Too Many Requests")

    def forced_throttle(self, code: Any) -> Response:
        response = problem(429, "Too Many Requests")
        # The pipeline's own x-rate-limit-* headers follow; this one must say "none left".
        response.headers["x-rate-limit-remaining"] = "0"
        return response

    def bad_parameter(self, message: str) -> Response:
        return json_response({"errors": [{"message": message}], "title": "Invalid Request",
                              "detail": "One or more parameters to your request was invalid.",
                              "type": "https://api.twitter.com/2/problems/invalid-request"},
                             400, media_type=PROBLEM)

    def transient_error(self, status: int) -> Response:
        return problem(status, "Service Unavailable")

    # --- objects -----------------------------------------------------------------------------

    def fields(self, request: Request, name: str, allowed: set[str]) -> set[str]:
        text = request.query_params.get(name, "")
        fields = {f.strip() for f in text.split(",") if f.strip()}
        for f in sorted(fields - allowed):
            raise invalid_request(name, f, f"The `{name}` query parameter value [{f}] is not one "
                                  f"of [{','.join(sorted(allowed))}]")
        return fields

    def user_object(self, account: Account, fields: set[str], now: float) -> dict[str, Any]:
        out: dict[str, Any] = {"id": account.id, "name": account.name,
                               "username": account.handle}
        extra = {
            "created_at": iso_z(account.first - 900 * 86_400, ms=True),
            "description": f"{account.name}, posting daily", "verified": False,
            "protected": False, "location": "Internet", "url": "",
            "profile_image_url": f"https://pbs.twimg.example/{account.id}_normal.jpg",
        }
        for f in fields:
            if f == "public_metrics":
                totals = self.world.totals(account, now)
                out[f] = {"followers_count": account.followers(now),
                          "following_count": account.following,
                          "tweet_count": self.world.post_count(account, now),
                          "listed_count": account.base_followers // 500,
                          "like_count": totals.likes // 50 + account.following,
                          "media_count": self.world.post_count(account, now) // 3}
            elif f in extra:
                out[f] = extra[f]
        return out

    def tweet_object(self, post: Post, fields: set[str], call: Call,
                     errors: list[dict[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {"id": post.id, "text": f"{post.title} by @{post.account.handle}",
                               "edit_history_tweet_ids": [post.id]}
        c = self.world.counters(post, call.now)
        for f in fields:
            if f == "public_metrics":
                out[f] = {"retweet_count": c.shares, "reply_count": c.comments,
                          "like_count": c.likes, "quote_count": c.shares // 5,
                          "bookmark_count": c.saves, "impression_count": c.views}
            elif f in ("non_public_metrics", "organic_metrics"):
                own = call.account is not None and call.account.index == post.account.index
                if not own or call.now - post.published > 30 * 86_400:
                    errors.append({
                        "resource_id": post.id, "parameter": f, "resource_type": "tweet",
                        "section": "data", "title": "Field Authorization Error", "value": post.id,
                        "detail": f"Sorry, you are not authorized to access '{f}' on a Tweet.",
                        "type": "https://api.twitter.com/2/problems/not-authorized-for-field"})
                elif f == "non_public_metrics":
                    out[f] = {"impression_count": c.views, "url_link_clicks": c.views // 200,
                              "user_profile_clicks": c.views // 150}
                else:
                    out[f] = {"impression_count": c.views, "like_count": c.likes,
                              "reply_count": c.comments, "retweet_count": c.shares,
                              "url_link_clicks": c.views // 200,
                              "user_profile_clicks": c.views // 150}
            elif f == "created_at":
                out[f] = iso_z(post.published, ms=True)
            elif f in ("author_id", "conversation_id"):
                out[f] = post.account.id if f == "author_id" else post.id
            elif f == "lang":
                out[f] = "en"
            elif f == "possibly_sensitive":
                out[f] = False
        return out

    def body(self, data: Any, errors: list[dict[str, Any]], **extra: Any) -> Response:
        out: dict[str, Any] = {}
        if data is not None and data != []:
            out["data"] = data
        out.update(extra)
        if errors:
            out["errors"] = errors
        return json_response(out)

    # --- users -------------------------------------------------------------------------------

    async def users_me(self, request: Request, call: Call) -> Response:
        if call.account is None:
            return problem(403, "Unsupported Authentication", "Authenticating with OAuth 2.0 "
                           "Application-Only is forbidden for this endpoint.  Supported "
                           "authentication types are [OAuth 1.0a User Context, OAuth 2.0 User "
                           "Context].", "https://api.twitter.com/2/problems/unsupported-authentication")
        fields = self.fields(request, "user.fields", _USER_FIELDS)
        return self.body(self.user_object(call.account, fields, call.now), [])

    def lookup_users(self, request: Request, call: Call, keys: list[str],
                     by_name: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        fields = self.fields(request, "user.fields", _USER_FIELDS)
        data, errors = [], []
        for key in keys:
            account = (self.world.find_handle(self.platform, key) if by_name
                       else self.world.find_account(self.platform, key))
            if account is None:
                errors.append(not_found("user", "username" if by_name else "id", key))
            else:
                data.append(self.user_object(account, fields, call.now))
        return data, errors

    async def user(self, request: Request, call: Call) -> Response:
        data, errors = self.lookup_users(request, call, [request.path_params["id"]], False)
        return self.body(data[0] if data else None, errors)

    async def user_by_username(self, request: Request, call: Call) -> Response:
        data, errors = self.lookup_users(request, call, [request.path_params["username"]], True)
        return self.body(data[0] if data else None, errors)

    async def users(self, request: Request, call: Call) -> Response:
        keys = [k for k in request.query_params.get("ids", "").split(",") if k]
        if not 1 <= len(keys) <= 100:
            raise invalid_request("ids", ",".join(keys), "The `ids` query parameter value must "
                                  "list 1 to 100 ids")
        return self.body(*self.lookup_users(request, call, keys, False))

    async def users_by_usernames(self, request: Request, call: Call) -> Response:
        keys = [k for k in request.query_params.get("usernames", "").split(",") if k]
        if not 1 <= len(keys) <= 100:
            raise invalid_request("usernames", ",".join(keys), "The `usernames` query parameter "
                                  "value must list 1 to 100 usernames")
        return self.body(*self.lookup_users(request, call, keys, True))

    # --- tweets ------------------------------------------------------------------------------

    async def timeline(self, request: Request, call: Call) -> Response:
        q = request.query_params
        account = self.world.find_account(self.platform, request.path_params["id"])
        if account is None:
            return self.body(None, [not_found("user", "id", request.path_params["id"])])
        fields = self.fields(request, "tweet.fields", _TWEET_FIELDS)
        size_text = q.get("max_results", "10")
        size = int(size_text) if size_text.isdigit() else -1
        if not 5 <= size <= 100:
            raise invalid_request("max_results", size_text, f"The `max_results` query parameter "
                                  f"value [{size_text}] is not between 5 and 100")
        floor = max(-1, self.world.latest(account, call.now) - 3200)  # only the newest 3,200
        for name in ("since_id", "until_id"):
            if q.get(name):
                found = self.world.ids.post_index(self.platform, q[name])
                if found is None:
                    raise invalid_request(name, q[name], f"The `{name}` query parameter value "
                                          f"[{q[name]}] is not valid")
        since_k = self.world.ids.post_index(self.platform, q["since_id"])[1] if q.get("since_id") \
            else -1
        start = self.world.latest(account, call.now)
        if q.get("until_id"):
            start = min(start, self.world.ids.post_index(self.platform, q["until_id"])[1] - 1)
        if q.get("end_time"):
            start = min(start, account.published_count(parse_time(q["end_time"], "end_time")) - 1)
        if q.get("start_time"):
            since_t = parse_time(q["start_time"], "start_time")
            since_k = max(since_k, account.published_count(since_t - 1e-6) - 1)
        if q.get("pagination_token"):
            token = q["pagination_token"]
            try:
                start = min(start, read_page_token(token, account.id))
            except ValueError:
                raise invalid_request("pagination_token", token, "The `pagination_token` query "
                                      "parameter value is not valid") from None
        low = max(since_k, floor)
        posts = (p for p in self.world.posts(account, call.now, start) if p.k > low)
        page = [p for _, p in zip(range(size), posts, strict=False)]
        more = next(posts, None)
        errors: list[dict[str, Any]] = []
        data = [self.tweet_object(p, fields, call, errors) for p in page]
        meta: dict[str, Any] = {"result_count": len(data)}
        if page:
            meta.update(newest_id=page[0].id, oldest_id=page[-1].id)
        if more is not None:
            meta["next_token"] = page_token(more.k, account.id)
        if q.get("pagination_token") and page:
            meta["previous_token"] = page_token(page[0].k + size, account.id)
        extra: dict[str, Any] = {}
        expansions = self.fields(request, "expansions", {"author_id"})
        user_fields = self.fields(request, "user.fields", _USER_FIELDS)
        if "author_id" in expansions and data:  # the author of every tweet: the user
            extra["includes"] = {"users": [self.user_object(account, user_fields, call.now)]}
        return self.body(data, errors, **extra, meta=meta)

    def lookup_tweets(self, request: Request, call: Call,
                      ids: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        fields = self.fields(request, "tweet.fields", _TWEET_FIELDS)
        data: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for ident in ids:
            post = self.world.find_post(self.platform, ident)
            if post is None or not self.world.exists(post, call.now):
                errors.append(not_found("tweet", "id", ident))
            else:
                data.append(self.tweet_object(post, fields, call, errors))
        return data, errors

    async def tweet(self, request: Request, call: Call) -> Response:
        data, errors = self.lookup_tweets(request, call, [request.path_params["id"]])
        return self.body(data[0] if data else None, errors)

    async def tweets(self, request: Request, call: Call) -> Response:
        ids = [k for k in request.query_params.get("ids", "").split(",") if k]
        if not 1 <= len(ids) <= 100:
            raise invalid_request("ids", ",".join(ids), "The `ids` query parameter value must "
                                  "list 1 to 100 ids")
        return self.body(*self.lookup_tweets(request, call, ids))

    # --- OAuth -------------------------------------------------------------------------------

    def basic_client(self, request: Request) -> str | None:
        auth = request.headers.get("authorization", "")
        if not auth.lower().startswith("basic "):
            return None
        try:
            client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
        except ValueError:
            return ""
        return client_id if (client_id, secret) == (self.client.id, self.client.secret) else ""

    async def token(self, request: Request) -> Response:
        form = await form_of(request)
        basic = self.basic_client(request)
        client_id = basic if basic is not None else form.get("client_id")
        if client_id != self.client.id:
            return json_response({"error": "unauthorized_client",
                                  "error_description": "Missing valid authorization header"}, 401)
        if form.get("grant_type") != "refresh_token":
            return json_response({"error": "invalid_request",
                                  "error_description": "Missing required parameter "
                                  "[grant_type]."}, 400)
        issued = self.tokens.refresh(form.get("refresh_token"), self.now(), rotate=True)
        if issued is None:
            return json_response({"error": "invalid_request",
                                  "error_description": "Value passed for the token was "
                                  "invalid."}, 400)
        return json_response({"token_type": "bearer",
                              "expires_in": int(self.config.ttl(self.platform)),
                              "access_token": issued[0], "scope": SCOPE,
                              "refresh_token": issued[1]})

    async def app_token(self, request: Request) -> Response:
        form = await form_of(request)
        if not self.basic_client(request):
            return problem(403, "Forbidden", "Unable to verify your credentials")
        if form.get("grant_type") != "client_credentials":
            return problem(400, "Invalid Request", "grant_type must be client_credentials")
        token = self.tokens.issue(None, self.now(), 0, prefix="AAAAAAAAAAAAAAAAAAAAA")
        return json_response({"token_type": "bearer", "access_token": token})

    # --- webhooks ----------------------------------------------------------------------------

    async def crc(self, url: str) -> bool:
        token = secrets.token_urlsafe(24)
        sep = "&" if "?" in url else "?"
        try:
            status, body = await asyncio.to_thread(self.sim.sender.transport, "GET",
                                                   f"{url}{sep}crc_token={token}", None, None, 3.0)
        except ValueError:
            return False
        try:
            answer = json.loads(body).get("response_token")
        except (ValueError, AttributeError):
            return False
        return status == 200 and answer == signing.x_crc_response(self.client.secret, token)

    async def webhooks_root(self, request: Request, call: Call) -> Response:
        if request.method == "GET":
            return self.body(list(self.webhooks.values()), [],
                             meta={"result_count": len(self.webhooks)})
        try:
            url = json.loads(await request.body()).get("url", "")
        except (ValueError, AttributeError):
            url = ""
        if not await self.crc(str(url)):
            return json_response({"errors": [{"message": "CRC validation failed"}],
                                  "title": "Invalid Request", "detail": "CRC validation failed",
                                  "type": "https://api.twitter.com/2/problems/invalid-request"},
                                 400, media_type=PROBLEM)
        ident = str(1_800_000_000_000_000_000 + len(self.webhooks))
        self.webhooks[ident] = {"id": ident, "url": url, "valid": True,
                                "created_at": iso_z(call.now, ms=True)}
        return self.body(self.webhooks[ident], [])

    async def webhook_one(self, request: Request, call: Call) -> Response:
        hook = self.webhooks.get(request.path_params["id"])
        if hook is None:
            return self.body(None, [not_found("webhook", "webhook_id", request.path_params["id"])])
        if request.method == "DELETE":
            del self.webhooks[hook["id"]]
            return self.body({"deleted": True}, [])
        hook["valid"] = await self.crc(hook["url"])
        return self.body({"valid": hook["valid"]}, [])

    def delivery(self, event: str, account: Account, post: Post | None,
                 body: dict[str, Any]) -> list[Delivery]:
        now = self.now()
        post = post or next(self.world.posts(account, now), None)
        event = event or "favorite_events"
        fan_index = (account.index + 1) % self.world.size
        fan = {"id_str": self.world.ids.account(self.platform, fan_index),
               "screen_name": self.world.handle(fan_index)}
        me = {"id_str": account.id, "screen_name": account.handle}
        ident = delivery_id(self.platform, event, account.id, post.id if post else "",
                            body.get("seq", ""), int(now))
        status = {"id_str": post.id if post else "", "text": post.title if post else "",
                  "created_at": v1_time(post.published if post else now), "user": me}
        if event == "tweet_create_events":
            item: dict[str, Any] = {**status, "timestamp_ms": str(int(now * 1000))}
        elif event == "tweet_delete_events":
            item = {"status": {"id": status["id_str"], "user_id": account.id},
                    "timestamp_ms": str(int(now * 1000))}
        elif event == "follow_events":
            item = {"type": "follow", "created_timestamp": str(int(now * 1000)),
                    "target": me, "source": fan}
        else:
            event = "favorite_events"
            item = {"id": ident, "created_at": v1_time(now), "timestamp_ms": int(now * 1000),
                    "favorited_status": status, "user": fan}
        raw = json.dumps({"for_user_id": account.id, event: [item]},
                         separators=(",", ":")).encode()
        secret = self.client.secret

        def sign(data: bytes) -> dict[str, str]:
            return {"x-twitter-webhooks-signature": signing.x_signature(secret, data)}

        urls = [h["url"] for h in self.webhooks.values() if h["valid"]] or [self.webhook_url()]
        return [Delivery(ident if n == 0 else f"{ident}-{n}", self.platform, event, url, raw,
                         "application/json", sign) for n, url in enumerate(urls)]


