"""The API server: a Starlette app with GraphQL (HTTP and WebSocket), REST routes and probes.

``create_app(settings)`` returns the app; its lifespan opens what every request shares (the
PostgreSQL pools, the Redis client, the cache, the rate limiter, a Kafka producer), starts the
registry listener (registry changes from any process evict cached registry answers) and the live
hub when one is given (the aggregates consumer that feeds subscriptions and evicts cached
answers), then closes everything in reverse order.

Routes:
- ``/graphql``: queries and mutations over POST (GET queries and GraphiQL in development only),
  subscriptions over ``graphql-transport-ws`` with the token in ``connection_init``'s payload
  (``{"authorization": "Bearer <token>"}``; a bad or missing one closes the socket with 4403);
- the REST routes of :mod:`creatorpulse.graphql.rest`;
- ``/healthz`` (the process answers), ``/readyz`` (PostgreSQL, Redis and Kafka reachable),
  ``/metrics`` (Prometheus).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

import strawberry
from psycopg_pool import AsyncConnectionPool, ConnectionPool
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from creatorpulse.graphql import influencers, rest, stream
from creatorpulse.graphql.auth import AuthError, authenticate, bearer_token, signing_key, verify
from creatorpulse.graphql.cache import AggregateCache
from creatorpulse.graphql.context import Context, LiveHub, Producer, Services, client_key
from creatorpulse.graphql.limits import TokenBucket
from creatorpulse.graphql.observability import ApiMetrics
from creatorpulse.graphql.registry_listener import RegistryListener
from creatorpulse.graphql.response_cache import encode_response
from creatorpulse.graphql.schema import build_schema
from creatorpulse.graphql.shared import SharedTransportWSHandler
from creatorpulse.settings import Settings
from creatorpulse.tokens import TokenVault

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[..., Awaitable[Any]], Callable[..., Awaitable[Any]]],
                   Awaitable[None]]


def _address(request: Request | WebSocket) -> str | None:
    return request.client.host if request.client else None


class GraphQLView(GraphQL):
    """Strawberry's ASGI view with our context, HTTP authentication and WebSocket auth."""

    # Encodes each shared subscription result once for all its subscribers.
    graphql_transport_ws_handler_class = SharedTransportWSHandler

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        """Refuse a bad bearer token with 401 before GraphQL sees the request."""
        if scope["type"] == "http":
            request = Request(scope, receive)
            try:
                principal = authenticate(request.headers.get("authorization"),
                                         request.app.state.services.settings)
            except AuthError as exc:
                body = {"data": None, "errors": [{"message": f"invalid token: {exc}",
                                                  "extensions": {"code": "UNAUTHENTICATED",
                                                                 "reason": exc.reason}}]}
                header = f'Bearer error="invalid_token", error_description="{exc.reason}"'
                await JSONResponse(body, status_code=401,
                                   headers={"WWW-Authenticate": header})(scope, receive, send)
                return
            scope.setdefault("state", {})["principal"] = principal
        await super().__call__(scope, receive, send)

    def encode_json(self, data: object) -> str | bytes:
        """JSON of a response; a cached answer's ``data`` goes in as the text it was stored as."""
        if isinstance(data, dict):
            spliced = encode_response(data)
            if spliced is not None:
                return spliced
        return super().encode_json(data)

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        services: Services = request.app.state.services
        principal = None
        if isinstance(request, Request):
            principal = getattr(request.state, "principal", None)
        return Context(services=services, principal=principal,
                       client_key=client_key(principal, _address(request)),
                       request=request, response=response)

    async def on_ws_connect(self, context: Context) -> dict[str, object] | None:
        """Authenticate ``connection_init``: a valid token in the payload, or close 4403."""
        params = context.connection_params or {}
        raw = params.get("authorization") or params.get("Authorization") or params.get("token")
        if not isinstance(raw, str):
            raise ConnectionRejectionError({"reason": "missing"})
        try:
            token = bearer_token(raw) if " " in raw.strip() else raw.strip()
            principal = verify(token or "", context.settings)
        except AuthError as exc:
            raise ConnectionRejectionError({"reason": exc.reason}) from None
        context.authenticate(principal)
        return None


