"""`creatorpulse api token` and `api schema` from the command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from creatorpulse.cli import main
from creatorpulse.graphql.auth import Role, verify
from creatorpulse.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_api_token_mints_a_token_that_verifies(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["api", "token", "--tenant", "t-9", "--role", "editor", "--ttl", "5m"]) == 0
    token = capsys.readouterr().out.strip()
    principal = verify(token, Settings.from_env({}, dotenv=None))
    assert (principal.tenant_id, principal.role, principal.subject) == ("t-9", Role.EDITOR,
                                                                       "developer")


def test_api_token_refuses_an_unknown_role_without_a_traceback(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["api", "token", "--role", "root"]) == 1
    err = capsys.readouterr().err
    assert "unknown role" in err
    assert "Traceback" not in err


def test_api_token_in_production_needs_a_signing_key(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREATORPULSE_ENV", "production")
    assert main(["api", "token"]) == 1
    assert "CREATORPULSE_JWT_SECRET" in capsys.readouterr().err


def test_api_schema_prints_the_committed_sdl(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["api", "schema"]) == 0
    assert capsys.readouterr().out == (ROOT / "graphql" / "schema.graphql").read_text()


def test_api_serve_in_production_without_keys_exits_1_before_serving(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREATORPULSE_ENV", "production")
    assert main(["api", "serve", "--port", "1"]) == 1
    assert "CREATORPULSE_JWT_SECRET" in capsys.readouterr().err
    monkeypatch.setenv("CREATORPULSE_JWT_SECRET", "s" * 40)
    assert main(["api", "serve", "--port", "1"]) == 1
    err = capsys.readouterr().err
    assert "CREATORPULSE_TOKEN_KEYS" in err
    assert "Traceback" not in err
