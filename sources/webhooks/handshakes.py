"""The verification handshakes: Meta's and WebSub's ``hub.challenge``, X's CRC (pure functions).

Each takes the query parameters and returns the body to answer with, or raises
:class:`~.verify.Rejected`. TikTok has no handshake (the callback is set in its portal).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from datetime import datetime

from creatorpulse.settings import Secret
from creatorpulse.sources.webhooks.verify import Rejected
from creatorpulse.sources.webhooks.verify_x import crc_response
from creatorpulse.sources.webhooks.websub import MODES, Subscriptions

MAX_CHALLENGE = 256
WRONG_VERIFIER = "bad_verify_token"
UNKNOWN = "unknown_subscription"
MALFORMED = "malformed_handshake"


def _challenge(params: Mapping[str, str]) -> str:
    challenge = params.get("hub.challenge", "")
    if not challenge or len(challenge) > MAX_CHALLENGE:
        raise Rejected(400, MALFORMED)
    return challenge


def meta(params: Mapping[str, str], verify_token: Secret) -> str:
    """The challenge to echo when ``hub.verify_token`` is ours; 403 otherwise."""
    given = params.get("hub.verify_token", "")
    ours = hmac.compare_digest(given.encode(), verify_token.reveal().encode())
    if params.get("hub.mode") != "subscribe" or not ours:
        raise Rejected(403, WRONG_VERIFIER)
    return _challenge(params)


def websub(params: Mapping[str, str], subscriptions: Subscriptions, now: datetime) -> str:
    """The challenge to echo when we asked for this mode and topic; 404 otherwise.

    ``hub.mode=denied`` (the hub refused a subscription) is acknowledged with an empty body and
    makes the topic due for a new request.
    """
    mode, topic = params.get("hub.mode", ""), params.get("hub.topic", "")
    if mode == "denied":
        if not subscriptions.deny(topic):
            raise Rejected(404, UNKNOWN)
        return ""
    if mode not in MODES or not topic:
        raise Rejected(400, MALFORMED)
    challenge = _challenge(params)
    lease_text = params.get("hub.lease_seconds")
    lease = None
    if lease_text is not None:
        if not lease_text.isascii() or not lease_text.isdigit() or len(lease_text) > 10:
            raise Rejected(400, MALFORMED)
        lease = int(lease_text)
    if not subscriptions.verify(mode, topic, lease, now):
        raise Rejected(404, UNKNOWN)
    return challenge


def x_crc(params: Mapping[str, str], consumer_secret: Secret) -> dict[str, str]:
    """``{"response_token": "sha256=<base64 HMAC>"}`` for the ``crc_token``; 400 without one."""
    token = params.get("crc_token", "")
    if not token or len(token) > MAX_CHALLENGE:
        raise Rejected(400, MALFORMED)
    return crc_response(token, consumer_secret)
