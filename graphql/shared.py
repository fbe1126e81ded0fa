"""Subscription events executed and encoded once per distinct subscription, not per subscriber.

The live hub hands every subscriber of one distinct subscription the same event object (one
:class:`~creatorpulse.graphql.subscriptions.MetricUpdate` per aggregate, one
``LeaderboardUpdate`` per leaderboard). Two pieces make the last steps shared as well:

- :class:`SharedEventExecutor`, the schema's graphql-core executor: the selection set of a
  subscription event is executed once per distinct (operation document, variables, tenant,
  role, event) and the same result is handed to every subscriber of that key (who then builds
  no per-event executor at all). The document is
  the parser cache's object for the query text, so equal texts share it; a subscriber whose
  document, variables, tenant or role differ never sees another's result. Anonymous callers
  never share. So a resolver under a subscription's payload may depend on the event, the
  arguments, the tenant and the role, never on anything else of the caller (its subject, say).
- :class:`SharedTransportWSHandler`, the ``graphql-transport-ws`` handler: the ``data`` of a
  ``next`` message is encoded to JSON once per result and spliced into each subscriber's
  message (its own ``id``, and its own ``errors`` and ``extensions``, e.g. the cost report).

Everything else (authentication, close codes, pre-execution errors, the per-owner cap, token
expiry, slow subscribers) stays per subscriber, in Strawberry's handler and the hub.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import Awaitable, Hashable
from dataclasses import dataclass
from inspect import isawaitable
from typing import Any

from starlette.websockets import WebSocketDisconnect
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.types.execution import ExecutionResult, PreExecutionError

CACHE_SIZE = 4096
"""Distinct (subscription, event) results kept; a round of fresh aggregates needs one per
distinct subscription, so this covers many rounds of thousands of distinct subscriptions."""


@dataclass
class SharingStats:
    """Counters for tests and the benchmark."""

    executions: int = 0
    """Subscription events executed (one per distinct key and event)."""
    shared: int = 0
    """Subscription events answered from another subscriber's execution."""
    encodings: int = 0
    """``data`` payloads encoded to JSON."""


stats = SharingStats()


