"""Changes the API makes: the registry (through :mod:`creatorpulse.sinks.registry`, which
announces every change to the pollers with NOTIFY), platform enablement per tenant, backfill
requests, and erasure.

These functions are synchronous (the registry module is) and run in a worker thread with a
connection of the app's registry pool. Every one takes the caller's ``tenant_id`` and touches
only that tenant's rows.

Erasure of an influencer removes its data everywhere it lives, in one transaction for the
database: the raw ``observations``, ``metric_buckets_1m`` (and so the hour/day rollups),
``rolling_windows``, ``derived_figures``, backfill requests, then the registry rows (the
influencer, its accounts and their sealed tokens). Then the Redis cache entries computed from it
are evicted, and a tombstone (the influencer id as key, a null value) goes to
``engagement.aggregates``, the topic keyed by influencer id, so that consumers drop what they
keep for that key (and compaction drops it where the topic is compacted). The topics keyed by
account (observations, late, hints, content) hold JSON records that the jobs parse, so they get
no tombstone: they age out by retention (7 to 30 days). An ``erasures`` row records what was
removed where, with ids only; it also keeps the id from being ingested again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from creatorpulse.observation import Platform
from creatorpulse.settings import Secret
from creatorpulse.sinks import registry
from creatorpulse.tokens import TokenVault

log = logging.getLogger(__name__)

ERASED_TABLES = ("observations", "metric_buckets_1m", "rolling_windows", "derived_figures")


@dataclass(frozen=True)
class TenantPlatform:
    tenant_id: str
    platform: str
    enabled: bool
    updated_at: datetime | None


@dataclass(frozen=True)
class Backfill:
    id: str
    influencer_id: str
    platform: str | None
    range_start: datetime
    range_end: datetime
    status: str
    requested_at: datetime


@dataclass(frozen=True)
class Erasure:
    id: str
    influencer_id: str
    account_ids: tuple[str, ...]
    erased_at: datetime
    rows: Mapping[str, int]
    time_range: tuple[datetime, datetime] | None


def _notify(conn: psycopg.Connection, op: str, tenant_id: str, **ids: Any) -> None:
    payload = json.dumps({"op": op, "tenant_id": tenant_id, **ids}, separators=(",", ":"))
    conn.execute("SELECT pg_notify(%s, %s)", (registry.CHANNEL, payload))


# --- influencers and accounts: the registry module does the work ---------------------------


def add_influencer(conn: psycopg.Connection, tenant_id: str, name: str, tags: Sequence[str],
                   metadata: Mapping[str, Any] | None) -> registry.Influencer:
    registry.ensure_tenant(conn, tenant_id)
    return registry.add_influencer(conn, tenant_id, name, tags, metadata)


def platform_enabled(conn: psycopg.Connection, tenant_id: str, platform: Platform) -> bool:
    row = conn.execute(
        "SELECT enabled FROM tenant_platforms WHERE tenant_id = %s AND platform = %s",
        (tenant_id, platform.value)).fetchone()
    return True if row is None else bool(row[0])


def link_account(
    conn: psycopg.Connection,
    vault: TokenVault,
    tenant_id: str,
    influencer_id: str,
    platform: Platform,
    external_id: str,
    *,
    handle: str | None,
    poll_interval: timedelta | None,
    access_token: str | None,
    refresh_token: str | None,
    expires_at: datetime | None,
    scopes: Sequence[str],
) -> registry.PlatformAccount:
    credentials = None
    if access_token is not None:
        credentials = registry.Credentials(
            access_token=Secret(access_token),
            refresh_token=Secret(refresh_token) if refresh_token else None,
            expires_at=expires_at, scopes=tuple(scopes))
    return registry.link_account(conn, vault, tenant_id, influencer_id, platform, external_id,
                                 handle=handle, poll_interval=poll_interval,
                                 credentials=credentials)


# --- platforms per tenant ------------------------------------------------------------------


def set_platform(conn: psycopg.Connection, tenant_id: str, platform: Platform, enabled: bool,
                 actor: str) -> TenantPlatform:
    """Enable or disable ``platform`` for the tenant; pollers learn of it by NOTIFY at once."""
    registry.ensure_tenant(conn, tenant_id)
    with conn.transaction():
        row = conn.execute(
            "INSERT INTO tenant_platforms (tenant_id, platform, enabled, updated_by) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT (tenant_id, platform) DO UPDATE SET "
            "enabled = excluded.enabled, updated_by = excluded.updated_by, updated_at = now() "
            "RETURNING updated_at",
            (tenant_id, platform.value, enabled, actor)).fetchone()
        _notify(conn, "platform.enabled" if enabled else "platform.disabled", tenant_id,
                platform=platform.value)
    return TenantPlatform(tenant_id, platform.value, enabled, row[0] if row else None)


def platforms(conn: psycopg.Connection, tenant_id: str) -> list[TenantPlatform]:
    rows = dict(((p, (e, u)) for p, e, u in conn.execute(
        "SELECT platform, enabled, updated_at FROM tenant_platforms WHERE tenant_id = %s",
        (tenant_id,)).fetchall()))
    return [TenantPlatform(tenant_id, p.value, rows.get(p.value, (True, None))[0],
                           rows.get(p.value, (True, None))[1]) for p in Platform]


# --- backfills ------------------------------------------------------------------------------


def request_backfill(conn: psycopg.Connection, tenant_id: str, influencer_id: str,
                     platform: Platform | None, start: datetime, end: datetime,
                     actor: str) -> Backfill:
    """Record a backfill request for the tenant's influencer and announce it."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        found = cur.execute("SELECT 1 FROM influencers WHERE tenant_id = %s AND id = %s",
                            (tenant_id, influencer_id)).fetchone()
        if found is None:
            msg = f"no influencer {influencer_id!r} in this tenant"
            raise registry.NotFound(msg)
        row = cur.execute(
            "INSERT INTO backfill_requests (tenant_id, influencer_id, platform, range_start, "
            "range_end, requested_by) VALUES (%s, %s, %s, %s, %s, %s) "
            "RETURNING id, influencer_id, platform, range_start, range_end, status, requested_at",
            (tenant_id, influencer_id, platform.value if platform else None, start, end, actor),
        ).fetchone()
        assert row is not None
        _notify(conn, "backfill.requested", tenant_id, influencer_id=influencer_id,
                backfill_id=row["id"])
    return Backfill(**row)


