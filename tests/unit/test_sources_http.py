from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from creatorpulse.observation import Platform
from creatorpulse.settings import Secret, Settings
from creatorpulse.sinks.registry import Credentials
from creatorpulse.sources.base import Account, ApiError, MappingError, Retry
from creatorpulse.sources.http import AccountApi
from tests.fake_platform import FakeConnector

ACCOUNT = Account(id="acc-1", tenant_id="t", influencer_id="inf", platform=Platform.TIKTOK,
                  external_id="open-1")
TOKEN = "act.super-secret-token"


def response(status: int, body: bytes = b"{}", headers: dict[str, str] | None = None) -> Any:
    r = requests.Response()
    r.status_code = status
    r._content = body
    r.headers.update(headers or {})
    return r


class FakeSession:
    """Answers from a script: each item is a Response or an exception to raise."""

    def __init__(self, *script: Any) -> None:
        self.script = list(script)
        self.token: dict[str, str] = {}
        self.seen: list[tuple[str, dict[str, str], str | None]] = []
        self.posted: list[Any] = []

    def get(self, url: str, params: dict[str, str], timeout: float) -> Any:
        self.seen.append((url, params, self.token.get("access_token")))
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    def post(self, url: str, params: dict[str, str], json: Any, timeout: float) -> Any:
        self.seen.append((url, params, self.token.get("access_token")))
        self.posted.append(json)
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        return item


class FakeTokens:
    def __init__(self) -> None:
        self.creds = Credentials(Secret(TOKEN), Secret("rft.refresh-secret"))
        self.refreshed = 0

    def current(self, account: Account) -> Credentials:
        return self.creds

    def refresh(self, account: Account, stale: Credentials) -> Credentials:
        self.refreshed += 1
        self.creds = Credentials(Secret(f"act.new-{self.refreshed}"), stale.refresh_token)
        return self.creds


class FakeLimiter:
    def __init__(self) -> None:
        self.acquired = 0
        self.blocks: list[datetime] = []

    def acquire(self, platform: str, credential: str, cost: int = 1) -> None:
        self.acquired += cost

    def block(self, platform: str, credential: str, until: datetime) -> None:
        self.blocks.append(until)


NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def make_api(session: FakeSession, tokens: Any = None, **kw: Any) -> tuple[AccountApi, FakeLimiter,
                                                                          list[float]]:
    limiter, slept = FakeLimiter(), []
    settings = Settings.from_env({"CREATORPULSE_TIKTOK_API_URL": "http://127.0.0.1:9"},
                                 dotenv=None)
    api = AccountApi(account=ACCOUNT, connector=FakeConnector(), session=session,  # type: ignore[arg-type]
                     tokens=tokens, limiter=limiter, settings=settings, clock=lambda: NOW,
                     sleep=slept.append, rand=lambda: 0.5, **kw)
    return api, limiter, slept


def test_get_joins_the_base_url_sends_the_token_and_parses_json() -> None:
    session = FakeSession(response(200, b'{"followers": 3}'))
    api, limiter, _ = make_api(session, FakeTokens())
    assert api.get("/accounts/open-1", {"fields": "a"}, cost=2) == {"followers": 3}
    assert session.seen == [("http://127.0.0.1:9/accounts/open-1", {"fields": "a"}, TOKEN)]
    assert limiter.acquired == 2
    assert session.token == {}  # the token does not linger on the session


def test_a_pause_on_success_blocks_the_credential() -> None:
    api, limiter, _ = make_api(FakeSession(response(200, b"{}", {"X-Pause": "30"})))
    api.get("/accounts/open-1")
    assert limiter.blocks == [NOW + timedelta(seconds=30)]


def test_retry_after_blocks_then_retries_and_plain_retry_backs_off_with_jitter() -> None:
    session = FakeSession(response(429, b"{}", {"Retry-After": "2"}), response(503),
                          response(200, b"[1]"))
    api, limiter, slept = make_api(session)
    assert api.get("/accounts/open-1") == [1]
    assert limiter.blocks == [NOW + timedelta(seconds=2)]
    assert slept == [1.0]  # attempt 2: base 1s * 2**1 * jitter 0.5


