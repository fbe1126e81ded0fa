"""The registry: tenants, influencers, their platform accounts and the accounts' OAuth tokens.

Functions take a psycopg connection (autocommit or not: each change runs in its own transaction,
or in a savepoint of the caller's) and return frozen dataclasses. Every change announces itself
with ``NOTIFY creatorpulse_registry, '<json>'`` in the same transaction, so running pollers learn
of it only once it is committed. The JSON carries ``op``, ``tenant_id`` and the ids concerned,
never a token.

Tokens are sealed by the :class:`~creatorpulse.tokens.TokenVault` before they reach SQL and come
back as :class:`~creatorpulse.settings.Secret`.

Errors, all :class:`RegistryError`: :class:`NotFound` (no such row in this tenant) and
:class:`Conflict` (the account is already linked).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from creatorpulse.observation import Platform
from creatorpulse.settings import Secret
from creatorpulse.tokens import TokenVault

CHANNEL = "creatorpulse_registry"
ACTIVE, PAUSED = "active", "paused"


class RegistryError(Exception):
    """A registry change was refused; the message says why."""


class NotFound(RegistryError):
    """No such influencer or account (in this tenant)."""


class Conflict(RegistryError):
    """The change would duplicate something that exists."""


@dataclass(frozen=True)
class Tenant:
    id: str
    name: str
    created_at: datetime


@dataclass(frozen=True)
class Influencer:
    id: str
    tenant_id: str
    name: str
    tags: tuple[str, ...]
    metadata: Mapping[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class PlatformAccount:
    id: str
    tenant_id: str
    influencer_id: str
    platform: Platform
    external_id: str
    handle: str | None
    status: str  # "active" or "paused"
    poll_interval: timedelta
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Credentials:
    """An account's OAuth tokens in the clear, as Secrets (never shown by repr or str)."""

    access_token: Secret
    refresh_token: Secret | None = None
    expires_at: datetime | None = None
    scopes: tuple[str, ...] = field(default_factory=tuple)
    updated_at: datetime | None = None


# --- tenants --------------------------------------------------------------------------------


def ensure_tenant(conn: psycopg.Connection, tenant_id: str, name: str | None = None) -> Tenant:
    """The tenant ``tenant_id``, created (named ``name`` or its id) when it does not exist."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "INSERT INTO tenants (id, name) VALUES (%s, %s) ON CONFLICT (id) DO NOTHING",
            (tenant_id, name or tenant_id),
        )
        row = cur.execute("SELECT id, name, created_at FROM tenants WHERE id = %s",
                          (tenant_id,)).fetchone()
    assert row is not None
    return Tenant(**row)


# --- influencers ----------------------------------------------------------------------------

_INFLUENCER = "id, tenant_id, name, tags, metadata, created_at, updated_at"


def _influencer(row: dict[str, Any]) -> Influencer:
    return Influencer(**{**row, "tags": tuple(row["tags"])})


def add_influencer(
    conn: psycopg.Connection,
    tenant_id: str,
    name: str,
    tags: Sequence[str] = (),
    metadata: Mapping[str, Any] | None = None,
) -> Influencer:
    _check_name(name)
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        try:
            row = cur.execute(
                f"INSERT INTO influencers (tenant_id, name, tags, metadata) "  # noqa: S608
                f"VALUES (%s, %s, %s, %s) RETURNING {_INFLUENCER}",
                (tenant_id, name.strip(), list(tags), Jsonb(dict(metadata or {}))),
            ).fetchone()
        except psycopg.errors.ForeignKeyViolation:
            msg = f"no tenant {tenant_id!r}"
            raise NotFound(msg) from None
        assert row is not None
        _notify(cur, "influencer.added", tenant_id, influencer_id=row["id"])
    return _influencer(row)


def update_influencer(
    conn: psycopg.Connection,
    tenant_id: str,
    influencer_id: str,
    *,
    name: str | None = None,
    tags: Sequence[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Influencer:
    """Change the given fields (None leaves a field as it is)."""
    if name is not None:
        _check_name(name)
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"UPDATE influencers SET name = coalesce(%s, name), "  # noqa: S608
            f"tags = coalesce(%s, tags), metadata = coalesce(%s, metadata), updated_at = now() "
            f"WHERE tenant_id = %s AND id = %s RETURNING {_INFLUENCER}",
            (name.strip() if name is not None else None,
             list(tags) if tags is not None else None,
             Jsonb(dict(metadata)) if metadata is not None else None,
             tenant_id, influencer_id),
        ).fetchone()
        if row is None:
            raise _no_influencer(influencer_id)
        _notify(cur, "influencer.updated", tenant_id, influencer_id=influencer_id)
    return _influencer(row)


def get_influencer(
    conn: psycopg.Connection, tenant_id: str, influencer_id: str
) -> Influencer | None:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"SELECT {_INFLUENCER} FROM influencers WHERE tenant_id = %s AND id = %s",  # noqa: S608
            (tenant_id, influencer_id),
        ).fetchone()
    return _influencer(row) if row else None


def list_influencers(
    conn: psycopg.Connection,
    tenant_id: str,
    *,
    tag: str | None = None,
    ids: Sequence[str] | None = None,
    limit: int = 100,
    after: str | None = None,
) -> list[Influencer]:
    """The tenant's influencers by name then id; ``after`` (an id) pages on after that one."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"SELECT {_INFLUENCER} FROM influencers i WHERE tenant_id = %s "  # noqa: S608
            "AND (%s::text IS NULL OR %s = ANY (tags)) "
            "AND (%s::text[] IS NULL OR id = ANY (%s::text[])) "
            "AND (%s::text IS NULL OR (name, id) > "
            "     (SELECT name, id FROM influencers WHERE id = %s)) "
            "ORDER BY name, id LIMIT %s",
            (tenant_id, tag, tag, list(ids) if ids is not None else None,
             list(ids) if ids is not None else None, after, after, limit),
        ).fetchall()
    return [_influencer(r) for r in rows]


