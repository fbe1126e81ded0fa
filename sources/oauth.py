"""OAuth tokens of the polled accounts: read from the vault, refreshed once across all workers.

A token is refreshed shortly before it expires (``CREATORPULSE_TOKEN_REFRESH_MARGIN``) and when
the platform refuses it (:class:`~creatorpulse.sources.base.AuthExpired`). Refreshing holds a
Redis lock per account, so exactly one worker calls the token endpoint: the others wait for the
lock, read the row again and find the new token. This matters for rotating refresh tokens
(TikTok, X), which die the moment they are used: a second refresh with the same one would fail
and lose the account. The new tokens are stored (sealed) before the lock is released.

How each platform refreshes (reference/platform-apis.md §1.5, §2.3, §3.4, §4.4, §5.4) is the
table :data:`TOKEN_ENDPOINTS`; its paths are joined to ``settings.platform_api_url(platform)``.

requests-oauthlib and urllib3 log tokens and query strings at DEBUG; :func:`quiet_token_loggers`
keeps them at WARNING whatever the project's log level.
"""

from __future__ import annotations

import functools
import json as json_module
import logging
import ssl
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from typing import Any
from urllib.parse import urlencode, urlsplit

import psycopg
import redis
import requests
from oauthlib.oauth2 import OAuth2Error
from oauthlib.oauth2.rfc6749.parameters import parse_token_response
from requests_oauthlib import OAuth2Session

from creatorpulse.settings import Secret, Settings
from creatorpulse.sinks.registry import (
    Credentials,
    load_credentials,
    load_credentials_many,
    store_credentials,
)
from creatorpulse.sources.base import Account, ApiError, Retry
from creatorpulse.sources.wire import WireError, WirePool, WireTimeout
from creatorpulse.tokens import TokenVault

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TokenEndpoint:
    """How one platform refreshes a token.

    ``grant``: ``refresh_token`` (RFC 6749 §6, POST form), ``ig_refresh_token`` or
    ``fb_exchange_token`` (GET with the current long-lived access token).
    ``client_auth``: ``body`` (client_id and client_secret in the form), ``client_key`` (TikTok's
    names for them), ``basic`` (HTTP Basic with client_id also in the form), ``query`` (in the
    query string) or ``none``. ``token_placement``: where requests carry the access token.
    """

    path: str
    grant: str
    client_auth: str
    token_placement: str  # "auth_header" or "query"


TOKEN_ENDPOINTS: Mapping[str, TokenEndpoint] = {
    # graph.instagram.com/refresh_access_token: the long-lived token refreshes itself.
    "instagram": TokenEndpoint("/refresh_access_token", "ig_refresh_token", "none", "query"),
    # graph.facebook.com/{ver}/oauth/access_token: exchange for a new long-lived token.
    "facebook": TokenEndpoint("/v25.0/oauth/access_token", "fb_exchange_token", "query", "query"),
    # oauth2.googleapis.com/token; the answer usually keeps the refresh token.
    "youtube": TokenEndpoint("/token", "refresh_token", "body", "auth_header"),
    # open.tiktokapis.com/v2/oauth/token/; rotates the refresh token on every refresh.
    "tiktok": TokenEndpoint("/v2/oauth/token/", "refresh_token", "client_key", "auth_header"),
    # api.x.com/2/oauth2/token, confidential client; rotates the refresh token.
    "x": TokenEndpoint("/2/oauth2/token", "refresh_token", "basic", "auth_header"),
}

SessionFactory = Callable[[str], OAuth2Session]
Connect = Callable[[], AbstractContextManager[psycopg.Connection]]


def quiet_token_loggers() -> None:
    """Keep the loggers that print tokens, request bodies or query strings at DEBUG quiet."""
    for name in ("requests_oauthlib", "oauthlib", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)


def allow_loopback_http(settings: Settings, environ: dict[str, str] | Any) -> bool:
    """Let oauthlib speak plain HTTP when every http:// platform URL is a loopback address.

    oauthlib refuses anything but HTTPS unless ``OAUTHLIB_INSECURE_TRANSPORT`` is set in the
    environment; the simulators listen on plain HTTP on 127.0.0.1. Called by entry points only.
    Production refuses a plain-HTTP platform URL on another host (tokens would travel in clear).
    """
    plain = [settings.platform_api_url(p) for p in TOKEN_ENDPOINTS
             if settings.platform_api_url(p).startswith("http://")]
    if not plain:
        return False
    for url in plain:
        host = urlsplit(url).hostname or ""
        try:
            loopback = host == "localhost" or ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback and settings.environment == "production":
            msg = f"{url}: tokens must not travel over plain HTTP to another host; use https"
            raise ApiError(msg)
    environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
    return True


