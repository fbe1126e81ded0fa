"""A tiny platform for the runtime's tests: a connector and, for integration tests, its server.

The connector speaks a made-up JSON (``/accounts/<id>`` and ``/content/<id>``) so the runtime is
tested without any real platform's shapes; the server answers it, counts the requests it gets and
plays an OAuth token endpoint with rotating refresh tokens.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from creatorpulse.observation import ContentKind, Observation, Platform
from creatorpulse.sources.base import (
    Account,
    Api,
    ApiError,
    AuthExpired,
    Content,
    Gone,
    MappingError,
    Poll,
    Response,
    Retry,
)


class FakeConnector:
    """A connector of the made-up platform, registered as ``platform`` (TikTok by default)."""

    platform: ClassVar[Platform] = Platform.TIKTOK

    def __init__(self, platform: Platform = Platform.TIKTOK) -> None:
        self.platform = platform  # type: ignore[misc]

    def fetch_account(self, api: Api, account: Account, now: datetime) -> Poll:
        data = api.get(f"/accounts/{account.external_id}")
        poll = Poll()
        if "followers" not in data:
            poll.dead_letters.append(MappingError("no followers", json.dumps(data).encode()))
            return poll
        poll.observations.append(self._obs(account, None, ContentKind.ACCOUNT, "followers",
                                           data["followers"], now))
        for item in data.get("content", []):
            published = datetime.fromisoformat(item["published_at"])
            poll.content.append(Content(item["id"], ContentKind.VIDEO, published))
            poll.observations.append(self._obs(account, item["id"], ContentKind.VIDEO, "likes",
                                               item["likes"], now))
        return poll

    def fetch_content(
        self, api: Api, account: Account, content: Sequence[Content], now: datetime
    ) -> Poll:
        poll = Poll()
        for item in content:
            try:
                data = api.get(f"/content/{item.id}")
            except Gone:
                poll.deleted.append(item.id)
                continue
            poll.content.append(item)
            poll.observations.append(self._obs(account, item.id, item.kind, "likes",
                                               data["likes"], now))
        return poll

    def check(self, response: Response) -> timedelta | None:
        if response.status == 200:
            pause = response.headers.get("x-pause")
            return timedelta(seconds=float(pause)) if pause else None
        if response.status == 429:
            after = response.headers.get("retry-after")
            raise Retry("rate limited", timedelta(seconds=float(after)) if after else None)
        if response.status == 401:
            raise AuthExpired("token refused")
        if response.status == 404:
            raise Gone("not found")
        if response.status >= 500:
            raise Retry(f"server error {response.status}")
        msg = f"refused: {response.status}"
        raise ApiError(msg, status=response.status)

    def _obs(self, account: Account, content_id: str | None, kind: ContentKind, metric: str,
             value: int, now: datetime) -> Observation:
        return Observation.create(platform=account.platform, account_id=account.id,
                                  influencer_id=account.influencer_id, content_id=content_id,
                                  content_kind=kind, metric=metric, value=value, observed_at=now)


class FakePlatform:
    """A local HTTP server (port 0) for the fake connector and a rotating OAuth token endpoint.

    ``accounts`` maps an external id to its JSON; ``requests`` logs ``(path, bearer token)``;
    ``refresh_calls`` counts token endpoint calls; each refresh issues a new access token and a
    new refresh token, and the old refresh token stops working (rotation).
    """

    def __init__(self, token_path: str = "/v2/oauth/token/") -> None:
        self.accounts: dict[str, Any] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.times: list[float] = []  # time.monotonic() of each GET
        self.valid_access: set[str] = set()
        self.valid_refresh: set[str] = set()
        self.refresh_calls = 0
        self.refused_refreshes = 0
        self.token_path = token_path
        self.refresh_delay = 0.0
        self.lock = threading.Lock()
        self._counter = 0
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                platform._get(self)

            def do_POST(self) -> None:
                platform._post(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakePlatform:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def issue(self) -> tuple[str, str]:
        with self.lock:
            self._counter += 1
            access, refresh = f"act.{self._counter}-secret", f"rft.{self._counter}-secret"
            self.valid_access.add(access)
            self.valid_refresh.add(refresh)
        return access, refresh

    def _answer(self, h: BaseHTTPRequestHandler, status: int, body: Any,
                headers: dict[str, str] | None = None) -> None:
        raw = json.dumps(body).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(raw)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(raw)

    def _get(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        auth = h.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth else None
        with self.lock:
            self.requests.append((parts.path, token))
            self.times.append(time.monotonic())
            allowed = token in self.valid_access
        if self.valid_access and not allowed:
            self._answer(h, 401, {"error": "token refused"})
            return
        segments = parts.path.strip("/").split("/")
        if len(segments) == 2 and segments[0] == "accounts" and segments[1] in self.accounts:
            self._answer(h, 200, self.accounts[segments[1]])
        elif len(segments) == 2 and segments[0] == "content":
            self._answer(h, 200, {"likes": 5})
        else:
            self._answer(h, 404, {"error": "not found"})

    def _post(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length", "0"))
        form = {k: v[0] for k, v in parse_qs(h.rfile.read(length).decode()).items()}
        if urlsplit(h.path).path != self.token_path:
            self._answer(h, 404, {"error": "not found"})
            return
        if self.refresh_delay:
            threading.Event().wait(self.refresh_delay)
        with self.lock:
            self.refresh_calls += 1
            ok = form.get("refresh_token") in self.valid_refresh
            if ok:
                self.valid_refresh.discard(form["refresh_token"])
            else:
                self.refused_refreshes += 1
        if not ok:
            self._answer(h, 400, {"error": "invalid_grant",
                                  "error_description": "refresh token used or revoked"})
            return
        access, refresh = self.issue()
        self._answer(h, 200, {"access_token": access, "refresh_token": refresh,
                              "expires_in": 7200, "token_type": "Bearer",
                              "scope": "user.info.basic,video.list"})
