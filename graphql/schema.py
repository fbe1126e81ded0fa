"""The schema root: Query, Mutation and (when present) Subscription, with the API's limits.

:func:`build_schema` assembles it with the extensions that guard it, as factories so each
operation gets fresh instances:

- ``QueryDepthLimiter``, ``MaxAliasesLimiter``, ``MaxTokensLimiter``: refused at parsing or
  validation, before execution;
- :class:`~creatorpulse.graphql.limits.CostLimiter`: cost estimate, ``first`` caps, per-client
  token bucket, before any resolver runs;
- :class:`~creatorpulse.graphql.response_cache.ResponseCache`: whole answers of queries over
  aggregates and the registry from Redis, evicted with the aggregate cache;
- ``MaskErrors`` for unexpected errors, and :class:`ErrorCodes` that gives expected ones a
  ``code`` (and ``field`` for bad input);
- in production, ``DisableIntrospection`` and no field suggestions.

The committed ``graphql/schema.graphql`` is :func:`sdl` of the development schema; a unit test
fails when they differ (regenerate with ``creatorpulse api schema > graphql/schema.graphql``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)
from strawberry.extensions.context import StreamResultContextManager
from strawberry.extensions.query_depth_limiter import IgnoreContext
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.printer import print_schema
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext, StreamExecutionResult
from strawberry.utils.await_maybe import await_maybe

from creatorpulse.graphql.errors import InputError, RateLimited, error_code
from creatorpulse.graphql.limits import CostLimiter
from creatorpulse.graphql.mutations import Mutation
from creatorpulse.graphql.queries import RESPONSE_CACHED, Query
from creatorpulse.graphql.response_cache import Plans, ResponseCache
from creatorpulse.graphql.shared import SharedEventExecutor
from creatorpulse.graphql.types import SCALARS
from creatorpulse.settings import Settings

log = logging.getLogger(__name__)


def _subscription() -> type | None:
    """The Subscription root of graphql/subscriptions.py, when that module exists."""
    try:
        from creatorpulse.graphql.subscriptions import Subscription
    except ModuleNotFoundError as exc:
        if exc.name != "creatorpulse.graphql.subscriptions":
            raise
        return None
    return Subscription  # type: ignore[no-any-return]


def _unexpected(error: GraphQLError) -> bool:
    """Mask errors raised by our code that are not expected failures; keep validation errors."""
    original = error.original_error
    return original is not None and error_code(original) is None


class ErrorCodes(SchemaExtension):
    """Give each expected failure ``extensions.code`` (and ``field`` / ``retryAfter``)."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        for error in getattr(result, "errors", None) or ():
            original = error.original_error
            if original is None:
                continue
            code = error_code(original)
            if code is None:
                continue
            extra: dict[str, Any] = {"code": code}
            if isinstance(original, InputError):
                extra["field"] = original.field
            if isinstance(original, RateLimited):
                extra["retryAfter"] = original.retry_after
            reason = getattr(original, "reason", None)
            if code == "UNAUTHENTICATED" and reason:
                extra["reason"] = reason
            error.extensions = {**(error.extensions or {}), **extra}


class ApiMaskErrors(MaskErrors):
    """Strawberry's ``MaskErrors`` without its runtime-protocol ``isinstance`` per result, which
    a subscription pays for every event of every subscriber."""

    def _process_result(self, result: object) -> None:
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = self._process_errors(errors)  # type: ignore[attr-defined]


class ApiExtensionsRunner(SchemaExtensionsRunner):
    """Strawberry's runner, asking only the extensions that have something to say.

    A subscription event asks every extension for its results and its stream-result hook, for
    every subscriber; most have neither, and each asking costs. The extensions that override
    ``get_results`` or ``on_stream_result`` are picked out once per operation."""

    def __init__(self, execution_context: ExecutionContext,
                 extensions: list[SchemaExtension] | None = None) -> None:
        super().__init__(execution_context, extensions)
        self._reporting = [e for e in self.extensions
                           if type(e).get_results is not SchemaExtension.get_results]
        self._streaming = [e for e in self.extensions
                           if type(e).on_stream_result is not SchemaExtension.on_stream_result]

    def on_stream_result(self, result: StreamExecutionResult) -> StreamResultContextManager:
        return StreamResultContextManager(self._streaming, result)

    def get_extensions_results_sync(self) -> dict[str, Any]:
        return SchemaExtensionsRunner(self.execution_context,
                                      self._reporting).get_extensions_results_sync()

    async def get_extensions_results(self, ctx: ExecutionContext) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for extension in self._reporting:
            data.update(await await_maybe(extension.get_results()))
        data.update(ctx.extensions_results)
        return data


class ApiSchema(strawberry.Schema):
    """Logs only unexpected errors (refused tokens, bad input and limits are not incidents), with
    the path and the exception but not the operation's text, which may hold a token literal."""

    def create_extensions_runner(self, execution_context: ExecutionContext,
                                 extensions: list[SchemaExtension]) -> SchemaExtensionsRunner:
        return ApiExtensionsRunner(execution_context, extensions)

    def process_errors(self, errors: list[GraphQLError],
                       execution_context: ExecutionContext | None = None) -> None:
        for error in errors:
            if _unexpected(error):
                path = ".".join(str(p) for p in error.path or ()) or "(operation)"
                log.error("unexpected error at %s: %s", path, error.message,
                          exc_info=error.original_error)


def _skip_introspection(ctx: IgnoreContext) -> bool:
    return ctx.field_name.startswith("__")


# Distinct query texts whose parse and validation are kept (clients send few distinct texts).
_CACHE_SIZE = 1024


def extensions(settings: Settings, *, production: bool) -> list[Callable[[], SchemaExtension]]:
    # The depth and alias rules are built once: a limiter made per request makes new rule
    # classes each time, and validation could never be cached by query text.
    rules = [
        *QueryDepthLimiter(max_depth=settings.api_max_depth,
                           should_ignore=_skip_introspection).validation_rules,
        *MaxAliasesLimiter(max_alias_count=settings.api_max_aliases).validation_rules,
    ]
    plans = Plans(RESPONSE_CACHED, maxsize=_CACHE_SIZE)
    found: list[Callable[[], SchemaExtension]] = [
        lambda: MaxTokensLimiter(max_token_count=settings.api_max_tokens),
        lambda: ParserCache(maxsize=_CACHE_SIZE),
        lambda: AddValidationRules(rules),
        lambda: ValidationCache(maxsize=_CACHE_SIZE),
        lambda: CostLimiter(max_cost=settings.api_max_cost, max_first=settings.api_max_first),
        # After the limiter, which may refuse the operation before the cache is asked.
        lambda: ResponseCache(plans),
        lambda: ApiMaskErrors(should_mask_error=_unexpected),
        ErrorCodes,
    ]
    if production:
        found.append(DisableIntrospection)
    return found


def build_schema(settings: Settings, *, production: bool | None = None) -> strawberry.Schema:
    """The API's schema; ``production`` defaults to ``settings.environment == 'production'``."""
    prod = settings.environment == "production" if production is None else production
    return ApiSchema(
        query=Query,
        mutation=Mutation,
        subscription=_subscription(),
        extensions=extensions(settings, production=prod),
        config=StrawberryConfig(disable_field_suggestions=prod, scalar_map=SCALARS),
        # Subscription events are executed once per distinct subscription (graphql/shared.py).
        execution_context_class=SharedEventExecutor,
    )


def sdl(schema: strawberry.Schema) -> str:
    return print_schema(schema) + "\n"
