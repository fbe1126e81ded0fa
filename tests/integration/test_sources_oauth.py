"""OAuth refresh against real PostgreSQL and Redis and a local token endpoint that rotates."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import redis
from cryptography.fernet import Fernet

from creatorpulse.observation import Platform
from creatorpulse.settings import Secret, Settings
from creatorpulse.sinks import registry
from creatorpulse.sinks.registry import Credentials
from creatorpulse.sources.base import Account, ApiError
from creatorpulse.sources.http import AccountApi
from creatorpulse.sources.oauth import TokenManager, make_session_factory
from creatorpulse.sources.ratelimit import RedisLimiter
from creatorpulse.stack import Stack
from creatorpulse.tokens import TokenVault
from tests.fake_platform import FakeConnector, FakePlatform


@pytest.fixture
def platform(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakePlatform]:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the local server speaks plain HTTP
    with FakePlatform() as p:
        yield p


@pytest.fixture
def env(stack: Stack, settings: Settings, platform: FakePlatform) -> Iterator[dict]:
    s = Settings.from_env({
        "CREATORPULSE_DATABASE_URL": settings.database_dsn.reveal(),
        "CREATORPULSE_REDIS_URL": settings.redis_dsn.reveal(),
        "CREATORPULSE_TIKTOK_API_URL": platform.url,
    }, dotenv=None)
    vault = TokenVault([Fernet.generate_key().decode()])
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    prefix = f"test-oauth-{uuid.uuid4().hex[:8]}"
    access, refresh = platform.issue()
    with psycopg.connect(s.database_dsn.reveal(), autocommit=True) as conn:
        registry.ensure_tenant(conn, tenant)
        inf = registry.add_influencer(conn, tenant, "Ada")
        row = registry.link_account(
            conn, vault, tenant, inf.id, "tiktok", "open-1",
            credentials=Credentials(Secret(access), Secret(refresh),
                                    datetime.now(UTC) + timedelta(hours=2)))
        yield {"settings": s, "vault": vault, "prefix": prefix, "access": access,
               "account": Account(row.id, tenant, inf.id, Platform.TIKTOK, "open-1")}
        conn.execute("DELETE FROM tenants WHERE id = %s", (tenant,))


def _connect(settings: Settings):
    def connect() -> AbstractContextManager[psycopg.Connection]:
        return psycopg.connect(settings.database_dsn.reveal(), autocommit=True)
    return connect


def _manager(env: dict, client: redis.Redis) -> TokenManager:
    s = env["settings"]
    return TokenManager(settings=s, connect=_connect(s), vault=env["vault"], redis_client=client,
                        sessions=make_session_factory(s), lock_prefix=env["prefix"])


def test_two_workers_racing_to_refresh_one_rotating_token_refresh_exactly_once(
    env: dict, platform: FakePlatform, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    s = env["settings"]
    platform.accounts["open-1"] = {"followers": 10}
    platform.refresh_delay = 0.3  # a slow endpoint widens the race
    clients = [redis.Redis.from_url(s.redis_dsn.reveal()) for _ in range(2)]
    managers = [_manager(env, c) for c in clients]
    for m in managers:  # both workers hold the token that is about to be refused
        assert m.current(env["account"]).access_token.reveal() == env["access"]
    platform.valid_access.clear()
    platform.valid_access.add("something-else")  # the old access token is now refused
    results: list[object] = [None, None]
    barrier = threading.Barrier(2)

    def poll(n: int) -> None:
        api = AccountApi(account=env["account"], connector=FakeConnector(),
                         session=make_session_factory(s)("tiktok"), tokens=managers[n],
                         limiter=RedisLimiter(clients[n], s, prefix=env["prefix"]), settings=s)
        barrier.wait()
        results[n] = api.get("/accounts/open-1")

    threads = [threading.Thread(target=poll, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == [{"followers": 10}, {"followers": 10}]
    assert platform.refresh_calls == 1
    assert platform.refused_refreshes == 0
    assert sum(m.refreshes for m in managers) == 1
    with psycopg.connect(s.database_dsn.reveal()) as conn:
        stored = registry.load_credentials(conn, env["vault"], env["account"].id)
    assert stored is not None and stored.refresh_token is not None
    assert stored.refresh_token.reveal() in platform.valid_refresh  # the rotated one, stored
    assert stored.access_token.reveal() in platform.valid_access
    for secret in (env["access"], stored.access_token.reveal(), stored.refresh_token.reveal()):
        assert secret not in caplog.text
    for c in clients:
        c.close()


def test_a_token_about_to_expire_is_refreshed_before_the_request(
    env: dict, platform: FakePlatform
) -> None:
    s = env["settings"]
    with psycopg.connect(s.database_dsn.reveal(), autocommit=True) as conn:
        creds = registry.load_credentials(conn, env["vault"], env["account"].id)
        assert creds is not None
        registry.store_credentials(conn, env["vault"], env["account"].id, Credentials(
            creds.access_token, creds.refresh_token, datetime.now(UTC) + timedelta(minutes=1)))
    client = redis.Redis.from_url(s.redis_dsn.reveal())
    later = datetime.now(UTC) + timedelta(seconds=31)  # within half of the minute that was left
    manager = TokenManager(settings=s, connect=_connect(s), vault=env["vault"],
                           redis_client=client, sessions=make_session_factory(s),
                           lock_prefix=env["prefix"], clock=lambda: later)
    fresh = manager.current(env["account"])
    assert fresh is not None and fresh.access_token.reveal() != env["access"]
    assert fresh.expires_at is not None
    assert fresh.expires_at > datetime.now(UTC) + timedelta(hours=1)
    assert platform.refresh_calls == 1
    client.close()


def test_a_refused_refresh_says_why_without_any_token(env: dict, platform: FakePlatform) -> None:
    s = env["settings"]
    platform.valid_refresh.clear()  # revoked
    client = redis.Redis.from_url(s.redis_dsn.reveal())
    manager = _manager(env, client)
    stale = manager.current(env["account"])
    with pytest.raises(ApiError) as err:
        manager.refresh(env["account"], stale)
    assert "invalid_grant (refresh token used or revoked)" in str(err.value)
    assert err.value.code == "invalid_grant"
    assert stale is not None and stale.refresh_token is not None
    for secret in (stale.access_token.reveal(), stale.refresh_token.reveal()):
        assert secret not in str(err.value)
    client.close()


def test_a_short_lived_token_is_refreshed_at_half_its_life_not_on_every_request(
    env: dict, platform: FakePlatform
) -> None:
    """A 2-minute token with a 5-minute margin: fresh for the first minute."""
    s = env["settings"]
    with psycopg.connect(s.database_dsn.reveal(), autocommit=True) as conn:
        creds = registry.load_credentials(conn, env["vault"], env["account"].id)
        assert creds is not None
        registry.store_credentials(conn, env["vault"], env["account"].id, Credentials(
            creds.access_token, creds.refresh_token, datetime.now(UTC) + timedelta(minutes=2)))
    client = redis.Redis.from_url(s.redis_dsn.reveal())
    now = [datetime.now(UTC)]
    manager = TokenManager(settings=s, connect=_connect(s), vault=env["vault"],
                           redis_client=client, sessions=make_session_factory(s),
                           lock_prefix=env["prefix"], clock=lambda: now[0])
    assert manager.current(env["account"]).access_token.reveal() == env["access"]
    assert platform.refresh_calls == 0
    now[0] += timedelta(seconds=61)
    assert manager.current(env["account"]).access_token.reveal() != env["access"]
    assert platform.refresh_calls == 1
    client.close()


def test_preloaded_tokens_need_no_query_on_the_first_poll(env: dict) -> None:
    s = env["settings"]
    client = redis.Redis.from_url(s.redis_dsn.reveal())
    try:
        manager = _manager(env, client)
        manager.preload([env["account"].id, "no-such-account"])
        manager._connect = None  # type: ignore[assignment]  # any query now would fail
        creds = manager.current(env["account"])
        assert creds is not None and creds.access_token.reveal() == env["access"]
        assert manager.current(Account("no-such-account", "t", "i", Platform.TIKTOK, "x")) is None
    finally:
        client.close()
