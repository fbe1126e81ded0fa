"""OAuth tokens: each seeded account's initial pair, expiry, refresh and rotation.

Initial tokens derive from the seed, so a test or the demo can read them from the admin surface
(or compute them) before any request. A refreshed token is random. A rotating platform (TikTok,
X) invalidates the refresh token it was given the moment it issues the next one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass

PREFIXES = {
    # (access, refresh)
    "instagram": ("IGAAS", "IGAAS"),
    "facebook": ("EAAS", "EAAS"),
    "youtube": ("ya29.", "1//"),
    "tiktok": ("act.", "rft."),
    "x": ("WFNp", "cmVm"),
}


@dataclass
class Grant:
    """What an access token stands for."""

    account: int | None  # None: an app token (client credentials)
    issued: float
    expires: float | None  # None: never
    revoked: bool = False


@dataclass
class RefreshGrant:
    account: int
    issued: float
    expires: float | None
    used: bool = False


class TokenStore:
    """The tokens of one platform's accounts; thread-safe."""

    def __init__(self, platform: str, seed: int, accounts: int, now: float, ttl: float,
                 refresh_ttl: float | None = None) -> None:
        self.platform = platform
        self.ttl = ttl
        self.refresh_ttl = refresh_ttl
        self._key = f"tokens:{seed}:{platform}".encode()
        self._access: dict[str, Grant] = {}
        self._refresh: dict[str, RefreshGrant] = {}
        self._lock = threading.Lock()
        refresh_expiry = now + refresh_ttl if refresh_ttl else None
        for i in range(accounts):
            self._access[self.initial_access(i)] = Grant(i, now, now + ttl)
            self._refresh[self.initial_refresh(i)] = RefreshGrant(i, now, refresh_expiry)

    def _derive(self, i: int, what: str) -> str:
        return hmac.new(self._key, f"{what}:{i}".encode(), hashlib.sha256).hexdigest()[:40]

    def initial_access(self, i: int) -> str:
        return PREFIXES[self.platform][0] + self._derive(i, "access")

    def initial_refresh(self, i: int) -> str:
        return PREFIXES[self.platform][1] + self._derive(i, "refresh")

    def lookup(self, token: str) -> Grant | None:
        return self._access.get(token)

    def check(self, token: str | None, now: float) -> tuple[Grant | None, str]:
        """``(grant, "")`` for a live token, else ``(grant or None, "expired" | "invalid")``."""
        grant = self._access.get(token) if token else None
        if grant is None or grant.revoked:
            return None, "invalid"
        if grant.expires is not None and now >= grant.expires:
            return grant, "expired"
        return grant, ""

    def issue(self, account: int | None, now: float, ttl: float | None = None,
              prefix: str | None = None) -> str:
        token = (prefix or PREFIXES[self.platform][0]) + secrets.token_hex(20)
        life = self.ttl if ttl is None else ttl
        with self._lock:
            self._access[token] = Grant(account, now, now + life if life else None)
        return token

    def issue_refresh(self, account: int, now: float) -> str:
        token = PREFIXES[self.platform][1] + secrets.token_hex(20)
        expiry = now + self.refresh_ttl if self.refresh_ttl else None
        with self._lock:
            self._refresh[token] = RefreshGrant(account, now, expiry)
        return token

    def refresh(self, token: str | None, now: float, *, rotate: bool) -> tuple[str, str] | None:
        """A new access token (and refresh token) for a valid refresh token; None: refused.

        With ``rotate`` the given refresh token stops working at once and a new one is returned;
        without, the same refresh token is returned and stays valid.
        """
        with self._lock:
            grant = self._refresh.get(token) if token else None
            if grant is None or grant.used or (grant.expires is not None and now >= grant.expires):
                return None
            if rotate:
                grant.used = True
        access = self.issue(grant.account, now)
        return access, self.issue_refresh(grant.account, now) if rotate else str(token)

    def expire_account(self, account: int, now: float) -> int:
        """Make every access token of ``account`` expire now (the admin surface)."""
        with self._lock:
            hits = [g for g in self._access.values() if g.account == account]
            for grant in hits:
                grant.expires = min(grant.expires or now, now)
        return len(hits)

    def revoke_account(self, account: int) -> None:
        with self._lock:
            for grant in self._access.values():
                if grant.account == account:
                    grant.revoked = True
            for rgrant in self._refresh.values():
                if rgrant.account == account:
                    rgrant.used = True
