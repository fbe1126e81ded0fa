"""What one operation may ask for: a static cost estimate, page caps and a per-client budget.

Strawberry's own limiters (depth, aliases, tokens) run at validation; this module adds what it
lacks (GitHub's and Shopify's approach):

- :func:`estimate_cost` walks the operation before execution. Each object or list of objects
  costs one point per parent that requests it; a field's children are multiplied by its
  ``first`` (or a typical list size), so ``influencers(first: 100) { edges { node { accounts
  { id } } } }`` costs 1 + 100 + 100 + 100 points. A ``first`` outside 1..max is refused here.
- :class:`TokenBucket`: a per-client bucket in Redis, refilled continuously and charged by the
  cost in one Lua script (atomic: parallel requests never overspend). A refused charge says how
  many seconds until the budget covers the operation.
- :class:`CostLimiter`: the schema extension that does both before any resolver runs and reports
  ``extensions.cost`` (requested, remaining, limit).
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import GraphQLError
from graphql.language import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
)
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.datastructures import MutableHeaders
from strawberry.extensions import SchemaExtension

log = logging.getLogger(__name__)

# Typical sizes of lists that take no `first`, used to multiply their children.
# Lists with a `first` argument count as their default page when `first` is left out.
LIST_SIZES: Mapping[str, int] = {
    "influencers": 20,
    "leaderboard": 10,
    "accounts": 5,
    "metrics": 10,
    "series": 10,
    "buckets": 1,  # buckets are leaves; their count does not multiply database work
    "aggregatedMetrics": 10,
}


class CostError(Exception):
    """The operation cannot be admitted; ``field`` names the argument at fault, if any."""

    def __init__(self, message: str, code: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.field = field


def _first(node: FieldNode, variables: Mapping[str, Any],
           defaults: Mapping[str, Any]) -> int | None:
    for arg in node.arguments or ():
        if arg.name.value != "first":
            continue
        value = arg.value
        if isinstance(value, IntValueNode):
            return int(value.value)
        if isinstance(value, VariableNode):
            name = value.name.value
            got = variables.get(name, defaults.get(name))
            return int(got) if isinstance(got, int) else None
    return None


def estimate_cost(
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
    *,
    max_first: int,
) -> int:
    """The requested cost of the operation in points (at least 1); CostError on a bad ``first``."""
    fragments = {d.name.value: d for d in document.definitions
                 if isinstance(d, FragmentDefinitionNode)}
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    operation = next((o for o in operations
                      if operation_name is None or (o.name and o.name.value == operation_name)),
                     None)
    if operation is None:
        return 1
    defaults: dict[str, Any] = {}
    for var in operation.variable_definitions or ():
        if isinstance(var.default_value, IntValueNode):
            defaults[var.variable.name.value] = int(var.default_value.value)
    variables = variables or {}

    def walk(selection_set: SelectionSetNode, multiplier: int, seen: frozenset[str]) -> int:
        cost = 0
        for sel in selection_set.selections:
            if isinstance(sel, FieldNode):
                if sel.name.value.startswith("__"):
                    continue
                first = _first(sel, variables, defaults)
                if first is not None and not 1 <= first <= max_first:
                    path = f"{sel.name.value}.first"
                    msg = f"{path}: must be between 1 and {max_first}, got {first}"
                    raise CostError(msg, "BAD_USER_INPUT", path)
                if sel.selection_set is None:
                    continue
                cost += multiplier
                size = first if first is not None else LIST_SIZES.get(sel.name.value, 1)
                cost += walk(sel.selection_set, multiplier * size, seen)
            elif isinstance(sel, InlineFragmentNode):
                cost += walk(sel.selection_set, multiplier, seen)
            elif isinstance(sel, FragmentSpreadNode):
                name = sel.name.value
                if name in seen or name not in fragments:
                    continue  # validation reports cycles and unknown fragments
                cost += walk(fragments[name].selection_set, multiplier, seen | {name})
        return cost

    return max(1, walk(operation.selection_set, 1, frozenset()))


@dataclass(frozen=True)
class Charge:
    allowed: bool
    remaining: float
    retry_after: float  # seconds; 0 when allowed


# KEYS[1]: the client's bucket (hash: tokens, ts in ms). ARGV: capacity, refill per second, cost.
# Redis's own clock, so that every API process shares one notion of time.
_BUCKET = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = capacity
  ts = now
end
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate / 1000)
local allowed = 0
local wait_ms = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  wait_ms = math.ceil((cost - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity * 1000 / rate) + 1000)
return {allowed, tostring(tokens), wait_ms}
"""


