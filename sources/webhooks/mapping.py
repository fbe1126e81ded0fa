"""What the per-platform payload readers share: their result, their failure, small helpers.

A reader (``meta``, ``youtube``, ``tiktok``, ``x``) is pure: ``read(body, received_at)`` returns a
:class:`Delivery` (its id, the poll hints and the content events) or raises :class:`Unmappable`,
whose payload then goes to the dead-letter topic. It runs only after the signature held.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from creatorpulse.events import ContentEvent, PollHint
from creatorpulse.observation import Platform


class Unmappable(ValueError):
    """A correctly signed payload that cannot be read; ``reason`` says why (no payload in it)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery, read: its id (for deduplication), hints and content events."""

    delivery_id: str
    hints: tuple[PollHint, ...]
    content: tuple[ContentEvent, ...]


@dataclass
class Collector:
    """Builds a :class:`Delivery`; one hint per (account, content, reason), however many changes.

    Meta batches up to 1000 changes in a delivery; the poller needs to hear of each account and
    content once.
    """

    delivery_id: str
    received_at: datetime
    hints: dict[tuple[Platform, str, str | None, str], PollHint] = field(default_factory=dict)
    content: list[ContentEvent] = field(default_factory=list)

    def hint(self, platform: Platform, account: str, content_id: str | None, reason: str) -> None:
        key = (platform, account, content_id, reason)
        if key not in self.hints:
            self.hints[key] = PollHint(platform, account, content_id, reason, self.delivery_id,
                                       self.received_at)

    def event(
        self,
        platform: Platform,
        account: str,
        content_id: str,
        kind: str,
        occurred_at: datetime,
        text: str | None = None,
        author: str | None = None,
    ) -> None:
        self.content.append(ContentEvent(platform, account, content_id, kind, text, author,
                                         occurred_at, self.delivery_id))

    def done(self) -> Delivery:
        if not self.hints:
            msg = "no event for any account"
            raise Unmappable(msg)
        return Delivery(self.delivery_id, tuple(self.hints.values()), tuple(self.content))


def body_id(body: bytes) -> str:
    """A delivery id for platforms that send none: the body's SHA-256 (a redelivery is equal)."""
    return hashlib.sha256(body).hexdigest()


def fields_id(*parts: object) -> str:
    """A delivery id from an event's own identifying fields."""
    return hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).hexdigest()


def load_json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        msg = "not JSON"
        raise Unmappable(msg) from None
    if not isinstance(data, dict):
        msg = f"expected a JSON object, got {type(data).__name__}"
        raise Unmappable(msg)
    return data


def ident(value: Any) -> str | None:
    """A platform id as text (ids come as strings, sometimes as numbers); None when absent."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) or (isinstance(value, str) and value.strip()):
        return str(value).strip()
    return None


def text_of(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def from_unix(value: Any, fallback: datetime) -> datetime:
    """Unix seconds (or milliseconds, told apart by size; numbers or digit strings) as UTC."""
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return fallback
    seconds = value / 1000 if value > 100_000_000_000 else value
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return fallback


_FRACTION = re.compile(r"(\.\d{1,6})\d*")


def from_iso(value: Any, fallback: datetime) -> datetime:
    """An ISO 8601 time with a zone (Atom's nanoseconds cut to microseconds) as UTC."""
    if not isinstance(value, str):
        return fallback
    try:
        at = datetime.fromisoformat(_FRACTION.sub(r"\1", value.strip(), count=1))
    except ValueError:
        return fallback
    return fallback if at.utcoffset() is None else at.astimezone(UTC)
