"""What Instagram's and Facebook's Graph APIs share: tokens in ``access_token``, Graph errors,
cursor paging, usage headers and throttle codes, token exchange, webhook subscriptions."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import re
import secrets
from datetime import UTC, datetime
from functools import partial
from typing import Any, ClassVar
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from creatorpulse.sources.simulator import signing
from creatorpulse.sources.simulator.common import (
    Call,
    PlatformApp,
    Refusal,
    Sim,
    field_list,
    form_of,
    json_response,
)
from creatorpulse.sources.simulator.limits import SlidingWindow
from creatorpulse.sources.simulator.webhooks import Delivery, delivery_id
from creatorpulse.sources.simulator.world import Account, Post

OMIT = object()  # a field the Graph API leaves out of this object
_VERSION = re.compile(r"^v\d+\.\d+$")
DAY = 86_400


def graph_time(t: float) -> str:
    """Meta's timestamps: ``2019-04-05T07:56:32+0000``."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def graph_error(message: str, code: int, subcode: int | None = None, status: int = 400,
                **extra: Any) -> Response:
    error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    error.update(extra)
    error["fbtrace_id"] = "A" + secrets.token_urlsafe(8)
    headers = {"WWW-Authenticate": f'OAuth "Facebook Platform" "invalid_request" "{message}"'}
    return json_response({"error": error}, status, headers)


def no_object(ident: str) -> Response:
    return graph_error(
        f"Unsupported get request. Object with ID '{ident}' does not exist, cannot be loaded due "
        "to missing permissions, or does not support this operation. Please read the Graph API "
        "documentation at https://developers.facebook.com/docs/graph-api", 100, 33)


def no_field(name: str, node: str) -> Response:
    return graph_error(f"(#100) Tried accessing nonexisting field ({name}) on node type ({node})",
                       100)


def encode_cursor(k: int) -> str:
    return base64.urlsafe_b64encode(f"QVFI:{k}".encode()).decode().rstrip("=")


