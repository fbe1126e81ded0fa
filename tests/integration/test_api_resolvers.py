"""Resolvers through ``schema.execute`` (no HTTP), on the app's real services."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from creatorpulse.graphql.auth import Principal, Role
from creatorpulse.graphql.context import Context, client_key
from tests.integration import api_world
from tests.integration.api_world import World

world, client = api_world.world, api_world.client  # the fixtures


def execute(client: TestClient, principal: Principal | None, query: str,
            **variables: Any) -> Any:
    services = client.app.state.services
    schema = client.app.state.schema
    context = Context(services=services, principal=principal,
                      client_key=client_key(principal, "test"))
    return client.portal.call(lambda: schema.execute(query, variable_values=variables,
                                                     context_value=context))


def test_influencer_with_nested_accounts_and_rate(client: TestClient, world: World) -> None:
    w = world
    viewer = Principal("v", w.tenant_a, Role.VIEWER)
    result = execute(client, viewer, """query($id: ID!) { influencer(id: $id) { name tags
        accounts { platform handle influencer { id } }
        engagementRate(window: "24h", formula: BY_FOLLOWERS) {
          rate numerator denominator formula } } }""", id=w.a1)
    assert result.errors is None
    got = result.data["influencer"]
    assert got["tags"] == ["fitness", "food"]
    assert got["accounts"] == [{"platform": "INSTAGRAM", "handle": "alice",
                                "influencer": {"id": w.a1}}]
    assert got["engagementRate"] == {"rate": 0.06, "numerator": 60, "denominator": 1000,
                                     "formula": "BY_FOLLOWERS"}
    missing = execute(client, viewer, """query($id: ID!) { influencer(id: $id) {
        engagementRate(formula: BY_VIEWS) { rate } } }""", id=w.a1)
    assert missing.data["influencer"]["engagementRate"] is None  # missing, not zero


def test_add_then_update_then_remove(client: TestClient, world: World) -> None:
    editor = Principal("e", world.tenant_a, Role.EDITOR)
    added = execute(client, editor, """mutation { addInfluencer(input: {name: "Zed",
        tags: ["new"], metadata: {country: "FR"}}) { ... on Influencer { id metadata } } }""")
    assert added.errors is None
    new_id = added.data["addInfluencer"]["id"]
    assert added.data["addInfluencer"]["metadata"] == {"country": "FR"}
    updated = execute(client, editor, """mutation($id: ID!) { updateInfluencer(input: {
        id: $id, tags: ["new", "more"]}) { ... on Influencer { name tags } } }""", id=new_id)
    assert updated.data["updateInfluencer"] == {"name": "Zed", "tags": ["new", "more"]}
    removed = execute(client, editor, """mutation($id: ID!) { removeInfluencer(id: $id) {
        __typename } }""", id=new_id)
    assert removed.data["removeInfluencer"]["__typename"] == "Removed"
    gone = execute(client, editor, "query($id: ID!) { influencer(id: $id) { id } }", id=new_id)
    assert gone.data["influencer"] is None


def test_pause_and_resume_an_account(client: TestClient, world: World) -> None:
    editor = Principal("e", world.tenant_a, Role.EDITOR)
    query = "mutation($id: ID!) { %s(id: $id) { ... on Account { status } } }"
    paused = execute(client, editor, query % "pauseAccount", id=world.account_a1)
    assert paused.data["pauseAccount"] == {"status": "PAUSED"}
    resumed = execute(client, editor, query % "resumeAccount", id=world.account_a1)
    assert resumed.data["resumeAccount"] == {"status": "ACTIVE"}


def test_backfill_requests_are_recorded(client: TestClient, world: World, db: Any) -> None:
    editor = Principal("e", world.tenant_a, Role.EDITOR)
    result = execute(client, editor, """mutation($id: ID!) { requestBackfill(input: {
        influencerId: $id, from: "2026-11-01T00:00:00Z", to: "2026-11-02T00:00:00Z",
        platform: INSTAGRAM}) { ... on BackfillRequest { id status platform }
        ... on ValidationErrors { errors { field message } } } }""", id=world.a1)
    assert result.errors is None, result.errors
    request = result.data["requestBackfill"]
    assert request["status"] == "requested"
    row = db.execute("SELECT tenant_id, influencer_id, platform, requested_by FROM "
                     "backfill_requests WHERE id = %s", (request["id"],)).fetchone()
    assert row == (world.tenant_a, world.a1, "instagram", "e")
    backwards = execute(client, editor, """mutation($id: ID!) { requestBackfill(input: {
        influencerId: $id, from: "2026-11-02T00:00:00Z", to: "2026-11-01T00:00:00Z"}) {
        ... on ValidationErrors { errors { field message } } } }""", id=world.a1)
    assert backwards.data["requestBackfill"]["errors"] == [
        {"field": "input.to", "message": "must be later than the start"}]


def test_api_demo_prints_a_working_token_and_link(world: World, stack: object,
                                                  capsys: Any) -> None:
    from urllib.parse import parse_qs, urlsplit

    from creatorpulse.cli import main
    from creatorpulse.graphql.auth import verify

    assert main(["api", "demo", "--tenant", world.tenant_a]) == 0
    out = capsys.readouterr().out
    token = out.split("Token:\n", 1)[1].split()[0]
    principal = verify(token, world.settings)
    assert (principal.tenant_id, principal.role) == (world.tenant_a, Role.ADMIN)
    link = next(line.strip() for line in out.splitlines() if "?query=" in line)
    params = parse_qs(urlsplit(link).query)
    assert world.a1 in params["variables"][0] or world.a2 in params["variables"][0]
    assert token in params["headers"][0]
