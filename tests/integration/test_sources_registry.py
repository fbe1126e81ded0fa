"""The registry against the real PostgreSQL: changes, tenant scoping, sealed tokens, NOTIFY."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from cryptography.fernet import Fernet

from creatorpulse.settings import Secret, Settings
from creatorpulse.sinks import registry
from creatorpulse.sinks.registry import Conflict, Credentials, NotFound
from creatorpulse.stack import Stack
from creatorpulse.tokens import TokenVault, rotate


@pytest.fixture
def conn(stack: Stack, settings: Settings) -> Iterator[psycopg.Connection]:
    with psycopg.connect(settings.database_dsn.reveal(), autocommit=True) as c:
        yield c


@pytest.fixture
def tenant(conn: psycopg.Connection) -> Iterator[str]:
    tenant_id = f"t-{uuid.uuid4().hex[:10]}"
    registry.ensure_tenant(conn, tenant_id, "Test tenant")
    yield tenant_id
    conn.execute("DELETE FROM tenants WHERE id = %s", (tenant_id,))


@pytest.fixture
def vault() -> TokenVault:
    return TokenVault([Fernet.generate_key().decode()])


def _notifications(listener: psycopg.Connection) -> list[dict]:
    return [json.loads(n.payload) for n in listener.notifies(timeout=0.5, stop_after=None)
            if n.channel == registry.CHANNEL]


def test_influencers_are_tenant_scoped_and_changes_are_announced(
    conn: psycopg.Connection, tenant: str, settings: Settings
) -> None:
    other = f"t-{uuid.uuid4().hex[:10]}"
    registry.ensure_tenant(conn, other)
    try:
        with psycopg.connect(settings.database_dsn.reveal(), autocommit=True) as listener:
            listener.execute(f"LISTEN {registry.CHANNEL}")
            ada = registry.add_influencer(conn, tenant, "Ada", tags=["tech"], metadata={"x": 1})
            registry.add_influencer(conn, tenant, "Bob")
            registry.add_influencer(conn, other, "Eve")
            assert [i.name for i in registry.list_influencers(conn, tenant)] == ["Ada", "Bob"]
            assert [i.name for i in registry.list_influencers(conn, tenant, tag="tech")] == ["Ada"]
            assert registry.get_influencer(conn, other, ada.id) is None
            with pytest.raises(NotFound):
                registry.remove_influencer(conn, other, ada.id)
            renamed = registry.update_influencer(conn, tenant, ada.id, name="Ada L.")
            assert (renamed.name, renamed.tags, renamed.metadata) == ("Ada L.", ("tech",), {"x": 1})
            registry.remove_influencer(conn, tenant, ada.id)
            assert registry.get_influencer(conn, tenant, ada.id) is None
            ops = [(n["op"], n["tenant_id"]) for n in _notifications(listener)]
    finally:
        conn.execute("DELETE FROM tenants WHERE id = %s", (other,))
    assert ops == [("influencer.added", tenant), ("influencer.added", tenant),
                   ("influencer.added", other), ("influencer.updated", tenant),
                   ("influencer.removed", tenant)]


def test_accounts_link_pause_resume_unlink_with_sealed_tokens(
    conn: psycopg.Connection, tenant: str, vault: TokenVault, settings: Settings
) -> None:
    inf = registry.add_influencer(conn, tenant, "Ada")
    expires = datetime(2030, 1, 1, tzinfo=UTC)
    creds = Credentials(Secret("act.plain-access"), Secret("rft.plain-refresh"), expires,
                        ("user.info.basic", "video.list"))
    with psycopg.connect(settings.database_dsn.reveal(), autocommit=True) as listener:
        listener.execute(f"LISTEN {registry.CHANNEL}")
        acc = registry.link_account(conn, vault, tenant, inf.id, "tiktok", "open-1",
                                    handle="@ada", poll_interval=timedelta(seconds=30),
                                    credentials=creds)
        assert (acc.status, acc.poll_interval) == ("active", timedelta(seconds=30))
        with pytest.raises(Conflict):
            registry.link_account(conn, vault, tenant, inf.id, "tiktok", "open-1")
        paused = registry.pause_account(conn, tenant, acc.id)
        assert paused.status == "paused"
        assert registry.list_accounts(conn, status="active", influencer_id=inf.id) == []
        assert registry.list_accounts(conn, tenant, influencer_ids=[inf.id, "x"]) == [paused]
        assert registry.list_accounts(conn, tenant, influencer_ids=[]) == []
        assert registry.resume_account(conn, tenant, acc.id).status == "active"
        notes = _notifications(listener)
    assert [n["op"] for n in notes] == ["account.linked", "account.paused", "account.resumed"]
    assert all(n["account_id"] == acc.id for n in notes)
    assert "plain" not in json.dumps(notes)

    raw = conn.execute("SELECT access_token_enc, refresh_token_enc, key_id FROM oauth_credentials "
                       "WHERE account_id = %s", (acc.id,)).fetchone()
    assert b"plain-access" not in raw[0] and b"plain-refresh" not in raw[1]
    assert raw[2] == vault.key_id
    loaded = registry.load_credentials(conn, vault, acc.id)
    assert loaded is not None
    assert loaded.access_token.reveal() == "act.plain-access"
    assert loaded.refresh_token is not None and loaded.refresh_token.reveal() == "rft.plain-refresh"
    assert (loaded.expires_at, loaded.scopes) == (expires, ("user.info.basic", "video.list"))
    assert "plain" not in repr(loaded)

    registry.unlink_account(conn, tenant, acc.id)
    assert registry.get_account(conn, acc.id) is None
    assert registry.load_credentials(conn, vault, acc.id) is None
    with pytest.raises(NotFound):
        registry.pause_account(conn, tenant, acc.id)


def test_linking_to_another_tenants_influencer_is_refused(
    conn: psycopg.Connection, tenant: str, vault: TokenVault
) -> None:
    other = f"t-{uuid.uuid4().hex[:10]}"
    registry.ensure_tenant(conn, other)
    try:
        inf = registry.add_influencer(conn, other, "Eve")
        with pytest.raises(NotFound):
            registry.link_account(conn, vault, tenant, inf.id, "x", "42")
    finally:
        conn.execute("DELETE FROM tenants WHERE id = %s", (other,))


def test_a_failed_change_announces_nothing(
    conn: psycopg.Connection, tenant: str, vault: TokenVault, settings: Settings
) -> None:
    inf = registry.add_influencer(conn, tenant, "Ada")
    registry.link_account(conn, vault, tenant, inf.id, "x", "42")
    with psycopg.connect(settings.database_dsn.reveal(), autocommit=True) as listener:
        listener.execute(f"LISTEN {registry.CHANNEL}")
        with pytest.raises(Conflict):
            registry.link_account(conn, vault, tenant, inf.id, "x", "42")
        assert _notifications(listener) == []


def test_rotate_reseals_rows_with_the_new_first_key(
    conn: psycopg.Connection, tenant: str
) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    inf = registry.add_influencer(conn, tenant, "Ada")
    acc = registry.link_account(conn, TokenVault([old]), tenant, inf.id, "youtube", "UC1",
                                credentials=Credentials(Secret("ya29.a"), Secret("1//r")))
    both = TokenVault([new, old])
    # Scoped to this test's tenant: other rows in the database hold other keys.
    assert rotate(conn, both, tenant_id=tenant) == 1
    key = conn.execute("SELECT key_id FROM oauth_credentials WHERE account_id = %s",
                       (acc.id,)).fetchone()[0]
    assert key == both.key_id
    creds = registry.load_credentials(conn, TokenVault([new]), acc.id)
    assert creds is not None and creds.access_token.reveal() == "ya29.a"
    assert rotate(conn, both, tenant_id=tenant) == 0


def test_link_accounts_links_many_in_one_transaction_with_one_notification(
    conn: psycopg.Connection, tenant: str, vault: TokenVault, settings: Settings
) -> None:
    ada = registry.add_influencer(conn, tenant, "Ada")
    bob = registry.add_influencer(conn, tenant, "Bob")
    creds = Credentials(Secret("act.plain-many"), None, None)
    links = [registry.AccountLink(ada.id, "x", "1", handle="@ada", credentials=creds),
             registry.AccountLink(bob.id, "tiktok", " 2 ", poll_interval=timedelta(seconds=5)),
             registry.AccountLink(bob.id, "youtube", "UC3", credentials=creds)]
    with psycopg.connect(settings.database_dsn.reveal(), autocommit=True) as listener:
        listener.execute(f"LISTEN {registry.CHANNEL}")
        linked = registry.link_accounts(conn, vault, tenant, links)
        notes = _notifications(listener)
    assert [(a.influencer_id, a.platform.value, a.external_id) for a in linked] == [
        (ada.id, "x", "1"), (bob.id, "tiktok", "2"), (bob.id, "youtube", "UC3")]
    assert linked[1].poll_interval == timedelta(seconds=5)
    assert linked[0].poll_interval == timedelta(minutes=5)
    assert notes == [{"op": "accounts.linked", "tenant_id": tenant, "count": 3}]
    assert sorted(registry.list_accounts(conn, tenant), key=lambda a: a.external_id) == linked
    loaded = registry.load_credentials(conn, vault, linked[2].id)
    assert loaded is not None and loaded.access_token.reveal() == "act.plain-many"
    assert registry.load_credentials(conn, vault, linked[1].id) is None
    many = registry.load_credentials_many(conn, vault, [linked[2].id, linked[1].id])
    assert list(many) == [linked[2].id, linked[1].id]
    assert many[linked[1].id] is None
    assert many[linked[2].id] == loaded


def test_link_accounts_is_all_or_nothing(
    conn: psycopg.Connection, tenant: str, vault: TokenVault, settings: Settings
) -> None:
    ada = registry.add_influencer(conn, tenant, "Ada")
    registry.link_account(conn, vault, tenant, ada.id, "x", "42")
    with psycopg.connect(settings.database_dsn.reveal(), autocommit=True) as listener:
        listener.execute(f"LISTEN {registry.CHANNEL}")
        with pytest.raises(Conflict):
            registry.link_accounts(conn, vault, tenant, [
                registry.AccountLink(ada.id, "tiktok", "7"),
                registry.AccountLink(ada.id, "x", "42")])
        with pytest.raises(NotFound):
            registry.link_accounts(conn, vault, tenant, [
                registry.AccountLink(ada.id, "tiktok", "7"),
                registry.AccountLink("no-such-influencer", "x", "8")])
        assert _notifications(listener) == []
    assert [a.external_id for a in registry.list_accounts(conn, tenant)] == ["42"]
    assert registry.link_accounts(conn, vault, tenant, []) == []
