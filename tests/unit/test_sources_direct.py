"""DirectSession: platform reads straight to a connection pool, with the token where the platform
wants it, and never over plain HTTP to a host oauthlib would refuse."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from oauthlib.oauth2 import InsecureTransportError, WebApplicationClient

from creatorpulse.sources.oauth import DirectSession
from creatorpulse.sources.wire import Reply, WireError, WireTimeout


@dataclass
class Sent:
    method: str
    target: str
    body: Any
    headers: dict[str, str]


@dataclass
class FakePool:
    """Stands for the WirePool: records what would be sent, answers a fixed reply."""

    raise_: Exception | None = None
    hosts: list[tuple[str, int | None, str]] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)

    def request(self, method: str, scheme: str, host: str, port: int | None, target: str,
                headers: list[tuple[str, str]], body: Any = None, timeout: Any = None) -> Reply:
        if self.raise_ is not None:
            raise self.raise_
        self.hosts.append((host, port, scheme))
        self.sent.append(Sent(method, target, body, dict(headers)))
        return Reply(200, {"x-app-usage": "{}"}, b'{"ok":1}', True)


def session(placement: str, pool: FakePool) -> DirectSession:
    s = DirectSession("client", WebApplicationClient("client", token_placement=placement), pool,
                      placement)
    s.token = {"access_token": "tok-1", "token_type": "Bearer"}
    return s


def test_the_token_goes_in_the_header_and_the_query_is_encoded() -> None:
    pool = FakePool()
    r = session("auth_header", pool).get("https://api.example.com/2/users/42",
                                         params={"user.fields": "public_metrics", "q": "a b"},
                                         timeout=5)
    assert (r.status_code, r.content, r.headers["x-app-usage"]) == (200, b'{"ok":1}', "{}")
    assert pool.hosts == [("api.example.com", None, "https")]
    sent = pool.sent[0]
    assert sent.target == "/2/users/42?user.fields=public_metrics&q=a+b"
    assert sent.headers["Authorization"] == "Bearer tok-1"


def test_a_query_placement_adds_the_token_to_a_link_that_has_a_query() -> None:
    pool = FakePool()
    session("query", pool).get("https://graph.example.com/v25.0/17/media?after=QVF", timeout=5)
    assert pool.sent[0].target == "/v25.0/17/media?after=QVF&access_token=tok-1"
    assert "Authorization" not in pool.sent[0].headers


def test_a_post_sends_its_json_body() -> None:
    pool = FakePool()
    session("auth_header", pool).post("https://open.example.com/v2/video/list/",
                                      json={"max_count": 20}, params={"fields": "id"}, timeout=5)
    sent = pool.sent[0]
    assert (sent.method, sent.target) == ("POST", "/v2/video/list/?fields=id")
    assert json.loads(sent.body) == {"max_count": 20}
    assert sent.headers["Content-Type"] == "application/json"


def test_a_token_never_goes_over_plain_http_unless_allowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OAUTHLIB_INSECURE_TRANSPORT", raising=False)
    pool = FakePool()
    with pytest.raises(InsecureTransportError):
        session("auth_header", pool).get("http://api.example.com/x", timeout=5)
    assert pool.sent == []


@pytest.mark.parametrize(("error", "expected"), [
    (WireTimeout("no answer in time"), requests.Timeout),
    (WireError("cannot connect (ConnectionRefusedError)"), requests.ConnectionError),
])
def test_network_errors_are_requests_errors_without_the_url(
    error: Exception, expected: type[Exception]
) -> None:
    with pytest.raises(expected) as caught:
        session("query", FakePool(raise_=error)).get("https://api.example.com/x", timeout=5)
    assert "tok-1" not in str(caught.value)
