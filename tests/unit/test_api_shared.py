"""Subscription events are executed once per distinct (document, variables, tenant, role)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
import strawberry
from strawberry.extensions import ParserCache
from strawberry.types import Info

from creatorpulse.graphql import shared
from creatorpulse.graphql.auth import Principal, Role
from creatorpulse.graphql.live import LiveHub, TenantDirectory
from creatorpulse.graphql.shared import SharedEventExecutor
from tests.unit.test_api_live import FakeTenants, agg
from tests.unit.test_api_subscriptions import METRICS, SCHEMA, Boards, context, principal
from tests.waiting import until

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def fresh() -> None:
    shared.reset()


@pytest.fixture
async def hub() -> AsyncIterator[LiveHub]:
    h = LiveHub(tenants=TenantDirectory(FakeTenants()), leaderboard=Boards())
    yield h
    await h.stop()


async def _next(stream: Any) -> Any:
    return await asyncio.wait_for(anext(stream), 2)


async def test_subscribers_of_one_subscription_share_one_execution_per_event(
        hub: LiveHub) -> None:
    n = 20
    streams = [await SCHEMA.subscribe(METRICS, variable_values={"window": "1h"},
                                      context_value=context(hub, principal()))
               for _ in range(n)]
    for gain in (3, 4):
        pending = [asyncio.ensure_future(_next(s)) for s in streams]
        await until(lambda: hub.subscriber_count() == n, 2, f"{n} subscribers", 0.001)
        before = shared.stats.executions
        await hub.publish([agg(gain=gain)])
        results = await asyncio.gather(*pending)
        assert {r.data["metricUpdates"]["gain"] for r in results} == {gain}
        assert shared.stats.executions - before == 1
    assert shared.stats.shared == 2 * (n - 1)
    for s in streams:
        await s.aclose()


async def test_other_variables_execute_apart(hub: LiveHub) -> None:
    one = await SCHEMA.subscribe(METRICS, variable_values={"window": "1h"},
                                 context_value=context(hub, principal()))
    other = await SCHEMA.subscribe(METRICS, variable_values={"metrics": ["likes"]},
                                   context_value=context(hub, principal()))
    pending = [asyncio.ensure_future(_next(s)) for s in (one, other)]
    await until(lambda: hub.subscriber_count() == 2, 2, "two subscribers", 0.001)
    await hub.publish([agg(gain=9)])
    results = await asyncio.gather(*pending)
    assert [r.data["metricUpdates"]["gain"] for r in results] == [9, 9]
    assert (shared.stats.executions, shared.stats.shared) == (2, 0)
    for s in (one, other):
        await s.aclose()


# --- tenants and roles never share, even for the very same event object ----------------------

EVENT = object()
"""One event object handed to every subscriber, whatever its tenant (the worst case)."""


@strawberry.type
class Seen:
    @strawberry.field
    def tenant(self, info: Info[Any, Any]) -> str:
        return str(info.context.principal.tenant_id)

    @strawberry.field
    def role(self, info: Info[Any, Any]) -> str:
        return str(info.context.principal.role.name).lower()


@strawberry.type
class Query:
    ok: bool = True


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def seen(self, info: Info[Any, Any], rounds: int = 1) -> AsyncGenerator[Seen, None]:
        for _ in range(rounds):
            yield _SEEN


_SEEN = Seen()
# As the API's schema: parsed documents are cached by text, so equal texts share one document.
_PROBE = strawberry.Schema(query=Query, subscription=Subscription,
                           extensions=[lambda: ParserCache(maxsize=16)],
                           execution_context_class=SharedEventExecutor)
PROBE = "subscription ($rounds: Int) { seen(rounds: $rounds) { tenant role } }"


async def _first(who: Principal | None, rounds: int = 1) -> Any:
    ctx = SimpleNamespace(principal=who)
    stream = await _PROBE.subscribe(PROBE, variable_values={"rounds": rounds}, context_value=ctx)
    try:
        return (await _next(stream)).data["seen"]
    finally:
        await stream.aclose()


async def test_tenants_and_roles_never_share_a_result() -> None:
    a = await _first(principal("tenant-a"))
    b = await _first(principal("tenant-b"))
    editor = await _first(Principal(subject="bob", tenant_id="tenant-a", role=Role.EDITOR,
                                    expires_at=None))
    again = await _first(principal("tenant-a"))
    assert a == again == {"tenant": "tenant-a", "role": "viewer"}
    assert b == {"tenant": "tenant-b", "role": "viewer"}
    assert editor == {"tenant": "tenant-a", "role": "editor"}
    assert (shared.stats.executions, shared.stats.shared) == (3, 1)


async def test_anonymous_callers_never_share() -> None:
    executed = shared.stats.executions
    await _first(principal("tenant-a"))
    stream = await _PROBE.subscribe(PROBE, variable_values={"rounds": 1},
                                    context_value=SimpleNamespace(principal=None))
    # The resolver reads the principal: anonymous execution fails on its own, never shares.
    result = await _next(stream)
    await stream.aclose()
    assert result.errors
    assert shared.stats.executions - executed == 2
    assert shared.stats.shared == 0