@dataclass(frozen=True)
class Answer:
    """What :class:`DirectSession` returns: the parts of a ``requests.Response`` that
    :class:`~creatorpulse.sources.http.AccountApi` reads."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes


@functools.lru_cache(maxsize=4096)
def _encode_query(items: tuple[tuple[str, str], ...]) -> str:
    return urlencode(items)


def _encoded_query(query: Mapping[str, str]) -> str:
    """``urlencode(query)``, remembered: a connector asks the same fields of every account, and
    quoting them again costs more than the request's own framing. Tokens are never in it."""
    try:
        return _encode_query(tuple(query.items()))
    except TypeError:  # a value that cannot be hashed: encoded as it is
        return urlencode(query)


class DirectSession(OAuth2Session):
    """An ``OAuth2Session`` whose API reads go straight to a shared :class:`WirePool`.

    requests' per-request machinery (merging settings, cookies, hooks, redirects, preparing
    twice), and then urllib3's and http.client's, were most of a poll's CPU; the platform reads
    need none of it: no cookies, no redirects (one is an answer for the connector to judge),
    the token in the header or in the query as the platform wants. oauthlib's refusal to send a
    token over plain HTTP to anything but an allowed loopback is kept. Anything else (the token
    refresh) is requests' as before.
    """

    def __init__(self, client_id: str, client: Any, pool: Any, placement: str) -> None:
        super().__init__(client_id, client=client)
        self._pool = pool
        self._placement = placement

    def get(self, url: Any, **kwargs: Any) -> Any:
        if set(kwargs) <= {"params", "timeout"}:
            return self._direct("GET", url, kwargs.get("params"), None, kwargs.get("timeout"))
        return super().get(url, **kwargs)

    def post(self, url: Any, data: Any = None, json: Any = None, **kwargs: Any) -> Any:
        if data is None and set(kwargs) <= {"params", "timeout"}:
            return self._direct("POST", url, kwargs.get("params"), json, kwargs.get("timeout"))
        return super().post(url, data=data, json=json, **kwargs)

    def _direct(self, method: str, url: str, params: Mapping[str, str] | None, body: Any,
                timeout: float | None) -> Answer:
        from oauthlib.oauth2 import InsecureTransportError
        from oauthlib.oauth2.rfc6749.utils import is_secure_transport

        headers = [("Accept", "application/json"), ("User-Agent", "creatorpulse-sources")]
        query = dict(params or {})
        token = (self.token or {}).get("access_token")
        if token:
            if not is_secure_transport(url):
                raise InsecureTransportError
            if self._placement != "query":
                headers.append(("Authorization", f"Bearer {token}"))
        encoded = _encoded_query(query) if query else ""
        if token and self._placement == "query":  # never part of what is remembered
            encoded += f"{'&' if encoded else ''}{urlencode({'access_token': token})}"
        if encoded:
            url = f"{url}{'&' if '?' in url else '?'}{encoded}"
        payload = None
        if body is not None:
            payload = json_module.dumps(body, allow_nan=False).encode()
            headers.append(("Content-Type", "application/json"))
        parts = urlsplit(url)
        target = f"{parts.path or '/'}?{parts.query}" if parts.query else (parts.path or "/")
        try:
            reply = self._pool.request(method, parts.scheme, parts.hostname or "", parts.port,
                                       target, headers, payload, timeout)
        except WireTimeout:
            raise requests.Timeout from None  # no URL in it: Meta's carries the token
        except WireError as exc:
            raise requests.ConnectionError(str(exc)) from None
        return Answer(reply.status, reply.headers, reply.body)


