"""The WebSub subscriber: which channels are due, what the hub is asked, the lease bookkeeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from creatorpulse.settings import Secret, Settings
from creatorpulse.sources.webhooks.websub import (
    RETRY_AFTER,
    HubClient,
    HubError,
    Subscription,
    Subscriptions,
    channel_of_topic,
    due,
    renew,
    subscription_form,
    topic_url,
)

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
LEASE = timedelta(days=5)
A, B = "UCaaaaaaaaaaaaaaaaaaaaaa", "UCbbbbbbbbbbbbbbbbbbbbbb"


def test_topic_urls_round_trip() -> None:
    assert topic_url(A) == f"https://www.youtube.com/xml/feeds/videos.xml?channel_id={A}"
    assert channel_of_topic(topic_url(A)) == A
    assert channel_of_topic("https://example.com/?channel_id=x") is None


def sub(requested: timedelta, expires: timedelta | None = None, **kw: Any) -> Subscription:
    return Subscription(topic_url(A), kw.pop("mode", "subscribe"), NOW - requested,
                        NOW - requested if expires is not None else None,
                        NOW + expires if expires is not None else None, **kw)


@pytest.mark.parametrize(("known", "is_due"), [
    (None, True),                                                   # never asked
    (sub(timedelta(minutes=1)), False),                             # asked, verification pending
    (sub(RETRY_AFTER), True),                                       # never verified: ask again
    (sub(timedelta(days=1), expires=timedelta(days=4)), False),     # lease far from its end
    (sub(timedelta(days=5), expires=timedelta(hours=11)), True),    # under a tenth of the lease
    (sub(timedelta(days=6), expires=-timedelta(hours=1)), True),    # expired
    (sub(timedelta(minutes=1), denied=True), False),                # refused just now: wait
    (sub(timedelta(minutes=10), denied=True), True),                # refused a while ago: retry
    (sub(timedelta(minutes=1), mode="unsubscribe"), True),          # back in the registry
])
def test_due(known: Subscription | None, is_due: bool) -> None:
    subs = {topic_url(A): known} if known else {}
    assert due([A], subs, NOW, LEASE) == ([topic_url(A)] if is_due else [])


def test_verification_records_the_granted_lease_and_refuses_what_we_did_not_ask() -> None:
    subs = Subscriptions()
    assert not subs.verify("subscribe", topic_url(A), 100, NOW)
    subs.asked(topic_url(A), "subscribe", NOW)
    assert not subs.verify("unsubscribe", topic_url(A), None, NOW)
    assert subs.verify("subscribe", topic_url(A), 3600, NOW)
    assert subs.snapshot()[topic_url(A)].expires_at == NOW + timedelta(hours=1)
    assert due([A], subs.snapshot(), NOW + timedelta(minutes=55), LEASE) == [topic_url(A)]
    assert not subs.deny(topic_url(B))
    assert subs.deny(topic_url(A)) and subs.snapshot()[topic_url(A)].denied


def test_the_subscription_request() -> None:
    form = subscription_form("subscribe", topic_url(A), "http://127.0.0.1:8700/webhooks/youtube",
                             Secret("s3"), LEASE)
    assert form == {"hub.mode": "subscribe", "hub.topic": topic_url(A),
                    "hub.callback": "http://127.0.0.1:8700/webhooks/youtube", "hub.secret": "s3",
                    "hub.lease_seconds": "432000", "hub.verify": "async"}


def test_the_default_hub_is_the_youtube_apis() -> None:
    settings = Settings.from_env({}, dotenv=None)
    assert settings.websub_hub == "http://127.0.0.1:8603/subscribe"
    other = Settings.from_env({"CREATORPULSE_WEBSUB_HUB_URL": "https://hub.example/"}, dotenv=None)
    assert other.websub_hub == "https://hub.example"


class FakeSession:
    def __init__(self, status: int = 202, error: Exception | None = None) -> None:
        self.posts: list[tuple[str, dict[str, str]]] = []
        self.status, self.error = status, error

    def post(self, url: str, data: dict[str, str], timeout: float) -> Any:
        if self.error:
            raise self.error
        self.posts.append((url, data))
        response = requests.Response()
        response.status_code = self.status
        return response


def hub(session: FakeSession) -> HubClient:
    return HubClient(session, "http://hub/subscribe", "http://cb/webhooks/youtube",  # type: ignore[arg-type]
                     Secret("s3"), LEASE)


def test_renew_asks_for_each_due_channel_once_and_records_it_first() -> None:
    session, subs = FakeSession(), Subscriptions()
    assert renew([A, B], subs, hub(session), lambda: NOW, LEASE) == 2
    assert [form["hub.topic"] for _, form in session.posts] == [topic_url(A), topic_url(B)]
    assert set(subs.snapshot()) == {topic_url(A), topic_url(B)}
    assert renew([A, B], subs, hub(session), lambda: NOW, LEASE) == 0  # pending: not asked again


@pytest.mark.parametrize("session", [FakeSession(status=500),
                                     FakeSession(error=requests.ConnectionError("down"))])
def test_a_refusing_or_absent_hub_is_logged_and_retried_later(session: FakeSession) -> None:
    with pytest.raises(HubError):
        hub(session).request("subscribe", topic_url(A))
    subs = Subscriptions()
    assert renew([A], subs, hub(session), lambda: NOW, LEASE) == 0
    assert due([A], subs.snapshot(), NOW + RETRY_AFTER, LEASE) == [topic_url(A)]
