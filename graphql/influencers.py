"""Reading the registry for the API: influencers and platform accounts, always within one tenant.

Every query here takes the caller's ``tenant_id`` and filters on it, so an id from another tenant
reads exactly like an id that does not exist. Writes go through :mod:`creatorpulse.sinks.registry`
(which announces each change to the pollers); see :mod:`creatorpulse.graphql.management`.

Pagination is keyset-based: a cursor is an opaque token holding the sort key and id of the last
row seen, so pages stay stable while rows are added.
"""

from __future__ import annotations

import base64
import enum
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from creatorpulse.graphql.errors import InputError
from creatorpulse.observation import Platform


@dataclass(frozen=True)
class InfluencerRow:
    id: str
    tenant_id: str
    name: str
    tags: tuple[str, ...]
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class AccountRow:
    id: str
    tenant_id: str
    influencer_id: str
    platform: str
    external_id: str
    handle: str | None
    status: str
    poll_interval: timedelta
    created_at: datetime
    has_credentials: bool
    last_poll_at: datetime | None
    last_success_at: datetime | None
    next_poll_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    consecutive_failures: int


class Order(enum.Enum):
    NAME_ASC = ("name", "ASC")
    NAME_DESC = ("name", "DESC")
    CREATED_ASC = ("created_at", "ASC")
    CREATED_DESC = ("created_at", "DESC")


@dataclass(frozen=True)
class InfluencerFilter:
    """All given conditions must hold; None means no condition."""

    name_contains: str | None = None
    tag: str | None = None
    platform: Platform | None = None
    ids: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Page:
    rows: list[InfluencerRow]
    cursors: list[str]
    has_next: bool
    total: int


_INFLUENCER = "i.id, i.tenant_id, i.name, i.tags, i.metadata, i.created_at, i.updated_at"

# The pollers' view of each account (poll_state, written by the worker that polls it): when it
# last polled and succeeded, when it polls next, its last error and how many polls failed in a row.
_ACCOUNT = (
    "a.id, a.tenant_id, a.influencer_id, a.platform, a.external_id, a.handle, a.status, "
    "a.poll_interval, a.created_at, "
    "EXISTS (SELECT 1 FROM oauth_credentials c WHERE c.account_id = a.id) AS has_credentials, "
    "ps.last_poll_at, ps.last_success_at, ps.next_poll_at, ps.last_error, ps.last_error_at, "
    "coalesce(ps.consecutive_failures, 0) AS consecutive_failures"
)
_ACCOUNT_FROM = "platform_accounts a LEFT JOIN poll_state ps ON ps.account_id = a.id"


def _influencer(row: dict[str, Any]) -> InfluencerRow:
    return InfluencerRow(**{**row, "tags": tuple(row["tags"])})


def _account(row: dict[str, Any]) -> AccountRow:
    return AccountRow(**row)


def encode_cursor(key: object, row_id: str) -> str:
    raw = json.dumps([key.isoformat() if isinstance(key, datetime) else key, row_id])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, field: str = "after") -> tuple[str, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key, row_id = json.loads(raw)
    except (ValueError, TypeError):
        raise InputError(field, "not a cursor returned by this API") from None
    if not isinstance(key, str) or not isinstance(row_id, str):
        raise InputError(field, "not a cursor returned by this API")
    return key, row_id


def _filter_sql(tenant_id: str, f: InfluencerFilter) -> tuple[str, list[Any]]:
    clauses: list[str] = ["i.tenant_id = %s"]
    params: list[Any] = [tenant_id]
    if f.name_contains:
        clauses.append("i.name ILIKE %s")
        escaped = f.name_contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        params.append(f"%{escaped}%")
    if f.tag:
        clauses.append("%s = ANY (i.tags)")
        params.append(f.tag)
    if f.platform is not None:
        clauses.append("EXISTS (SELECT 1 FROM platform_accounts pa WHERE pa.influencer_id = i.id "
                       "AND pa.tenant_id = i.tenant_id AND pa.platform = %s)")
        params.append(f.platform.value)
    if f.ids is not None:
        clauses.append("i.id = ANY (%s)")
        params.append(list(f.ids))
    return " AND ".join(clauses), params


async def by_ids(
    conn: AsyncConnection[Any], tenant_id: str, ids: Sequence[str]
) -> dict[str, InfluencerRow]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {_INFLUENCER} FROM influencers i "  # noqa: S608
            "WHERE i.tenant_id = %s AND i.id = ANY (%s)",
            (tenant_id, list(ids)),
        )
        return {r["id"]: _influencer(r) for r in await cur.fetchall()}