class TokenBucket:
    """Per-client cost budgets in Redis: ``capacity`` points, ``refill`` points per second."""

    PREFIX = "cp:api:bucket:"

    def __init__(self, redis: Redis, capacity: int, refill: int) -> None:
        self.capacity, self.refill = capacity, refill
        self._script = redis.register_script(_BUCKET)

    async def charge(self, client: str, cost: int) -> Charge:
        allowed, tokens, wait_ms = await self._script(
            keys=[self.PREFIX + client], args=[self.capacity, self.refill, cost])
        return Charge(bool(allowed), float(tokens), int(wait_ms) / 1000)


def _refusal(message: str, **extensions: Any) -> GraphQLExecutionResult:
    return GraphQLExecutionResult(data=None, errors=[GraphQLError(message,
                                                                  extensions=extensions)])


class CostLimiter(SchemaExtension):
    """Estimate the operation's cost, refuse it above ``max_cost``, charge the client's bucket.

    The context must offer ``bucket`` (a :class:`TokenBucket` or None) and ``client_key``
    (``sub`` of the token, or the address of an anonymous caller).
    """

    def __init__(self, *, max_cost: int, max_first: int) -> None:
        self.max_cost, self.max_first = max_cost, max_first
        self.report: dict[str, Any] = {}

    async def on_execute(self) -> AsyncIterator[None]:
        ctx = self.execution_context
        refusal = None
        if ctx.graphql_document is not None:
            refusal = await self._admit(ctx.graphql_document, ctx.operation_name,
                                        ctx.variables or {}, ctx.context)
        if refusal is not None:
            ctx.result = refusal
        yield

    async def _admit(self, document: DocumentNode, operation_name: str | None,
                     variables: Mapping[str, Any], context: Any) -> GraphQLExecutionResult | None:
        try:
            cost = estimate_cost(document, operation_name, variables, max_first=self.max_first)
        except CostError as exc:
            return _refusal(str(exc), code=exc.code, field=exc.field)
        self.report = {"requested": cost, "limit": self.max_cost}
        if cost > self.max_cost:
            return _refusal(f"the operation's estimated cost {cost} exceeds the limit "
                            f"{self.max_cost}: ask for fewer items", code="COST_LIMIT",
                            cost=cost, limit=self.max_cost)
        bucket: TokenBucket | None = getattr(context, "bucket", None)
        if bucket is None:
            return None
        client = str(getattr(context, "client_key", "anonymous"))
        try:
            charge = await bucket.charge(client, cost)
        except RedisError as exc:
            # Fail closed for anonymous callers, open for authenticated ones (logged).
            log.warning("rate limiter unavailable: %s", exc)
            if getattr(context, "principal", None) is None:
                return _refusal("rate limiter unavailable; retry shortly",
                                code="RATE_LIMITED", retryAfter=1)
            return None
        metrics = getattr(context, "metrics", None)
        if metrics is not None:
            metrics.cost.inc(cost)
        self.report.update(remaining=math.floor(charge.remaining), capacity=bucket.capacity,
                           refillPerSecond=bucket.refill)
        headers = getattr(getattr(context, "response", None), "headers", None)
        if isinstance(headers, MutableHeaders):  # HTTP (not WebSocket): headers too, as GitHub

            headers["X-RateLimit-Limit"] = str(bucket.capacity)
            headers["X-RateLimit-Remaining"] = str(math.floor(charge.remaining))
            if not charge.allowed:
                headers["Retry-After"] = str(max(1, math.ceil(charge.retry_after)))
        if not charge.allowed:
            if metrics is not None:
                metrics.throttled.inc()
            retry = max(1, math.ceil(charge.retry_after))
            return _refusal(f"rate limit: this operation costs {cost} points and "
                            f"{math.floor(charge.remaining)} remain; retry in {retry} s",
                            code="RATE_LIMITED", retryAfter=retry, cost=cost)
        return None

    def get_results(self) -> dict[str, Any]:
        return {"cost": self.report} if self.report else {}
