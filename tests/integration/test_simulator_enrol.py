"""The demo's enrolment: the simulators' seeded accounts become influencers with sealed tokens."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest

from creatorpulse.settings import Settings
from creatorpulse.sinks import registry
from creatorpulse.sources.simulator.clock import ManualClock
from creatorpulse.sources.simulator.config import SimConfig
from creatorpulse.sources.simulator.enrol import enrol_running
from creatorpulse.sources.simulator.server import Simulators, build
from creatorpulse.tokens import TokenVault


@pytest.fixture
def sims() -> Iterator[Simulators]:
    running = Simulators.start(build(SimConfig(accounts=4), ManualClock(1_790_000_000.0)), ports=0)
    yield running
    running.stop()


def test_each_creator_becomes_one_influencer_with_an_account_per_platform(
    sims: Simulators, db: psycopg.Connection, settings: Settings, unique: str
) -> None:
    tenant = f"enrol-{unique}"
    vault = TokenVault.from_settings(settings)
    try:
        done = enrol_running(db, vault, tenant, sims.urls, 3, timedelta(minutes=1))
        assert (done.influencers, done.accounts, done.already) == (3, 15, 0)
        accounts = registry.list_accounts(db, tenant_id=tenant)
        by_influencer: dict[str, set[str]] = {}
        for account in accounts:
            by_influencer.setdefault(account.influencer_id, set()).add(account.platform.value)
        assert len(by_influencer) == 3
        assert all(p == set(sims.urls) for p in by_influencer.values())
        # The tokens are sealed at rest and open to the simulator's own.
        x = next(a for a in accounts if a.platform.value == "x")
        creds = registry.load_credentials(db, vault, x.id)
        assert creds is not None and creds.access_token.reveal().strip()
        sealed = db.execute("SELECT access_token_enc FROM oauth_credentials WHERE account_id = %s",
                            (x.id,)).fetchone()
        assert sealed is not None and creds.access_token.reveal().encode() not in bytes(sealed[0])
        # Again: nothing new, nothing doubled.
        again = enrol_running(db, vault, tenant, sims.urls, 3, timedelta(minutes=1))
        assert (again.influencers, again.accounts, again.already) == (0, 0, 15)
    finally:
        db.execute("DELETE FROM tenants WHERE id = %s", (tenant,))