def test_retries_give_up_after_the_configured_attempts() -> None:
    api, _, slept = make_api(FakeSession(*[response(503)] * 5))
    with pytest.raises(Retry):
        api.get("/accounts/open-1")
    assert len(slept) == 4


def test_auth_expired_refreshes_once_then_fails_clearly() -> None:
    tokens = FakeTokens()
    session = FakeSession(response(401), response(200, b"{}"))
    api, _, _ = make_api(session, tokens)
    assert api.get("/accounts/open-1") == {}
    assert tokens.refreshed == 1
    assert [seen[2] for seen in session.seen] == [TOKEN, "act.new-1"]
    api2, _, _ = make_api(FakeSession(response(401), response(401)), FakeTokens())
    with pytest.raises(ApiError, match="after a refresh"):
        api2.get("/accounts/open-1")


def test_errors_and_logs_never_show_the_token(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    leak = requests.ConnectionError(f"Max retries exceeded with url: /me?access_token={TOKEN}")
    api, _, _ = make_api(FakeSession(*[leak] * 5), FakeTokens())
    with pytest.raises(Retry) as err:
        api.get("/accounts/open-1")
    assert "ConnectionError" in str(err.value)
    assert TOKEN not in str(err.value) and TOKEN not in repr(err.value)
    assert err.value.__cause__ is None and err.value.__suppress_context__
    assert TOKEN not in caplog.text


def test_a_next_link_to_another_host_is_refused_and_non_json_is_a_mapping_error() -> None:
    api, _, _ = make_api(FakeSession(response(200, b"<html>")), FakeTokens())
    with pytest.raises(ApiError, match="another host"):
        api.get("https://evil.example/steal")
    with pytest.raises(MappingError) as err:
        api.get("http://127.0.0.1:9/accounts/open-1?cursor=2")
    assert err.value.payload == b"<html>"


def test_a_long_platform_wait_goes_back_to_the_scheduler() -> None:
    api, limiter, slept = make_api(FakeSession(response(429, b"{}", {"Retry-After": "3600"})))
    with pytest.raises(Retry) as err:
        api.get("/accounts/open-1")
    assert err.value.after == timedelta(hours=1)
    assert limiter.blocks == [NOW + timedelta(hours=1)] and slept == []


def test_a_paging_link_loses_the_token_it_carried() -> None:
    session = FakeSession(response(200, b"{}"))
    api, _, _ = make_api(session, FakeTokens())
    api.get("http://127.0.0.1:9/v25.0/17/media?after=QVF&access_token=old-token&limit=25")
    assert session.seen[0][0] == "http://127.0.0.1:9/v25.0/17/media?after=QVF&limit=25"


def test_post_sends_a_json_body_with_the_same_handling() -> None:
    session = FakeSession(response(401), response(200, b'{"data": {"videos": []}}'))
    tokens = FakeTokens()
    api, limiter, _ = make_api(session, tokens)
    body = {"filters": {"video_ids": ["1", "2"]}}
    assert api.post("/v2/video/query/", json=body, params={"fields": "id"}) == {
        "data": {"videos": []}}
    assert session.posted == [body, body] and tokens.refreshed == 1
    assert session.seen[-1][:2] == ("http://127.0.0.1:9/v2/video/query/", {"fields": "id"})
    assert limiter.acquired == 2


def test_a_refused_refresh_reads_rfc_6749_and_meta_errors() -> None:
    from oauthlib.oauth2 import InvalidGrantError
    from oauthlib.oauth2.rfc6749.errors import CustomOAuth2Error

    from creatorpulse.sources.oauth import _refusal

    assert _refusal(InvalidGrantError(description="Token has been expired or revoked.")) == (
        "invalid_grant", "invalid_grant (Token has been expired or revoked.)")
    meta = CustomOAuth2Error(error={"message": "Session has expired", "code": 190})  # type: ignore[arg-type]
    assert _refusal(meta) == ("190", "(190) Session has expired")