def remove_influencer(conn: psycopg.Connection, tenant_id: str, influencer_id: str) -> None:
    """Delete the influencer with its accounts and tokens (polling of them stops)."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        accounts = [r["id"] for r in cur.execute(
            "SELECT id FROM platform_accounts WHERE tenant_id = %s AND influencer_id = %s",
            (tenant_id, influencer_id),
        ).fetchall()]
        cur.execute("DELETE FROM influencers WHERE tenant_id = %s AND id = %s",
                    (tenant_id, influencer_id))
        if cur.rowcount == 0:
            raise _no_influencer(influencer_id)
        _notify(cur, "influencer.removed", tenant_id, influencer_id=influencer_id,
                account_ids=accounts)


# --- platform accounts ----------------------------------------------------------------------

_ACCOUNT = ("id, tenant_id, influencer_id, platform, external_id, handle, status, poll_interval, "
            "created_at, updated_at")


def _account(row: dict[str, Any]) -> PlatformAccount:
    return PlatformAccount(**{**row, "platform": Platform(row["platform"])})


def link_account(
    conn: psycopg.Connection,
    vault: TokenVault,
    tenant_id: str,
    influencer_id: str,
    platform: Platform | str,
    external_id: str,
    *,
    handle: str | None = None,
    poll_interval: timedelta | None = None,
    credentials: Credentials | None = None,
) -> PlatformAccount:
    """Link a platform account to an influencer, with its tokens when given; polling starts."""
    platform = _platform(platform)
    if not external_id.strip():
        msg = "the account's external id must not be empty"
        raise RegistryError(msg)
    if poll_interval is not None and poll_interval < timedelta(seconds=1):
        msg = "the poll interval must be at least 1s"
        raise RegistryError(msg)
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        if get_influencer(conn, tenant_id, influencer_id) is None:
            raise _no_influencer(influencer_id)
        try:
            row = cur.execute(
                "INSERT INTO platform_accounts "  # noqa: S608
                "(tenant_id, influencer_id, platform, external_id, handle, poll_interval) "
                "VALUES (%s, %s, %s, %s, %s, coalesce(%s, interval '5 minutes')) "
                f"RETURNING {_ACCOUNT}",
                (tenant_id, influencer_id, platform.value, external_id.strip(), handle,
                 poll_interval),
            ).fetchone()
        except psycopg.errors.UniqueViolation:
            msg = f"{platform.value} account {external_id.strip()!r} is already linked"
            raise Conflict(msg) from None
        assert row is not None
        if credentials is not None:
            _store_credentials(cur, vault, row["id"], credentials)
        _notify(cur, "account.linked", tenant_id, influencer_id=influencer_id,
                account_id=row["id"], platform=platform.value)
    return _account(row)


@dataclass(frozen=True)
class AccountLink:
    """One account to link with :func:`link_accounts` (the arguments of :func:`link_account`)."""

    influencer_id: str
    platform: Platform | str
    external_id: str
    handle: str | None = None
    poll_interval: timedelta | None = None
    credentials: Credentials | None = None


def link_accounts(
    conn: psycopg.Connection,
    vault: TokenVault,
    tenant_id: str,
    links: Sequence[AccountLink],
) -> list[PlatformAccount]:
    """Link many accounts at once: one transaction, one ``accounts.linked`` NOTIFY.

    All or nothing, with :func:`link_account`'s checks: an unknown influencer is
    :class:`NotFound`, an account already linked (or twice in ``links``) :class:`Conflict`.
    The notification carries the count, not the ids: pollers re-read the registry on any.
    """
    rows_in = []
    for link in links:
        platform = _platform(link.platform)
        external_id = link.external_id.strip()
        if not external_id:
            msg = "the account's external id must not be empty"
            raise RegistryError(msg)
        if link.poll_interval is not None and link.poll_interval < timedelta(seconds=1):
            msg = "the poll interval must be at least 1s"
            raise RegistryError(msg)
        rows_in.append((tenant_id, link.influencer_id, platform.value, external_id, link.handle,
                        link.poll_interval))
    if not rows_in:
        return []
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        wanted = sorted({link.influencer_id for link in links})
        found = {r["id"] for r in cur.execute(
            "SELECT id FROM influencers WHERE tenant_id = %s AND id = ANY(%s)",
            (tenant_id, wanted)).fetchall()}
        for influencer_id in wanted:
            if influencer_id not in found:
                raise _no_influencer(influencer_id)
        try:
            cur.executemany(
                "INSERT INTO platform_accounts "  # noqa: S608
                "(tenant_id, influencer_id, platform, external_id, handle, poll_interval) "
                "VALUES (%s, %s, %s, %s, %s, coalesce(%s, interval '5 minutes')) "
                f"RETURNING {_ACCOUNT}",
                rows_in, returning=True)
            rows = []
            while True:
                rows.append(cur.fetchone())
                if not cur.nextset():
                    break
        except psycopg.errors.UniqueViolation as exc:
            msg = f"an account is already linked ({exc.diag.message_detail or 'duplicate'})"
            raise Conflict(msg) from None
        accounts = [_account(row) for row in rows if row is not None]
        sealed = []
        for account, link in zip(accounts, links, strict=True):
            if link.credentials is not None:
                sealed.append(_sealed(vault, account.id, link.credentials))
        if sealed:
            cur.executemany(_STORE_CREDENTIALS, sealed)
        _notify(cur, "accounts.linked", tenant_id, count=len(accounts))
    return accounts


def set_account_status(
    conn: psycopg.Connection, tenant_id: str, account_id: str, status: str
) -> PlatformAccount:
    """Pause (``paused``) or resume (``active``) polling of an account."""
    if status not in (ACTIVE, PAUSED):
        msg = f"status must be {ACTIVE} or {PAUSED}, got {status!r}"
        raise RegistryError(msg)
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"UPDATE platform_accounts SET status = %s, updated_at = now() "  # noqa: S608
            f"WHERE tenant_id = %s AND id = %s RETURNING {_ACCOUNT}",
            (status, tenant_id, account_id),
        ).fetchone()
        if row is None:
            raise _no_account(account_id)
        _notify(cur, "account.paused" if status == PAUSED else "account.resumed", tenant_id,
                influencer_id=row["influencer_id"], account_id=account_id,
                platform=row["platform"])
    return _account(row)


def pause_account(conn: psycopg.Connection, tenant_id: str, account_id: str) -> PlatformAccount:
    return set_account_status(conn, tenant_id, account_id, PAUSED)


def resume_account(conn: psycopg.Connection, tenant_id: str, account_id: str) -> PlatformAccount:
    return set_account_status(conn, tenant_id, account_id, ACTIVE)


def update_account(
    conn: psycopg.Connection,
    tenant_id: str,
    account_id: str,
    *,
    handle: str | None = None,
    poll_interval: timedelta | None = None,
) -> PlatformAccount:
    if poll_interval is not None and poll_interval < timedelta(seconds=1):
        msg = "the poll interval must be at least 1s"
        raise RegistryError(msg)
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"UPDATE platform_accounts SET handle = coalesce(%s, handle), "  # noqa: S608
            f"poll_interval = coalesce(%s, poll_interval), updated_at = now() "
            f"WHERE tenant_id = %s AND id = %s RETURNING {_ACCOUNT}",
            (handle, poll_interval, tenant_id, account_id),
        ).fetchone()
        if row is None:
            raise _no_account(account_id)
        _notify(cur, "account.updated", tenant_id, influencer_id=row["influencer_id"],
                account_id=account_id, platform=row["platform"])
    return _account(row)


def unlink_account(conn: psycopg.Connection, tenant_id: str, account_id: str) -> None:
    """Remove an account and its tokens; polling stops."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "DELETE FROM platform_accounts WHERE tenant_id = %s AND id = %s "
            "RETURNING influencer_id, platform",
            (tenant_id, account_id),
        ).fetchone()
        if row is None:
            raise _no_account(account_id)
        _notify(cur, "account.unlinked", tenant_id, influencer_id=row["influencer_id"],
                account_id=account_id, platform=row["platform"])


