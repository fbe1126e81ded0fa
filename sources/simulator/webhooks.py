"""Signed webhook deliveries to the receiver, kept so that any one can be sent again.

A :class:`Delivery` holds the exact bytes of its body; redelivering it sends the same bytes with
the same ``X-Delivery-Id`` (a stable id derived from the event), so a receiver can tell a retry
from a new event. Signatures that include a time (TikTok) are recomputed at each attempt, as a
platform's retry would.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

Signer = Callable[[bytes], dict[str, str]]


def delivery_id(*parts: object) -> str:
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:32]


@dataclass
class Delivery:
    id: str
    platform: str
    event: str
    url: str
    body: bytes
    content_type: str
    sign: Signer = field(repr=False)
    attempts: list[int] = field(default_factory=list)  # HTTP status per attempt; 0: no answer

    def summary(self) -> dict[str, object]:
        return {"delivery_id": self.id, "platform": self.platform, "event": self.event,
                "url": self.url, "attempts": list(self.attempts)}


def http_request(method: str, url: str, body: bytes | None = None,
                 headers: dict[str, str] | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    """One plain HTTP exchange; ``(0, b"")`` when nothing answered."""
    if urlsplit(url).scheme not in ("http", "https"):
        msg = f"not an http(s) URL: {url}"
        raise ValueError(msg)
    request = urllib.request.Request(url, data=body, headers=headers or {}, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        log.warning("webhook %s %s: no answer (%s)", method, url, exc)
        return 0, b""


Transport = Callable[..., tuple[int, bytes]]


class WebhookSender:
    """Sends deliveries through ``transport`` (:func:`http_request` unless a test gives one)."""

    def __init__(self, transport: Transport = http_request, keep: int = 10_000) -> None:
        self.transport = transport
        self._deliveries: dict[str, Delivery] = {}
        self._keep = keep
        self._lock = threading.Lock()

    def send(self, delivery: Delivery) -> int:
        with self._lock:
            if delivery.id not in self._deliveries and len(self._deliveries) >= self._keep:
                self._deliveries.pop(next(iter(self._deliveries)))
            delivery = self._deliveries.setdefault(delivery.id, delivery)
        headers = {"Content-Type": delivery.content_type, "X-Delivery-Id": delivery.id,
                   **delivery.sign(delivery.body)}
        status, _ = self.transport("POST", delivery.url, delivery.body, headers)
        delivery.attempts.append(status)
        return status

    def get(self, ident: str) -> Delivery | None:
        return self._deliveries.get(ident)

    def all(self) -> list[Delivery]:
        with self._lock:
            return list(self._deliveries.values())