def decode_cursor(text: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        tag, _, k = raw.partition(":")
        if tag == "QVFI":
            return int(k)
    except ValueError:
        pass
    raise Refusal(graph_error("(#100) The parameter after is not a valid cursor", 100))


def base_name(item: str) -> str:
    match = re.match(r"[A-Za-z_]+", item)
    return match.group(0) if match else item


class MetaApp(PlatformApp):
    """A Graph API host. Subclasses say which objects, fields and edges they have."""

    account_node: ClassVar[str]
    post_node: ClassVar[str]
    webhook_object: ClassVar[str]
    buc_type: ClassVar[str]
    buc_code: ClassVar[int]
    buc_message: ClassVar[str]
    content_edges: ClassVar[tuple[str, ...]]  # the edges field expansion may inline

    def __init__(self, sim: Sim) -> None:
        super().__init__(sim)
        self.buc = SlidingWindow(sim.config.meta_buc_limit, sim.config.meta_buc_window)
        app_limit = sim.config.meta_app_limit or 200 * sim.config.accounts
        self.app_window = SlidingWindow(app_limit, sim.config.meta_app_window)
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self._graph = self.api("graph", self.graph)

    def routes(self) -> list[BaseRoute]:
        return [Route("/{path:path}", self.dispatch, methods=["GET", "POST"])]

    def token_of(self, request: Request) -> str | None:
        token = request.query_params.get("access_token")
        if token:
            return token
        auth = request.headers.get("authorization", "")
        scheme, _, value = auth.partition(" ")
        return value.strip() if scheme.lower() in ("bearer", "oauth") else None

    async def dispatch(self, request: Request) -> Response:
        parts = [p for p in request.path_params["path"].split("/") if p]
        if parts and _VERSION.match(parts[0]):
            parts = parts[1:]
        request.state.parts = parts
        if parts == ["oauth", "access_token"]:
            return self.exchange_token(request)
        special = await self.special(request, parts)
        if special is not None:
            return special
        if len(parts) == 2 and parts[1] == "subscriptions" and parts[0] == self.client.id:
            return await self.subscribe(request)
        if not parts or len(parts) > 2:
            return graph_error("Unknown path components: /" + "/".join(parts), 2500)
        return await self._graph(request)

    async def special(self, request: Request, parts: list[str]) -> Response | None:
        """Host-specific paths outside the Graph pipeline (Instagram's token endpoints)."""
        return None

    # --- tokens ------------------------------------------------------------------------------

    def auth_error(self, problem: str) -> Response:
        if problem == "expired":
            return graph_error(
                "Error validating access token: Session has expired. The current time is "
                f"{graph_time(self.now())}.", 190, 463)
        return graph_error("Invalid OAuth access token - Cannot parse access token", 190)

    def exchange_token(self, request: Request) -> Response:
        """``GET /oauth/access_token?grant_type=fb_exchange_token&...``: a long-lived token."""
        q = request.query_params
        if q.get("client_id") != self.client.id or q.get("client_secret") != self.client.secret:
            return graph_error("Error validating client secret.", 1, 463)
        if q.get("grant_type") != "fb_exchange_token":
            return graph_error("(#100) Unsupported grant_type", 100)
        now = self.now()
        grant, problem = self.tokens.check(q.get("fb_exchange_token"), now)
        if grant is None or problem:
            return self.auth_error(problem)
        ttl = self.config.ttl(self.platform)
        token = self.tokens.issue(grant.account, now, ttl)
        return json_response({"access_token": token, "token_type": "bearer",
                              "expires_in": int(ttl)})

    # --- limits ------------------------------------------------------------------------------

    def limit(self, endpoint: str, call: Call, cost: int) -> tuple[dict[str, str], Response | None]:
        now = call.now
        app_ok = self.app_window.take(self.client.id, now, cost)
        buc_ok = True
        if app_ok and call.account is not None:
            buc_ok = self.buc.take(call.account.id, now, cost)
            if not buc_ok:  # the app call was not made either
                self.app_window.take(self.client.id, now, -cost)
        app_pct = _pct(self.app_window.used(self.client.id, now), self.app_window.limit)
        headers = {"X-App-Usage": json.dumps(
            {"call_count": 100 if not app_ok else app_pct, "total_time": app_pct // 2,
             "total_cputime": app_pct // 3})}
        if call.account is not None:
            key = call.account.id
            pct = 100 if not buc_ok else _pct(self.buc.used(key, now), self.buc.limit)
            regain = math.ceil(self.buc.regain_in(key, now) / 60) if not buc_ok else 0
            headers["X-Business-Use-Case-Usage"] = json.dumps({key: [{
                "type": self.buc_type, "call_count": pct, "total_cputime": pct // 3,
                "total_time": pct // 2, "estimated_time_to_regain_access": regain}]})
        if not app_ok:
            return headers, graph_error("(#4) Application request limit reached", 4,
                                        is_transient=True)
        if not buc_ok:
            return headers, graph_error(self.buc_message, self.buc_code, is_transient=True)
        return headers, None

    def forced_throttle(self, code: Any) -> Response:
        messages = {4: "(#4) Application request limit reached",
                    17: "(#17) User request limit reached",
                    32: "(#32) Page request limit reached",
                    613: "Calls to this api have exceeded the rate limit.",
                    self.buc_code: self.buc_message}
        code = int(code or self.buc_code)
        response = graph_error(messages.get(code, f"(#{code}) Rate limited"), code,
                               is_transient=True)
        response.headers["X-App-Usage"] = json.dumps(
            {"call_count": 100, "total_time": 100, "total_cputime": 100})
        return response

    def bad_parameter(self, message: str) -> Response:
        return graph_error(f"(#100) Invalid parameter: {message}", 100)

    def transient_error(self, status: int) -> Response:
        return graph_error("An unexpected error has occurred. Please retry your request later.",
                           2, status=status, is_transient=True)

    # --- the graph ---------------------------------------------------------------------------

    async def graph(self, request: Request, call: Call) -> Response:
        parts: list[str] = request.state.parts
        node = parts[0]
        if node == "me":
            if call.account is None:
                return graph_error("An active access token must be used to query information "
                                   "about the current user.", 2500)
            node = call.account.id
        account = self.world.find_account(self.platform, node)
        post = None if account else self.world.find_post(self.platform, node)
        owner = account or (post.account if post else None)
        if owner is None or (call.account is not None and owner.index != call.account.index):
            return no_object(node)
        if post is not None and not self.world.exists(post, call.now):
            return no_object(node)
        fields = field_list(request.query_params.get("fields"))
        if len(parts) == 1:
            if account is not None:
                available = self.account_fields(account, call.now)
                for name in self.content_edges:
                    available[name] = partial(self.expanded_edge, request, account, call.now)
                return json_response(self.select(available, fields, self.account_node))
            assert post is not None
            return json_response(self.select(self.post_fields(post, call.now, fields), fields,
                                             self.post_node))
        edge = parts[1]
        if account is not None:
            return self.account_edge(request, account, edge, fields, call.now)
        assert post is not None
        return self.post_edge(request, post, edge, call.now)

    def select(self, available: dict[str, Any], fields: list[str], node: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for item in fields or ["id"]:
            name = base_name(item)
            if name not in available:
                raise Refusal(no_field(name, node))
            value = available[name]
            if value is OMIT:
                continue
            out[name] = value(item) if callable(value) else value
        out.setdefault("id", available["id"])
        return out

    def account_fields(self, account: Account, now: float) -> dict[str, Any]:
        raise NotImplementedError

    def post_fields(self, post: Post, now: float, fields: list[str]) -> dict[str, Any]:
        raise NotImplementedError

    def account_edge(self, request: Request, account: Account, edge: str, fields: list[str],
                     now: float) -> Response:
        raise NotImplementedError

    def post_edge(self, request: Request, post: Post, edge: str, now: float) -> Response:
        raise NotImplementedError

    def page_of_posts(self, request: Request, account: Account, fields: list[str],
                      now: float) -> Response:
        q = request.query_params

        def link(drop: str, **params: Any) -> str:
            return str(request.url.remove_query_params(drop).include_query_params(**params))

        return json_response(self.posts_page(account, fields, now, q.get("limit"),
                                             q.get("after"), q.get("before"), link))

    def expanded_edge(self, request: Request, account: Account, now: float,
                      item: str) -> dict[str, Any]:
        """Field expansion of a content edge on the account node
        (``fields=followers_count,media.limit(50){id,like_count}``): the edge's first page,
        its ``paging`` links pointing at the edge itself, as the Graph API answers."""
        match = re.match(r"(\w+)((?:\.\w+\([^)]*\))*)(?:\{(.*)\})?$", item)
        if match is None:
            raise Refusal(self.bad_parameter(f"cannot parse the field {item!r}"))
        modifiers = dict(re.findall(r"\.(\w+)\(([^)]*)\)", match.group(2)))
        unknown = set(modifiers) - {"limit"}
        if unknown:
            raise Refusal(self.bad_parameter(f"unknown modifier {sorted(unknown)[0]!r}"))
        inner = field_list(match.group(3))
        version = request.path_params["path"].split("/")[0]
        path = f"/{version}/{account.id}/{match.group(1)}" if _VERSION.match(version) else (
            f"/{account.id}/{match.group(1)}")
        base = {"fields": ",".join(inner)} if inner else {}
        token = request.query_params.get("access_token")
        if token:
            base["access_token"] = token  # Meta's paging links carry the caller's token

        def link(drop: str, **params: Any) -> str:
            query = urlencode({**base, **{k: str(v) for k, v in params.items()}})
            return str(request.url.replace(path=path, query=query))

        return self.posts_page(account, inner, now, modifiers.get("limit"), None, None, link)

    def posts_page(self, account: Account, fields: list[str], now: float, limit_text: str | None,
                   after: str | None, before: str | None, link: Any) -> dict[str, Any]:
        """A cursor page scanning ``limit`` posts: it may hold fewer (deleted ones are skipped),
        even none, and still have ``next``; only the last page lacks ``next``. ``link(drop,
        **params)`` is the URL of another page: this one's without ``drop``, with ``params``."""
        try:
            limit = max(1, min(100, int(limit_text or 25)))
        except ValueError:
            message = f"limit must be an integer, got {limit_text!r}"
            raise Refusal(self.bad_parameter(message)) from None
        latest = self.world.latest(account, now)
        start = latest if after is None else min(latest, decode_cursor(after) - 1)
        if before is not None and after is None:
            start = min(latest, decode_cursor(before) + limit)
        low = max(-1, start - limit)
        data = []
        for k in range(start, low, -1):
            post = self.world.post(account, k)
            if self.world.exists(post, now):
                data.append(self.select(self.post_fields(post, now, fields), fields,
                                        self.post_node))
        if start < 0:
            return {"data": []}
        paging: dict[str, Any] = {"cursors": {"before": encode_cursor(start)}}
        if low >= 0:
            paging["cursors"]["after"] = encode_cursor(low + 1)
            paging["next"] = link("before", after=encode_cursor(low + 1), limit=limit)
        if start < latest:
            paging["previous"] = link("after", before=encode_cursor(start), limit=limit)
        return {"data": data, "paging": paging}

    def insights(self, request: Request, ident: str, rows: list[dict[str, Any]],
                 paging: dict[str, Any] | None = None) -> Response:
        body: dict[str, Any] = {"data": rows}
        if paging:
            body["paging"] = paging
        return json_response(body)

    def daily_insights(self, request: Request, ident: str, metrics: dict[str, tuple[str, Any]],
                       now: float, first_end_hour: int) -> Response:
        """``period=day`` series: ``metrics`` maps a name to (title, f(start, end) -> value)."""
        q = request.query_params
        names = [m.strip() for m in q.get("metric", "").split(",") if m.strip()]
        period = q.get("period", "day")
        until = float(q["until"]) if q.get("until") else now
        since = float(q["since"]) if q.get("since") else until - 2 * DAY
        if until - since > 90 * DAY:
            return graph_error("(#100) There cannot be more than 90 days (7776000 s) between "
                               "since and until", 100)
        span = {"day": DAY, "week": 7 * DAY, "days_28": 28 * DAY}.get(period)
        if span is None:
            return graph_error(f"(#100) period must be one of the following values: day, week, "
                               f"days_28; got {period}", 100)
        offset = first_end_hour * 3600
        first = (math.floor((since - offset) / DAY) + 1) * DAY + offset
        ends = [t for t in _frange(first, min(until, now) + 1, DAY)][:93]
        rows = []
        total_value = q.get("metric_type") == "total_value"
        for name in names:
            title, fn = metrics[name]
            row: dict[str, Any] = {"name": name, "period": period}
            if total_value:
                row["total_value"] = {"value": fn(since, min(until, now))}
            else:
                row["values"] = [{"value": fn(end - span, end), "end_time": graph_time(end)}
                                 for end in ends]
            row.update(title=title, description=f"{title} ({period})",
                       id=f"{ident}/insights/{name}/{period}")
            rows.append(row)
        paging = None
        if not total_value:
            width = until - since
            base = request.url.remove_query_params(["since", "until"])
            paging = {
                "previous": str(base.include_query_params(since=int(since - width),
                                                          until=int(since))),
                "next": str(base.include_query_params(since=int(until), until=int(until + width))),
            }
        return self.insights(request, ident, rows, paging)

    def check_metrics(self, request: Request, allowed: set[str], removed: set[str]) -> list[str]:
        names = [m.strip() for m in request.query_params.get("metric", "").split(",") if m.strip()]
        if not names:
            raise Refusal(graph_error("(#100) The parameter metric is required", 100))
        for n, name in enumerate(names):
            if name in removed or any(name.startswith(r + "_") for r in removed
                                      if r.endswith("impressions")):
                raise Refusal(graph_error(
                    f"(#100) metric[{n}] must be one of the following values: "
                    f"{', '.join(sorted(allowed))}; {name} is no longer supported", 100))
            if name not in allowed:
                raise Refusal(graph_error(
                    f"(#100) metric[{n}] must be one of the following values: "
                    f"{', '.join(sorted(allowed))}", 100))
        return names

    # --- webhooks ----------------------------------------------------------------------------

    async def subscribe(self, request: Request) -> Response:
        """``POST /{app-id}/subscriptions``: verify the callback with ``hub.challenge``, keep it."""
        q = dict(request.query_params)
        if request.method == "POST":
            form = await form_of(request)
            q.update({k: str(v) for k, v in form.items()})
        if q.get("access_token") != f"{self.client.id}|{self.client.secret}":
            return graph_error("(#15) This method must be called with an app access_token.", 15)
        if request.method == "GET":
            return json_response({"data": [
                {"object": obj, "callback_url": s["callback_url"], "active": True,
                 "fields": [{"name": f, "version": "v25.0"} for f in s["fields"]]}
                for obj, s in self.subscriptions.items()]})
        callback, verify = q.get("callback_url", ""), q.get("verify_token", "")
        challenge = str(secrets.randbelow(9 * 10**9) + 10**9)
        query = urlencode({"hub.mode": "subscribe", "hub.challenge": challenge,
                           "hub.verify_token": verify})
        sep = "&" if "?" in callback else "?"
        try:
            status, body = await asyncio.to_thread(self.sim.sender.transport, "GET",
                                                   callback + sep + query)
        except ValueError:
            status, body = 0, b""
        if status != 200 or body.decode(errors="replace").strip() != challenge:
            return graph_error(f"(#2200) callback verification failed: the callback answered "
                               f"{status or 'nothing'} without the challenge", 2200)
        self.subscriptions[q.get("object", self.webhook_object)] = {
            "callback_url": callback, "fields": q.get("fields", "").split(",")}
        return json_response({"success": True})

    def sign(self, body: bytes) -> dict[str, str]:
        return {"X-Hub-Signature-256": signing.meta_signature_256(self.client.secret, body),
                "X-Hub-Signature": signing.meta_signature_sha1(self.client.secret, body)}

    def meta_delivery(self, event: str, account: Account, change: dict[str, Any],
                      ident: str) -> list[Delivery]:
        now = int(self.now())
        sub = self.subscriptions.get(self.webhook_object)
        url = sub["callback_url"] if sub else self.webhook_url()
        body = {"object": self.webhook_object,
                "entry": [{"id": account.id, "time": now, "changes": [change]}]}
        raw = json.dumps(body, separators=(",", ":")).encode()
        return [Delivery(ident, self.platform, event, url, raw, "application/json", self.sign)]

    def event_ids(self, event: str, account: Account, post: Post | None,
                  body: dict[str, Any]) -> tuple[str, str]:
        """A stable delivery id and a numeric object id for the event's new object."""
        ident = delivery_id(self.platform, event, account.id, post.id if post else "",
                            body.get("seq", ""), int(self.now()))
        return ident, str(int(ident[:14], 16))[:17].rjust(17, "1")


def _pct(used: int, limit: int) -> int:
    return min(100, math.ceil(used * 100 / limit)) if limit else 100


def _frange(start: float, stop: float, step: float) -> list[float]:
    out = []
    t = start
    while t < stop:
        out.append(t)
        t += step
    return out

