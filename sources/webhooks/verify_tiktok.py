"""TikTok: ``TikTok-Signature: t=<unix seconds>,s=<hex HMAC-SHA256(client secret, "<t>.<body>")>``.

The timestamp is signed, so a replay is refused when ``t`` is further than the tolerance from now,
in the past or in the future. The signature is checked first: a forged ``t`` is a bad signature.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta

from creatorpulse.settings import Secret
from creatorpulse.sources.webhooks.verify import (
    MALFORMED,
    STALE,
    Rejected,
    check,
    digest,
    from_hex,
    header_value,
)

HEADER = "TikTok-Signature"


def parse_header(header: str) -> tuple[str, str]:
    """``t=…,s=…`` (in any order, spaces allowed) into ``(t, s)``; 400 when malformed."""
    fields: dict[str, str] = {}
    for part in header.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name in fields:
            raise Rejected(400, MALFORMED)
        fields[name] = value.strip()
    t, s = fields.get("t", ""), fields.get("s", "")
    if not t.isascii() or not t.isdigit() or len(t) > 12 or not s:
        raise Rejected(400, MALFORMED)
    return t, s


def verify(
    body: bytes,
    header: str | None,
    secrets: Sequence[Secret],
    *,
    now: datetime,
    tolerance: timedelta,
) -> None:
    """Raise :class:`~.verify.Rejected` unless ``header`` signs ``body`` and its time is fresh."""
    t, s = parse_header(header_value(header))
    given = from_hex(s, hashlib.sha256().digest_size)
    signed = t.encode() + b"." + body
    check(given, secrets, lambda secret: digest(secret, signed, "sha256"))
    if abs(now.timestamp() - int(t)) > tolerance.total_seconds():
        raise Rejected(401, STALE)
