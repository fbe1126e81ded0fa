"""What every platform's app shares: the call pipeline (token, limit, forced faults, stats)
and the admin surface under ``/_sim/``."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from creatorpulse.sources.simulator.clock import Clock
from creatorpulse.sources.simulator.config import SimConfig
from creatorpulse.sources.simulator.limits import Stats
from creatorpulse.sources.simulator.tokens import Grant, TokenStore
from creatorpulse.sources.simulator.webhooks import Delivery, WebhookSender
from creatorpulse.sources.simulator.world import Account, Post, World

log = logging.getLogger(__name__)


class Sim:
    """The world, clock, configuration and webhook sender all platform apps share."""

    def __init__(self, config: SimConfig, clock: Clock, world: World | None = None,
                 sender: WebhookSender | None = None, origin: float | None = None) -> None:
        self.config = config
        self.clock = clock
        start = clock.now()
        self.world = world or World(config.seed, config.accounts, start if origin is None
                                    else origin)
        self.sender = sender or WebhookSender()
        self.events = itertools.count(1)  # makes each new webhook event (and its id) distinct


@dataclass
class Call:
    """One authorised API call: who makes it and when."""

    grant: Grant
    credential: str
    now: float
    account: Account | None  # None: an app token


class Refusal(Exception):
    """Raised by a handler to answer with the platform's error ``response``."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


Handler = Callable[[Request, Call], Awaitable[Response]]


def iso_z(t: float, ms: bool = False) -> str:
    stamp = datetime.fromtimestamp(t, UTC)
    if ms:  # X's form: whole seconds written with milliseconds
        return stamp.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None,
                  media_type: str = "application/json") -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status, headers, media_type)