class _Results:
    """Results by key, least recently used first out. Each entry keeps the objects whose
    ``id()`` is in its key, so an id is never reused while its entry lives."""

    def __init__(self, size: int) -> None:
        self._entries: OrderedDict[Hashable, tuple[tuple[Any, ...], Any]] = OrderedDict()
        self._size = size

    def get(self, key: Hashable, holds: tuple[Any, ...]) -> Any | None:
        entry = self._entries.get(key)
        if entry is None or any(a is not b for a, b in zip(entry[0], holds, strict=True)):
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: Hashable, holds: tuple[Any, ...], value: Any) -> None:
        self._entries[key] = (holds, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()


_results = _Results(CACHE_SIZE)


def _variables_key(variables: Any) -> str | None:
    try:
        return json.dumps(variables, sort_keys=True, default=repr, separators=(",", ":"))
    except (TypeError, ValueError):  # not representable: this subscriber does not share
        return None


def _caller(context: Any) -> tuple[str, str] | None:
    principal = getattr(context, "principal", None)
    if principal is None:
        return None
    role = getattr(principal, "role", None)
    return str(principal.tenant_id), str(role)


class SharedEventExecutor(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's executor, sharing the execution of subscription events per distinct key."""

    _variables: str | None = None
    _variables_known = False

    def build_per_event_executor(self, payload: Any) -> Any:
        key = self._share_key(payload)
        if key is None:
            stats.executions += 1
            return super().build_per_event_executor(payload)
        holds = (self.schema, self.operation, payload)
        found = _results.get(key, holds)
        if found is not None:
            # Another subscriber's execution of this event: no executor of our own to build.
            stats.shared += 1
            return _Shared(_shield(found) if isinstance(found, asyncio.Future) else found)
        stats.executions += 1
        return _Leading(super().build_per_event_executor(payload), key, holds)

    def _share_key(self, event: Any) -> Hashable | None:
        """(schema, operation, event, variables, tenant, role), or None: this caller does not
        share (anonymous, or variables that cannot be keyed)."""
        caller = _caller(self.context_value)
        # A subscription's variables never change: their key is made once, not per event.
        if not self._variables_known:
            self._variables = _variables_key(self.variable_values)
            self._variables_known = True
        if caller is None or self._variables is None:
            return None
        # Parsed documents are cached process-wide, so the schema is part of the key too.
        return (id(self.schema), id(self.operation), id(event), self._variables, *caller)


class _Shared:
    """Stands in for a per-event executor: the shared result is already there."""

    __slots__ = ("_result",)

    def __init__(self, result: Any) -> None:
        self._result = result

    def execute_operation(self, serially: bool | None = None) -> Any:
        return self._result


class _Leading:
    """A per-event executor whose result the other subscribers of its key will share."""

    __slots__ = ("_executor", "_holds", "_key")

    def __init__(self, executor: Any, key: Hashable, holds: tuple[Any, ...]) -> None:
        self._executor, self._key, self._holds = executor, key, holds

    def execute_operation(self, serially: bool | None = None) -> Any:
        key, holds = self._key, self._holds
        result = self._executor.execute_operation(serially)
        if isawaitable(result):
            # Subscribers of the same key arriving while it runs wait for this one execution.
            future = asyncio.ensure_future(_awaited(result))
            _results.put(key, holds, future)
            future.add_done_callback(lambda f: _settle(key, holds, f))
            return _shield(future)
        _results.put(key, holds, result)
        return result


async def _awaited(result: Awaitable[Any]) -> Any:
    return await result


async def _shield(future: asyncio.Future[Any]) -> Any:
    return await asyncio.shield(future)


def _settle(key: Hashable, holds: tuple[Any, ...], future: asyncio.Future[Any]) -> None:
    """Keep the finished result (not the future), or forget a failed execution."""
    if future.cancelled() or future.exception() is not None:
        if _results.get(key, holds) is future:
            _results.put(key, holds, None)
        return
    if _results.get(key, holds) is future:
        _results.put(key, holds, future.result())


# --- the graphql-transport-ws handler ------------------------------------------------------


class _Encoded:
    """The JSON text of the last ``data`` payloads, by identity of the shared ``data`` dict."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self._entries = _Results(size)

    def __call__(self, data: Any, encode: Any) -> str:
        key = id(data)
        text = self._entries.get(key, (data,))
        if text is None:
            stats.encodings += 1
            text = encode(data)
            self._entries.put(key, (data,), text)
        return str(text)


_encoded = _Encoded()


def _text(encoded: str | bytes) -> str:
    return encoded.decode() if isinstance(encoded, bytes) else encoded


class SharedTransportWSHandler(BaseGraphQLTransportWSHandler[Any, Any]):
    """Strawberry's ``graphql-transport-ws`` handler, encoding each shared ``data`` once."""

    async def _send_result_stream(self, operation: Operation[Any, Any], result_source: Any
                                  ) -> None:
        # As Strawberry's, with the ``next`` message built from the shared encoding.
        is_first_result = True
        async for result in result_source:
            if is_first_result and isinstance(result, PreExecutionError):
                await self._handle_pre_execution_error(operation, result)
                return
            if not isinstance(result, ExecutionResult):
                await self._reject_incremental_delivery(operation)
                return
            await self._send_next(operation, result)
            is_first_result = False

    async def _send_next(self, operation: Operation[Any, Any], result: Any) -> None:
        if operation.completed:
            return
        ws = getattr(self.websocket, "ws", None)
        if ws is None or result.data is None:
            await operation.send_next(result)
            return

        def encode(value: Any) -> str:
            return _text(self.view.encode_json(value))

        parts = ['{"id":', encode(operation.id), ',"type":"next","payload":{"data":',
                 _encoded(result.data, encode)]
        if result.errors:
            parts += [',"errors":', encode([e.formatted for e in result.errors])]
        if result.extensions:
            parts += [',"extensions":', encode(result.extensions)]
        parts.append("}}")
        try:
            await ws.send_text("".join(parts))
        except WebSocketDisconnect as exc:
            raise WebSocketDisconnected from exc


def reset() -> None:
    """Forget every kept result and zero the counters (tests)."""
    _results.clear()
    _encoded._entries.clear()
    stats.executions = stats.shared = stats.encodings = 0
