"""The Starlette application of the receiver: one route per platform, ``/metrics``, ``/healthz``.

Routes: ``/webhooks/meta`` (also ``/webhooks/instagram`` and ``/webhooks/facebook``, the same
Meta scheme), ``/webhooks/youtube``, ``/webhooks/tiktok``, ``/webhooks/x``.

A POST is handled in this order, and any step can end it:

1. the body is read raw, at most ``max_body`` bytes (413 beyond);
2. the signature is checked over those bytes (401 / 400, counted; nothing parsed before);
3. the payload is read into hints and content events; an unreadable one becomes a dead letter
   with the original bytes (answered 200: a retry would not make it readable);
4. the delivery id is claimed in the deduplication store; a delivery seen before is answered 200
   and nothing is published;
5. the records are published and acknowledged by Kafka, then the claim commits and 200 goes out.
   A failure of the store or of Kafka answers 503 and leaves no claim, so the platform's retry is
   processed.

GET on a platform's route is its handshake. Clients (store, publisher) are injected.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Lifespan

from creatorpulse.events import DeadLetter
from creatorpulse.observation import Platform
from creatorpulse.settings import Secret
from creatorpulse.sources.webhooks import (
    handshakes,
    meta,
    tiktok,
    verify_meta,
    verify_tiktok,
    verify_websub,
    verify_x,
    x,
    youtube,
)
from creatorpulse.sources.webhooks.dedup import DedupStore, StoreError
from creatorpulse.sources.webhooks.mapping import Delivery, Unmappable, body_id
from creatorpulse.sources.webhooks.metrics import DELIVERIES, FAILURES, HANDSHAKES, Counters
from creatorpulse.sources.webhooks.publish import Publisher, PublishError, Record
from creatorpulse.sources.webhooks.verify import Rejected
from creatorpulse.sources.webhooks.websub import Subscriptions

log = logging.getLogger(__name__)

TOO_LARGE = "too_large"


@dataclass(frozen=True)
class ReceiverConfig:
    """What the receiver checks with and where it publishes."""

    meta_secrets: Sequence[Secret]  # the Instagram and Facebook app secrets
    meta_verify_token: Secret
    websub_secrets: Sequence[Secret]
    tiktok_secrets: Sequence[Secret]
    x_secrets: Sequence[Secret]
    timestamp_tolerance: timedelta
    max_body: int
    hints_topic: str
    content_topic: str
    dlq_topic: str


@dataclass(frozen=True)
class Scheme:
    """One platform route: how its signature is checked and its payload read."""

    name: str
    platform: Platform | None  # None for Meta: Instagram or Facebook, known only from the body
    verify: Callable[[bytes, Request, datetime], None]
    read: Callable[[bytes, datetime], Delivery]


def schemes(config: ReceiverConfig) -> dict[str, Scheme]:
    def meta_check(body: bytes, request: Request, now: datetime) -> None:
        verify_meta.verify(body, request.headers.get(verify_meta.HEADER), config.meta_secrets)

    def websub_check(body: bytes, request: Request, now: datetime) -> None:
        verify_websub.verify(body, request.headers.get(verify_websub.HEADER),
                             config.websub_secrets)

    def tiktok_check(body: bytes, request: Request, now: datetime) -> None:
        verify_tiktok.verify(body, request.headers.get(verify_tiktok.HEADER),
                             config.tiktok_secrets, now=now,
                             tolerance=config.timestamp_tolerance)

    def x_check(body: bytes, request: Request, now: datetime) -> None:
        verify_x.verify(body, request.headers.get(verify_x.HEADER), config.x_secrets)

    return {
        "meta": Scheme("meta", None, meta_check, meta.read),
        # Meta lets each app (and the simulators) name its own callback: the same scheme.
        "instagram": Scheme("instagram", None, meta_check, meta.read),
        "facebook": Scheme("facebook", None, meta_check, meta.read),
        "youtube": Scheme("youtube", Platform.YOUTUBE, websub_check, youtube.read),
        "tiktok": Scheme("tiktok", Platform.TIKTOK, tiktok_check, tiktok.read),
        "x": Scheme("x", Platform.X, x_check, x.read),
    }


def _utcnow() -> datetime:
    return datetime.now(UTC)


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, or :class:`Rejected` 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise Rejected(413, TOO_LARGE)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Rejected(413, TOO_LARGE)
        chunks.append(chunk)
    return b"".join(chunks)


def build_app(
    config: ReceiverConfig,
    dedup: DedupStore,
    publisher: Publisher,
    *,
    counters: Counters | None = None,
    subscriptions: Subscriptions | None = None,
    clock: Callable[[], datetime] = _utcnow,
    lifespan: Lifespan[Any] | None = None,
) -> Starlette:
    counters = counters if counters is not None else Counters()
    subscriptions = subscriptions if subscriptions is not None else Subscriptions()
    by_name = schemes(config)

    def records_of(scheme: Scheme, body: bytes, now: datetime) -> tuple[str, list[Record], str]:
        """(delivery id, records, outcome) of a signed body."""
        try:
            delivery = scheme.read(body, now)
        except Unmappable as exc:
            letter = DeadLetter("webhook", scheme.platform, None, f"{scheme.name}: {exc.reason}",
                                body, now)
            log.warning("webhook %s: unreadable payload (%s), sent to %s", scheme.name,
                        exc.reason, config.dlq_topic)
            dead = [Record(config.dlq_topic, letter.key, letter.to_json())]
            return body_id(body), dead, "dead_letter"
        records = [Record(config.hints_topic, h.key, h.to_json()) for h in delivery.hints]
        records += [Record(config.content_topic, c.key, c.to_json()) for c in delivery.content]
        return delivery.delivery_id, records, "accepted"

    def process(scheme: Scheme, body: bytes, now: datetime) -> str:
        delivery_id, records, outcome = records_of(scheme, body, now)
        with dedup.claim(scheme.name, delivery_id) as first:
            if not first:
                return "duplicate"
            publisher.publish(records)
        log.info("webhook %s delivery %s: %s, %d records", scheme.name, delivery_id[:16],
                 outcome, len(records))
        return outcome

    async def receive(request: Request) -> Response:
        scheme = by_name[request.url.path.rsplit("/", 1)[1]]
        try:
            body = await read_body(request, config.max_body)
            now = clock()
            scheme.verify(body, request, now)
        except Rejected as exc:
            counters.inc(FAILURES, platform=scheme.name, reason=exc.reason)
            log.warning("webhook %s refused: %s", scheme.name, exc.reason)
            return JSONResponse({"error": exc.reason}, status_code=exc.status)
        try:
            outcome = await run_in_threadpool(process, scheme, body, now)
        except (PublishError, StoreError) as exc:
            reason = "publish_failed" if isinstance(exc, PublishError) else "store_failed"
            counters.inc(FAILURES, platform=scheme.name, reason=reason)
            log.error("webhook %s not processed (%s): %s", scheme.name, reason, exc)
            return JSONResponse({"error": reason}, status_code=503)
        counters.inc(DELIVERIES, platform=scheme.name, outcome=outcome)
        return JSONResponse({"status": outcome})

    async def handshake(request: Request) -> Response:
        name = request.url.path.rsplit("/", 1)[1]
        params = request.query_params
        try:
            if name in ("meta", "instagram", "facebook"):
                body: str | dict[str, str] = handshakes.meta(params, config.meta_verify_token)
            elif name == "youtube":
                body = handshakes.websub(params, subscriptions, clock())
            else:
                body = handshakes.x_crc(params, config.x_secrets[0])
        except Rejected as exc:
            counters.inc(FAILURES, platform=name, reason=exc.reason)
            log.warning("webhook %s handshake refused: %s", name, exc.reason)
            return PlainTextResponse(exc.reason, status_code=exc.status)
        counters.inc(HANDSHAKES, platform=name)
        if isinstance(body, dict):
            return JSONResponse(body)
        return PlainTextResponse(body)

    async def metrics(request: Request) -> Response:
        return PlainTextResponse(counters.render(),
                                 media_type="text/plain; version=0.0.4; charset=utf-8")

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    routes = [Route(f"/webhooks/{name}", receive, methods=["POST"]) for name in by_name]
    routes += [Route(f"/webhooks/{name}", handshake, methods=["GET"])
               for name in by_name if name != "tiktok"]
    routes += [Route("/metrics", metrics), Route("/healthz", healthz)]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.counters = counters
    app.state.subscriptions = subscriptions
    return app
