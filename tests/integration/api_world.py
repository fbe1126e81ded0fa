"""Two tenants with influencers, accounts and engagement rows, for the API's integration tests.

Every id carries the test's unique suffix, so parallel runs and leftovers never mix; the
fixture deletes what it made.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from starlette.testclient import TestClient

from creatorpulse.graphql.app import create_app
from creatorpulse.graphql.auth import Role, mint
from creatorpulse.settings import Settings

NOW = datetime.now(UTC).replace(second=0, microsecond=0)
T0 = NOW - timedelta(hours=3)
ENGAGEMENT_TABLES = ("observations", "metric_buckets_1m", "rolling_windows", "derived_figures")


@dataclass
class World:
    suffix: str
    tenant_a: str
    tenant_b: str
    a1: str  # tenant A, tags fitness+food, instagram account with engagement rows
    a2: str  # tenant A, tag food, no data
    b1: str  # tenant B, with engagement rows
    account_a1: str
    account_b1: str
    settings: Settings

    def token(self, tenant: str, role: Role, subject: str | None = None) -> str:
        return mint(self.settings, subject=subject or f"{role.label}-{self.suffix}",
                    tenant_id=tenant, role=role)

    def headers(self, tenant: str | None, role: Role = Role.VIEWER) -> dict[str, str]:
        if tenant is None:
            return {}
        return {"authorization": f"Bearer {self.token(tenant, role)}"}


def _rows(influencer: str, account: str, scale: int) -> dict[str, list[tuple[Any, ...]]]:
    buckets, observations = [], []
    for minute in range(0, 180, 30):
        start = T0 + timedelta(minutes=minute)
        for platform in ("instagram", "all"):
            buckets.append((influencer, platform, "likes", start, 10 * scale, 2, "measured"))
        buckets.append((influencer, "instagram", "followers", start, scale, 1,
                        "rounded" if minute == 60 else "measured"))
        buckets.append((influencer, "all", "followers", start, scale, 1, "measured"))
        observations.append((f"ev-{influencer}-{minute}", start, "instagram", account,
                             influencer, "post-1", "post", "likes", 100 + minute, "measured"))
    window_end = NOW
    rolling = [(influencer, p, "likes", "24h", window_end, window_end - timedelta(hours=24),
                60 * scale, 0, 60 * scale, "measured") for p in ("instagram", "all")]
    rolling.append((influencer, "all", "likes", "24h", window_end - timedelta(minutes=5),
                    window_end - timedelta(hours=24, minutes=5), 1, 0, 1, "measured"))
    figures = [(influencer, "all", "24h", window_end, "engagement_rate", "by_followers",
                60 * scale, 1000, 60 * scale / 1000)]
    return {"buckets": buckets, "observations": observations, "rolling": rolling,
            "figures": figures}


def seed(conn: psycopg.Connection, settings: Settings, suffix: str) -> World:
    ta, tb = f"ta-{suffix}", f"tb-{suffix}"
    w = World(suffix, ta, tb, f"a1-{suffix}", f"a2-{suffix}", f"b1-{suffix}",
              f"acc-a1-{suffix}", f"acc-b1-{suffix}", settings)
    with conn.transaction():
        conn.execute("INSERT INTO tenants (id, name) VALUES (%s, 'Tenant A'), (%s, 'Tenant B')",
                     (ta, tb))
        conn.execute(
            "INSERT INTO influencers (id, tenant_id, name, tags) VALUES "
            "(%s, %s, 'Alice ' || %s, '{fitness,food}'), (%s, %s, 'Bob ' || %s, '{food}'), "
            "(%s, %s, 'Carol ' || %s, '{fitness}')",
            (w.a1, ta, suffix, w.a2, ta, suffix, w.b1, tb, suffix))
        conn.execute(
            "INSERT INTO platform_accounts (id, tenant_id, influencer_id, platform, external_id, "
            "handle) VALUES (%s, %s, %s, 'instagram', %s, 'alice'), "
            "(%s, %s, %s, 'instagram', %s, 'carol')",
            (w.account_a1, ta, w.a1, f"ig-a1-{suffix}", w.account_b1, tb, w.b1,
             f"ig-b1-{suffix}"))
        for influencer, account, scale in ((w.a1, w.account_a1, 1), (w.b1, w.account_b1, 5)):
            rows = _rows(influencer, account, scale)
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO metric_buckets_1m (influencer_id, platform, metric, "
                    "bucket_start, gain, observations, provenance) VALUES "
                    "(%s, %s, %s, %s, %s, %s, %s)", rows["buckets"])
                cur.executemany(
                    "INSERT INTO observations (event_id, observed_at, platform, account_id, "
                    "influencer_id, content_id, content_kind, metric, value, provenance) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", rows["observations"])
                cur.executemany(
                    "INSERT INTO rolling_windows (influencer_id, platform, metric, window_name, "
                    "window_end, window_start, gain, value_at_start, value_at_end, provenance) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", rows["rolling"])
                cur.executemany(
                    "INSERT INTO derived_figures (influencer_id, platform, window_name, "
                    "window_end, figure, formula, numerator, denominator, figure_value) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)", rows["figures"])
    return w


def cleanup(conn: psycopg.Connection, w: World) -> None:
    ids = conn.execute("SELECT id FROM influencers WHERE tenant_id IN (%s, %s)",
                       (w.tenant_a, w.tenant_b)).fetchall()
    everyone = [w.a1, w.a2, w.b1, *(r[0] for r in ids)]
    for table in ENGAGEMENT_TABLES:
        conn.execute(f"DELETE FROM {table} WHERE influencer_id = ANY (%s)", (everyone,))
    conn.execute("DELETE FROM erasures WHERE tenant_id IN (%s, %s)", (w.tenant_a, w.tenant_b))
    conn.execute("DELETE FROM tenants WHERE id IN (%s, %s)", (w.tenant_a, w.tenant_b))


@pytest.fixture
def world(db: psycopg.Connection, settings: Settings, unique: str) -> Iterator[World]:
    w = seed(db, settings, unique)
    yield w
    cleanup(db, w)


def app_settings(**env: str) -> Settings:
    values = dict(os.environ)
    values.update({f"CREATORPULSE_{k}": v for k, v in env.items()})
    return Settings.from_env(values)


@pytest.fixture
def client(world: World, stack: object) -> Iterator[TestClient]:
    with TestClient(create_app(world.settings)) as c:
        yield c


def gql(client: TestClient, query: str, headers: dict[str, str] | None = None,
        **variables: Any) -> dict[str, Any]:
    response = client.post("/graphql", json={"query": query, "variables": variables},
                           headers=headers or {})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def codes(body: dict[str, Any]) -> list[str | None]:
    return [(e.get("extensions") or {}).get("code") for e in body.get("errors") or []]