def _metrics_middleware(app: ASGIApp, metrics: ApiMetrics) -> ASGIApp:
    """Count HTTP requests by route and status, and time them."""

    async def middleware(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started, status = time.monotonic(), 500

        async def sending(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        route = scope.get("path", "")
        route = route if route in ("/graphql", "/healthz", "/readyz", "/metrics") else "rest"
        try:
            await app(scope, receive, sending)
        finally:
            elapsed = time.monotonic() - started
            metrics.requests.labels(route, str(status)).inc()
            metrics.latency.labels(route).observe(elapsed)
            # The path only: query strings may carry a token (GraphiQL links).
            log.debug("%s %s %s %.1f ms", scope.get("method"), scope.get("path"), status,
                      elapsed * 1000)

    return middleware


async def _readiness(services: Services) -> dict[str, str]:
    """'ok' or the failure for each dependency, checked concurrently with short timeouts."""

    async def postgres() -> None:
        async with services.pool.connection(timeout=3) as conn:
            await conn.execute("SELECT 1")

    async def redis() -> None:
        await asyncio.wait_for(services.redis.ping(), 3)

    async def kafka() -> None:
        from confluent_kafka.admin import AdminClient

        def probe() -> None:
            AdminClient({"bootstrap.servers": services.settings.kafka_bootstrap}).list_topics(
                timeout=3)

        await asyncio.to_thread(probe)

    checks = {"postgres": postgres(), "redis": redis(), "kafka": kafka()}
    results = await asyncio.gather(*checks.values(), return_exceptions=True)
    return {name: "ok" if not isinstance(r, BaseException) else f"down: {type(r).__name__}"
            for name, r in zip(checks, results, strict=True)}


def _make_producer(settings: Settings) -> Producer | None:
    try:
        from confluent_kafka import Producer as KafkaProducer

        return KafkaProducer({"bootstrap.servers": settings.kafka_bootstrap,  # type: ignore[no-any-return]
                              "enable.idempotence": True, "acks": "all"})
    except Exception as exc:
        log.warning("no Kafka producer for tombstones: %s", exc)
        return None


def create_app(
    settings: Settings,
    *,
    live: LiveHub | None = None,
    schema: strawberry.Schema | None = None,
    producer: Producer | None = None,
    rate_limit: bool = True,
) -> Starlette:
    """The API app. ``live`` is started and stopped by the lifespan; ``producer`` (default: a
    Kafka producer on the configured brokers) sends erasure tombstones."""
    production = settings.environment == "production"
    signing_key(settings)  # refuse to build a production app without a signing key
    vault = TokenVault.from_settings(settings)  # ... or without token keys
    schema = schema or build_schema(settings)
    metrics = ApiMetrics()
    view = GraphQLView(
        schema,
        graphql_ide=None if production else "graphiql",
        allow_queries_via_get=not production,
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        dsn = settings.database_dsn.reveal()
        pool = AsyncConnectionPool(dsn, min_size=1, max_size=8, open=False,
                                   kwargs={"autocommit": True})
        await pool.open(wait=True, timeout=15)
        registry_pool = ConnectionPool(dsn, min_size=1, max_size=4, open=False,
                                       kwargs={"autocommit": True})
        registry_pool.open(wait=True, timeout=15)
        redis = Redis.from_url(settings.redis_dsn.reveal(), socket_timeout=5,
                               socket_connect_timeout=5)
        tenants: dict[str, str] = {}  # an influencer never changes tenant

        async def tenant_of(influencer_id: str) -> str | None:
            if influencer_id not in tenants:
                async with pool.connection() as conn:
                    found = await influencers.tenant_of(conn, influencer_id)
                if found is None:
                    return None
                if len(tenants) > 100_000:
                    tenants.clear()
                tenants[influencer_id] = found
            return tenants[influencer_id]

        services = Services(
            settings=settings, pool=pool, registry_pool=registry_pool, redis=redis,
            cache=AggregateCache(redis, settings.api_cache_ttl, metrics, tenant_of),
            bucket=TokenBucket(redis, settings.api_rate_budget, settings.api_rate_refill)
            if rate_limit else None,
            metrics=metrics, vault=vault,
            producer=producer if producer is not None else _make_producer(settings),
            live=live)
        app.state.services = services
        listener = RegistryListener(dsn, services.cache.registry_changed,
                                    services.cache.drop_registry_answers)
        app.state.registry_listener = listener
        try:
            await listener.start()
            if live is not None:
                await live.start(services)
            try:
                yield
            finally:
                if live is not None:
                    await live.stop()
        finally:
            await listener.stop()
            if services.producer is not None:
                await asyncio.to_thread(services.producer.flush, 5)
            await redis.aclose()
            registry_pool.close()
            await pool.close()

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        checks = await _readiness(request.app.state.services)
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ready" if ready else "not ready", "checks": checks},
                            status_code=200 if ready else 503)

    async def prometheus(request: Request) -> Response:
        return PlainTextResponse(metrics.render(),
                                 media_type="text/plain; version=0.0.4; charset=utf-8")

    routes: list[BaseRoute] = [
        Route("/graphql", view, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", view),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", prometheus),
        *rest.routes(),
        stream.metrics_stream_route(settings, lambda ws: ws.app.state.live),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.schema = schema
    app.state.live = live
    app.state.metrics = metrics
    app.add_middleware(_MetricsMiddleware, metrics=metrics)
    return app


class _MetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self._app = _metrics_middleware(app, metrics)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        await self._app(scope, receive, send)