async def page(
    conn: AsyncConnection[Any],
    tenant_id: str,
    f: InfluencerFilter,
    order: Order,
    first: int,
    after: str | None,
) -> Page:
    """One page of the tenant's influencers matching ``f``, sorted by ``order``."""
    where, params = _filter_sql(tenant_id, f)
    column, direction = order.value
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT count(*) AS n FROM influencers i WHERE {where}",  # noqa: S608
                          params)
        counted = await cur.fetchone()
        total = int(counted["n"]) if counted else 0
        page_where, page_params = where, list(params)
        if after is not None:
            key, row_id = decode_cursor(after)
            op = ">" if direction == "ASC" else "<"
            cast = "::timestamptz" if column == "created_at" else ""
            page_where += f" AND (i.{column}, i.id) {op} (%s{cast}, %s)"
            page_params += [key, row_id]
        await cur.execute(
            f"SELECT {_INFLUENCER} FROM influencers i WHERE {page_where} "  # noqa: S608
            f"ORDER BY i.{column} {direction}, i.id {direction} LIMIT %s",
            [*page_params, first + 1],
        )
        rows = [_influencer(r) for r in await cur.fetchall()]
    has_next = len(rows) > first
    rows = rows[:first]
    cursors = [encode_cursor(getattr(r, column), r.id) for r in rows]
    return Page(rows, cursors, has_next, total)


async def tenant_of(conn: AsyncConnection[Any], influencer_id: str) -> str | None:
    cur = await conn.execute("SELECT tenant_id FROM influencers WHERE id = %s", (influencer_id,))
    row = await cur.fetchone()
    return None if row is None else str(row[0])


async def accounts_by_influencer(
    conn: AsyncConnection[Any], tenant_id: str, influencer_ids: Sequence[str]
) -> dict[str, list[AccountRow]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {_ACCOUNT} FROM {_ACCOUNT_FROM} "  # noqa: S608
            "WHERE a.tenant_id = %s AND a.influencer_id = ANY (%s) "
            "ORDER BY a.platform, a.external_id",
            (tenant_id, list(influencer_ids)),
        )
        grouped: dict[str, list[AccountRow]] = defaultdict(list)
        for r in await cur.fetchall():
            grouped[r["influencer_id"]].append(_account(r))
    return grouped


async def accounts(
    conn: AsyncConnection[Any],
    tenant_id: str,
    *,
    influencer_id: str | None = None,
    platform: Platform | None = None,
    status: str | None = None,
) -> list[AccountRow]:
    """The tenant's accounts with their polling state."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {_ACCOUNT} FROM {_ACCOUNT_FROM} WHERE a.tenant_id = %s "  # noqa: S608
            "AND (%s::text IS NULL OR a.influencer_id = %s) "
            "AND (%s::text IS NULL OR a.platform = %s) AND (%s::text IS NULL OR a.status = %s) "
            "ORDER BY a.influencer_id, a.platform, a.external_id",
            (tenant_id, influencer_id, influencer_id,
             platform.value if platform else None, platform.value if platform else None,
             status, status),
        )
        return [_account(r) for r in await cur.fetchall()]


async def account_by_ids(
    conn: AsyncConnection[Any], tenant_id: str, ids: Sequence[str]
) -> dict[str, AccountRow]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {_ACCOUNT} FROM {_ACCOUNT_FROM} "  # noqa: S608
            "WHERE a.tenant_id = %s AND a.id = ANY (%s)",
            (tenant_id, list(ids)),
        )
        return {r["id"]: _account(r) for r in await cur.fetchall()}