def get_account(
    conn: psycopg.Connection, account_id: str, tenant_id: str | None = None
) -> PlatformAccount | None:
    """The account ``account_id`` (in ``tenant_id`` when given; None: any tenant)."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"SELECT {_ACCOUNT} FROM platform_accounts WHERE id = %s "  # noqa: S608
            "AND (%s::text IS NULL OR tenant_id = %s)",
            (account_id, tenant_id, tenant_id),
        ).fetchone()
    return _account(row) if row else None


def list_accounts(
    conn: psycopg.Connection,
    tenant_id: str | None = None,
    *,
    influencer_id: str | None = None,
    status: str | None = None,
    platform: Platform | str | None = None,
    influencer_ids: Sequence[str] | None = None,
) -> list[PlatformAccount]:
    """Accounts, filtered by tenant (None: every tenant, for the pollers), influencer(s), status.

    ``influencer_ids`` fetches the accounts of many influencers in one query (a DataLoader's
    batch).
    """
    many = list(influencer_ids) if influencer_ids is not None else None
    plat = _platform(platform).value if platform is not None else None
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"SELECT {_ACCOUNT} FROM platform_accounts WHERE "  # noqa: S608
            "(%s::text IS NULL OR tenant_id = %s) AND (%s::text IS NULL OR influencer_id = %s) "
            "AND (%s::text IS NULL OR status = %s) AND (%s::text IS NULL OR platform = %s) "
            "AND (%s::text[] IS NULL OR influencer_id = ANY (%s::text[])) "
            "ORDER BY tenant_id, influencer_id, platform, external_id",
            (tenant_id, tenant_id, influencer_id, influencer_id, status, status, plat, plat,
             many, many),
        ).fetchall()
    return [_account(r) for r in rows]


def pollable_accounts(conn: psycopg.Connection,
                      tenant_id: str | None = None) -> list[PlatformAccount]:
    """What the pollers poll: the active accounts (of one tenant, or of all), less those on a
    platform their tenant has disabled (``tenant_platforms``; a change is announced, so the
    pollers stop or start within seconds)."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"SELECT {_ACCOUNT} FROM platform_accounts a WHERE status = %s "  # noqa: S608
            "AND (%s::text IS NULL OR tenant_id = %s) AND NOT EXISTS ("
            "  SELECT 1 FROM tenant_platforms t WHERE t.tenant_id = a.tenant_id "
            "  AND t.platform = a.platform AND NOT t.enabled) "
            "ORDER BY tenant_id, influencer_id, platform, external_id",
            (ACTIVE, tenant_id, tenant_id)).fetchall()
    return [_account(r) for r in rows]


