"""The registry commands end to end against PostgreSQL: tokens from stdin, never printed."""

from __future__ import annotations

import io
import uuid

import psycopg
import pytest

from creatorpulse.cli import main
from creatorpulse.settings import Settings
from creatorpulse.sinks import registry
from creatorpulse.stack import Stack
from creatorpulse.tokens import TokenVault


def test_influencers_and_accounts_from_the_command_line(
    stack: Stack, settings: Settings, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tenant = f"cli-{uuid.uuid4().hex[:8]}"
    try:
        assert main(["influencers", "add", "Ada", "--tag", "tech", "--tenant", tenant]) == 0
        influencer = capsys.readouterr().out.strip()
        monkeypatch.setattr("sys.stdin", io.StringIO(
            '{"access_token": "act.cli-secret", "refresh_token": "rft.cli-secret", '
            '"expires_in": 7200}'))
        assert main(["accounts", "link", influencer, "tiktok", "open-1", "--handle", "@ada",
                     "--tokens-file", "-", "--tenant", tenant]) == 0
        account = capsys.readouterr().out.strip()
        assert main(["accounts", "pause", account, "--tenant", tenant]) == 0
        assert main(["accounts", "list", "--tenant", tenant]) == 0
        assert main(["influencers", "list", "--tenant", tenant]) == 0
        assert main(["accounts", "link", influencer, "tiktok", "open-1", "--tenant",
                     tenant]) == 1
        out = capsys.readouterr()
        assert "@ada" in out.out and "paused" in out.out
        assert "already linked" in out.err
        assert "cli-secret" not in out.out + out.err
        with psycopg.connect(settings.database_dsn.reveal()) as conn:
            creds = registry.load_credentials(conn, TokenVault.from_settings(settings), account)
            assert creds is not None and creds.access_token.reveal() == "act.cli-secret"
        assert main(["accounts", "unlink", account, "--tenant", tenant]) == 0
        assert main(["accounts", "unlink", account, "--tenant", tenant]) == 1
        assert main(["influencers", "remove", influencer, "--tenant", tenant]) == 0
        assert "no platform account" in capsys.readouterr().err
    finally:
        with psycopg.connect(settings.database_dsn.reveal(), autocommit=True) as conn:
            conn.execute("DELETE FROM tenants WHERE id = %s", (tenant,))
