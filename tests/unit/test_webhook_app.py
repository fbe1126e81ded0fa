"""The receiver's Starlette app with in-memory fakes of the deduplication store and Kafka."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from starlette.testclient import TestClient

from creatorpulse.events import ContentEvent, DeadLetter, PollHint
from creatorpulse.settings import Secret
from creatorpulse.sources.webhooks.app import ReceiverConfig, build_app
from creatorpulse.sources.webhooks.dedup import StoreError
from creatorpulse.sources.webhooks.metrics import DELIVERIES, FAILURES, Counters
from creatorpulse.sources.webhooks.publish import PublishError, Record
from creatorpulse.sources.webhooks.websub import Subscriptions, topic_url

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
IG, FB, WS, TT, XS = "ig-secret", "fb-secret", "websub-secret", "tt-secret", "x-secret"
VERIFY = "verify-me"

CONFIG = ReceiverConfig(
    meta_secrets=(Secret(IG), Secret(FB)),
    meta_verify_token=Secret(VERIFY),
    websub_secrets=(Secret(WS),),
    tiktok_secrets=(Secret(TT),),
    x_secrets=(Secret(XS),),
    timestamp_tolerance=timedelta(seconds=300),
    max_body=4096,
    hints_topic="t.hints",
    content_topic="t.content",
    dlq_topic="t.dlq",
)


class FakeDedup:
    """Claims commit when the block ends normally and are forgotten on an error, like the table."""

    def __init__(self) -> None:
        self.seen: set[tuple[str, str]] = set()
        self.lock = threading.Lock()
        self.broken = False

    @contextmanager
    def claim(self, platform: str, delivery_id: str) -> Iterator[bool]:
        if self.broken:
            msg = "delivery store: OperationalError"
            raise StoreError(msg)
        with self.lock:
            key = (platform, delivery_id)
            first = key not in self.seen
            self.seen.add(key)
        try:
            yield first
        except BaseException:
            if first:
                with self.lock:
                    self.seen.discard(key)
            raise


class FakePublisher:
    def __init__(self) -> None:
        self.records: list[Record] = []
        self.failing = False

    def publish(self, records: Sequence[Record]) -> None:
        if self.failing:
            msg = "1 of 1 records not acknowledged in time"
            raise PublishError(msg)
        self.records.extend(records)

    def on(self, topic: str) -> list[Record]:
        return [r for r in self.records if r.topic == topic]


@pytest.fixture
def dedup() -> FakeDedup:
    return FakeDedup()


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


@pytest.fixture
def counters() -> Counters:
    return Counters()


@pytest.fixture
def subscriptions() -> Subscriptions:
    return Subscriptions()


@pytest.fixture
def client(dedup: FakeDedup, publisher: FakePublisher, counters: Counters,
           subscriptions: Subscriptions) -> Iterator[TestClient]:
    app = build_app(CONFIG, dedup, publisher, counters=counters, subscriptions=subscriptions,
                    clock=lambda: NOW)
    with TestClient(app) as c:
        yield c


IG_COMMENT = json.dumps({"object": "instagram", "entry": [{"id": "1784", "time": 1755779280,
    "changes": [{"field": "comments", "value": {"text": "nice!", "from": {"username": "fan1"},
                                                "media": {"id": "1817"}}}]}]}).encode()


def meta_headers(body: bytes, secret: str = IG) -> dict[str, str]:
    sig = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={sig}", "Content-Type": "application/json"}


def test_a_signed_meta_delivery_publishes_a_hint_and_the_comment(
        client: TestClient, publisher: FakePublisher, counters: Counters) -> None:
    response = client.post("/webhooks/meta", content=IG_COMMENT, headers=meta_headers(IG_COMMENT))
    assert response.status_code == 200 and response.json() == {"status": "accepted"}
    [hint] = [PollHint.from_json(r.value) for r in publisher.on("t.hints")]
    assert (hint.external_account_id, hint.content_id) == ("1784", "1817")
    [comment] = [ContentEvent.from_json(r.value) for r in publisher.on("t.content")]
    assert comment.text == "nice!"
    assert publisher.on("t.hints")[0].key == b"instagram:1784"
    assert counters.get(DELIVERIES, platform="meta", outcome="accepted") == 1


def test_the_facebook_app_secret_is_accepted_too(client: TestClient) -> None:
    response = client.post("/webhooks/meta", content=IG_COMMENT,
                           headers=meta_headers(IG_COMMENT, FB))
    assert response.status_code == 200


def test_a_delivery_replayed_20_times_publishes_once(
        client: TestClient, publisher: FakePublisher, counters: Counters) -> None:
    for _ in range(20):
        response = client.post("/webhooks/meta", content=IG_COMMENT,
                               headers=meta_headers(IG_COMMENT))
        assert response.status_code == 200
    assert len(publisher.on("t.hints")) == 1
    assert counters.get(DELIVERIES, platform="meta", outcome="duplicate") == 19


@pytest.mark.parametrize(("headers", "status", "reason"), [
    ({}, 401, "missing_signature"),
    ({"X-Hub-Signature-256": "sha256=" + "0" * 64}, 401, "bad_signature"),
    ({"X-Hub-Signature-256": "sha256=nothex"}, 400, "malformed_signature"),
])
def test_bad_signatures_are_refused_counted_and_publish_nothing(
        client: TestClient, publisher: FakePublisher, counters: Counters,
        headers: dict[str, str], status: int, reason: str) -> None:
    response = client.post("/webhooks/meta", content=IG_COMMENT, headers=headers)
    assert response.status_code == status
    assert response.json() == {"error": reason}
    assert publisher.records == []
    assert counters.get(FAILURES, platform="meta", reason=reason) == 1
    metrics = client.get("/metrics").text
    assert f'creatorpulse_webhook_failures_total{{platform="meta",reason="{reason}"}} 1' in metrics


def test_a_body_over_the_limit_is_413_before_anything_else(
        client: TestClient, publisher: FakePublisher, counters: Counters) -> None:
    big = b"{" + b" " * 5000 + b"}"
    response = client.post("/webhooks/meta", content=big, headers=meta_headers(big))
    assert response.status_code == 413
    # Without a Content-Length (chunked), the limit holds while reading.
    response = client.post("/webhooks/meta", content=iter([b" " * 3000, b" " * 3000]),
                           headers=meta_headers(big))
    assert response.status_code == 413
    assert counters.get(FAILURES, platform="meta", reason="too_large") == 2
    assert publisher.records == []


def test_a_signed_but_unreadable_payload_goes_to_the_dead_letter_topic(
        client: TestClient, publisher: FakePublisher, counters: Counters) -> None:
    body = b'{"object": "whatsapp_business_account", "entry": []}'
    response = client.post("/webhooks/meta", content=body, headers=meta_headers(body))
    assert response.status_code == 200 and response.json() == {"status": "dead_letter"}
    [letter] = [DeadLetter.from_json(r.value) for r in publisher.on("t.dlq")]
    assert letter.payload == body and letter.source == "webhook"
    assert letter.reason.startswith("meta: object")
    assert publisher.on("t.hints") == []
    client.post("/webhooks/meta", content=body, headers=meta_headers(body))
    assert len(publisher.on("t.dlq")) == 1  # dead letters are deduplicated too
    assert counters.get(DELIVERIES, platform="meta", outcome="dead_letter") == 1


def test_a_failed_publish_answers_503_and_the_retry_is_processed(
        client: TestClient, publisher: FakePublisher, counters: Counters) -> None:
    publisher.failing = True
    response = client.post("/webhooks/meta", content=IG_COMMENT, headers=meta_headers(IG_COMMENT))
    assert response.status_code == 503
    assert counters.get(FAILURES, platform="meta", reason="publish_failed") == 1
    publisher.failing = False
    response = client.post("/webhooks/meta", content=IG_COMMENT, headers=meta_headers(IG_COMMENT))
    assert response.json() == {"status": "accepted"}
    assert len(publisher.on("t.hints")) == 1


def test_a_store_outage_answers_503(client: TestClient, dedup: FakeDedup,
                                    publisher: FakePublisher, counters: Counters) -> None:
    dedup.broken = True
    response = client.post("/webhooks/meta", content=IG_COMMENT, headers=meta_headers(IG_COMMENT))
    assert response.status_code == 503
    assert publisher.records == []
    assert counters.get(FAILURES, platform="meta", reason="store_failed") == 1


def test_nothing_secret_is_logged_or_answered(client: TestClient,
                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    headers = meta_headers(IG_COMMENT + b" ")
    response = client.post("/webhooks/meta", content=IG_COMMENT, headers=headers)
    assert response.status_code == 401
    client.get("/webhooks/meta", params={"hub.mode": "subscribe", "hub.challenge": "1",
                                         "hub.verify_token": "guess"})
    signature = headers["X-Hub-Signature-256"][7:]
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("creatorpulse"))
    assert "bad_signature" in ours  # the refusal is logged, by reason
    for text in (ours, response.text):
        for secret in (IG, FB, VERIFY, signature, "guess"):
            assert secret not in text


# --- the other platforms' POSTs ----------------------------------------------------------------


def test_tiktok_signed_now_is_accepted_and_a_stale_replay_is_refused(
        client: TestClient, publisher: FakePublisher, counters: Counters) -> None:
    body = json.dumps({"client_key": "k", "event": "video.publish.completed",
                       "create_time": 1, "user_openid": "open1",
                       "content": json.dumps({"video_id": "v1"})}).encode()

    def signed(t: int) -> dict[str, str]:
        mac = hmac.new(TT.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
        return {"TikTok-Signature": f"t={t},s={mac}"}

    now = int(NOW.timestamp())
    assert client.post("/webhooks/tiktok", content=body, headers=signed(now)).status_code == 200
    stale = client.post("/webhooks/tiktok", content=body, headers=signed(now - 301))
    assert stale.status_code == 401 and stale.json() == {"error": "stale_timestamp"}
    assert counters.get(FAILURES, platform="tiktok", reason="stale_timestamp") == 1
    assert [PollHint.from_json(r.value).content_id for r in publisher.on("t.hints")] == ["v1"]


def test_youtube_push_signed_with_the_websub_secret(client: TestClient,
                                                    publisher: FakePublisher) -> None:
    body = (b'<feed xmlns:yt="http://www.youtube.com/xml/schemas/2015" '
            b'xmlns="http://www.w3.org/2005/Atom"><entry><id>yt:video:V1</id>'
            b"<yt:videoId>V1</yt:videoId><yt:channelId>UC1</yt:channelId>"
            b"<updated>2026-11-25T08:00:00+00:00</updated></entry></feed>")
    sig = hmac.new(WS.encode(), body, hashlib.sha1).hexdigest()
    response = client.post("/webhooks/youtube", content=body,
                           headers={"X-Hub-Signature": f"sha1={sig}",
                                    "Content-Type": "application/atom+xml"})
    assert response.status_code == 200
    [hint] = [PollHint.from_json(r.value) for r in publisher.on("t.hints")]
    assert (hint.external_account_id, hint.content_id) == ("UC1", "V1")


def test_x_delivery_signed_in_base64(client: TestClient, publisher: FakePublisher) -> None:
    body = json.dumps({"for_user_id": "9", "follow_events": [{"type": "follow"}]}).encode()
    mac = base64.b64encode(hmac.new(XS.encode(), body, hashlib.sha256).digest()).decode()
    response = client.post("/webhooks/x", content=body,
                           headers={"x-twitter-webhooks-signature": f"sha256={mac}"})
    assert response.status_code == 200
    assert len(publisher.on("t.hints")) == 1


# --- handshakes --------------------------------------------------------------------------------


def test_meta_handshake(client: TestClient, counters: Counters) -> None:
    params = {"hub.mode": "subscribe", "hub.challenge": "1158201444", "hub.verify_token": VERIFY}
    response = client.get("/webhooks/meta", params=params)
    assert response.status_code == 200 and response.text == "1158201444"
    assert response.headers["content-type"].startswith("text/plain")
    wrong = client.get("/webhooks/meta", params={**params, "hub.verify_token": VERIFY + "x"})
    assert wrong.status_code == 403 and "1158201444" not in wrong.text
    assert counters.get(FAILURES, platform="meta", reason="bad_verify_token") == 1


def test_x_crc(client: TestClient) -> None:
    response = client.get("/webhooks/x", params={"crc_token": "challenge-1"})
    expected = base64.b64encode(hmac.new(XS.encode(), b"challenge-1", hashlib.sha256).digest())
    assert response.json() == {"response_token": f"sha256={expected.decode()}"}
    assert client.get("/webhooks/x").status_code == 400


def test_websub_verification_echoes_only_what_we_asked_for(
        client: TestClient, subscriptions: Subscriptions) -> None:
    topic = topic_url("UC1")
    params = {"hub.mode": "subscribe", "hub.topic": topic, "hub.challenge": "abc",
              "hub.lease_seconds": "432000"}
    assert client.get("/webhooks/youtube", params=params).status_code == 404
    subscriptions.asked(topic, "subscribe", NOW)
    response = client.get("/webhooks/youtube", params=params)
    assert response.status_code == 200 and response.text == "abc"
    assert subscriptions.snapshot()[topic].expires_at == NOW + timedelta(seconds=432000)
    # We asked to subscribe, not to unsubscribe: an unsubscribe check is refused.
    other = client.get("/webhooks/youtube", params={**params, "hub.mode": "unsubscribe"})
    assert other.status_code == 404
    assert client.get("/webhooks/youtube", params={**params, "hub.lease_seconds": "x"}
                      ).status_code == 400


def test_tiktok_has_no_handshake(client: TestClient) -> None:
    assert client.get("/webhooks/tiktok").status_code == 405


def test_metrics_and_health(client: TestClient) -> None:
    assert client.get("/healthz").text == "ok"
    text = client.get("/metrics").text
    assert "# TYPE creatorpulse_webhook_deliveries_total counter" in text


def test_the_serve_command_uses_the_shipped_topics_and_the_settings_secrets() -> None:
    from creatorpulse.settings import Settings
    from creatorpulse.sources.webhooks.cli import listen_port, receiver_config
    from creatorpulse.topics import CONTENT, DLQ, HINTS

    settings = Settings.from_env({"CREATORPULSE_WEBHOOKS_MAX_BODY": "2048"}, dotenv=None)
    config = receiver_config(settings)
    assert (config.hints_topic, config.content_topic, config.dlq_topic) == (
        HINTS.name, CONTENT.name, DLQ.name)
    assert config.meta_secrets == (settings.instagram_client_secret,
                                   settings.facebook_client_secret)
    assert config.max_body == 2048
    assert config.timestamp_tolerance == timedelta(seconds=300)
    assert listen_port(settings.webhooks_url) == 8700
    assert listen_port("https://hooks.example.com") == 443


@pytest.mark.parametrize("route", ["/webhooks/instagram", "/webhooks/facebook"])
def test_meta_answers_on_the_per_app_routes_too(client: TestClient, publisher: FakePublisher,
                                                route: str) -> None:
    assert client.post(route, content=IG_COMMENT, headers=meta_headers(IG_COMMENT, FB)
                       ).status_code == 200
    params = {"hub.mode": "subscribe", "hub.challenge": "7", "hub.verify_token": VERIFY}
    assert client.get(route, params=params).text == "7"
    assert len(publisher.on("t.hints")) == 1


@pytest.mark.parametrize(("env", "value"), [
    ("CREATORPULSE_WEBHOOKS_MAX_BODY", "0"), ("CREATORPULSE_WEBHOOKS_MAX_BODY", "1mb"),
    ("CREATORPULSE_WEBHOOKS_TIMESTAMP_TOLERANCE", "300"), ("CREATORPULSE_WEBSUB_SECRET", " "),
    ("CREATORPULSE_WEBSUB_HUB_URL", "ftp://hub"),
])
def test_bad_receiver_settings_name_their_key(env: str, value: str) -> None:
    from creatorpulse.settings import Settings, SettingsError

    with pytest.raises(SettingsError, match=env):
        Settings.from_env({env: value}, dotenv=None)


def test_receiver_secrets_are_masked_when_settings_are_shown() -> None:
    from creatorpulse.settings import Settings

    settings = Settings.from_env({"CREATORPULSE_META_VERIFY_TOKEN": "tok-123",
                                  "CREATORPULSE_WEBSUB_SECRET": "sec-456"}, dotenv=None)
    shown = repr(settings) + str(settings.describe())
    assert "tok-123" not in shown and "sec-456" not in shown
    assert settings.meta_verify_token.reveal() == "tok-123"
