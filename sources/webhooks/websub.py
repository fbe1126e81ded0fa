"""YouTube WebSub, the subscriber's side: subscribe each channel, answer the hub, renew leases.

- :func:`due` (pure) says which channels to (re)subscribe: never asked, asked but not verified
  after :data:`RETRY_AFTER`, refused by the hub, or verified with less than a tenth of the lease
  left.
- :class:`Subscriptions` remembers what we asked for, so the verification GET echoes
  ``hub.challenge`` only for a topic and mode we requested (anything else is answered 404, as
  WebSub says), and records the lease the hub granted. It lives in the receiver's memory: after a
  restart every channel is due and is subscribed again, which the hub treats as a renewal.
- :class:`HubClient` posts the subscription request; :func:`youtube_channels` reads the channels
  from the registry; :func:`renew` ties them together and is run periodically by the command.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import psycopg
import requests

from creatorpulse.settings import Secret

log = logging.getLogger(__name__)

FEED = "https://www.youtube.com/xml/feeds/videos.xml?channel_id="
RETRY_AFTER = timedelta(minutes=5)
MODES = ("subscribe", "unsubscribe")


class HubError(RuntimeError):
    """The hub refused the subscription request or could not be reached."""


def topic_url(channel_id: str) -> str:
    return FEED + channel_id


def channel_of_topic(topic: str) -> str | None:
    if not topic.startswith(FEED):
        return None
    values = parse_qs(urlsplit(topic).query).get("channel_id", [])
    return values[0] if len(values) == 1 and values[0] else None


@dataclass(frozen=True)
class Subscription:
    topic: str
    mode: str  # what we asked for last: subscribe or unsubscribe
    requested_at: datetime
    verified_at: datetime | None = None
    expires_at: datetime | None = None
    denied: bool = False


def due(
    channels: Iterable[str],
    known: Mapping[str, Subscription],
    now: datetime,
    lease: timedelta,
) -> list[str]:
    """The topics of ``channels`` to subscribe now, in the order of ``channels``."""
    margin = lease / 10
    topics = []
    for channel in channels:
        topic = topic_url(channel)
        sub = known.get(topic)
        if sub is None or sub.mode != "subscribe":
            topics.append(topic)
        elif now - sub.requested_at < RETRY_AFTER:
            continue  # asked lately: give the hub time to verify
        elif sub.denied or sub.expires_at is None or sub.expires_at - now <= margin:
            topics.append(topic)
    return topics


class Subscriptions:
    """What we asked the hub for, and what it verified (thread-safe, in memory)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: dict[str, Subscription] = {}

    def asked(self, topic: str, mode: str, now: datetime) -> None:
        with self._lock:
            old = self._subs.get(topic)
            if old is not None and mode == old.mode:
                self._subs[topic] = replace(old, requested_at=now, denied=False)
            else:
                self._subs[topic] = Subscription(topic, mode, now)

    def verify(self, mode: str, topic: str, lease_seconds: int | None, now: datetime) -> bool:
        """True (and the lease recorded) when we asked for ``mode`` on ``topic``."""
        with self._lock:
            sub = self._subs.get(topic)
            if sub is None or sub.mode != mode:
                return False
            if mode == "unsubscribe":
                del self._subs[topic]
                return True
            expires = now + timedelta(seconds=lease_seconds) if lease_seconds else None
            self._subs[topic] = replace(sub, verified_at=now, expires_at=expires, denied=False)
            return True

    def deny(self, topic: str) -> bool:
        """The hub refused ``topic``; it becomes due again. False when we never asked for it."""
        with self._lock:
            sub = self._subs.get(topic)
            if sub is None:
                return False
            self._subs[topic] = replace(sub, denied=True)
            return True

    def snapshot(self) -> dict[str, Subscription]:
        with self._lock:
            return dict(self._subs)


def subscription_form(
    mode: str, topic: str, callback: str, secret: Secret, lease: timedelta
) -> dict[str, str]:
    """The form fields of a subscription request (``hub.verify=async``: the hub calls back)."""
    return {
        "hub.mode": mode,
        "hub.topic": topic,
        "hub.callback": callback,
        "hub.secret": secret.reveal(),
        "hub.lease_seconds": str(int(lease.total_seconds())),
        "hub.verify": "async",
    }


class HubClient:
    """Posts subscription requests to one hub."""

    def __init__(self, session: requests.Session, hub: str, callback: str, secret: Secret,
                 lease: timedelta, timeout_s: float = 10.0) -> None:
        self._session, self._hub, self._callback = session, hub, callback
        self._secret, self._lease, self._timeout_s = secret, lease, timeout_s

    def request(self, mode: str, topic: str) -> None:
        form = subscription_form(mode, topic, self._callback, self._secret, self._lease)
        try:
            response = self._session.post(self._hub, data=form, timeout=self._timeout_s)
        except requests.RequestException as exc:
            msg = f"hub {self._hub} unreachable: {type(exc).__name__}"
            raise HubError(msg) from None
        if response.status_code not in (202, 204):
            msg = f"hub {self._hub} answered {response.status_code} to {mode} {topic}"
            raise HubError(msg)


def youtube_channels(conn: psycopg.Connection) -> list[str]:
    """The external ids of the active YouTube accounts of the registry."""
    rows = conn.execute(
        "SELECT DISTINCT external_id FROM platform_accounts "
        "WHERE platform = 'youtube' AND status = 'active' ORDER BY external_id"
    ).fetchall()
    return [row[0] for row in rows]


def renew(
    channels: Iterable[str],
    subscriptions: Subscriptions,
    hub: HubClient,
    now: Callable[[], datetime],
    lease: timedelta,
) -> int:
    """Subscribe every due channel; the number of requests the hub accepted."""
    accepted = 0
    for topic in due(channels, subscriptions.snapshot(), now(), lease):
        # Recorded before asking: a hub verifying synchronously calls back before it answers.
        subscriptions.asked(topic, "subscribe", now())
        try:
            hub.request("subscribe", topic)
        except HubError as exc:
            log.warning("websub: %s", exc)
            continue
        accepted += 1
    return accepted
