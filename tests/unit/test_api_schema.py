"""The committed SDL matches the code, and no output type can reveal a token."""

from __future__ import annotations

import re
from pathlib import Path

from graphql import GraphQLInputObjectType, GraphQLObjectType

from creatorpulse.graphql.schema import build_schema, sdl
from creatorpulse.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "graphql" / "schema.graphql"


def schema() -> object:
    return build_schema(Settings.from_env({}, dotenv=None), production=False)


def test_the_committed_schema_matches_the_code() -> None:
    assert COMMITTED.read_text() == sdl(schema()), (
        "graphql/schema.graphql is stale: run `creatorpulse api schema > graphql/schema.graphql`")


def test_no_output_field_can_hold_a_token_or_secret() -> None:
    suspicious = re.compile(r"token|secret|password|credential", re.IGNORECASE)
    found = []
    for name, kind in schema()._schema.type_map.items():
        if name.startswith("__") or isinstance(kind, GraphQLInputObjectType):
            continue
        if isinstance(kind, GraphQLObjectType):
            found += [f"{name}.{f}" for f in kind.fields
                      if suspicious.search(f) and f != "hasCredentials"]
    assert found == []


def test_the_schema_has_every_operation_of_the_issue() -> None:
    text = COMMITTED.read_text()
    for field in ("influencer(", "influencers(", "metrics(", "aggregatedMetrics(",
                  "leaderboard(", "engagementRate(", "accounts(", "addInfluencer(",
                  "updateInfluencer(", "removeInfluencer(", "linkAccount(", "pauseAccount(",
                  "unlinkAccount(", "setPlatformEnabled(", "requestBackfill("):
        assert field in text, field