# --- credentials ----------------------------------------------------------------------------


def store_credentials(
    conn: psycopg.Connection, vault: TokenVault, account_id: str, credentials: Credentials
) -> None:
    """Seal and store an account's tokens (a refresh stores the new ones at once)."""
    with conn.transaction(), conn.cursor() as cur:
        _store_credentials(cur, vault, account_id, credentials)


def load_credentials(
    conn: psycopg.Connection, vault: TokenVault, account_id: str
) -> Credentials | None:
    row = conn.execute(
        "SELECT access_token_enc, refresh_token_enc, expires_at, scopes, updated_at "
        "FROM oauth_credentials WHERE account_id = %s",
        (account_id,),
    ).fetchone()
    return None if row is None else _credentials(vault, row)


def load_credentials_many(
    conn: psycopg.Connection, vault: TokenVault, account_ids: Sequence[str]
) -> dict[str, Credentials | None]:
    """:func:`load_credentials` of each account in one query (None: no tokens stored)."""
    found: dict[str, Credentials | None] = dict.fromkeys(account_ids)
    if account_ids:
        for account_id, *row in conn.execute(
            "SELECT account_id, access_token_enc, refresh_token_enc, expires_at, scopes, "
            "updated_at FROM oauth_credentials WHERE account_id = ANY(%s)",
            (list(account_ids),),
        ):
            found[account_id] = _credentials(vault, row)
    return found


