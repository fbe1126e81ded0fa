"""The authorization matrix: anonymous, tenant A viewer, tenant A admin, tenant B (admin), for
every query and mutation, nested paths included, against real PostgreSQL and Redis.

Tenant B's principal is an admin on purpose: even the most powerful role of another tenant must
never read or change tenant A's data, by any path.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from creatorpulse.graphql.auth import Role
from tests.integration import api_world
from tests.integration.api_world import NOW, T0, World, codes, gql

world, client = api_world.world, api_world.client  # the fixtures

RANGE = {"from": (T0 - timedelta(hours=1)).isoformat(), "to": NOW.isoformat()}

# name -> (query, variables(world))
READS: dict[str, tuple[str, Callable[[World], dict[str, Any]]]] = {
    "influencer with nested accounts and rate": (
        """query($id: ID!) { influencer(id: $id) { id name
             accounts { id externalId hasCredentials influencer { id name } }
             engagementRate { rate numerator denominator } } }""",
        lambda w: {"id": w.a1}),
    "influencers connection with nested paths": (
        """{ influencers(first: 10) { totalCount edges { cursor node { id name
             accounts { id externalId } engagementRate { rate } } } } }""",
        lambda w: {}),
    "influencers filtered by tag and platform": (
        """{ influencers(filter: {tag: "fitness", platform: INSTAGRAM}) {
             edges { node { id name } } } }""",
        lambda w: {}),
    "metrics series": (
        """query($id: ID!, $from: DateTime!, $to: DateTime!) {
             metrics(influencerId: $id, from: $from, to: $to, includeTotal: true) {
               influencerId platform metric total provenance buckets { start gain } } }""",
        lambda w: {"id": w.a1, **RANGE}),
    "aggregated by influencer with nested influencer": (
        """query($from: DateTime!, $to: DateTime!) {
             aggregatedMetrics(metric: "likes", from: $from, to: $to, groupBy: INFLUENCER) {
               key total influencer { id name accounts { externalId } } } }""",
        lambda w: RANGE),
    "aggregated by tag": (
        """query($from: DateTime!, $to: DateTime!) {
             aggregatedMetrics(metric: "likes", from: $from, to: $to, groupBy: TAG) {
               key total } }""",
        lambda w: RANGE),
    "leaderboard with nested influencer and accounts": (
        """{ leaderboard(metric: "likes", window: "24h") { rank gain influencerId
             influencer { id name accounts { externalId influencer { name } } } } }""",
        lambda w: {}),
    "engagement rate": (
        """query($id: ID!) { engagementRate(influencerId: $id) {
             influencerId rate numerator denominator formula } }""",
        lambda w: {"id": w.a1}),
    "accounts with polling state and nested influencer": (
        """{ accounts { id externalId status lastSuccessAt nextPollAt lastError
             influencer { id name } } }""",
        lambda w: {}),
    "accounts of one influencer": (
        """query($id: ID!) { accounts(influencerId: $id) { id externalId } }""",
        lambda w: {"id": w.a1}),
}


def a_markers(w: World) -> list[str]:
    return [w.a1, w.account_a1, f"ig-a1-{w.suffix}", "Alice"]


def b_markers(w: World) -> list[str]:
    return [w.b1, w.account_b1, f"ig-b1-{w.suffix}", "Carol"]


@pytest.mark.parametrize("name", list(READS))
def test_reads(client: TestClient, world: World, name: str) -> None:
    query, variables = READS[name]
    w = world

    anonymous = gql(client, query, **variables(w))
    assert codes(anonymous) == ["UNAUTHENTICATED"]
    assert not any((anonymous["data"] or {}).values())

    for role in (Role.VIEWER, Role.ADMIN):
        body = gql(client, query, w.headers(w.tenant_a, role), **variables(w))
        assert "errors" not in body, body
        text = json.dumps(body["data"])
        assert any(m in text for m in a_markers(w)) or name == "aggregated by tag", text
        assert not any(m in text for m in b_markers(w)), text

    other = gql(client, query, w.headers(w.tenant_b, Role.ADMIN), **variables(w))
    assert "errors" not in other, other
    text = json.dumps(other["data"])
    assert not any(m in text for m in a_markers(w)), text


def test_aggregates_are_the_tenants_own_sums(client: TestClient, world: World) -> None:
    w = world
    query = READS["aggregated by tag"][0]
    a = gql(client, query, w.headers(w.tenant_a), **RANGE)["data"]["aggregatedMetrics"]
    b = gql(client, query, w.headers(w.tenant_b), **RANGE)["data"]["aggregatedMetrics"]
    assert {r["key"]: r["total"] for r in a} == {"fitness": 60, "food": 60}
    assert {r["key"]: r["total"] for r in b} == {"fitness": 300}


# --- mutations ------------------------------------------------------------------------------

# name -> (query, variables(world), the weakest role allowed)
WRITES: dict[str, tuple[str, Callable[[World], dict[str, Any]], Role]] = {
    "addInfluencer": (
        """mutation { addInfluencer(input: {name: "New", tags: ["x"]}) {
             __typename ... on Influencer { id } } }""", lambda w: {}, Role.EDITOR),
    "updateInfluencer": (
        """mutation($id: ID!) { updateInfluencer(input: {id: $id, name: "Renamed"}) {
             __typename ... on Influencer { id name } } }""",
        lambda w: {"id": w.a1}, Role.EDITOR),
    "removeInfluencer": (
        """mutation($id: ID!) { removeInfluencer(id: $id) { __typename } }""",
        lambda w: {"id": w.a2}, Role.EDITOR),
    "removeInfluencer erase": (
        """mutation($id: ID!) { removeInfluencer(id: $id, erase: true) { __typename } }""",
        lambda w: {"id": w.a1}, Role.ADMIN),
    "linkAccount": (
        """mutation($id: ID!) { linkAccount(input: {influencerId: $id, platform: TIKTOK,
             externalId: "tt-1", accessToken: "tok-abc"}) { __typename
             ... on Account { id influencer { id } } } }""",
        lambda w: {"id": w.a1}, Role.EDITOR),
    "pauseAccount": (
        """mutation($id: ID!) { pauseAccount(id: $id) { __typename
             ... on Account { status } } }""", lambda w: {"id": w.account_a1}, Role.EDITOR),
    "resumeAccount": (
        """mutation($id: ID!) { resumeAccount(id: $id) { __typename } }""",
        lambda w: {"id": w.account_a1}, Role.EDITOR),
    "unlinkAccount": (
        """mutation($id: ID!) { unlinkAccount(id: $id) { __typename } }""",
        lambda w: {"id": w.account_a1}, Role.EDITOR),
    "setPlatformEnabled": (
        """mutation { setPlatformEnabled(platform: X, enabled: false) {
             __typename ... on TenantPlatform { platform enabled } } }""",
        lambda w: {}, Role.ADMIN),
    "requestBackfill": (
        """mutation($id: ID!, $from: DateTime!, $to: DateTime!) {
             requestBackfill(input: {influencerId: $id, from: $from, to: $to}) {
               __typename ... on BackfillRequest { id status } } }""",
        lambda w: {"id": w.a1, **RANGE}, Role.EDITOR),
}

# What a successful call answers with.
SUCCESS = {"addInfluencer": "Influencer", "updateInfluencer": "Influencer",
           "removeInfluencer": "Removed", "removeInfluencer erase": "Erased",
           "linkAccount": "Account", "pauseAccount": "Account", "resumeAccount": "Account",
           "unlinkAccount": "Removed", "setPlatformEnabled": "TenantPlatform",
           "requestBackfill": "BackfillRequest"}


def tenant_a_state(db: Any, w: World) -> Any:
    """Everything of tenant A a mutation could touch."""
    return (
        db.execute("SELECT id, name, tags FROM influencers WHERE tenant_id = %s ORDER BY id",
                   (w.tenant_a,)).fetchall(),
        db.execute("SELECT id, status FROM platform_accounts WHERE tenant_id = %s ORDER BY id",
                   (w.tenant_a,)).fetchall(),
        db.execute("SELECT platform, enabled FROM tenant_platforms WHERE tenant_id = %s",
                   (w.tenant_a,)).fetchall(),
        db.execute("SELECT count(*) FROM backfill_requests WHERE tenant_id = %s",
                   (w.tenant_a,)).fetchone(),
        db.execute("SELECT count(*) FROM metric_buckets_1m WHERE influencer_id = %s",
                   (w.a1,)).fetchone(),
    )


@pytest.mark.parametrize("name", list(WRITES))
def test_writes(client: TestClient, world: World, db: Any, name: str) -> None:
    query, variables, needed = WRITES[name]
    w = world
    before = tenant_a_state(db, w)

    anonymous = gql(client, query, **variables(w))
    assert codes(anonymous) == ["UNAUTHENTICATED"]

    weaker = [r for r in Role if r < needed]
    for role in weaker:
        body = gql(client, query, w.headers(w.tenant_a, role), **variables(w))
        assert codes(body) == ["FORBIDDEN"], (role, body)
    assert tenant_a_state(db, w) == before

    other = gql(client, query, w.headers(w.tenant_b, Role.ADMIN), **variables(w))
    assert "errors" not in other, other
    typename = next(iter(other["data"].values()))["__typename"]
    if name in ("addInfluencer", "setPlatformEnabled"):
        assert typename == SUCCESS[name]  # acts on tenant B's own data
    else:
        assert typename == "NotFound", other
    assert tenant_a_state(db, w) == before, "tenant B changed tenant A's data"

    mine = gql(client, query, w.headers(w.tenant_a, Role.ADMIN), **variables(w))
    assert "errors" not in mine, mine
    assert next(iter(mine["data"].values()))["__typename"] == SUCCESS[name]
    assert tenant_a_state(db, w) != before or name == "resumeAccount"
