"""``creatorpulse webhooks serve``: the receiver under uvicorn, with its upkeep loop.

The command builds the clients (a PostgreSQL pool for deduplication and the registry, an
idempotent Kafka producer, an HTTP session for the WebSub hub), checks that each answers, and
serves :func:`~.app.build_app` on the port of ``CREATORPULSE_WEBHOOKS_URL``. Every minute it
subscribes the registry's YouTube channels that are due (new, refused or near the end of their
lease) and forgets deliveries older than :data:`KEEP_DELIVERIES`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import psycopg
import requests
from confluent_kafka import KafkaException, Producer
from psycopg_pool import ConnectionPool, PoolTimeout

from creatorpulse.settings import Settings
from creatorpulse.topics import CONTENT, DLQ, HINTS

if TYPE_CHECKING:
    from creatorpulse.sources.webhooks.app import ReceiverConfig

log = logging.getLogger(__name__)

# Longer than any platform's retry horizon (TikTok 72 h, Meta 36 h): a redelivery still finds
# its row.
KEEP_DELIVERIES = timedelta(days=7)
UPKEEP_EVERY_S = 60.0


def register(commands: Any) -> None:
    webhooks = commands.add_parser(
        "webhooks",
        help="the webhook receiver: signed platform pushes become poll hints",
        description="Receive the platforms' webhooks (Meta, YouTube WebSub, TikTok, X): check "
        "each signature over the raw body, answer the handshakes, and turn each delivery, once, "
        f"into poll hints on {HINTS.name} and content events on {CONTENT.name} "
        f"(unreadable payloads go to {DLQ.name}).",
    )
    actions = webhooks.add_subparsers(dest="webhooks_command", required=True, metavar="ACTION")
    p = actions.add_parser(
        "serve",
        help="serve the receiver on the port of CREATORPULSE_WEBHOOKS_URL",
        description="Serve POST/GET /webhooks/{meta,youtube,tiktok,x}, /metrics (Prometheus "
        "text) and /healthz on the port of CREATORPULSE_WEBHOOKS_URL, and keep the registry's "
        "YouTube channels subscribed at the WebSub hub. Needs PostgreSQL (migrated) and Kafka.",
    )
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)")
    p.add_argument("--no-websub", action="store_true",
                   help="do not subscribe YouTube channels at the WebSub hub")
    p.set_defaults(handler=cmd_serve)


def listen_port(url: str) -> int:
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


def receiver_config(settings: Settings) -> ReceiverConfig:
    from creatorpulse.sources.webhooks.app import ReceiverConfig

    return ReceiverConfig(
        meta_secrets=(settings.instagram_client_secret, settings.facebook_client_secret),
        meta_verify_token=settings.meta_verify_token,
        websub_secrets=(settings.websub_secret,),
        tiktok_secrets=(settings.tiktok_client_secret,),
        x_secrets=(settings.x_client_secret,),
        timestamp_tolerance=settings.webhooks_timestamp_tolerance,
        max_body=settings.webhooks_max_body,
        hints_topic=HINTS.name,
        content_topic=CONTENT.name,
        dlq_topic=DLQ.name,
    )


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from creatorpulse.sources.webhooks.app import build_app
    from creatorpulse.sources.webhooks.dedup import TABLE, PostgresDedup
    from creatorpulse.sources.webhooks.publish import KafkaPublisher, producer_config
    from creatorpulse.sources.webhooks.websub import HubClient, Subscriptions

    pool = ConnectionPool(settings.database_dsn.reveal(), min_size=1, max_size=8, open=False,
                          kwargs={"connect_timeout": 10}, name="webhooks")
    try:
        pool.open(wait=True, timeout=15)
    except PoolTimeout:
        pool.close()
        return _fail("cannot reach the database; start it with `creatorpulse stack up` "
                     "or set CREATORPULSE_DATABASE_URL")
    with pool.connection() as conn:
        present = conn.execute("SELECT to_regclass(%s)", (TABLE,)).fetchone()
    if present is None or present[0] is None:
        pool.close()
        return _fail(f"table {TABLE} is missing; run `creatorpulse db migrate`")
    producer = Producer(producer_config(settings.kafka_bootstrap, 10.0))
    try:
        producer.list_topics(timeout=10)
    except KafkaException:
        pool.close()
        return _fail(f"cannot reach Kafka at {settings.kafka_bootstrap}; start it with "
                     "`creatorpulse stack up` or set CREATORPULSE_KAFKA_BOOTSTRAP_SERVERS")
    publisher = KafkaPublisher(producer)
    dedup = PostgresDedup(pool)
    subscriptions = Subscriptions()
    session = requests.Session()
    hub = HubClient(session, settings.websub_hub, f"{settings.webhooks_url}/webhooks/youtube",
                    settings.websub_secret, settings.websub_lease)

    def upkeep() -> None:
        _upkeep_once(pool, dedup, subscriptions, hub if not args.no_websub else None, settings)

    app = build_app(receiver_config(settings), dedup, publisher, subscriptions=subscriptions,
                    lifespan=_lifespan(upkeep))
    port = listen_port(settings.webhooks_url)
    print(f"webhook receiver on http://{args.host}:{port}/webhooks/{{meta,youtube,tiktok,x}}, "
          f"metrics at /metrics", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=port,
                                           log_level=settings.log_level.lower(),
                                           # The project's logging; no access log: query
                                           # strings carry handshake tokens.
                                           log_config=None, access_log=False))
    try:
        server.run()
    finally:
        left = publisher.close()
        if left:
            log.error("%d records still unacknowledged at shutdown", left)
        session.close()
        pool.close()
    return 0 if server.started else 1


def _lifespan(upkeep: Callable[[], None]) -> Callable[[Any], Any]:
    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        async def loop() -> None:
            while True:
                try:
                    await asyncio.to_thread(upkeep)
                except Exception:
                    # Upkeep must outlive one bad round; the receiver itself is unaffected.
                    log.exception("webhook upkeep failed; trying again in %.0fs", UPKEEP_EVERY_S)
                await asyncio.sleep(UPKEEP_EVERY_S)

        task = asyncio.create_task(loop())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return lifespan


def _upkeep_once(pool: ConnectionPool, dedup: Any, subscriptions: Any, hub: Any,
                 settings: Settings) -> None:
    from creatorpulse.sources.webhooks.dedup import StoreError
    from creatorpulse.sources.webhooks.websub import renew, youtube_channels

    now = datetime.now(UTC)
    try:
        dedup.prune(now - KEEP_DELIVERIES)
    except StoreError as exc:
        log.warning("could not prune old deliveries: %s", exc)
    if hub is None:
        return
    try:
        with pool.connection() as conn:
            channels = youtube_channels(conn)
    except (psycopg.Error, PoolTimeout) as exc:
        log.warning("websub: cannot read the YouTube channels: %s", type(exc).__name__)
        return
    accepted = renew(channels, subscriptions, hub, lambda: datetime.now(UTC),
                     settings.websub_lease)
    if accepted:
        log.info("websub: %d subscription requests accepted by the hub", accepted)