class Sessions:
    """An ``OAuth2Session`` per account with the platform's client id and token placement
    (a :data:`SessionFactory`); :meth:`close` closes the kept-alive connections.

    The sessions of one platform share one connection pool (thread-safe), so a worker keeps a
    few keep-alive connections per platform rather than one per account. The environment's
    proxies and CA bundle for the platform's URL are resolved once per platform: with
    ``trust_env`` on, requests walks the whole environment on every request. Without a proxy
    the sessions are :class:`DirectSession` (reads through :mod:`~creatorpulse.sources.wire`).
    """

    def __init__(self, settings: Settings, pool_size: int = 32) -> None:
        self._settings = settings
        self._pool_size = pool_size
        self._shared: dict[str, tuple[Any, dict[str, str], Any, WirePool | None]] = {}
        self._lock = threading.Lock()

    def __call__(self, platform: str) -> OAuth2Session:
        from oauthlib.oauth2 import WebApplicationClient
        from requests.adapters import HTTPAdapter

        settings = self._settings
        client_id, _ = settings.platform_client(platform)
        placement = TOKEN_ENDPOINTS[platform].token_placement
        client = WebApplicationClient(client_id, token_placement=placement)
        with self._lock:
            if platform not in self._shared:
                env = requests.Session().merge_environment_settings(
                    settings.platform_api_url(platform), {}, None, None, None)
                verify = env["verify"]
                pool = None if env["proxies"] else WirePool(tls=_tls_context(verify),
                                                             maxsize=self._pool_size)
                adapter = HTTPAdapter(pool_connections=4, pool_maxsize=self._pool_size)
                self._shared[platform] = (adapter, env["proxies"], verify, pool)
            adapter, proxies, verify, pool = self._shared[platform]
        session = (DirectSession(client_id, client, pool, placement) if pool is not None
                   else OAuth2Session(client_id, client=client))
        session.proxies, session.verify = dict(proxies), verify
        session.trust_env = False
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return session

    def close(self) -> None:
        with self._lock:
            shared, self._shared = list(self._shared.values()), {}
        for adapter, _, _, pool in shared:
            adapter.close()
            if pool is not None:
                pool.close()


def make_session_factory(settings: Settings, pool_size: int = 32) -> Sessions:
    """The sessions of a worker (see :class:`Sessions`)."""
    return Sessions(settings, pool_size)


def _tls_context(verify: Any) -> ssl.SSLContext:
    """Certificates checked against requests' CA bundle (or the one configured), unless the
    environment turned verification off for the platform's URL, as requests would."""
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=verify if isinstance(verify, str) else _ca_bundle())


def _ca_bundle() -> str:
    from requests.utils import DEFAULT_CA_BUNDLE_PATH

    return str(DEFAULT_CA_BUNDLE_PATH)


