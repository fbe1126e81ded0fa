"""X: ``x-twitter-webhooks-signature: sha256=<base64 HMAC-SHA256(consumer secret, body)>``.

Also the CRC: X proves we hold the consumer secret by sending ``crc_token`` and expecting
``sha256=<base64 HMAC-SHA256(consumer secret, crc_token)>`` back as ``response_token``.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence

from creatorpulse.settings import Secret
from creatorpulse.sources.webhooks.verify import (
    check,
    digest,
    from_base64,
    header_value,
    split_prefixed,
)

HEADER = "x-twitter-webhooks-signature"


def verify(body: bytes, header: str | None, secrets: Sequence[Secret]) -> None:
    """Raise :class:`~.verify.Rejected` unless ``header`` signs ``body`` with one of ``secrets``."""
    _, value = split_prefixed(header_value(header), ("sha256",))
    given = from_base64(value, hashlib.sha256().digest_size)
    check(given, secrets, lambda secret: digest(secret, body, "sha256"))


def crc_response(crc_token: str, secret: Secret) -> dict[str, str]:
    """The JSON body that answers X's challenge-response check."""
    mac = digest(secret, crc_token.encode(), "sha256")
    return {"response_token": "sha256=" + base64.b64encode(mac).decode()}
