"""The token vault: OAuth tokens are sealed with Fernet before they touch the database.

Keys come from ``CREATORPULSE_TOKEN_KEYS`` (comma-separated Fernet keys): the first seals, every
one opens (``cryptography``'s MultiFernet), so a new key is introduced by putting it first and
:func:`rotate` re-seals the stored rows with it; the old key can go once no row names it. Each row
records the ``key_id`` of the key that sealed it: a short, one-way fingerprint of the key, never
the key. In development an unset setting means a fixed development key; in production it is an
error naming the setting.

Plain tokens only exist as :class:`~creatorpulse.settings.Secret` values, so they never show in
a ``repr``, a log line or an error message.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

import psycopg
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from creatorpulse.settings import PREFIX, Secret, Settings

# 32 bytes, url-safe base64: good for development and tests only, never for real tokens.
DEVELOPMENT_KEY = base64.urlsafe_b64encode(b"creatorpulse-development-key-32b").decode()


class VaultError(Exception):
    """Tokens cannot be sealed or opened; the message says why without showing any secret."""


def key_id(key: str) -> str:
    """A short fingerprint naming ``key`` (one-way: it tells nothing about the key)."""
    return hashlib.sha256(b"creatorpulse-token-key:" + key.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Sealed:
    """A token as stored: ciphertext and the id of the key that sealed it."""

    ciphertext: bytes
    key_id: str


class TokenVault:
    """Seal and open tokens with a list of Fernet keys; the first one seals."""

    def __init__(self, keys: list[str]) -> None:
        if not keys:
            msg = "the token vault needs at least one key"
            raise VaultError(msg)
        self._keys = {key_id(k): Fernet(k.encode()) for k in keys}
        self._multi = MultiFernet([Fernet(k.encode()) for k in keys])
        self.key_id = key_id(keys[0])

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenVault:
        if settings.token_keys is None:
            if settings.environment == "production":
                msg = (f"{PREFIX}TOKEN_KEYS is not set: production needs its own Fernet key(s) to "
                       "seal OAuth tokens (make one with `python -c \"from cryptography.fernet "
                       "import Fernet; print(Fernet.generate_key().decode())\"`)")
                raise VaultError(msg)
            return cls([DEVELOPMENT_KEY])
        return cls(settings.token_keys.reveal().split(","))

    def seal(self, token: Secret) -> Sealed:
        return Sealed(self._multi.encrypt(token.reveal().encode()), self.key_id)

    def open(self, ciphertext: bytes) -> Secret:
        try:
            return Secret(self._multi.decrypt(bytes(ciphertext)).decode())
        except InvalidToken:
            msg = ("a stored token cannot be opened with any key of "
                   f"{PREFIX}TOKEN_KEYS (was its key removed before `rotate`?)")
            raise VaultError(msg) from None

    def reseal(self, ciphertext: bytes) -> bytes:
        """``ciphertext`` sealed again with the first key (MultiFernet.rotate)."""
        try:
            return self._multi.rotate(bytes(ciphertext))
        except InvalidToken:
            msg = f"a stored token cannot be opened with any key of {PREFIX}TOKEN_KEYS"
            raise VaultError(msg) from None


def rotate(
    conn: psycopg.Connection, vault: TokenVault, batch: int = 500, tenant_id: str | None = None
) -> int:
    """Re-seal every stored credential not sealed with the vault's first key; returns how many.

    Row by row under ``FOR UPDATE SKIP LOCKED`` in small transactions, so pollers refreshing
    tokens at the same time are never blocked for long and never lose a fresh token.
    ``tenant_id`` limits it to that tenant's accounts.
    """
    done = 0
    while True:
        with conn.transaction():
            rows = conn.execute(
                "SELECT account_id, access_token_enc, refresh_token_enc FROM oauth_credentials "
                "WHERE key_id <> %s AND (%s::text IS NULL OR account_id IN "
                "(SELECT id FROM platform_accounts WHERE tenant_id = %s)) "
                "ORDER BY account_id LIMIT %s FOR UPDATE SKIP LOCKED",
                (vault.key_id, tenant_id, tenant_id, batch),
            ).fetchall()
            for account_id, access, refresh in rows:
                conn.execute(
                    "UPDATE oauth_credentials SET access_token_enc = %s, refresh_token_enc = %s, "
                    "key_id = %s WHERE account_id = %s",
                    (vault.reseal(access), vault.reseal(refresh) if refresh else None,
                     vault.key_id, account_id),
                )
        done += len(rows)
        if len(rows) < batch:
            return done
