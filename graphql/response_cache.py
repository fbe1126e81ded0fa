"""Whole answers of read-only operations from the Redis cache, without executing them again.

A query made only of root fields that declare what their answer depends on
(:data:`~creatorpulse.graphql.queries.RESPONSE_CACHED`), and that selects below them only plain
fields (none with a resolver of its own, such as ``leaderboard { influencer { ... } }`` or
``influencers { edges { node { accounts { ... } } } }``), is *response-cacheable*. Its
``data`` is kept in :class:`~creatorpulse.graphql.cache.AggregateCache` under the caller's
tenant and role, the query text, the operation name and the variables, listed under the
dependencies its resolvers declared while it ran, so it is evicted exactly when a cached
aggregate answer would be: fresh aggregates, a registry change, an erasure.

A hit skips execution altogether: no resolver, no DataLoader, no graphql-core field walk, which
is most of what a cached query cost before. Everything in front of execution still happens on
every request: the token check, parsing and validation (cached by text), the cost estimate and
the client's rate budget (:class:`~creatorpulse.graphql.limits.CostLimiter` runs first and can
refuse), and the cost report in ``extensions``. Answers with errors are never stored.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Collection
from typing import Any

from graphql import (
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
)
from graphql.language import DocumentNode
from starlette.requests import Request
from strawberry.extensions import SchemaExtension

from creatorpulse.graphql.cache import cache_key

log = logging.getLogger(__name__)

# Strawberry keeps its field definition on each graphql-core field under this key.
_DEFINITION = "strawberry-definition"


def is_cacheable(schema: GraphQLSchema, document: DocumentNode, operation_name: str | None,
                 roots: Collection[str]) -> bool:
    """True when the operation is a query of ``roots`` fields with only plain fields below."""
    fragments = {d.name.value: d for d in document.definitions
                 if isinstance(d, FragmentDefinitionNode)}
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is None:
        if len(operations) != 1:
            return False
        operation = operations[0]
    else:
        found = [o for o in operations if o.name and o.name.value == operation_name]
        if len(found) != 1:
            return False
        operation = found[0]
    query = schema.query_type
    if operation.operation != OperationType.QUERY or query is None:
        return False

    def plain(parent: GraphQLObjectType, selections: SelectionSetNode, seen: frozenset[str],
              root: bool) -> bool:
        for sel in selections.selections:
            if isinstance(sel, FieldNode):
                name = sel.name.value
                if name == "__typename":
                    continue
                if name.startswith("__"):
                    return False  # introspection is not an aggregate answer
                field = parent.fields.get(name)
                if field is None:
                    return False  # validation refuses it; nothing to cache
                definition = (field.extensions or {}).get(_DEFINITION)
                if root:
                    if name not in roots:
                        return False
                elif definition is None or getattr(definition, "base_resolver", None):
                    return False  # a resolver of its own reads something the root did not
                if sel.selection_set is not None:
                    child = get_named_type(field.type)
                    if not isinstance(child, GraphQLObjectType):
                        return False  # interfaces and unions: not in this schema's answers
                    if not plain(child, sel.selection_set, seen, False):
                        return False
            elif isinstance(sel, InlineFragmentNode):
                if not plain(parent, sel.selection_set, seen, root):
                    return False
            elif isinstance(sel, FragmentSpreadNode):
                name = sel.name.value
                if name in seen or name not in fragments:
                    return False
                if not plain(parent, fragments[name].selection_set, seen | {name}, root):
                    return False
        return True

    return plain(query, operation.selection_set, frozenset(), True)


class Plans:
    """Cacheability per (query text, operation name), decided once (clients send few texts)."""

    def __init__(self, roots: Collection[str], maxsize: int = 1024) -> None:
        self.roots = frozenset(roots)
        self._maxsize = maxsize
        self._known: OrderedDict[tuple[str, str | None], bool] = OrderedDict()

    def cacheable(self, schema: GraphQLSchema, query: str, document: DocumentNode,
                  operation_name: str | None) -> bool:
        key = (query, operation_name)
        known = self._known.get(key)
        if known is None:
            known = is_cacheable(schema, document, operation_name, self.roots)
            self._known[key] = known
            if len(self._known) > self._maxsize:
                self._known.popitem(last=False)
        return known


class CachedData:
    """A cached ``data`` member as the JSON text it was stored as (see ``encode_response``)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def encode_response(response: dict[str, Any]) -> str | None:
    """The HTTP response body of a cached answer, its ``data`` spliced in as stored (the rest
    encoded as Strawberry does); None when ``response`` holds no cached answer."""
    data = response.get("data")
    if not isinstance(data, CachedData):
        return None
    rest = {k: v for k, v in response.items() if k != "data"}
    if not rest:
        return '{"data":' + data.text + "}"
    return '{"data":' + data.text + "," + json.dumps(rest, separators=(",", ":"))[1:]


def response_key(tenant_id: str, role: str, query: str, operation_name: str | None,
                 variables: dict[str, Any] | None) -> str:
    return cache_key(tenant_id, "response", [role, query, operation_name, variables or {}])


class ResponseCache(SchemaExtension):
    """Answer response-cacheable operations from the cache; store the others' answers.

    Runs after :class:`~creatorpulse.graphql.limits.CostLimiter`: an operation it refused has
    its result set already and is left alone. The context must offer ``principal``,
    ``services.cache`` and ``response_deps``.
    """

    def __init__(self, plans: Plans) -> None:
        self._plans = plans

    async def on_execute(self) -> AsyncIterator[None]:
        ctx = self.execution_context
        context = ctx.context
        principal = getattr(context, "principal", None)
        document, query = ctx.graphql_document, ctx.query
        if (ctx.result is not None or principal is None or document is None or query is None
                or not self._plans.cacheable(ctx.schema._schema, query, document,
                                             ctx.operation_name)):
            yield
            return
        cache = context.services.cache
        key = response_key(principal.tenant_id, principal.role.label, query, ctx.operation_name,
                           ctx.variables)
        raw, since = await cache.lookup(key)
        if raw is not None:
            # Over HTTP the view splices the stored text into its response as it is; anything
            # else (a WebSocket, schema.execute) gets it parsed.
            data = (CachedData(raw.decode()) if isinstance(getattr(context, "request", None),
                                                           Request) else json.loads(raw))
            ctx.result = ExecutionResult(data=data)  # type: ignore[arg-type]
            yield
            return
        context.response_deps = set()
        try:
            yield
        finally:
            deps, context.response_deps = context.response_deps, None
        result = ctx.result
        if (isinstance(result, ExecutionResult) and not result.errors
                and result.data is not None and deps):
            await cache.store(key, json.dumps(result.data, separators=(",", ":")), deps, since)
