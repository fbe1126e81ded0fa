"""YouTube WebSub: ``X-Hub-Signature: sha1=<hex HMAC-SHA1(hub.secret, body)>``.

Google's hub signs with SHA-1 only; WebSub also allows sha256, sha384 and sha512, accepted here
so another hub works unchanged. The algorithm named in the header is covered by the HMAC check
(a different algorithm gives a different digest), so naming one cannot weaken the check below
SHA-1, the weakest allowed.
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

HEADER = "X-Hub-Signature"
ALGORITHMS = ("sha1", "sha256", "sha384", "sha512")


def verify(body: bytes, header: str | None, secrets: Sequence[Secret]) -> None:
    """Raise :class:`~.verify.Rejected` unless ``header`` signs ``body`` with one of ``secrets``."""
    algo, value = split_prefixed(header_value(header), ALGORITHMS)
    given = from_hex(value, hashlib.new(algo).digest_size)
    check(given, secrets, lambda secret: digest(secret, body, algo))
