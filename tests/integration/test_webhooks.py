"""The receiver against the real PostgreSQL and Kafka: each delivery is processed once, durably.

The app runs under uvicorn on an ephemeral port with this test's own topics and its own copy of
the ``webhook_deliveries`` table; deliveries are signed here the way the platforms sign them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import timedelta

import psycopg
import pytest
import requests
import uvicorn
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from psycopg_pool import ConnectionPool

from creatorpulse.events import ContentEvent, PollHint
from creatorpulse.settings import Secret, Settings
from creatorpulse.sources.webhooks.app import ReceiverConfig, build_app
from creatorpulse.sources.webhooks.dedup import PostgresDedup
from creatorpulse.sources.webhooks.publish import (
    KafkaPublisher,
    Publisher,
    PublishError,
    Record,
    producer_config,
)
from creatorpulse.stack.process import wait_until

META_SECRET = "integration-meta-secret"
PARTITIONS = 2


@dataclass(frozen=True)
class Env:
    settings: Settings
    config: ReceiverConfig
    table: str
    topics: dict[str, str]


@pytest.fixture
def env(settings: Settings, admin: AdminClient, db: psycopg.Connection,
        unique: str) -> Iterator[Env]:
    topics = {kind: f"webhooks.{kind}.{unique}" for kind in ("hints", "content", "dlq")}
    futures = admin.create_topics([NewTopic(t, num_partitions=PARTITIONS, replication_factor=1)
                                   for t in topics.values()])
    for future in futures.values():
        future.result(30)
    table = f"webhook_deliveries_{unique}"
    db.execute(f"CREATE TABLE {table} (LIKE webhook_deliveries INCLUDING ALL)")
    config = ReceiverConfig(
        meta_secrets=(Secret(META_SECRET),), meta_verify_token=Secret("v"),
        websub_secrets=(Secret("w"),), tiktok_secrets=(Secret("t"),), x_secrets=(Secret("x"),),
        timestamp_tolerance=timedelta(seconds=300), max_body=1 << 20,
        hints_topic=topics["hints"], content_topic=topics["content"], dlq_topic=topics["dlq"])
    yield Env(settings, config, table, topics)
    db.execute(f"DROP TABLE {table}")
    for future in admin.delete_topics(list(topics.values())).values():
        future.result(30)


class Receiver:
    """The app served by uvicorn in a thread, on a port the system picks."""

    def __init__(self, env: Env, publisher: Publisher | None = None) -> None:
        self.pool = ConnectionPool(env.settings.database_dsn.reveal(), min_size=1, max_size=8,
                                   open=True, name="webhooks-test")
        self.producer = Producer(producer_config(env.settings.kafka_bootstrap, 10.0))
        self.kafka = KafkaPublisher(self.producer)
        self.app = build_app(env.config, PostgresDedup(self.pool, env.table),
                             publisher or self.kafka)
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=0,
                                                    log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        wait_until(lambda: self.server.started or None, part="webhooks", what="uvicorn to start",
                   timeout=15)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        self.kafka.close()
        self.pool.close()

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> requests.Response:
        return requests.post(self.url + path, data=body, headers=headers, timeout=30)


def meta_headers(body: bytes, secret: str = META_SECRET) -> dict[str, str]:
    sig = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={sig}", "Content-Type": "application/json"}


def count(settings: Settings, topic: str) -> int:
    """Records on ``topic``: the sum of its partitions' high watermarks (nothing is deleted)."""
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": "unused"})
    try:
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                   for p in range(PARTITIONS))
    finally:
        consumer.close()


def consume(settings: Settings, topic: str, expected: int) -> list[bytes]:
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap,
                         "group.id": f"test-{topic}", "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    consumer.subscribe([topic])
    values: list[bytes] = []
    try:
        def enough() -> bool | None:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                values.append(message.value())
            return True if len(values) >= expected else None

        wait_until(enough, part="kafka", what=f"{expected} records on {topic}", timeout=30,
                   interval=0)
    finally:
        consumer.close()
    return values


def rows(db: psycopg.Connection, table: str) -> int:
    return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]


COMMENT = json.dumps({"object": "instagram", "entry": [{"id": "17841405309211844",
    "time": 1755779280, "changes": [{"field": "comments", "value": {
        "id": "17919697626119712", "text": "first! 🎉", "from": {"username": "fan1"},
        "media": {"id": "18172143295349192"}}}]}]}).encode()


