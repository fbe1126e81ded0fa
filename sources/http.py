"""The :class:`~creatorpulse.sources.base.Api` the runtime hands to connectors: one account's HTTP.

Each ``get`` (and ``post``, for reads made with a POST and a JSON body, as TikTok's) takes its
tokens from the shared rate limiter, sends the request through the account's ``OAuth2Session``
(built by the entry point; explicit timeouts from settings), lets the connector's ``check``
judge the answer, and then:

- a pause asked on a success blocks the credential in Redis for every worker;
- :class:`AuthExpired` refreshes the token once (across workers) and retries; refused again, the
  poll fails with :class:`ApiError`;
- :class:`Retry` blocks the credential for the wait the platform said, or backs off
  exponentially with jitter, up to ``CREATORPULSE_RETRY_ATTEMPTS``; a wait longer than the
  limiter's ``max_wait`` goes back to the scheduler as the same ``Retry``;
- a network error or timeout is a ``Retry`` too.

Tokens never leave this module in a message: errors name the platform, the path and the
exception's class, never a URL with its query (Meta sends the token in it) or a header.
"""

from __future__ import annotations

import json as json_module
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
from requests_oauthlib import OAuth2Session

from creatorpulse.settings import Settings
from creatorpulse.sources.base import (
    Account,
    ApiError,
    AuthExpired,
    Connector,
    MappingError,
    Response,
    Retry,
)
from creatorpulse.sources.oauth import TokenManager
from creatorpulse.sources.ratelimit import Limiter, backoff

log = logging.getLogger(__name__)


class AccountApi:
    """HTTP to one platform for one account (implements the ``Api`` protocol)."""

    def __init__(
        self,
        *,
        account: Account,
        connector: Connector,
        session: OAuth2Session,
        tokens: TokenManager | None,
        limiter: Limiter,
        settings: Settings,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = lambda: 1.0,
        max_wait: timedelta = timedelta(seconds=60),
    ) -> None:
        self.account = account
        self._connector = connector
        self._session = session
        self._tokens = tokens
        self._limiter = limiter
        self._settings = settings
        self._clock = clock
        self._sleep = sleep
        self._rand = rand
        self._max_wait = max_wait
        self._base = settings.platform_api_url(account.platform.value)
        self.requests = 0

    def get(self, url: str, params: Mapping[str, str] | None = None, *, cost: int = 1) -> Any:
        return self._request("GET", url, params, None, cost)

    def post(
        self,
        url: str,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        *,
        cost: int = 1,
    ) -> Any:
        """The same for the endpoints that read with a POST and a JSON body (TikTok's)."""
        return self._request("POST", url, params, json, cost)

    def _request(
        self, method: str, url: str, params: Mapping[str, str] | None, body: Any, cost: int
    ) -> Any:
        target, path = self._resolve(url)
        platform = self.account.platform.value
        refreshed = False
        attempt = 0
        while True:
            creds = self._tokens.current(self.account) if self._tokens else None
            self._limiter.acquire(platform, self.account.id, cost)
            try:
                response = self._send(method, target, path, params, body, creds)
                pause = self._connector.check(response)
            except AuthExpired:
                if refreshed or self._tokens is None or creds is None:
                    msg = (f"{platform} refused the token of account {self.account.id} "
                           f"on {path}{' after a refresh' if refreshed else ''}")
                    raise ApiError(msg, status=401, code="auth") from None
                self._tokens.refresh(self.account, creds)
                refreshed = True
                continue
            except Retry as exc:
                attempt += 1
                wait = exc.after
                if wait is not None:
                    self._limiter.block(platform, self.account.id, self._clock() + wait)
                if attempt >= self._settings.retry_attempts:
                    raise
                if wait is None:
                    wait = backoff(attempt - 1, self._settings.retry_base,
                                   self._settings.retry_max, self._rand)
                    if wait > self._max_wait:
                        raise Retry(exc.reason, after=wait) from None
                    log.info("%s %s: %s; retry %d in %.1fs", platform, path, exc.reason,
                             attempt, wait.total_seconds())
                    self._sleep(wait.total_seconds())
                elif wait > self._max_wait:
                    raise
                else:
                    log.info("%s %s: %s; the platform asks to wait %.1fs", platform, path,
                             exc.reason, wait.total_seconds())
                continue  # the limiter holds the request until the block has passed
            if pause:
                self._limiter.block(platform, self.account.id, self._clock() + pause)
            try:
                return json_module.loads(response.body)
            except ValueError:
                msg = f"{platform} {path}: the answer is not JSON"
                raise MappingError(msg, response.body) from None

    def _resolve(self, url: str) -> tuple[str, str]:
        """The absolute URL and its path; a link to another host is refused (the token)."""
        if url.startswith(("http://", "https://")):
            base, other = urlsplit(self._base), urlsplit(url)
            if (other.scheme, other.netloc) != (base.scheme, base.netloc):
                msg = (f"{self.account.platform} link to another host {other.netloc!r} refused: "
                       "the account's token goes only to the platform's base URL")
                raise ApiError(msg)
            # Meta's paging links carry the token they were made with; ours is added anew.
            query = urlencode([(k, v) for k, v in parse_qsl(other.query, keep_blank_values=True)
                               if k != "access_token"])
            return urlunsplit(other._replace(query=query)), other.path
        path = url if url.startswith("/") else f"/{url}"
        return self._base + path, path

    def _send(
        self,
        method: str,
        url: str,
        path: str,
        params: Mapping[str, str] | None,
        body: Any,
        creds: Any,
    ) -> Response:
        platform = self.account.platform.value
        if creds is not None:
            self._session.token = {"access_token": creds.access_token.reveal(),
                                   "token_type": "Bearer"}
        else:
            self._session.token = {}
        timeout = self._settings.http_timeout.total_seconds()
        self.requests += 1
        try:
            if method == "GET":
                r = self._session.get(url, params=dict(params or {}), timeout=timeout)
            else:
                r = self._session.post(url, params=dict(params or {}), json=body,
                                       timeout=timeout)
        except requests.Timeout:
            msg = f"{platform} {path}: timed out after {timeout:g}s"
            raise Retry(msg) from None
        except requests.RequestException as exc:
            msg = f"{platform} {path}: request failed ({type(exc).__name__})"
            raise Retry(msg) from None
        finally:
            self._session.token = {}
        headers = {k.lower(): v for k, v in r.headers.items()}
        return Response(status=r.status_code, headers=headers, body=r.content)
