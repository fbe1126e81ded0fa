"""``/metrics/stream``: fresh aggregates over a plain WebSocket, for clients that speak no GraphQL.

A thin route over the same :class:`~creatorpulse.graphql.live.LiveHub` as the ``metricUpdates``
subscription. The protocol:

1. the client opens the socket and sends one JSON message within the init timeout::

       {"token": "<jwt>", "influencer_ids": ["..."], "platforms": ["instagram"],
        "metrics": ["likes"], "window": "1h"}

   (every filter optional; the token may instead come as an ``Authorization: Bearer`` header of
   the handshake, never in the query string);
2. the server answers ``{"type": "subscribed"}``, then sends
   ``{"type": "aggregates", "data": [{...}, ...]}`` for each batch of matching fresh aggregates
   (the fields of the aggregates topic);
3. close codes follow graphql-transport-ws: 4400 malformed message, 4403 missing or invalid
   token (or token expired), 4404 an influencer that is not the tenant's, 4408 no message in
   time; 1008 (policy) when the token's subject holds too many live subscriptions, 1013 ("try
   again later") when the client fell behind and was dropped.

Each batch is encoded once per distinct set of filters and the same text goes to every client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from creatorpulse.aggregate import Aggregate
from creatorpulse.graphql.auth import AuthError, Principal, bearer_token, verify
from creatorpulse.graphql.live import (
    LiveHub,
    MetricKey,
    NotFound,
    SlowSubscriber,
    TooManySubscriptions,
)
from creatorpulse.settings import Settings

log = logging.getLogger(__name__)

PATH = "/metrics/stream"
INIT_TIMEOUT = timedelta(seconds=10)
_FILTERS = {"influencer_ids", "platforms", "metrics", "window"}


class StreamRequestError(ValueError):
    """The client's first message is not a valid subscription; the message says why."""


def parse_request(message: Any, tenant_id: str) -> MetricKey:
    """The subscription a first message asks for, within ``tenant_id`` (pure)."""
    if not isinstance(message, dict):
        msg = "expected a JSON object"
        raise StreamRequestError(msg)
    unknown = sorted(set(message) - _FILTERS - {"token"})
    if unknown:
        msg = f"unknown fields {unknown}"
        raise StreamRequestError(msg)
    lists: dict[str, list[str] | None] = {}
    for name in ("influencer_ids", "platforms", "metrics"):
        value = message.get(name)
        if value is not None and (
            not isinstance(value, list) or len(value) > 100
            or not all(isinstance(v, str) and v for v in value)
        ):
            msg = f"{name}: expected a list of at most 100 strings"
            raise StreamRequestError(msg)
        lists[name] = value
    window = message.get("window")
    if window is not None and (not isinstance(window, str) or not window):
        msg = "window: expected a string such as 1h"
        raise StreamRequestError(msg)
    return MetricKey.of(tenant_id, influencer_ids=lists["influencer_ids"],
                        platforms=lists["platforms"], metrics=lists["metrics"], window=window)


def aggregate_json(a: Aggregate) -> dict[str, Any]:
    return {
        "influencer_id": a.influencer_id, "platform": a.platform, "metric": a.metric,
        "window": a.window_name, "window_start": a.window_start.isoformat(),
        "window_end": a.window_end.isoformat(), "gain": a.gain,
        "value_at_start": a.value_at_start, "value_at_end": a.value_at_end,
        "provenance": a.provenance.value,
    }


class _Encoded:
    """The JSON text of the last payloads, so each payload is encoded once for all clients."""

    def __init__(self, size: int = 256) -> None:
        self._entries: OrderedDict[int, tuple[object, str]] = OrderedDict()
        self._size = size
        self.encodings = 0

    def __call__(self, batch: Sequence[Aggregate]) -> str:
        entry = self._entries.get(id(batch))
        if entry is not None and entry[0] is batch:
            return entry[1]
        self.encodings += 1
        text = json.dumps({"type": "aggregates", "data": [aggregate_json(a) for a in batch]},
                          separators=(",", ":"))
        self._entries[id(batch)] = (batch, text)
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return text


def metrics_stream_route(
    settings: Settings,
    hub_of: Callable[[WebSocket], LiveHub | None],
    *,
    path: str = PATH,
    init_timeout: timedelta = INIT_TIMEOUT,
) -> WebSocketRoute:
    """The ``/metrics/stream`` route; ``hub_of`` finds the process's hub (None: not enabled)."""
    encode = _Encoded()

    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            first = await asyncio.wait_for(websocket.receive_text(),
                                           init_timeout.total_seconds())
        except TimeoutError:
            await websocket.close(4408, "Connection initialisation timeout")
            return
        except WebSocketDisconnect:
            return
        try:
            message = json.loads(first)
        except ValueError:
            await websocket.close(4400, "expected a JSON message")
            return
        try:
            principal = _authenticate(websocket, message, settings)
        except AuthError as exc:
            log.info("metrics stream rejected: %s", exc.reason)
            await websocket.close(4403, "Forbidden")
            return
        try:
            key = parse_request(message, principal.tenant_id)
        except StreamRequestError as exc:
            await websocket.close(4400, str(exc)[:120])
            return
        hub = hub_of(websocket)
        if hub is None:
            await websocket.close(1013, "live updates are not enabled on this server")
            return
        await _serve(websocket, hub, key, principal, encode)

    return WebSocketRoute(path, endpoint, name="metrics_stream")


def _authenticate(websocket: WebSocket, message: Any, settings: Settings) -> Principal:
    token = message.get("token") if isinstance(message, dict) else None
    if not isinstance(token, str) or not token:
        token = bearer_token(websocket.headers.get("authorization"))
    if not token:
        raise AuthError("missing", "no token")
    return verify(token, settings)


async def _serve(websocket: WebSocket, hub: LiveHub, key: MetricKey, principal: Principal,
                 encode: _Encoded) -> None:
    outcome: list[tuple[int, str]] = []
    try:
        async with hub.metric_updates(key, principal.subject) as updates:
            await websocket.send_text('{"type":"subscribed"}')
            async with anyio.create_task_group() as tasks:

                async def watch() -> None:
                    if await _until_closed(websocket, principal):
                        outcome.append((4403, "Token expired"))
                    tasks.cancel_scope.cancel()

                async def send() -> None:
                    try:
                        async for batch in updates:
                            await websocket.send_text(encode(batch))
                    except SlowSubscriber:
                        outcome.append((1013, "Too slow: dropped"))
                    else:
                        outcome.append((1001, "Server going away"))
                    tasks.cancel_scope.cancel()

                tasks.start_soon(watch)
                tasks.start_soon(send)
    except NotFound as exc:
        outcome.append((4404, str(exc)[:120]))
    except TooManySubscriptions as exc:
        outcome.append((1008, str(exc)[:120]))
    if outcome:
        await _close(websocket, *outcome[0])


async def _until_closed(websocket: WebSocket, principal: Principal) -> bool:
    """Wait for the client to go away (False) or for its token to expire (True)."""
    remaining = None
    if principal.expires_at is not None:
        remaining = max(0.0, (principal.expires_at - datetime.now(UTC)).total_seconds())
    try:
        async with asyncio.timeout(remaining):
            while True:
                # Anything the client sends after its first message is ignored.
                await websocket.receive_text()
    except TimeoutError:
        return True
    except (WebSocketDisconnect, RuntimeError, KeyError):
        return False


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    if websocket.application_state == WebSocketState.CONNECTED:
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await websocket.close(code, reason)
