"""YouTube Data API v3 (and Analytics ``/v2/reports``), Google's token endpoint, the WebSub hub.

Paths: ``/youtube/v3/channels`` (``id``, ``mine``, ``forHandle``, ``forUsername``),
``/youtube/v3/playlistItems`` (the ``UU...`` uploads playlist), ``/youtube/v3/videos`` (up to 50
ids); ``POST /token`` (``grant_type=refresh_token``); ``POST /subscribe`` (the hub). Quota: units
per app per day, reset at midnight Pacific; beyond it 403 ``quotaExceeded``. No usage headers.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import secrets
import time
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
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
from creatorpulse.sources.simulator.world import Account, Post, round_3_significant

PACIFIC = ZoneInfo("America/Los_Angeles")
SCOPE = "https://www.googleapis.com/auth/youtube.readonly"
TOPIC = "https://www.youtube.com/xml/feeds/videos.xml?channel_id="
_ANALYTICS = {"views", "likes", "dislikes", "comments", "shares", "estimatedMinutesWatched",
              "averageViewDuration", "subscribersGained", "subscribersLost"}
_QUOTA_MESSAGE = ("The request cannot be completed because you have exceeded your "
                  '<a href="/youtube/v3/getting-started#quota">quota</a>.')


def pacific_day(t: float) -> tuple[float, float]:
    """Start and end (unix seconds) of the Pacific-time day holding ``t``."""
    day = datetime.fromtimestamp(t, PACIFIC).replace(hour=0, minute=0, second=0, microsecond=0)
    nxt = (day + timedelta(days=1, hours=3)).replace(hour=0)
    return day.timestamp(), nxt.timestamp()


def google_error(status: int, message: str, reason: str, domain: str = "global",
                 extra: dict[str, str] | None = None, state: str | None = None) -> Response:
    item = {"message": message, "domain": domain, "reason": reason, **(extra or {})}
    error: dict[str, Any] = {"code": status, "message": message, "errors": [item]}
    if state:
        error["status"] = state
    return json_response({"error": error}, status)


def bad_request(message: str, reason: str, location: str) -> Refusal:
    return Refusal(google_error(400, message, reason, "youtube.parameter",
                                {"location": location, "locationType": "parameter"},
                                "INVALID_ARGUMENT"))


def duration(seconds: int) -> str:
    m, s = divmod(seconds, 60)
    return f"PT{m}M{s}S" if m else f"PT{s}S"


def etag(*parts: object) -> str:
    return base64.urlsafe_b64encode(hashlib.sha1(repr(parts).encode()).digest()).decode()[:27]  # noqa: S324


def encode_page(k: int) -> str:
    return "EAAa" + base64.urlsafe_b64encode(f"PT:{k}".encode()).decode().rstrip("=")


def decode_page(token: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(token[4:] + "=" * (-len(token[4:]) % 4)).decode()
        if token.startswith("EAAa") and raw.startswith("PT:"):
            return int(raw[3:])
    except ValueError:
        pass
    raise Refusal(google_error(400, "The request specifies an invalid page token.",
                               "invalidPageToken", "youtube.parameter",
                               {"location": "pageToken", "locationType": "parameter"}))


class YouTubeApp(PlatformApp):
    platform = "youtube"
    new_content_event = "video"

    def __init__(self, sim: Sim) -> None:
        super().__init__(sim)
        self.quota = FixedWindow(sim.config.youtube_quota, lambda t: pacific_day(t)[0],
                                 lambda t: pacific_day(t)[1])
        # channel id -> callback -> {secret, expires}
        self.websub: dict[str, dict[str, dict[str, Any]]] = {}

    def routes(self) -> list[BaseRoute]:
        costs = self.config.youtube_costs
        return [
            Route("/youtube/v3/channels", self.api("channels", self.channels,
                                                    costs.get("channels", 1))),
            Route("/youtube/v3/playlistItems", self.api("playlistItems", self.playlist_items,
                                                         costs.get("playlistItems", 1))),
            Route("/youtube/v3/videos", self.api("videos", self.videos, costs.get("videos", 1))),
            Route("/v2/reports", self.api("reports", self.reports, costs.get("reports", 1))),
            Route("/token", self.token, methods=["POST"]),
            Route("/subscribe", self.hub, methods=["POST"]),
            Route("/_sim/websub", self.websub_list),
        ]

    # --- pipeline hooks ----------------------------------------------------------------------

    def auth_error(self, problem: str) -> Response:
        response = google_error(
            401, "Request had invalid authentication credentials. Expected OAuth 2 access token, "
            "login cookie or other valid authentication credential. See "
            "https://developers.google.com/identity/sign-in/web/devconsole-project.",
            "authError", extra={"location": "Authorization", "locationType": "header"},
            state="UNAUTHENTICATED")
        response.headers["WWW-Authenticate"] = ('Bearer realm="https://accounts.google.com/", '
                                                'error="invalid_token"')
        return response

    def limit(self, endpoint: str, call: Call, cost: int) -> tuple[dict[str, str], Response | None]:
        if self.quota.take(self.client.id, call.now, cost):
            return {}, None
        return {}, google_error(403, _QUOTA_MESSAGE, "quotaExceeded", "youtube.quota")

    def forced_throttle(self, code: Any) -> Response:
        if code == "rateLimitExceeded":
            return google_error(403, "Rate Limit Exceeded", "rateLimitExceeded", "usageLimits")
        return google_error(403, _QUOTA_MESSAGE, "quotaExceeded", "youtube.quota")

    def bad_parameter(self, message: str) -> Response:
        return google_error(400, f"Invalid value: {message}", "invalidParameter",
                            "youtube.parameter", state="INVALID_ARGUMENT")

    def transient_error(self, status: int) -> Response:
        return google_error(status, "The service is currently unavailable.", "backendError",
                            state="UNAVAILABLE")

    # --- resources ---------------------------------------------------------------------------

    def parts(self, request: Request, allowed: set[str]) -> set[str]:
        part = request.query_params.get("part")
        if not part:
            raise Refusal(google_error(
                400, "No filter selected. Expected one of: id, mine, forHandle, forUsername",
                "missingRequiredParameter", "youtube.parameter",
                {"location": "part", "locationType": "parameter"}))
        wanted = {p.strip() for p in part.split(",") if p.strip()}
        unknown = wanted - allowed
        if unknown:
            msg = f"'{sorted(unknown)[0]}'"
            raise bad_request(msg, "unknownPart", "part")
        return wanted

    def channel(self, account: Account, parts: set[str], now: float) -> dict[str, Any]:
        item: dict[str, Any] = {"kind": "youtube#channel",
                                "etag": etag(account.id, int(now) // 60), "id": account.id}
        if "snippet" in parts:
            item["snippet"] = {
                "title": account.name, "description": f"Videos by {account.name}",
                "customUrl": "@" + account.handle,
                "publishedAt": iso_z(account.first - 400 * 86400),
                "thumbnails": {"default": {"url": f"https://yt3.example/{account.id}.jpg",
                                           "width": 88, "height": 88}},
                "localized": {"title": account.name, "description": f"Videos by {account.name}"},
            }
        if "contentDetails" in parts:
            item["contentDetails"] = {"relatedPlaylists": {"likes": "",
                                                           "uploads": "UU" + account.id[2:]}}
        if "statistics" in parts:
            totals = self.world.totals(account, now)
            item["statistics"] = {
                "viewCount": str(account.base_followers * 40 + totals.views),
                "subscriberCount": str(round_3_significant(account.followers(now))),
                "hiddenSubscriberCount": False,
                "videoCount": str(self.world.post_count(account, now)),
            }
        return item

    async def channels(self, request: Request, call: Call) -> Response:
        q = request.query_params
        parts = self.parts(request, {"id", "snippet", "contentDetails", "statistics",
                                     "brandingSettings", "status", "topicDetails"})
        found: list[Account] = []
        if q.get("mine") == "true":
            if call.account is None:
                raise Refusal(google_error(403, "The request is not properly authorized.",
                                           "forbidden", "youtube.channel"))
            found = [call.account]
        elif q.get("id"):
            ids = [i.strip() for i in q["id"].split(",") if i.strip()]
            if len(ids) > 50:
                raise bad_request("Too many ids (at most 50).", "invalidFilters", "id")
            found = [a for a in (self.world.find_account(self.platform, i) for i in ids) if a]
        elif q.get("forHandle") or q.get("forUsername"):
            hit = self.world.find_handle(self.platform, q.get("forHandle") or q["forUsername"])
            found = [hit] if hit else []
        else:
            raise Refusal(google_error(
                400, "No filter selected. Expected one of: forUsername, forHandle, id, mine, "
                "managedByMe, categoryId, mySubscribers", "missingRequiredParameter",
                "youtube.parameter", {"location": "parameters.", "locationType": "other"}))
        items = [self.channel(a, parts, call.now) for a in found]
        body: dict[str, Any] = {"kind": "youtube#channelListResponse",
                                "etag": etag("channels", q.get("id"), int(call.now) // 60),
                                "pageInfo": {"totalResults": len(items), "resultsPerPage": 5}}
        if items:
            body["items"] = items
        return json_response(body)

    async def playlist_items(self, request: Request, call: Call) -> Response:
        q = request.query_params
        parts = self.parts(request, {"id", "snippet", "contentDetails", "status"})
        playlist = q.get("playlistId", "")
        account = (self.world.find_account(self.platform, playlist)
                   if playlist.startswith("UU") else None)
        if account is None:
            raise Refusal(google_error(
                404, "The playlist identified with the request's <code>playlistId</code> "
                "parameter cannot be found.", "playlistNotFound", "youtube.playlistItem",
                {"location": "playlistId", "locationType": "parameter"}))
        size = int(q.get("maxResults", 5) or 5)
        if not 0 <= size <= 50:
            msg = f"Invalid value '{size}'. Values must be within the range: [0, 50]"
            raise bad_request(msg, "invalidParameter", "maxResults")
        latest = self.world.latest(account, call.now)
        start = decode_page(q["pageToken"]) if q.get("pageToken") else latest
        posts = self.world.posts(account, call.now, start)
        page = [p for _, p in zip(range(size), posts, strict=False)]
        more = next(posts, None)
        items = []
        total = self.world.post_count(account, call.now)
        for post in page:
            item_id = base64.b64encode(f"{playlist}.{post.id}".encode()).decode()
            item: dict[str, Any] = {"kind": "youtube#playlistItem", "etag": etag(post.id),
                                    "id": item_id}
            if "snippet" in parts:
                item["snippet"] = {
                    "publishedAt": iso_z(post.published), "channelId": account.id,
                    "title": post.title, "description": f"{post.title} by {account.name}",
                    "thumbnails": {"default": {"url": f"https://i.ytimg.example/vi/{post.id}/default.jpg",
                                               "width": 120, "height": 90}},
                    "channelTitle": account.name, "playlistId": playlist,
                    "position": latest - post.k,
                    "resourceId": {"kind": "youtube#video", "videoId": post.id},
                    "videoOwnerChannelTitle": account.name, "videoOwnerChannelId": account.id,
                }
            if "contentDetails" in parts:
                item["contentDetails"] = {"videoId": post.id,
                                          "videoPublishedAt": iso_z(post.published)}
            if "status" in parts:
                item["status"] = {"privacyStatus": "public"}
            items.append(item)
        body: dict[str, Any] = {"kind": "youtube#playlistItemListResponse",
                                "etag": etag(playlist, start, size, int(call.now) // 60)}
        if more is not None:
            body["nextPageToken"] = encode_page(more.k)
        if start < latest:
            body["prevPageToken"] = encode_page(min(latest, start + size))
        body["items"] = items
        body["pageInfo"] = {"totalResults": total, "resultsPerPage": size}
        return json_response(body)

    async def videos(self, request: Request, call: Call) -> Response:
        q = request.query_params
        parts = self.parts(request, {"id", "snippet", "contentDetails", "statistics", "status"})
        ids = [i.strip() for i in q.get("id", "").split(",") if i.strip()]
        if not ids:
            raise bad_request("No filter selected. Expected one of: myRating, id, chart",
                              "missingRequiredParameter", "id")
        if len(ids) > 50:
            raise bad_request("The request specifies an invalid filter parameter.",
                              "invalidFilters", "id")
        items = []
        for ident in ids:
            post = self.world.find_post(self.platform, ident)
            if post is None or not self.world.exists(post, call.now):
                continue  # videos.list leaves out what does not exist
            items.append(self.video(post, parts, call.now))
        return json_response({"kind": "youtube#videoListResponse",
                              "etag": etag("videos", ids, int(call.now)), "items": items,
                              "pageInfo": {"totalResults": len(items),
                                           "resultsPerPage": len(items)}})

    def video(self, post: Post, parts: set[str], now: float) -> dict[str, Any]:
        account = post.account
        item: dict[str, Any] = {"kind": "youtube#video", "etag": etag(post.id, int(now)),
                                "id": post.id}
        if "snippet" in parts:
            item["snippet"] = {
                "publishedAt": iso_z(post.published), "channelId": account.id,
                "title": post.title, "description": f"{post.title} by {account.name}",
                "thumbnails": {"default": {"url": f"https://i.ytimg.example/vi/{post.id}/default.jpg",
                                           "width": 120, "height": 90}},
                "channelTitle": account.name, "categoryId": "22",
                "liveBroadcastContent": "none",
            }
        if "contentDetails" in parts:
            item["contentDetails"] = {"duration": duration(post.duration), "dimension": "2d",
                                      "definition": "hd", "caption": "false",
                                      "licensedContent": False, "projection": "rectangular"}
        if "statistics" in parts:
            c = self.world.counters(post, now)
            stats = {"viewCount": str(c.views), "likeCount": str(c.likes),
                     "favoriteCount": "0", "commentCount": str(c.comments)}
            if post.likes_hidden:
                del stats["likeCount"]
            item["statistics"] = stats
        if "status" in parts:
            item["status"] = {"uploadStatus": "processed", "privacyStatus": "public"}
        return item

    # --- YouTube Analytics --------------------------------------------------------------------

    async def reports(self, request: Request, call: Call) -> Response:
        """``/v2/reports``: per-channel (or ``filters=video==ID``) gains by ``day``, ``video`` or
        over the whole range, in Pacific days, up to now."""
        q = request.query_params
        account = call.account
        if account is None or q.get("ids") not in ("channel==MINE", f"channel=={account.id}"):
            raise Refusal(google_error(403, "Forbidden", "forbidden"))
        try:
            first = datetime.strptime(q["startDate"], "%Y-%m-%d").replace(tzinfo=PACIFIC)
            last = datetime.strptime(q["endDate"], "%Y-%m-%d").replace(tzinfo=PACIFIC)
        except (KeyError, ValueError):
            raise Refusal(google_error(400, "Required parameters: startDate and endDate "
                                       "(YYYY-MM-DD)", "required")) from None
        metrics = [m for m in q.get("metrics", "").split(",") if m]
        unknown = [m for m in metrics if m not in _ANALYTICS]
        if not metrics or unknown:
            raise Refusal(google_error(400, f"Unknown identifier ({unknown[0] if unknown else ''})"
                                       " given in field parameters.metrics.", "badRequest"))
        dimension = q.get("dimensions", "")
        if dimension not in ("", "day", "video"):
            raise Refusal(google_error(400, "The query is not supported.", "badRequest"))
        posts = [p for p in self.world.posts(account, call.now)]
        video_filter = q.get("filters", "")
        if video_filter.startswith("video=="):
            wanted = set(video_filter[7:].split(","))
            posts = [p for p in posts if p.id in wanted]
        start, end = first.timestamp(), min(call.now, (last + timedelta(days=1)).timestamp())

        def values(scope: list[Post], a: float, b: float, followers: bool) -> list[int]:
            views = likes = comments = shares = watched = 0
            for post in scope:
                if post.published > b:
                    continue
                c0, c1 = self.world.counters(post, a), self.world.counters(post, b)
                views += max(0, c1.views - c0.views)
                likes += max(0, c1.likes - c0.likes)
                comments += max(0, c1.comments - c0.comments)
                shares += max(0, c1.shares - c0.shares)
                watched += max(0, c1.views - c0.views) * post.duration * 2 // 5
            gained = max(0, account.followers(b) - account.followers(a)) if followers else 0
            row = {"views": views, "likes": likes, "dislikes": 0, "comments": comments,
                   "shares": shares, "estimatedMinutesWatched": watched // 60,
                   "averageViewDuration": watched // views if views else 0,
                   "subscribersGained": gained, "subscribersLost": gained // 20}
            return [row[m] for m in metrics]

        rows: list[list[Any]] = []
        whole = not video_filter
        if dimension == "day":
            day = first
            while day.timestamp() < end:
                nxt = day + timedelta(days=1)
                rows.append([day.strftime("%Y-%m-%d"),
                             *values(posts, day.timestamp(), min(end, nxt.timestamp()), whole)])
                day = nxt
        elif dimension == "video":
            rows = [[p.id, *values([p], start, end, False)] for p in posts]
            rows.sort(key=lambda r: -r[1])
            rows = rows[:int(q.get("maxResults", 200) or 200)]
        elif start < end:
            rows = [values(posts, start, end, whole)]
        headers = ([{"name": dimension, "columnType": "DIMENSION", "dataType": "STRING"}]
                   if dimension else [])
        headers += [{"name": m, "columnType": "METRIC", "dataType": "INTEGER"} for m in metrics]
        return json_response({"kind": "youtubeAnalytics#resultTable", "columnHeaders": headers,
                              "rows": rows})

    # --- OAuth -------------------------------------------------------------------------------

    async def token(self, request: Request) -> Response:
        form = await form_of(request)
        client = (form.get("client_id"), form.get("client_secret"))
        if client != (self.client.id, self.client.secret):
            return json_response({"error": "invalid_client",
                                  "error_description": "The OAuth client was not found."}, 401)
        if form.get("grant_type") != "refresh_token":
            return json_response({"error": "unsupported_grant_type",
                                  "error_description": "Invalid grant_type: "
                                  f"{form.get('grant_type')}"}, 400)
        issued = self.tokens.refresh(str(form.get("refresh_token", "")), self.now(), rotate=False)
        if issued is None:
            return json_response({"error": "invalid_grant",
                                  "error_description": "Token has been expired or revoked."}, 400)
        return json_response({"access_token": issued[0],
                              "expires_in": int(self.config.ttl(self.platform)),
                              "scope": SCOPE, "token_type": "Bearer"})

    # --- WebSub ------------------------------------------------------------------------------

    async def hub(self, request: Request) -> Response:
        form = await form_of(request)
        mode, callback, topic = (form.get("hub.mode"), form.get("hub.callback", ""),
                                 form.get("hub.topic", ""))
        if mode not in ("subscribe", "unsubscribe"):
            return PlainTextResponse("Invalid value for hub.mode", 400)
        if urlsplit(callback).scheme not in ("http", "https"):
            return PlainTextResponse("Invalid value for hub.callback", 400)
        channel = parse_qs(urlsplit(topic).query).get("channel_id", [""])[0]
        if not topic.startswith(TOPIC) or self.world.find_account(self.platform, channel) is None:
            return PlainTextResponse("Invalid value for hub.topic", 400)
        lease = int(form.get("hub.lease_seconds") or self.config.websub_lease_seconds)
        if form.get("hub.verify") == "sync":
            ok = await self.verify(mode, callback, topic, channel, lease, form)
            return Response(status_code=204 if ok else 409)
        task = BackgroundTask(self.verify, mode, callback, topic, channel, lease, form)
        return Response(status_code=202, background=task)

    async def verify(self, mode: str, callback: str, topic: str, channel: str, lease: int,
                     form: dict[str, str]) -> bool:
        """Verification of intent: GET the callback with a challenge it must echo."""
        challenge = secrets.token_urlsafe(16)
        params = {"hub.mode": mode, "hub.topic": topic, "hub.challenge": challenge,
                  "hub.lease_seconds": str(lease)}
        if form.get("hub.verify_token"):
            params["hub.verify_token"] = form["hub.verify_token"]
        sep = "&" if "?" in callback else "?"
        status, body = await asyncio.to_thread(self.sim.sender.transport, "GET",
                                               callback + sep + urlencode(params))
        if not 200 <= status < 300 or body.decode(errors="replace").strip() != challenge:
            return False
        subs = self.websub.setdefault(channel, {})
        if mode == "unsubscribe":
            subs.pop(callback, None)
        else:
            subs[callback] = {"secret": form.get("hub.secret"),
                              "expires": self.now() + lease}
        return True

    async def websub_list(self, request: Request) -> Response:
        return json_response({"subscriptions": [
            {"channel_id": ch, "callback": cb, "expires": s["expires"],
             "signed": bool(s["secret"])}
            for ch, subs in self.websub.items() for cb, s in subs.items()]})

    def delivery(self, event: str, account: Account, post: Post | None,
                 body: dict[str, Any]) -> list[Delivery]:
        now = self.now()
        post = post or next(self.world.posts(account, now), None)
        if post is None:
            return []
        deleted = event == "deleted"
        xml = (self.tombstone(post, now) if deleted else self.feed(post, now)).encode()
        ident = delivery_id(self.platform, event or "video", post.id, body.get("seq", ""),
                            int(now))
        # As the hub does: only subscribers whose lease still runs hear of the channel.
        targets = {cb: s for cb, s in self.websub.get(account.id, {}).items()
                   if s["expires"] > now}
        out = []
        for callback, sub in targets.items():
            secret = sub["secret"]

            def sign(raw: bytes, secret: str | None = secret) -> dict[str, str]:
                headers = {"Link": f'<https://pubsubhubbub.appspot.com>; rel=hub, '
                                   f'<{TOPIC}{account.id}>; rel=self'}
                if secret:
                    headers["X-Hub-Signature"] = signing.websub_signature(secret, raw)
                return headers

            out.append(Delivery(ident, self.platform, "deleted" if deleted else "video",
                                callback, xml, "application/atom+xml", sign))
        return out

    def feed(self, post: Post, now: float) -> str:
        a = post.account
        updated = _atom_time(now, nanos=True)
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<feed xmlns:yt="http://www.youtube.com/xml/schemas/2015" '
            'xmlns="http://www.w3.org/2005/Atom">'
            '<link rel="hub" href="https://pubsubhubbub.appspot.com"/>'
            f'<link rel="self" href="{TOPIC}{a.id}"/>'
            f"<title>YouTube video feed</title><updated>{updated}</updated>"
            f"<entry><id>yt:video:{post.id}</id><yt:videoId>{post.id}</yt:videoId>"
            f"<yt:channelId>{a.id}</yt:channelId><title>{escape(post.title)}</title>"
            f'<link rel="alternate" href="http://www.youtube.com/watch?v={post.id}"/>'
            f"<author><name>{escape(a.name)}</name>"
            f"<uri>http://www.youtube.com/channel/{a.id}</uri></author>"
            f"<published>{_atom_time(post.published)}</published>"
            f"<updated>{updated}</updated></entry></feed>")

    def tombstone(self, post: Post, now: float) -> str:
        a = post.account
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<feed xmlns:at="http://purl.org/atompub/tombstones/1.0" '
            'xmlns="http://www.w3.org/2005/Atom">'
            f'<at:deleted-entry ref="yt:video:{post.id}" when="{_atom_time(now, nanos=True)}">'
            f'<link href="https://www.youtube.com/watch?v={post.id}"/>'
            f"<at:by><name>{escape(a.name)}</name>"
            f"<uri>https://www.youtube.com/channel/{a.id}</uri></at:by>"
            "</at:deleted-entry></feed>")


def _atom_time(t: float, nanos: bool = False) -> str:
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))
    if nanos:
        return f"{base}.{int((t - math.floor(t)) * 1e9):09d}+00:00"
    return base + "+00:00"
