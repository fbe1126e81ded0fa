"""The records the sources put on Kafka besides observations: one frozen dataclass per topic.

- :class:`DeadLetter` on ``engagement.dlq``: a payload that could not be mapped, with the
  original bytes (base64 in JSON), where it came from and why.
- :class:`PollHint` on ``engagement.hints``: a webhook said something changed on an account;
  the poller that owns the account polls it now. A hint never carries a count: counts come only
  from polls, so nothing is counted twice.
- :class:`ContentEvent` on ``engagement.content``: content news from a webhook (a new post or
  video, a comment's text, a deletion).

Each has ``to_json`` / ``from_json``; a malformed payload raises :class:`EventError` naming the
field. Kafka keys are ``platform:external account id`` so one account's records stay in order.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Self

from creatorpulse.observation import Platform, format_timestamp, parse_timestamp, utc_millis


class EventError(ValueError):
    """A payload is not a valid record of its topic; the message names the field."""


def _key(platform: Platform | None, account: str | None) -> bytes:
    return f"{platform.value if platform else '-'}:{account or '-'}".encode()


def _load(cls: type[Any], payload: bytes | str) -> dict[str, Any]:
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        msg = f"not JSON: {exc}"
        raise EventError(msg) from None
    if not isinstance(data, dict):
        msg = f"expected a JSON object, got {type(data).__name__}"
        raise EventError(msg)
    names = {f.name for f in dataclasses.fields(cls)}
    missing, extra = sorted(names - set(data)), sorted(set(data) - names)
    if missing or extra:
        msg = f"missing fields {missing}" if missing else f"unknown fields {extra}"
        raise EventError(msg)
    return data


def _platform(value: Any, *, optional: bool = False) -> Platform | None:
    if value is None and optional:
        return None
    try:
        return Platform(value)
    except ValueError:
        msg = f"platform: expected one of {', '.join(p.value for p in Platform)}, got {value!r}"
        raise EventError(msg) from None


def _time(name: str, value: Any) -> datetime:
    if not isinstance(value, str):
        msg = f"{name}: expected an ISO 8601 string, got {value!r}"
        raise EventError(msg)
    try:
        return parse_timestamp(value)
    except ValueError as exc:
        msg = f"{name}: {exc}"
        raise EventError(msg) from None


def _text(name: str, value: Any, *, optional: bool = False) -> Any:
    if (value is None and optional) or isinstance(value, str):
        return value
    msg = f"{name}: expected a string, got {value!r}"
    raise EventError(msg)


def _dumps(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A payload that could not be mapped: the original bytes, where from, and the reason."""

    source: str  # what produced it, e.g. "poller" or "webhook"
    platform: Platform | None
    account_id: str | None
    reason: str
    payload: bytes
    at: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", utc_millis(self.at))

    @property
    def key(self) -> bytes:
        return _key(self.platform, self.account_id)

    def to_json(self) -> bytes:
        return _dumps({
            "source": self.source,
            "platform": self.platform.value if self.platform else None,
            "account_id": self.account_id,
            "reason": self.reason,
            "payload": base64.b64encode(self.payload).decode(),
            "at": format_timestamp(self.at),
        })

    @classmethod
    def from_json(cls, payload: bytes | str) -> Self:
        data = _load(cls, payload)
        try:
            raw = base64.b64decode(_text("payload", data["payload"]), validate=True)
        except binascii.Error:
            msg = "payload: expected base64"
            raise EventError(msg) from None
        return cls(
            source=_text("source", data["source"]),
            platform=_platform(data["platform"], optional=True),
            account_id=_text("account_id", data["account_id"], optional=True),
            reason=_text("reason", data["reason"]),
            payload=raw,
            at=_time("at", data["at"]),
        )


@dataclass(frozen=True, slots=True)
class PollHint:
    """Poll this account (and this content, when known) now: a webhook said it changed."""

    platform: Platform
    external_account_id: str  # the account's id on the platform
    content_id: str | None
    reason: str  # the webhook's field or event type, e.g. "comments", "video.publish"
    delivery_id: str  # the delivery it came from, for tracing
    received_at: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "received_at", utc_millis(self.received_at))

    @property
    def key(self) -> bytes:
        return _key(self.platform, self.external_account_id)

    def to_json(self) -> bytes:
        return _dumps({
            "platform": self.platform.value,
            "external_account_id": self.external_account_id,
            "content_id": self.content_id,
            "reason": self.reason,
            "delivery_id": self.delivery_id,
            "received_at": format_timestamp(self.received_at),
        })

    @classmethod
    def from_json(cls, payload: bytes | str) -> Self:
        data = _load(cls, payload)
        platform = _platform(data["platform"])
        assert platform is not None
        return cls(
            platform=platform,
            external_account_id=_text("external_account_id", data["external_account_id"]),
            content_id=_text("content_id", data["content_id"], optional=True),
            reason=_text("reason", data["reason"]),
            delivery_id=_text("delivery_id", data["delivery_id"]),
            received_at=_time("received_at", data["received_at"]),
        )


@dataclass(frozen=True, slots=True)
class ContentEvent:
    """Content news from a webhook: ``kind`` is ``published``, ``comment`` or ``deleted``."""

    platform: Platform
    external_account_id: str
    content_id: str
    kind: str
    text: str | None  # a comment's text; None for other kinds
    author: str | None
    occurred_at: datetime
    delivery_id: str

    KINDS = ("published", "comment", "deleted")

    def __post_init__(self) -> None:
        if self.kind not in self.KINDS:
            msg = f"kind: expected one of {', '.join(self.KINDS)}, got {self.kind!r}"
            raise EventError(msg)
        object.__setattr__(self, "occurred_at", utc_millis(self.occurred_at))

    @property
    def key(self) -> bytes:
        return _key(self.platform, self.external_account_id)

    def to_json(self) -> bytes:
        return _dumps({
            "platform": self.platform.value,
            "external_account_id": self.external_account_id,
            "content_id": self.content_id,
            "kind": self.kind,
            "text": self.text,
            "author": self.author,
            "occurred_at": format_timestamp(self.occurred_at),
            "delivery_id": self.delivery_id,
        })

    @classmethod
    def from_json(cls, payload: bytes | str) -> Self:
        data = _load(cls, payload)
        platform = _platform(data["platform"])
        assert platform is not None
        return cls(
            platform=platform,
            external_account_id=_text("external_account_id", data["external_account_id"]),
            content_id=_text("content_id", data["content_id"]),
            kind=_text("kind", data["kind"]),
            text=_text("text", data["text"], optional=True),
            author=_text("author", data["author"], optional=True),
            occurred_at=_time("occurred_at", data["occurred_at"]),
            delivery_id=_text("delivery_id", data["delivery_id"]),
        )
