"""What every signature scheme shares: the rejection, header parsing and the constant-time check.

Each scheme lives in its own module (``verify_meta``, ``verify_websub``, ``verify_tiktok``,
``verify_x``) with one pure ``verify`` function over the **raw** body: nothing is parsed before the
signature holds. A missing or wrong signature is 401, a malformed header 400; the reason is a short
fixed word for the counters, and no message ever holds a secret or the signature itself.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable, Sequence

from creatorpulse.settings import Secret

# A signature header longer than this is malformed: no scheme needs more (sha512 hex is 135).
MAX_HEADER = 512

MISSING = "missing_signature"
MALFORMED = "malformed_signature"
MISMATCH = "bad_signature"
STALE = "stale_timestamp"


class Rejected(Exception):
    """The delivery is refused: answer ``status``; ``reason`` is a counter label, never a secret."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def header_value(header: str | None) -> str:
    """The header's value, or :class:`Rejected` when it is absent (401) or oversized (400)."""
    if header is None or not header.strip():
        raise Rejected(401, MISSING)
    if len(header) > MAX_HEADER:
        raise Rejected(400, MALFORMED)
    return header.strip()


def split_prefixed(header: str, allowed: Sequence[str]) -> tuple[str, str]:
    """``algo=value`` into its parts, the algorithm one of ``allowed``; else 400."""
    algo, sep, value = header.partition("=")
    if not sep or algo.strip().lower() not in allowed or not value:
        raise Rejected(400, MALFORMED)
    return algo.strip().lower(), value.strip()


def from_hex(text: str, size: int) -> bytes:
    """``size`` bytes written as hex, or 400."""
    if len(text) != 2 * size:
        raise Rejected(400, MALFORMED)
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise Rejected(400, MALFORMED) from None


def from_base64(text: str, size: int) -> bytes:
    """``size`` bytes written as standard base64, or 400."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise Rejected(400, MALFORMED) from None
    if len(raw) != size:
        raise Rejected(400, MALFORMED)
    return raw


def digest(secret: Secret, message: bytes, algo: str) -> bytes:
    return hmac.new(secret.reveal().encode(), message, getattr(hashlib, algo)).digest()


def check(
    given: bytes, secrets: Sequence[Secret], expected: Callable[[Secret], bytes]
) -> None:
    """Accept when ``given`` equals ``expected(secret)`` for any of ``secrets``, else 401.

    Several secrets let a rotation overlap; every one is compared (constant time, no early exit)
    so the timing says nothing about which matched.
    """
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(expected(secret), given)
    if not matched:
        raise Rejected(401, MISMATCH)
