"""Meta (Instagram, Facebook): ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, body)>``.

Meta also sends the legacy SHA-1 ``X-Hub-Signature``; only the SHA-256 header is accepted, so a
delivery cannot be downgraded to the weaker hash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from creatorpulse.settings import Secret
from creatorpulse.sources.webhooks.verify import (
    check,
    digest,
    from_hex,
    header_value,
    split_prefixed,
)

HEADER = "X-Hub-Signature-256"


def verify(body: bytes, header: str | None, secrets: Sequence[Secret]) -> None:
    """Raise :class:`~.verify.Rejected` unless ``header`` signs ``body`` with one of ``secrets``."""
    _, value = split_prefixed(header_value(header), ("sha256",))
    given = from_hex(value, hashlib.sha256().digest_size)
    check(given, secrets, lambda secret: digest(secret, body, "sha256"))