# --- erasure --------------------------------------------------------------------------------


def erase_rows(conn: psycopg.Connection, tenant_id: str, influencer_id: str,
               actor: str) -> Erasure:
    """Delete the influencer's rows in every table and the registry, and record the erasure."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        owned = cur.execute(
            "SELECT id FROM influencers WHERE tenant_id = %s AND id = %s FOR UPDATE",
            (tenant_id, influencer_id)).fetchone()
        if owned is None:
            msg = f"no influencer {influencer_id!r} in this tenant"
            raise registry.NotFound(msg)
        accounts = tuple(r["id"] for r in cur.execute(
            "SELECT id FROM platform_accounts WHERE tenant_id = %s AND influencer_id = %s",
            (tenant_id, influencer_id)).fetchall())
        span = cur.execute(
            "SELECT min(bucket_start) AS lo, max(bucket_start) AS hi FROM metric_buckets_1m "
            "WHERE influencer_id = %s", (influencer_id,)).fetchone()
        rows: dict[str, int] = {}
        for table in ERASED_TABLES:
            cur.execute(f"DELETE FROM {table} WHERE influencer_id = %s",  # noqa: S608
                        (influencer_id,))
            rows[table] = cur.rowcount
        registry.remove_influencer(conn, tenant_id, influencer_id)
        rows["influencers"] = 1
        rows["platform_accounts"] = len(accounts)
        erasure = cur.execute(
            "INSERT INTO erasures (tenant_id, influencer_id, account_ids, requested_by, scope) "
            "VALUES (%s, %s, %s, %s, %s) RETURNING id, erased_at",
            (tenant_id, influencer_id, list(accounts), actor, Jsonb({"rows": rows})),
        ).fetchone()
        assert erasure is not None
    time_range = (span["lo"], span["hi"]) if span and span["lo"] else None
    return Erasure(erasure["id"], influencer_id, accounts, erasure["erased_at"], rows,
                   time_range)


def refresh_rollups(conn: psycopg.Connection, time_range: tuple[datetime, datetime]) -> bool:
    """On TimescaleDB, recompute the hour/day rollups over the erased range (so materialised
    rows of the erased influencer go too); plain views need nothing. Autocommit connection."""
    found = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    if found is None:
        return False
    lo, hi = time_range
    for view, pad in (("metric_buckets_1h", timedelta(hours=1)),
                      ("metric_buckets_1d", timedelta(days=1))):
        conn.execute(f"CALL refresh_continuous_aggregate('{view}', %s, %s)",
                     (lo - pad, hi + pad))
    return True


def record_scope(conn: psycopg.Connection, erasure_id: str, extra: Mapping[str, Any]) -> None:
    """Add what happened outside the database (cache, topics) to the erasure's record."""
    conn.execute("UPDATE erasures SET scope = scope || %s WHERE id = %s",
                 (Jsonb(dict(extra)), erasure_id))