def _credentials(vault: TokenVault, row: Sequence[Any]) -> Credentials:
    access, refresh, expires_at, scopes, updated_at = row
    return Credentials(
        access_token=vault.open(access),
        refresh_token=vault.open(refresh) if refresh is not None else None,
        expires_at=expires_at,
        scopes=tuple(scopes),
        updated_at=updated_at,
    )


_STORE_CREDENTIALS = (
    "INSERT INTO oauth_credentials (account_id, access_token_enc, refresh_token_enc, "
    "key_id, expires_at, scopes) VALUES (%s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (account_id) DO UPDATE SET access_token_enc = excluded.access_token_enc, "
    "refresh_token_enc = excluded.refresh_token_enc, key_id = excluded.key_id, "
    "expires_at = excluded.expires_at, scopes = excluded.scopes, updated_at = now()"
)


def _sealed(vault: TokenVault, account_id: str, credentials: Credentials) -> tuple[Any, ...]:
    """The row of :data:`_STORE_CREDENTIALS`, tokens sealed."""
    access = vault.seal(credentials.access_token)
    refresh = vault.seal(credentials.refresh_token) if credentials.refresh_token else None
    return (account_id, access.ciphertext, refresh.ciphertext if refresh else None,
            access.key_id, credentials.expires_at, list(credentials.scopes))


def _store_credentials(
    cur: psycopg.Cursor[Any], vault: TokenVault, account_id: str, credentials: Credentials
) -> None:
    try:
        cur.execute(_STORE_CREDENTIALS, _sealed(vault, account_id, credentials))
    except psycopg.errors.ForeignKeyViolation:
        raise _no_account(account_id) from None


# --- helpers --------------------------------------------------------------------------------


def _notify(cur: psycopg.Cursor[Any], op: str, tenant_id: str, **ids: Any) -> None:
    payload = json.dumps({"op": op, "tenant_id": tenant_id, **ids}, separators=(",", ":"))
    cur.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))


def _check_name(name: str) -> None:
    if not name.strip():
        msg = "an influencer's name must not be empty"
        raise RegistryError(msg)


def _platform(value: Platform | str) -> Platform:
    try:
        return Platform(value)
    except ValueError:
        msg = f"unknown platform {value!r}; expected one of {', '.join(p.value for p in Platform)}"
        raise RegistryError(msg) from None


def _no_influencer(influencer_id: str) -> NotFound:
    return NotFound(f"no influencer {influencer_id!r} in this tenant")


def _no_account(account_id: str) -> NotFound:
    return NotFound(f"no platform account {account_id!r} in this tenant")


# --- poll state (migration 0005): what the pollers report per account ------------------------


@dataclass(frozen=True)
class PollState:
    account_id: str
    worker_id: str | None
    last_poll_at: datetime | None
    last_success_at: datetime | None
    next_poll_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    consecutive_failures: int
    observations: int  # published by polls of this account since it was linked
    updated_at: datetime