class PlatformApp:
    """One platform's HTTP app. Subclasses give the routes and the platform's ways of saying
    "bad token", "too many requests" and "try again"."""

    platform: ClassVar[str]
    rotate_refresh: ClassVar[bool] = False
    new_content_event: ClassVar[str] = ""  # the webhook event a new post sends ("": none)

    def __init__(self, sim: Sim) -> None:
        self.sim = sim
        self.world = sim.world
        self.config = sim.config
        self.client = sim.config.client(self.platform)
        refresh_ttl = sim.config.tiktok_refresh_ttl if self.platform == "tiktok" else None
        self.tokens = TokenStore(self.platform, sim.config.seed, sim.config.accounts,
                                 sim.clock.now(), sim.config.ttl(self.platform), refresh_ttl)
        self.stats = Stats()
        self._forced: list[dict[str, Any]] = []  # faults the next calls answer with

    def now(self) -> float:
        return self.sim.clock.now()

    def starlette(self) -> Starlette:
        return Starlette(routes=[*self._admin_routes(), *self.routes()])

    # --- to implement ------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        raise NotImplementedError

    def token_of(self, request: Request) -> str | None:
        auth = request.headers.get("authorization", "")
        return auth[7:].strip() if auth.lower().startswith("bearer ") else None

    def auth_error(self, problem: str) -> Response:
        raise NotImplementedError

    def limit(self, endpoint: str, call: Call, cost: int) -> tuple[dict[str, str], Response | None]:
        """Spend ``cost`` for ``call``: the headers to send, and the refusal when over the limit."""
        raise NotImplementedError

    def transient_error(self, status: int) -> Response:
        raise NotImplementedError

    def forced_throttle(self, code: Any) -> Response:
        """The platform's "too many requests" answer, on demand (``code``: Meta's variants)."""
        raise NotImplementedError

    def bad_parameter(self, message: str) -> Response:
        """The platform's answer to a malformed parameter (a number that is not one...)."""
        raise NotImplementedError

    def delivery(self, event: str, account: Account, post: Post | None,
                 body: dict[str, Any]) -> list[Delivery]:
        """The signed deliveries of a webhook event (one per subscriber)."""
        raise NotImplementedError

    def webhook_url(self) -> str:
        return self.config.webhooks_url + self.config.webhook_path.format(platform=self.platform)

    # --- the call pipeline -------------------------------------------------------------------

    def api(self, endpoint: str, handler: Handler, cost: int = 1) -> Callable[[Request],
                                                                              Awaitable[Response]]:
        async def run(request: Request) -> Response:
            now = self.now()
            grant, problem = self.tokens.check(self.token_of(request), now)
            if grant is None or problem:
                return self.auth_error(problem)
            account = (self.world.account(self.platform, grant.account)
                       if grant.account is not None else None)
            call = Call(grant, account.id if account else f"app:{self.client.id}", now, account)
            headers, refusal = self.limit(endpoint, call, cost)
            self.stats.record(call.credential, self.client.id, over_limit=refusal is not None)
            if refusal is not None:
                refusal.headers.update(headers)
                return refusal
            if self._forced:
                fault = self._forced.pop(0)
                response = (self.forced_throttle(fault.get("code")) if fault.get("throttle")
                            else self.transient_error(int(fault.get("status", 500))))
            else:
                try:
                    response = await handler(request, call)
                except Refusal as exc:
                    response = exc.response
                except ValueError as exc:  # int("abc") and the like: the client's mistake
                    response = self.bad_parameter(str(exc))
            for name, value in headers.items():  # a forced fault may have set its own
                response.headers.setdefault(name, value)
            return response

        return run

    # --- the admin surface -------------------------------------------------------------------

    def _admin_routes(self) -> list[BaseRoute]:
        return [
            Route("/_sim/health", self._admin_health),
            Route("/_sim/accounts", self._admin_accounts),
            Route("/_sim/stats", self._admin_stats),
            Route("/_sim/stats/reset", self._admin_stats_reset, methods=["POST"]),
            Route("/_sim/clock", self._admin_clock, methods=["GET", "POST"]),
            Route("/_sim/content/{content_id}", self._admin_content),
            Route("/_sim/delete", self._admin_delete, methods=["POST"]),
            Route("/_sim/errors", self._admin_errors, methods=["POST"]),
            Route("/_sim/tokens/expire", self._admin_expire, methods=["POST"]),
            Route("/_sim/tokens/revoke", self._admin_revoke, methods=["POST"]),
            Route("/_sim/webhooks", self._admin_webhooks, methods=["GET", "POST"]),
            Route("/_sim/webhooks/redeliver", self._admin_redeliver, methods=["POST"]),
        ]

    def account_row(self, i: int) -> dict[str, Any]:
        account = self.world.account(self.platform, i)
        grant = self.tokens.lookup(self.tokens.initial_access(i))
        return {
            "index": i, "platform": self.platform, "id": account.id, "handle": account.handle,
            "name": account.name, "access_token": self.tokens.initial_access(i),
            "refresh_token": self.tokens.initial_refresh(i),
            "expires_at": grant.expires if grant else None,
        }

    async def _admin_health(self, request: Request) -> Response:
        return json_response({"ok": True, "platform": self.platform,
                              "accounts": self.world.size})

    async def _admin_accounts(self, request: Request) -> Response:
        offset = int(request.query_params.get("offset", 0))
        limit = int(request.query_params.get("limit", self.world.size))
        rows = [self.account_row(i) for i in range(offset, min(self.world.size, offset + limit))]
        return json_response({"platform": self.platform, "total": self.world.size,
                              "accounts": rows})

    async def _admin_stats(self, request: Request) -> Response:
        return json_response({"platform": self.platform, "now": self.now(),
                              **self.stats.snapshot()})

    async def _admin_stats_reset(self, request: Request) -> Response:
        self.stats.reset()
        return json_response({"ok": True})

    async def _admin_clock(self, request: Request) -> Response:
        if request.method == "POST":
            body = await _json_body(request)
            clock = self.sim.clock
            if "advance" in body and hasattr(clock, "advance"):
                clock.advance(float(body["advance"]))
            elif "set" in body and hasattr(clock, "set"):
                clock.set(float(body["set"]))
            else:
                return json_response({"error": "give advance (seconds) or, on a manual clock, "
                                      "set (unix seconds)"}, 400)
        now = self.now()
        return json_response({"now": now, "iso": iso_z(now)})

    def _post_or_404(self, content_id: str) -> Post | Response:
        post = self.world.find_post(self.platform, content_id)
        if post is None:
            return json_response({"error": f"no content {content_id}"}, 404)
        return post

    async def _admin_content(self, request: Request) -> Response:
        post = self._post_or_404(request.path_params["content_id"])
        if isinstance(post, Response):
            return post
        now = self.now()
        exists = self.world.exists(post, now)
        counters = vars(self.world.counters(post, now)) if exists else None
        return json_response({"id": post.id, "account": post.account.id,
                              "published": post.published, "exists": exists,
                              "deleted_at": self.world.deleted_at(post), "counters": counters})

    async def _admin_delete(self, request: Request) -> Response:
        body = await _json_body(request)
        post = self._post_or_404(str(body.get("content_id", "")))
        if isinstance(post, Response):
            return post
        self.world.delete(post, self.now())
        return json_response({"deleted": post.id})

    async def _admin_errors(self, request: Request) -> Response:
        body = await _json_body(request)
        fault = {"status": int(body.get("status", 500)), "throttle": bool(body.get("throttle")),
                 "code": body.get("code")}
        self._forced.extend([fault] * int(body.get("count", 1)))
        return json_response({"pending": len(self._forced)})

    def _account_of(self, ident: str) -> Account | Response:
        account = self.world.find_account(self.platform, ident)
        if account is None and ident.isdigit() and int(ident) < self.world.size:
            account = self.world.account(self.platform, int(ident))
        if account is None:
            return json_response({"error": f"no account {ident}"}, 404)
        return account

    async def _admin_expire(self, request: Request) -> Response:
        body = await _json_body(request)
        account = self._account_of(str(body.get("account", "")))
        if isinstance(account, Response):
            return account
        n = self.tokens.expire_account(account.index, self.now())
        return json_response({"expired": n})

    async def _admin_revoke(self, request: Request) -> Response:
        body = await _json_body(request)
        account = self._account_of(str(body.get("account", "")))
        if isinstance(account, Response):
            return account
        self.tokens.revoke_account(account.index)
        return json_response({"revoked": account.id})

    async def _admin_webhooks(self, request: Request) -> Response:
        if request.method == "GET":
            return json_response({"deliveries": [d.summary() for d in self.sim.sender.all()
                                                 if d.platform == self.platform]})
        body = await _json_body(request)
        account = self._account_of(str(body.get("account", "")))
        if isinstance(account, Response):
            return account
        post = None
        if body.get("content_id"):
            post = self._post_or_404(str(body["content_id"]))
            if isinstance(post, Response):
                return post
        body.setdefault("seq", next(self.sim.events))
        deliveries = self.delivery(str(body.get("event", "")), account, post, body)
        sent = []
        for d in deliveries:
            await asyncio.to_thread(self.sim.sender.send, d)
            sent.append(d.summary())
        return json_response({"deliveries": sent})

    async def _admin_redeliver(self, request: Request) -> Response:
        body = await _json_body(request)
        delivery = self.sim.sender.get(str(body.get("delivery_id", "")))
        if delivery is None:
            return json_response({"error": "no such delivery"}, 404)
        for _ in range(int(body.get("times", 1))):
            await asyncio.to_thread(self.sim.sender.send, delivery)
        return json_response(delivery.summary())

    def emit_new_content(self, since: float, until: float) -> int:
        """Send the webhook of every post published in ``(since, until]``; how many were sent.

        Blocking (plain HTTP): run it off the servers' event loop.
        """
        if not self.new_content_event:
            return 0
        sent = 0
        for i in range(self.world.size):
            account = self.world.account(self.platform, i)
            for k in range(account.published_count(since), account.published_count(until)):
                post = self.world.post(account, k)
                seq = {"seq": next(self.sim.events)}
                for d in self.delivery(self.new_content_event, account, post, seq):
                    self.sim.sender.send(d)
                    sent += 1
        return sent


async def form_of(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (the OAuth token endpoints' and hubs')."""
    return dict(parse_qsl((await request.body()).decode(errors="replace"),
                          keep_blank_values=True))


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def field_list(text: str | None) -> list[str]:
    """Split a fields list on top-level commas (``a,b{c,d},e.summary(x)`` -> 3 items)."""
    if not text:
        return []
    items, depth, current = [], 0, []
    for ch in text:
        if ch in "{(":
            depth += 1
        elif ch in "})":
            depth -= 1
        if ch == "," and depth == 0:
            items.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    items.append("".join(current).strip())
    return [i for i in items if i]