class TokenManager:
    """The tokens of the accounts one worker polls: cached, refreshed once across all workers."""

    def __init__(
        self,
        *,
        settings: Settings,
        connect: Connect,
        vault: TokenVault,
        redis_client: redis.Redis[bytes],
        sessions: SessionFactory,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        lock_prefix: str = "creatorpulse:oauth",
    ) -> None:
        self._settings = settings
        self._connect = connect
        self._vault = vault
        self._redis = redis_client
        self._sessions = sessions
        self._clock = clock
        self._lock_prefix = lock_prefix
        self._cache: dict[str, Credentials | None] = {}
        self._mutex = threading.Lock()
        self.refreshes = 0  # token endpoint calls made by this manager
        quiet_token_loggers()

    def forget(self, account_id: str) -> None:
        with self._mutex:
            self._cache.pop(account_id, None)

    def preload(self, account_ids: Sequence[str]) -> None:
        """Read the tokens of accounts just adopted in one query, not one per first poll."""
        wanted = [a for a in account_ids if a not in self._cache]
        if not wanted:
            return
        with self._connect() as conn:
            found = load_credentials_many(conn, self._vault, wanted)
        with self._mutex:
            for account_id, creds in found.items():
                self._cache.setdefault(account_id, creds)

    def current(self, account: Account) -> Credentials | None:
        """The account's credentials, refreshed first when they expire within the margin."""
        with self._mutex:
            known = account.id in self._cache
            cached = self._cache.get(account.id)
        if not known:
            cached = self._load(account.id)
        if cached is not None and self._expiring(cached):
            return self.refresh(account, cached)
        return cached

    def refresh(self, account: Account, stale: Credentials | None) -> Credentials | None:
        """Refresh ``stale`` unless another worker already did; returns the tokens to use."""
        timeout = self._settings.http_timeout.total_seconds()
        lock = self._redis.lock(f"{self._lock_prefix}:{account.id}", timeout=timeout * 3 + 5,
                                blocking_timeout=timeout * 3 + 10, thread_local=False)
        if not lock.acquire():
            msg = f"{account.platform} account {account.id}: another worker is still refreshing"
            raise Retry(msg)
        try:
            fresh = self._load(account.id)
            if fresh is None:
                return None
            renewed = stale is None or fresh.access_token != stale.access_token
            if renewed and not self._expiring(fresh):
                return fresh
            new = self._call_endpoint(account, fresh)
            store_credentials_retrying(self._connect, self._vault, account.id, new)
            with self._mutex:
                self._cache[account.id] = new
            log.info("refreshed the %s token of account %s (expires %s)",
                     account.platform, account.id, new.expires_at)
            return new
        finally:
            try:
                lock.release()
            except redis.exceptions.LockError:
                log.warning("the refresh lock of account %s expired before release", account.id)

    def _expiring(self, creds: Credentials) -> bool:
        """Within the margin of its expiry; a short-lived token (margin above half its life)
        is refreshed at half its life instead, or every request would refresh it."""
        if creds.expires_at is None:
            return False
        margin = self._settings.token_refresh_margin
        if creds.updated_at is not None:
            margin = min(margin, max(timedelta(0), (creds.expires_at - creds.updated_at) / 2))
        return bool(creds.expires_at - margin <= self._clock())

    def _load(self, account_id: str) -> Credentials | None:
        with self._connect() as conn:
            creds = load_credentials(conn, self._vault, account_id)
        with self._mutex:
            self._cache[account_id] = creds
        return creds

    def _call_endpoint(self, account: Account, creds: Credentials) -> Credentials:
        platform = account.platform.value
        endpoint = TOKEN_ENDPOINTS[platform]
        url = self._settings.platform_api_url(platform) + endpoint.path
        client_id, secret = self._settings.platform_client(platform)
        session = self._sessions(platform)
        timeout = self._settings.http_timeout.total_seconds()
        now = self._clock()
        self.refreshes += 1
        try:
            if endpoint.grant == "refresh_token":
                if creds.refresh_token is None:
                    msg = (f"{platform} account {account.id} has no refresh token: "
                           "link it again with fresh tokens")
                    raise ApiError(msg)
                auth = None
                body: dict[str, str] = {}
                if endpoint.client_auth == "body":
                    body = {"client_id": client_id, "client_secret": secret.reveal()}
                elif endpoint.client_auth == "client_key":
                    body = {"client_key": client_id, "client_secret": secret.reveal()}
                elif endpoint.client_auth == "basic":
                    auth = requests.auth.HTTPBasicAuth(client_id, secret.reveal())
                    body = {"client_id": client_id}
                token = session.refresh_token(url, refresh_token=creds.refresh_token.reveal(),
                                              auth=auth, timeout=timeout, **body)
            else:
                params = {"grant_type": endpoint.grant}
                if endpoint.grant == "ig_refresh_token":
                    params["access_token"] = creds.access_token.reveal()
                else:
                    params.update(client_id=client_id, client_secret=secret.reveal(),
                                  fb_exchange_token=creds.access_token.reveal())
                response = session.get(url, params=params, timeout=timeout, withhold_token=True)
                if response.status_code >= 500:
                    msg = f"{platform} token endpoint answered {response.status_code}"
                    raise Retry(msg)
                token = parse_token_response(response.text)
        except OAuth2Error as exc:
            # The platform's error code and description, never the request (it holds tokens).
            code, why = _refusal(exc)
            msg = f"{platform} refused to refresh the token of account {account.id}: {why}"
            raise ApiError(msg, code=code) from None
        except requests.RequestException as exc:
            msg = f"{platform} token endpoint unreachable ({type(exc).__name__})"
            raise Retry(msg) from None
        return _credentials(token, creds, now)


def _refusal(exc: OAuth2Error) -> tuple[str, str]:
    """``(code, reason)`` of a refused refresh: RFC 6749's ``error`` or Meta's error object."""
    error: Any = exc.error
    if isinstance(error, dict):  # Meta: {"message", "type", "code", "error_subcode", ...}
        code = str(error.get("code", "unknown"))
        return code, f"({code}) {error.get('message', 'no message')}"
    description = f" ({exc.description})" if exc.description else ""
    return str(error), f"{error}{description}"


def _credentials(token: Mapping[str, Any], old: Credentials, now: datetime) -> Credentials:
    expires_in = token.get("expires_in")
    scopes = token.get("scope")
    new_refresh = token.get("refresh_token")
    return Credentials(
        access_token=Secret(str(token["access_token"])),
        # A rotating platform sends a new refresh token: it replaces the old one at once.
        refresh_token=Secret(str(new_refresh)) if new_refresh else old.refresh_token,
        expires_at=now + timedelta(seconds=float(expires_in)) if expires_in else None,
        scopes=tuple(scopes) if scopes else old.scopes,
        updated_at=now,
    )


def store_credentials_retrying(
    connect: Connect, vault: TokenVault, account_id: str, creds: Credentials, attempts: int = 5
) -> None:
    """Store freshly refreshed tokens; a rotated refresh token exists nowhere else, so retry."""
    for attempt in range(attempts):
        try:
            with connect() as conn:
                store_credentials(conn, vault, account_id, creds)
            return
        except psycopg.OperationalError:
            if attempt == attempts - 1:
                raise
            log.warning("storing the refreshed token of account %s failed; retrying", account_id)
            threading.Event().wait(0.5 * 2**attempt)
