from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from creatorpulse.cli import build_parser
from creatorpulse.sources.commands import CommandError, read_tokens

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_tokens_come_from_a_file_in_the_token_endpoint_shape(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text('{"access_token": "act.a", "refresh_token": "rft.b", "expires_in": 7200, '
                    '"scope": "user.info.basic,video.list"}')
    creds = read_tokens(str(path), NOW)
    assert creds.access_token.reveal() == "act.a"
    assert creds.refresh_token is not None and creds.refresh_token.reveal() == "rft.b"
    assert creds.expires_at == NOW + timedelta(hours=2)
    assert creds.scopes == ("user.info.basic", "video.list")


def test_tokens_from_stdin_and_bad_input_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(
        '{"access_token": "ya29.z", "expires_at": "2026-12-01T00:00:00+00:00", '
        '"scope": ["a", "b"]}'))
    creds = read_tokens("-", NOW)
    assert creds.expires_at == datetime(2026, 12, 1, tzinfo=UTC)
    assert creds.refresh_token is None and creds.scopes == ("a", "b")
    monkeypatch.setattr("sys.stdin", io.StringIO("access_token=secret-value"))
    with pytest.raises(CommandError) as err:
        read_tokens("-", NOW)
    assert "secret-value" not in str(err.value)
    monkeypatch.setattr("sys.stdin", io.StringIO('{"refresh_token": "only"}'))
    with pytest.raises(CommandError, match="access_token"):
        read_tokens("-", NOW)


def test_the_commands_parse_and_tokens_are_not_an_argument() -> None:
    parser = build_parser()
    args = parser.parse_args(["accounts", "link", "inf-1", "x", "42", "--interval", "30s",
                              "--tokens-file", "-"])
    assert args.interval == timedelta(seconds=30) and args.tenant == "default"
    assert not any("token" in a.dest and a.dest != "tokens_file"
                   for a in parser._subparsers._group_actions[0].choices["accounts"]
                   ._subparsers._group_actions[0].choices["link"]._actions)
    args = parser.parse_args(["sources", "run", "--workers", "3"])
    assert (args.workers, args.threads, args.tenant) == (3, 8, None)
    for words in (["influencers", "add", "Ada", "--tag", "a", "--tag", "b"],
                  ["influencers", "list"], ["influencers", "remove", "i"],
                  ["accounts", "pause", "a"], ["accounts", "resume", "a"],
                  ["accounts", "unlink", "a"], ["accounts", "list"], ["tokens", "rotate"],
                  ["accounts", "tokens", "a", "--tokens-file", "t.json"]):
        assert callable(parser.parse_args(words).handler)
    with pytest.raises(SystemExit):
        parser.parse_args(["accounts", "link", "inf-1", "x", "42", "--interval", "soon"])