def test_a_delivery_replayed_20_times_concurrently_gives_one_hint(
        env: Env, db: psycopg.Connection) -> None:
    with Receiver(env) as receiver, ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(lambda _: receiver.post("/webhooks/meta", COMMENT,
                                                          meta_headers(COMMENT)), range(20)))
        assert [r.status_code for r in responses] == [200] * 20
        outcomes = sorted(r.json()["status"] for r in responses)
        assert outcomes == ["accepted"] + ["duplicate"] * 19
        metrics = requests.get(receiver.url + "/metrics", timeout=10).text
        assert 'deliveries_total{outcome="duplicate",platform="meta"} 19' in metrics
    # Answered 200 only once acknowledged: the topics hold their records now, no waiting.
    assert count(env.settings, env.topics["hints"]) == 1
    assert count(env.settings, env.topics["content"]) == 1
    assert rows(db, env.table) == 1
    [hint] = [PollHint.from_json(v) for v in consume(env.settings, env.topics["hints"], 1)]
    assert (hint.external_account_id, hint.content_id) == ("17841405309211844",
                                                           "18172143295349192")
    # A new receiver (a restart) still knows the delivery: the record is durable.
    with Receiver(env) as receiver:
        response = receiver.post("/webhooks/meta", COMMENT, meta_headers(COMMENT))
        assert response.json() == {"status": "duplicate"}
    assert count(env.settings, env.topics["hints"]) == 1


def test_comment_text_reaches_the_content_topic(env: Env) -> None:
    with Receiver(env) as receiver:
        assert receiver.post("/webhooks/meta", COMMENT, meta_headers(COMMENT)).status_code == 200
    [event] = [ContentEvent.from_json(v) for v in consume(env.settings, env.topics["content"], 1)]
    assert (event.kind, event.content_id, event.text, event.author) == (
        "comment", "18172143295349192", "first! 🎉", "fan1")


def test_a_bad_signature_is_401_counted_and_publishes_nothing(
        env: Env, db: psycopg.Connection) -> None:
    with Receiver(env) as receiver:
        forged = receiver.post("/webhooks/meta", COMMENT, meta_headers(COMMENT, "guessed"))
        assert forged.status_code == 401 and forged.json() == {"error": "bad_signature"}
        tampered = receiver.post("/webhooks/meta", COMMENT.replace(b"fan1", b"fan2"),
                                 meta_headers(COMMENT))
        assert tampered.status_code == 401
        metrics = requests.get(receiver.url + "/metrics", timeout=10).text
        assert 'failures_total{platform="meta",reason="bad_signature"} 2' in metrics
    assert [count(env.settings, t) for t in env.topics.values()] == [0, 0, 0]
    assert rows(db, env.table) == 0


class FailOnce:
    """Kafka that refuses the first publish (as when the broker is unreachable), then works."""

    def __init__(self, real: Publisher) -> None:
        self.real, self.failed = real, False

    def publish(self, records: Sequence[Record]) -> None:
        if not self.failed:
            self.failed = True
            msg = "1 of 2 records not acknowledged in time"
            raise PublishError(msg)
        self.real.publish(records)


def test_a_failed_publish_leaves_no_record_so_the_retry_is_processed(
        env: Env, db: psycopg.Connection) -> None:
    receiver = Receiver(env)
    receiver.app = build_app(env.config, PostgresDedup(receiver.pool, env.table),
                             FailOnce(receiver.kafka))
    receiver.server.config.app = receiver.app
    with receiver:
        assert receiver.post("/webhooks/meta", COMMENT, meta_headers(COMMENT)).status_code == 503
        assert rows(db, env.table) == 0
        retry = receiver.post("/webhooks/meta", COMMENT, meta_headers(COMMENT))
        assert retry.json() == {"status": "accepted"}
    assert count(env.settings, env.topics["hints"]) == 1
    assert rows(db, env.table) == 1


def test_an_unreadable_signed_payload_is_a_dead_letter(env: Env) -> None:
    body = b'{"object": "instagram", "entry": "not a list"}'
    with Receiver(env) as receiver:
        response = receiver.post("/webhooks/meta", body, meta_headers(body))
        assert response.json() == {"status": "dead_letter"}
    assert count(env.settings, env.topics["dlq"]) == 1
    assert count(env.settings, env.topics["hints"]) == 0



# --- YouTube WebSub: subscription, verification of intent, a signed push ----------------------


