"""Each platform's webhook and handshake signatures, over the raw bytes."""

from __future__ import annotations

import base64
import hashlib
import hmac


def meta_signature_256(app_secret: str, body: bytes) -> str:
    """``X-Hub-Signature-256``: ``sha256=`` + hex HMAC-SHA256 of the body with the app secret."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def meta_signature_sha1(app_secret: str, body: bytes) -> str:
    """The legacy ``X-Hub-Signature``: ``sha1=`` + hex HMAC-SHA1 of the body."""
    return "sha1=" + hmac.new(app_secret.encode(), body, hashlib.sha1).hexdigest()


def websub_signature(secret: str, body: bytes) -> str:
    """YouTube's hub ``X-Hub-Signature``: ``sha1=`` + hex HMAC-SHA1 with ``hub.secret``."""
    return "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


def tiktok_signature(client_secret: str, timestamp: int, body: bytes) -> str:
    """``TikTok-Signature``: ``t=<ts>,s=<hex HMAC-SHA256 of "<ts>.<body>">``."""
    signed = str(timestamp).encode() + b"." + body
    digest = hmac.new(client_secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},s={digest}"


def x_signature(consumer_secret: str, body: bytes) -> str:
    """``x-twitter-webhooks-signature``: ``sha256=`` + base64 HMAC-SHA256 of the body."""
    digest = hmac.new(consumer_secret.encode(), body, hashlib.sha256).digest()
    return "sha256=" + base64.b64encode(digest).decode()


def x_crc_response(consumer_secret: str, crc_token: str) -> str:
    """The ``response_token`` a webhook must answer X's CRC with."""
    return x_signature(consumer_secret, crc_token.encode())
