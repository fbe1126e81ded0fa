"""A stand-in for the runtime's Api: serves recorded payloads by URL and parameters.

Like the runtime it hands every answer to the connector's ``check`` first (so a recorded error
body raises the connector's own exception), then returns the parsed JSON. It records every call
so tests can assert what was asked, with which parameters and at which quota cost.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from creatorpulse.observation import Observation, Platform
from creatorpulse.sources.base import Account, Connector, Poll, Response

PAYLOADS = Path(__file__).parent / "payloads"
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def payload(platform: str, name: str) -> bytes:
    return (PAYLOADS / platform / f"{name}.json").read_bytes()


def account(platform: Platform, external_id: str) -> Account:
    return Account(id=f"acc-{platform.value}", tenant_id="tenant-1", influencer_id="inf-1",
                   platform=platform, external_id=external_id)


@dataclass
class Call:
    method: str
    url: str
    params: dict[str, str]
    json: Any
    cost: int


@dataclass
class Route:
    method: str
    url: str
    params: dict[str, str] | None
    json: Any
    status: int
    headers: dict[str, str]
    body: bytes

    def score(self, call: Call) -> int | None:
        """How specifically this route matches ``call`` (None: it does not)."""
        if (self.method, self.url) != (call.method, call.url):
            return None
        if self.json is not None and self.json != call.json:
            return None
        params = self.params or {}
        if any(call.params.get(k) != v for k, v in params.items()):
            return None
        return len(params) + (self.json is not None)


@dataclass
class FakeApi:
    connector: Connector
    platform: str
    routes: list[Route] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)

    def on(
        self,
        url: str,
        name: str | None = None,
        *,
        method: str = "GET",
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> FakeApi:
        """Serve ``payloads/<platform>/<name>.json`` (or ``body``) for matching requests."""
        raw = payload(self.platform, name) if name else json.dumps(body).encode()
        self.routes.append(Route(method, url, dict(params) if params is not None else None,
                                 json_body, status,
                                 {k.lower(): v for k, v in (headers or {}).items()}, raw))
        return self

    def on_expanded(self, url: str, name: str, edge: str, page: str | None = None, *,
                    page_body: Any = None) -> FakeApi:
        """Serve a Graph account answer (``payloads/<platform>/<name>.json``) with its content
        ``edge`` expanded in it (``fields=...,media.limit(50){...}``): the edge's first page is
        ``payloads/<platform>/<page>.json`` (or ``page_body``)."""
        body = json.loads(payload(self.platform, name))
        body[edge] = json.loads(payload(self.platform, page)) if page else page_body
        return self.on(url, body=body)

    def get(self, url: str, params: Mapping[str, str] | None = None, *, cost: int = 1) -> Any:
        return self._serve(Call("GET", url, dict(params or {}), None, cost))

    def post(self, url: str, json: Any = None, params: Mapping[str, str] | None = None, *,
             cost: int = 1) -> Any:
        return self._serve(Call("POST", url, dict(params or {}), json, cost))

    def _serve(self, call: Call) -> Any:
        self.calls.append(call)
        scored = [(s, r) for r in self.routes if (s := r.score(call)) is not None]
        assert scored, f"no recorded answer for {call}"
        route = max(scored, key=lambda pair: pair[0])[1]
        self.connector.check(Response(route.status, route.headers, route.body))
        return json.loads(route.body)

    def urls(self) -> list[str]:
        return [c.url for c in self.calls]


def metrics(poll: Poll, content_id: str | None = None) -> dict[str, int]:
    """``{metric: value}`` of the poll's observations of one content (None: the account)."""
    return {o.metric: o.value for o in poll.observations if o.content_id == content_id}


def only(poll: Poll, metric: str, content_id: str | None = None) -> Observation:
    found = [o for o in poll.observations if o.metric == metric and o.content_id == content_id]
    assert len(found) == 1, found
    return found[0]
