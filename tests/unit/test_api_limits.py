"""Operation limits: cost estimates, page caps, depth, aliases, tokens, production hygiene.

Every refusal here must happen before any resolver runs: the stub context counts each time a
resolver asks who the caller is (the first thing every resolver does).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest
from graphql import parse

from creatorpulse.graphql.auth import Principal, Role, require
from creatorpulse.graphql.limits import CostError, estimate_cost
from creatorpulse.graphql.schema import build_schema
from creatorpulse.settings import Settings


def settings(**env: str) -> Settings:
    return Settings.from_env({f"CREATORPULSE_{k}": v for k, v in env.items()}, dotenv=None)


@dataclass
class CountingContext:
    """Stands in for the request context; counts resolver entries, offers no services."""

    principal: Principal | None = field(default_factory=lambda: Principal("u", "t", Role.ADMIN))
    calls: int = 0
    bucket: Any = None
    client_key: str = "sub:t:u"
    settings: Settings = field(default_factory=settings)

    def tenant(self, role: Role = Role.VIEWER) -> str:
        self.calls += 1
        require(self.principal, role)
        msg = "no services in unit tests"
        raise RuntimeError(msg)

    @property
    def loaders(self) -> Any:
        self.calls += 1
        msg = "no loaders in unit tests"
        raise RuntimeError(msg)


def run(query: str, *, production: bool = False, variables: dict[str, Any] | None = None,
        **env: str) -> tuple[Any, CountingContext]:
    ctx = CountingContext(settings=settings(**env))
    schema = build_schema(ctx.settings, production=production)
    result = asyncio.run(schema.execute(query, variable_values=variables, context_value=ctx))
    return result, ctx


def cost(query: str, variables: dict[str, Any] | None = None, max_first: int = 100) -> int:
    return estimate_cost(parse(query), None, variables, max_first=max_first)


# --- the cost estimate --------------------------------------------------------------------


def test_scalars_cost_nothing_and_an_operation_costs_at_least_one() -> None:
    assert cost("{ __typename }") == 1
    assert cost('{ influencer(id: "1") { id name } }') == 1


def test_connections_multiply_their_children_by_first() -> None:
    q = "{ influencers(first: 100) { edges { node { id accounts { id } } } } }"
    # influencers 1, edges 100, node 100, accounts 100 (one per node)
    assert cost(q) == 301


def test_a_missing_first_counts_as_the_default_page() -> None:
    assert cost("{ influencers { edges { node { id } } } }") == 1 + 20 + 20


def test_first_from_variables_and_fragments_count_too() -> None:
    q = """query Q($n: Int = 5) { influencers(first: $n) { ...E } }
           fragment E on InfluencerConnection { edges { node { id } } }"""
    assert cost(q) == 1 + 5 + 5
    assert cost(q, {"n": 50}) == 1 + 50 + 50


def test_first_outside_the_cap_is_refused_naming_the_field() -> None:
    with pytest.raises(CostError) as caught:
        cost("{ influencers(first: 101) { totalCount } }")
    assert caught.value.field == "influencers.first"
    assert "between 1 and 100" in str(caught.value)
    with pytest.raises(CostError):
        cost("{ leaderboard(metric: \"likes\", first: 0) { rank } }")


def test_cyclic_fragments_do_not_hang_the_estimate() -> None:
    q = """{ influencers { ...A } }
           fragment A on InfluencerConnection { ...B }
           fragment B on InfluencerConnection { ...A }"""
    assert cost(q) >= 1


# --- refusals before any resolver ---------------------------------------------------------


def codes(result: Any) -> list[str | None]:
    return [(e.extensions or {}).get("code") for e in result.errors or []]


def test_a_deep_query_is_refused_before_resolvers() -> None:
    nested = "influencer { " * 8 + "id" + " }" * 8
    q = f'{{ accounts {{ influencer {{ accounts {{ {nested} }} }} }} }}'
    result, ctx = run(q)
    assert result.errors
    assert "exceeds maximum operation depth" in result.errors[0].message
    assert ctx.calls == 0


def test_too_many_aliases_are_refused_before_resolvers() -> None:
    q = "{ " + " ".join(f'a{i}: influencer(id: "{i}") {{ id }}' for i in range(16)) + " }"
    result, ctx = run(q)
    assert result.errors
    assert "aliases" in result.errors[0].message
    assert ctx.calls == 0


def test_too_many_tokens_are_refused_before_resolvers() -> None:
    q = "{ accounts { " + "id " * 2500 + "} }"
    result, ctx = run(q)
    assert result.errors
    assert "token" in result.errors[0].message.lower()
    assert ctx.calls == 0


def test_an_operation_over_the_cost_limit_is_refused_before_resolvers() -> None:
    q = ("{ influencers(first: 100) { edges { node { accounts { influencer { accounts { id } } } }"
         " } } }")
    result, ctx = run(q)
    assert codes(result) == ["COST_LIMIT"]
    assert ctx.calls == 0
    result, ctx = run(q, API_MAX_COST="100000")
    assert codes(result) != ["COST_LIMIT"]
    assert ctx.calls > 0


def test_a_page_over_the_cap_is_refused_before_resolvers() -> None:
    result, ctx = run("{ influencers(first: 1000) { totalCount } }")
    assert codes(result) == ["BAD_USER_INPUT"]
    assert result.errors[0].extensions["field"] == "influencers.first"
    assert ctx.calls == 0
    result, ctx = run("query($n: Int!) { influencers(first: $n) { totalCount } }",
                      variables={"n": 500})
    assert codes(result) == ["BAD_USER_INPUT"]
    assert ctx.calls == 0


def test_anonymous_callers_get_unauthenticated_and_weak_roles_forbidden() -> None:
    ctx = CountingContext(principal=None)
    schema = build_schema(ctx.settings)
    result = asyncio.run(schema.execute("{ accounts { id } }", context_value=ctx))
    assert codes(result) == ["UNAUTHENTICATED"]
    ctx = CountingContext(principal=Principal("v", "t", Role.VIEWER))
    result = asyncio.run(schema.execute(
        'mutation { removeInfluencer(id: "x") { __typename } }', context_value=ctx))
    assert codes(result) == ["FORBIDDEN"]


def test_unexpected_errors_are_masked() -> None:
    result, ctx = run("{ accounts { id } }")
    assert ctx.calls == 1
    assert [e.message for e in result.errors] == ["Unexpected error."]
    assert "no services" not in str(result.errors)


# --- production hygiene -------------------------------------------------------------------


def test_production_refuses_introspection_and_gives_no_suggestions() -> None:
    result, _ = run("{ __schema { types { name } } }", production=True)
    assert result.errors
    assert "introspection" in result.errors[0].message.lower()
    result, _ = run("{ influencerz { id } }", production=True)
    assert result.errors
    assert "Did you mean" not in result.errors[0].message
    result, _ = run("{ influencerz { id } }", production=False)
    assert "Did you mean" in result.errors[0].message


def test_development_allows_introspection_deeper_than_the_depth_limit() -> None:
    from graphql import get_introspection_query

    result, _ = run(get_introspection_query(descriptions=True), API_MAX_DEPTH="3")
    assert result.errors is None
    assert result.data["__schema"]["queryType"]["name"] == "Query"


# --- the rate limiter's policy when Redis is down -----------------------------------------


class DownBucket:
    capacity, refill = 100, 1

    async def charge(self, client: str, cost: int) -> Any:
        from redis.exceptions import ConnectionError as RedisConnectionError

        msg = "redis is down"
        raise RedisConnectionError(msg)


def test_without_redis_anonymous_callers_are_refused_and_known_ones_served() -> None:
    schema = build_schema(settings())
    anonymous = CountingContext(principal=None, bucket=DownBucket(), client_key="ip:1.2.3.4")
    result = asyncio.run(schema.execute("{ accounts { id } }", context_value=anonymous))
    assert codes(result) == ["RATE_LIMITED"]
    assert result.errors[0].extensions["retryAfter"] == 1
    assert anonymous.calls == 0
    known = CountingContext(bucket=DownBucket())
    result = asyncio.run(schema.execute("{ accounts { id } }", context_value=known))
    assert known.calls == 1  # served (and here fails later, in the stub's resolver)


class OpenBucket:
    capacity, refill = 100, 1

    async def charge(self, client: str, cost: int) -> Any:
        from creatorpulse.graphql.limits import Charge

        return Charge(True, 90.0, 0)


def test_budget_headers_go_on_http_responses_only() -> None:
    from starlette.datastructures import Headers
    from starlette.responses import Response

    schema = build_schema(settings())
    http = CountingContext(bucket=OpenBucket())
    http.response = Response()  # type: ignore[attr-defined]
    asyncio.run(schema.execute("{ accounts { id } }", context_value=http))
    assert http.response.headers["x-ratelimit-remaining"] == "90"  # type: ignore[attr-defined]

    class Socket:  # a WebSocket's headers cannot be changed
        headers = Headers({"origin": "x"})

    ws = CountingContext(bucket=OpenBucket())
    ws.response = Socket()  # type: ignore[attr-defined]
    result = asyncio.run(schema.execute("{ accounts { id } }", context_value=ws))
    assert ws.calls == 1  # admitted and executed; no error from the headers
    assert result.errors[0].message == "Unexpected error."  # the stub resolver's own failure


def test_unexpected_errors_are_logged_without_the_operation_text(
        caplog: pytest.LogCaptureFixture) -> None:
    query = 'mutation { linkAccount(input: {influencerId: "i", platform: X, externalId: "e", ' \
            'accessToken: "sentinel-token-in-query"}) { __typename } }'
    with caplog.at_level("ERROR"):
        result, _ = run(query)
    assert [e.message for e in result.errors] == ["Unexpected error."]
    assert "linkAccount" in caplog.text  # the path is logged ...
    assert "sentinel-token-in-query" not in caplog.text  # ... the operation's text is not


def test_a_query_text_is_validated_once_and_its_refusal_still_holds() -> None:
    from strawberry.extensions.validation_cache import _get_validate_cache

    from creatorpulse.graphql.schema import _CACHE_SIZE

    cache = _get_validate_cache(_CACHE_SIZE)
    nested = "influencer { " * 9 + "id" + " }" * 9
    q = f'{{ accounts {{ influencer {{ accounts {{ {nested} }} }} }} }}'
    ctx = CountingContext()
    schema = build_schema(ctx.settings, production=False)
    before = cache.cache_info()
    results = [asyncio.run(schema.execute(q, context_value=ctx)) for _ in range(3)]
    after = cache.cache_info()
    assert after.misses - before.misses == 1 and after.hits - before.hits == 2
    assert all(r.errors and "exceeds maximum operation depth" in r.errors[0].message
               for r in results)
    assert ctx.calls == 0
