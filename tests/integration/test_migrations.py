"""`creatorpulse db migrate` on a fresh database of the real PostgreSQL server."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from creatorpulse.settings import Settings
from creatorpulse.sinks.migrate import MigrationError, discover, migrate


@pytest.fixture
def fresh_db(db: psycopg.Connection, settings: Settings, unique: str) -> Iterator[str]:
    name = f"migrate_{unique}"
    db.execute(f'CREATE DATABASE "{name}"')
    url = urlsplit(settings.database_dsn.reveal())
    yield urlunsplit(url._replace(path=f"/{name}"))
    db.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_migrate_applies_every_step_once(fresh_db: str) -> None:
    said: list[str] = []
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        applied = migrate(conn, said.append)
        assert [m.version for m in applied] == sorted({m.version for m in discover()})
        assert all(m.variant in ("any", "plain") for m in applied)
        assert migrate(conn, said.append) == []
        rows = conn.execute("SELECT version, variant FROM schema_migrations ORDER BY 1").fetchall()
    assert rows == [(m.version, m.variant) for m in applied]
    assert said[-1].startswith("database: up to date")


def test_the_rollup_views_sum_buckets_per_utc_hour_and_day(fresh_db: str) -> None:
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        migrate(conn, lambda _: None)
        conn.execute("SET TIME ZONE 'America/New_York'")  # rollups must still cut in UTC
        conn.execute(
            """INSERT INTO metric_buckets_1m
               (influencer_id, platform, metric, bucket_start, gain, observations, provenance)
               VALUES ('i', 'x', 'likes', '2026-11-23 10:59Z', 5, 2, 'measured'),
                      ('i', 'x', 'likes', '2026-11-23 11:00Z', 7, 1, 'measured'),
                      ('i', 'x', 'likes', '2026-11-23 11:30Z', -2, 1, 'measured')""")
        hours = conn.execute(
            "SELECT bucket_start AT TIME ZONE 'UTC', gain, observations FROM metric_buckets_1h "
            "ORDER BY 1").fetchall()
        days = conn.execute("SELECT gain FROM metric_buckets_1d").fetchall()
    assert [(h.hour, gain, n) for h, gain, n in hours] == [(10, 5, 2), (11, 5, 2)]
    assert days == [(10,)]


def test_an_edited_migration_is_refused(fresh_db: str) -> None:
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        migrate(conn, lambda _: None)
        conn.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")
        with pytest.raises(MigrationError, match="changed after it was applied"):
            migrate(conn, lambda _: None)