class StandInHub:
    """A WebSub hub: accepts a subscription (202), then verifies intent with a GET to the callback
    and remembers the secret to sign pushes with, as a hub does."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import parse_qs

        self.verifications: list[tuple[str, int, str]] = []  # (challenge, status, body)
        self.secrets: dict[str, str] = {}
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                size = int(self.headers["Content-Length"])
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(size).decode()).items()}
                self.send_response(202)
                self.end_headers()
                hub.secrets[form["hub.topic"]] = form["hub.secret"]
                threading.Thread(target=hub.verify, args=(form,), daemon=True).start()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/subscribe"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def verify(self, form: dict[str, str], challenge: str = "c-4815162342") -> None:
        params = {"hub.mode": form["hub.mode"], "hub.topic": form["hub.topic"],
                  "hub.challenge": challenge, "hub.lease_seconds": "600"}
        response = requests.get(form["hub.callback"], params=params, timeout=10)
        self.verifications.append((challenge, response.status_code, response.text))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_websub_subscribe_verify_and_push(env: Env, db: psycopg.Connection, unique: str) -> None:
    from datetime import UTC, datetime

    from creatorpulse.sources.webhooks.websub import (
        HubClient,
        renew,
        topic_url,
        youtube_channels,
    )

    channel = f"UC{unique}{'x' * 12}"
    db.execute("INSERT INTO tenants (id, name) VALUES (%s, 'webhooks test')", (unique,))
    db.execute("INSERT INTO influencers (id, tenant_id, name) VALUES (%s, %s, 'i')",
               (unique, unique))
    db.execute("INSERT INTO platform_accounts (tenant_id, influencer_id, platform, external_id) "
               "VALUES (%s, %s, 'youtube', %s)", (unique, unique, channel))
    hub = StandInHub()
    secret = "websub-integration-secret"
    env = replace(env, config=replace(env.config, websub_secrets=(Secret(secret),)))
    try:
        with Receiver(env) as receiver, requests.Session() as session:
            client = HubClient(session, hub.url, receiver.url + "/webhooks/youtube",
                               Secret(secret), timedelta(days=5))
            subscriptions = receiver.app.state.subscriptions
            assert channel in youtube_channels(db)
            assert renew([channel], subscriptions, client, lambda: datetime.now(UTC),
                         timedelta(days=5)) == 1
            wait_until(lambda: hub.verifications or None, part="websub",
                       what="the hub's verification", timeout=15)
            assert hub.verifications == [("c-4815162342", 200, "c-4815162342")]
            assert subscriptions.snapshot()[topic_url(channel)].expires_at is not None
            assert hub.secrets[topic_url(channel)] == secret
            # A verification for a topic we never asked for is refused.
            hub.verify({"hub.mode": "subscribe", "hub.topic": topic_url("UCother"),
                        "hub.callback": receiver.url + "/webhooks/youtube"}, "nope")
            assert hub.verifications[-1][1] == 404
            # The hub pushes an upload, signed with the secret we gave it.
            atom = (f'<feed xmlns:yt="http://www.youtube.com/xml/schemas/2015" '
                    f'xmlns="http://www.w3.org/2005/Atom"><entry><id>yt:video:vid{unique}</id>'
                    f"<yt:videoId>vid{unique}</yt:videoId><yt:channelId>{channel}</yt:channelId>"
                    "<updated>2026-11-25T09:00:00.123456789+00:00</updated></entry></feed>"
                    ).encode()
            sig = hmac.new(secret.encode(), atom, hashlib.sha1).hexdigest()
            pushed = receiver.post("/webhooks/youtube", atom,
                                   {"X-Hub-Signature": f"sha1={sig}",
                                    "Content-Type": "application/atom+xml"})
            assert pushed.json() == {"status": "accepted"}
        [hint] = [PollHint.from_json(v) for v in consume(env.settings, env.topics["hints"], 1)]
        assert (hint.external_account_id, hint.content_id) == (channel, f"vid{unique}")
    finally:
        hub.close()
        db.execute("DELETE FROM tenants WHERE id = %s", (unique,))


def test_old_deliveries_are_pruned(env: Env, db: psycopg.Connection) -> None:
    from datetime import UTC, datetime

    db.execute(f"INSERT INTO {env.table} (platform, delivery_id, received_at) VALUES "
               "('x', 'old', now() - interval '8 days'), ('x', 'new', now())")
    with ConnectionPool(env.settings.database_dsn.reveal(), min_size=1, max_size=1) as pool:
        assert PostgresDedup(pool, env.table).prune(datetime.now(UTC) - timedelta(days=7)) == 1
    assert [r[0] for r in db.execute(f"SELECT delivery_id FROM {env.table}")] == ["new"]