def poll_states(conn: psycopg.Connection, account_ids: Sequence[str]) -> dict[str, PollState]:
    """The poll state of each account that has been polled at least once."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT account_id, worker_id, last_poll_at, last_success_at, next_poll_at, "
            "last_error, last_error_at, consecutive_failures, observations, updated_at "
            "FROM poll_state WHERE account_id = ANY (%s)",
            (list(account_ids),),
        ).fetchall()
    return {r["account_id"]: PollState(**r) for r in rows}


def record_poll(
    conn: psycopg.Connection,
    account_id: str,
    worker_id: str,
    at: datetime,
    *,
    next_poll_at: datetime | None,
    error: str | None = None,
    observations: int = 0,
) -> None:
    """Record one poll of an account: a success (``error`` None) or a failure and why."""
    record_polls(conn, [PollRecord(account_id, worker_id, at, next_poll_at, error,
                                   observations)])


@dataclass(frozen=True)
class PollRecord:
    """One poll of an account, as :func:`record_polls` stores it."""

    account_id: str
    worker_id: str
    at: datetime
    next_poll_at: datetime | None
    error: str | None = None
    observations: int = 0


@dataclass
class _Merged:
    """An account's polls of one batch, folded into one row's worth of change."""

    last: PollRecord
    success_at: datetime | None = None
    error: str | None = None
    error_at: datetime | None = None
    failures: int = 0  # failures since the batch's last success (or in all of it)
    observations: int = 0

    def add(self, r: PollRecord) -> None:
        self.last = r if r.at >= self.last.at else self.last
        self.observations += r.observations
        if r.error is None:
            self.success_at, self.failures = r.at, 0
        else:
            self.error, self.error_at, self.failures = r.error, r.at, self.failures + 1


def merge_polls(records: Sequence[PollRecord]) -> dict[str, _Merged]:
    """Fold the records per account, in the order given (each account's in time order)."""
    merged: dict[str, _Merged] = {}
    for r in records:
        m = merged.get(r.account_id)
        if m is None:
            m = merged[r.account_id] = _Merged(r)
        m.add(r)
    return merged


def record_polls(conn: psycopg.Connection, records: Sequence[PollRecord]) -> None:
    """Record many polls in one statement (a worker writes a second's polls at once).

    Per account the newest poll sets the worker and the next poll; a success in the batch
    resets the failure count to the failures after it, else the batch's failures add up; the
    latest success and error are kept; observations add up. Accounts no longer registered are
    skipped."""
    merged = merge_polls(records)
    if not merged:
        return
    rows = list(merged.items())
    conn.execute(
        "INSERT INTO poll_state AS p (account_id, worker_id, last_poll_at, last_success_at, "
        "next_poll_at, last_error, last_error_at, consecutive_failures, observations) "
        "SELECT r.a, r.w, r.at, r.ok_at, r.next, r.err, r.err_at, r.fails, r.n "
        "FROM unnest(%s::text[], %s::text[], %s::timestamptz[], %s::timestamptz[], "
        "%s::timestamptz[], %s::text[], %s::timestamptz[], %s::int[], %s::bigint[]) "
        "AS r(a, w, at, ok_at, next, err, err_at, fails, n) "
        "WHERE EXISTS (SELECT 1 FROM platform_accounts WHERE id = r.a) "
        "ON CONFLICT (account_id) DO UPDATE SET worker_id = excluded.worker_id, "
        "last_poll_at = excluded.last_poll_at, "
        "last_success_at = coalesce(excluded.last_success_at, p.last_success_at), "
        "next_poll_at = excluded.next_poll_at, "
        "last_error = coalesce(excluded.last_error, p.last_error), "
        "last_error_at = coalesce(excluded.last_error_at, p.last_error_at), "
        "consecutive_failures = CASE WHEN excluded.last_success_at IS NOT NULL "
        "    THEN excluded.consecutive_failures "
        "    ELSE p.consecutive_failures + excluded.consecutive_failures END, "
        "observations = p.observations + excluded.observations, updated_at = now()",
        [[a for a, _ in rows], [m.last.worker_id for _, m in rows],
         [m.last.at for _, m in rows], [m.success_at for _, m in rows],
         [m.last.next_poll_at for _, m in rows], [m.error for _, m in rows],
         [m.error_at for _, m in rows], [m.failures for _, m in rows],
         [m.observations for _, m in rows]],
    )
