"""Link the running simulators' seeded accounts into the registry, for the demo.

Account *i* is the same creator on every platform, so it becomes one influencer (named after its
handle, tagged ``demo``) with one platform account per simulator, sealed tokens included. Running
it again links only what is missing: an influencer is found by its ``sim_index`` metadata and an
account that is already linked is left as it is.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from creatorpulse.settings import Secret
from creatorpulse.sinks import registry
from creatorpulse.tokens import TokenVault


@dataclass(frozen=True)
class SimAccount:
    """One row of a simulator's ``GET /_sim/accounts``."""

    platform: str
    index: int
    id: str
    handle: str
    name: str
    access_token: str
    refresh_token: str | None
    expires_at: float | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> SimAccount:
        return cls(platform=row["platform"], index=int(row["index"]), id=str(row["id"]),
                   handle=row["handle"], name=row["name"], access_token=row["access_token"],
                   refresh_token=row.get("refresh_token"), expires_at=row.get("expires_at"))

    def credentials(self) -> registry.Credentials:
        expires = (datetime.fromtimestamp(self.expires_at, UTC)
                   if self.expires_at is not None else None)
        refresh = Secret(self.refresh_token) if self.refresh_token else None
        return registry.Credentials(Secret(self.access_token), refresh, expires)


def fetch_accounts(base_url: str, limit: int, timeout: float = 10.0) -> list[SimAccount]:
    """The first ``limit`` seeded accounts of the simulator at ``base_url``."""
    url = f"{base_url}/_sim/accounts?offset=0&limit={limit}"
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - settings URL
        body = json.load(response)
    return [SimAccount.from_row(row) for row in body["accounts"]]


@dataclass
class Enrolled:
    influencers: int = 0
    accounts: int = 0
    already: int = 0


def enrol(
    conn: psycopg.Connection,
    vault: TokenVault,
    tenant_id: str,
    accounts: Iterable[SimAccount],
    poll_interval: timedelta,
    progress: Callable[[int], None] = lambda _: None,
) -> Enrolled:
    """Link ``accounts`` under ``tenant_id``, one influencer per simulator index."""
    registry.ensure_tenant(conn, tenant_id, "Demo")
    by_index: dict[int, list[SimAccount]] = {}
    for account in accounts:
        by_index.setdefault(account.index, []).append(account)
    known = {int(index): influencer_id for influencer_id, index in conn.execute(
        "SELECT id, metadata->>'sim_index' FROM influencers "
        "WHERE tenant_id = %s AND metadata ? 'sim_index'", (tenant_id,)).fetchall()}
    linked = {(a.platform.value, a.external_id)
              for a in registry.list_accounts(conn, tenant_id=tenant_id)}
    done = Enrolled()
    for index, group in sorted(by_index.items()):
        influencer_id = known.get(index)
        if influencer_id is None:
            influencer_id = registry.add_influencer(
                conn, tenant_id, group[0].name, tags=("demo",),
                metadata={"sim_index": index, "handle": group[0].handle}).id
            done.influencers += 1
        for account in group:
            if (account.platform, account.id) in linked:
                done.already += 1
                continue
            registry.link_account(conn, vault, tenant_id, influencer_id, account.platform,
                                  account.id, handle=account.handle, poll_interval=poll_interval,
                                  credentials=account.credentials())
            done.accounts += 1
        progress(index)
    return done


def enrol_running(
    conn: psycopg.Connection,
    vault: TokenVault,
    tenant_id: str,
    urls: Mapping[str, str],
    count: int,
    poll_interval: timedelta,
    progress: Callable[[int], None] = lambda _: None,
) -> Enrolled:
    """Read ``count`` accounts from each simulator in ``urls`` and link them."""
    rows: Sequence[SimAccount] = [a for url in urls.values() for a in fetch_accounts(url, count)]
    return enrol(conn, vault, tenant_id, rows, poll_interval, progress)
