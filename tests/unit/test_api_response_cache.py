"""Which operations the response cache may answer, decided on the document alone."""

from __future__ import annotations

import pytest
from graphql import parse

from creatorpulse.graphql.queries import RESPONSE_CACHED
from creatorpulse.graphql.registry_listener import changed_tenant
from creatorpulse.graphql.response_cache import Plans, is_cacheable, response_key
from creatorpulse.graphql.schema import build_schema
from creatorpulse.settings import Settings

SCHEMA = build_schema(Settings.from_env({}, dotenv=None))._schema

SERIES = """query S($id: ID!, $from: DateTime!, $to: DateTime!) {
  metrics(influencerId: $id, from: $from, to: $to) { platform metric total
    buckets { start gain provenance } } }"""
PEOPLE = """{ influencers(first: 5) { totalCount pageInfo { hasNextPage endCursor }
  edges { cursor node { id name tags metadata } } } }"""


def cacheable(query: str, operation: str | None = None) -> bool:
    return is_cacheable(SCHEMA, parse(query), operation, RESPONSE_CACHED)


@pytest.mark.parametrize("query", [
    SERIES,
    PEOPLE,
    '{ leaderboard(metric: "likes") { rank influencerId gain valueAtEnd __typename } }',
    '{ engagementRate(influencerId: "i") { rate numerator denominator formula } }',
    '{ aggregatedMetrics(metric: "likes", from: "2026-01-01T00:00:00Z", '
    'to: "2026-01-02T00:00:00Z") { key total } }',
    '{ influencer(id: "i") { id name createdAt } }',
    '{ a: leaderboard(metric: "likes") { rank } b: influencer(id: "i") { name } }',
    '{ __typename leaderboard(metric: "likes") { ...Entry } } '
    'fragment Entry on LeaderboardEntry { rank gain }',
    '{ leaderboard(metric: "likes") { ... on LeaderboardEntry { rank } } }',
])
def test_queries_of_declared_roots_with_plain_fields_are_cacheable(query: str) -> None:
    assert cacheable(query)


@pytest.mark.parametrize(("query", "why"), [
    ('{ leaderboard(metric: "likes") { rank influencer { name } } }',
     "a nested resolver reads the registry on its own"),
    ("{ influencers { edges { node { id accounts { id lastPollAt } } } } }",
     "accounts carry polling state that changes with every poll"),
    ('{ influencer(id: "i") { engagementRate { rate } } }', "a nested resolver"),
    ('{ aggregatedMetrics(metric: "likes", from: "2026-01-01T00:00:00Z", '
     'to: "2026-01-02T00:00:00Z", groupBy: INFLUENCER) { key influencer { name } } }',
     "a nested resolver"),
    ("{ accounts { id } }", "a root that declares no dependencies"),
    ('{ leaderboard(metric: "likes") { rank } accounts { id } }', "one root is not declared"),
    ('{ leaderboard(metric: "likes") { ...Entry } } '
     "fragment Entry on LeaderboardEntry { rank influencer { id } }", "inside a fragment"),
    ("{ __schema { types { name } } }", "introspection"),
    ('mutation { addInfluencer(input: {name: "x"}) { __typename } }', "a mutation"),
    ("subscription { metricUpdates { gain } }", "a subscription"),
])
def test_other_operations_are_executed_every_time(query: str, why: str) -> None:
    assert not cacheable(query), why


def test_the_operation_is_chosen_by_name() -> None:
    both = '{ accounts { id } } query Board { leaderboard(metric: "likes") { rank } }'
    two = 'query A { accounts { id } } query Board { leaderboard(metric: "likes") { rank } }'
    assert cacheable(two, "Board")
    assert not cacheable(two, "A")
    assert not cacheable(two, None)  # ambiguous: graphql-core refuses it
    assert not cacheable(both, "Missing")


def test_every_declared_root_is_a_query_field() -> None:
    assert RESPONSE_CACHED.issubset(SCHEMA.query_type.fields)


def test_a_decision_is_kept_per_text_and_operation() -> None:
    plans = Plans(RESPONSE_CACHED, maxsize=2)
    doc = parse(SERIES)
    assert plans.cacheable(SCHEMA, SERIES, doc, None)
    # Kept by text: a different document under the same text is not walked again.
    assert plans.cacheable(SCHEMA, SERIES, parse("{ accounts { id } }"), None)
    for text in ("{ accounts { id } }", PEOPLE):
        plans.cacheable(SCHEMA, text, parse(text), None)
    # The oldest decision was dropped (maxsize 2): decided again from the document given.
    assert not plans.cacheable(SCHEMA, SERIES, parse("{ accounts { id } }"), None)


def test_answers_are_keyed_by_tenant_role_text_operation_and_variables() -> None:
    base = response_key("t1", "viewer", SERIES, None, {"id": "a"})
    assert base.startswith("cp:api:cache:t1:response:")
    assert response_key("t1", "viewer", SERIES, None, {"id": "a"}) == base
    others = {
        response_key("t2", "viewer", SERIES, None, {"id": "a"}),
        response_key("t1", "admin", SERIES, None, {"id": "a"}),
        response_key("t1", "viewer", SERIES + " ", None, {"id": "a"}),
        response_key("t1", "viewer", SERIES, "S", {"id": "a"}),
        response_key("t1", "viewer", SERIES, None, {"id": "b"}),
    }
    assert base not in others and len(others) == 5


@pytest.mark.parametrize(("payload", "tenant"), [
    ('{"op":"influencer.added","tenant_id":"t1","influencer_id":"i1"}', "t1"),
    ('{"op":"accounts.linked","tenant_id":"t1","count":3}', "t1"),
    ('{"op":"x","tenant_id":7}', None),
    ('{"op":"x"}', None),
    ("not json", None),
    ('["t1"]', None),
])
def test_registry_notifications_name_a_tenant(payload: str, tenant: str | None) -> None:
    assert changed_tenant(payload) == tenant


def test_a_cached_answer_is_spliced_into_the_response_as_stored() -> None:
    import json

    from creatorpulse.graphql.response_cache import CachedData, encode_response

    stored = '{"leaderboard":[{"rank":1,"gain":60}]}'
    body = encode_response({"data": CachedData(stored), "extensions": {"cost": {"requested": 11}}})
    assert body is not None
    assert json.loads(body) == {"data": json.loads(stored),
                                "extensions": {"cost": {"requested": 11}}}
    assert encode_response({"data": CachedData(stored)}) == '{"data":' + stored + "}"
    assert encode_response({"data": {"leaderboard": []}}) is None
