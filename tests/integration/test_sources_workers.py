"""Polling workers as real processes against Kafka, PostgreSQL, Redis and a local fake platform.

Each test has its own tenant, Redis prefix and topics; workers are subprocesses running the
production wiring (``tests/fake_worker.py``) with the fake connector.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import redis
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from creatorpulse.events import DeadLetter, PollHint
from creatorpulse.observation import Observation, Platform
from creatorpulse.settings import Settings
from creatorpulse.sinks import registry
from creatorpulse.stack import Stack
from creatorpulse.tokens import TokenVault
from tests.fake_platform import FakePlatform
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
LEASE = 3.0  # seconds: short, so a takeover is quick to test


class Env:
    def __init__(self, settings: Settings, platform: FakePlatform, admin: AdminClient,
                 tmp: Path) -> None:
        self.settings = settings
        self.platform = platform
        self.tenant = f"t-{uuid.uuid4().hex[:10]}"
        self.prefix = f"test-workers-{uuid.uuid4().hex[:8]}"
        suffix = uuid.uuid4().hex[:10]
        self.topics = (f"obs-{suffix}", f"dlq-{suffix}", f"hints-{suffix}")
        self.admin = admin
        self.tmp = tmp
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.conn = psycopg.connect(settings.database_dsn.reveal(), autocommit=True)
        self.redis = redis.Redis.from_url(settings.redis_dsn.reveal())
        self.vault = TokenVault.from_settings(settings)
        registry.ensure_tenant(self.conn, self.tenant)
        self.influencer = registry.add_influencer(self.conn, self.tenant, "Ada").id

    def start(self, worker_id: str, **extra: str) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CREATORPULSE_")}
        env.update({
            "CREATORPULSE_DATABASE_URL": self.settings.database_dsn.reveal(),
            "CREATORPULSE_REDIS_URL": self.settings.redis_dsn.reveal(),
            "CREATORPULSE_KAFKA_BOOTSTRAP_SERVERS": self.settings.kafka_bootstrap,
            "CREATORPULSE_TIKTOK_API_URL": self.platform.url,
            "CREATORPULSE_LEASE_TTL": f"{int(LEASE * 1000)}ms",
            "CREATORPULSE_RETRY_BASE": "100ms",
            "CREATORPULSE_RETRY_MAX": "1s",
            **extra,
        })
        log = open(self.tmp / f"{worker_id}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fake_worker", "--tenant", self.tenant, "--prefix",
             self.prefix, "--topics", ",".join(self.topics), "--worker-id", worker_id],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.procs[worker_id] = proc
        return proc

    def log(self, worker_id: str) -> str:
        return (self.tmp / f"{worker_id}.log").read_text(errors="replace")

    def link(self, external_id: str, interval: timedelta = timedelta(seconds=1)) -> str:
        self.platform.accounts.setdefault(external_id, {
            "followers": 100,
            "content": [{"id": f"{external_id}-v1", "likes": 3,
                         "published_at": (datetime.now(UTC) - timedelta(minutes=5)).isoformat()}],
        })
        return registry.link_account(self.conn, self.vault, self.tenant, self.influencer,
                                     "tiktok", external_id, poll_interval=interval).id

    def polls(self, external_id: str) -> int:
        with self.platform.lock:
            return sum(1 for path, _ in self.platform.requests
                       if path == f"/accounts/{external_id}")

    def holder(self, account_id: str) -> str | None:
        value = self.redis.get(f"{self.prefix}:lease:{account_id}")
        return value.decode() if value else None

    def consume(self, topic: str, until: Callable[[list[bytes]], bool],
                timeout: float = 30) -> list[bytes]:
        consumer = Consumer({"bootstrap.servers": self.settings.kafka_bootstrap,
                             "group.id": f"test-{uuid.uuid4().hex[:8]}",
                             "auto.offset.reset": "earliest", "enable.auto.commit": False})
        consumer.subscribe([topic])
        values: list[bytes] = []
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline and not until(values):
                msg = consumer.poll(0.5)
                if msg is not None and not msg.error():
                    values.append(msg.value())
        finally:
            consumer.close()
        return values

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        self.conn.execute("DELETE FROM tenants WHERE id = %s", (self.tenant,))
        self.conn.close()
        for key in self.redis.scan_iter(f"{self.prefix}:*"):
            self.redis.delete(key)
        self.redis.close()


@pytest.fixture
def env(stack: Stack, settings: Settings, admin: AdminClient,
        tmp_path: Path) -> Iterator[Env]:
    with FakePlatform() as platform:
        e = Env(settings, platform, admin, tmp_path)
        futures = admin.create_topics([NewTopic(t, num_partitions=2, replication_factor=1)
                                       for t in e.topics])
        for f in futures.values():
            f.result(30)
        try:
            yield e
        finally:
            e.close()
            for f in admin.delete_topics(list(e.topics)).values():
                f.result(30)


def test_a_registry_change_starts_and_stops_polling_within_five_seconds(env: Env) -> None:
    env.start("w1")
    wait_for(lambda: env.redis.zscore(f"{env.prefix}:workers", "w1"), 30, "the worker to start")
    linked_at = time.monotonic()
    account = env.link("ext-1")
    wait_for(lambda: env.polls("ext-1") >= 1, 5, "the new account to be polled")
    assert time.monotonic() - linked_at < 5
    assert env.holder(account) == "w1"

    registry.pause_account(env.conn, env.tenant, account)
    paused_at = time.monotonic()
    wait_for(lambda: env.holder(account) is None, 5, "the paused account to be released")
    assert time.monotonic() - paused_at < 5
    before = env.polls("ext-1")
    env.link("ext-2")  # the worker goes on polling others, but not the paused one
    wait_for(lambda: env.polls("ext-2") >= 3, 15, "the other account to be polled thrice")
    assert env.polls("ext-1") == before

    registry.resume_account(env.conn, env.tenant, account)
    wait_for(lambda: env.polls("ext-1") > before, 5, "the resumed account to be polled")
    registry.unlink_account(env.conn, env.tenant, account)
    wait_for(lambda: env.holder(account) is None, 5, "the unlinked account to be released")
    other = registry.list_accounts(env.conn, env.tenant)[0].id
    state = registry.poll_states(env.conn, [other])
    assert state[other].last_success_at is not None and state[other].worker_id == "w1"
    registry.remove_influencer(env.conn, env.tenant, env.influencer)
    wait_for(lambda: env.holder(other) is None, 5, "the removed influencer's account released")


def test_a_platform_disabled_for_the_tenant_stops_its_polling_within_five_seconds(
        env: Env) -> None:
    from creatorpulse.graphql import management

    env.start("w1")
    wait_for(lambda: env.redis.zscore(f"{env.prefix}:workers", "w1"), 30, "the worker to start")
    account = env.link("ext-1")
    wait_for(lambda: env.polls("ext-1") >= 1, 5, "the account to be polled")
    management.set_platform(env.conn, env.tenant, Platform.TIKTOK, False, "test")
    disabled_at = time.monotonic()
    wait_for(lambda: env.holder(account) is None, 5, "the account to be released")
    assert time.monotonic() - disabled_at < 5
    before = env.polls("ext-1")
    management.set_platform(env.conn, env.tenant, Platform.TIKTOK, True, "test")
    wait_for(lambda: env.polls("ext-1") > before, 5, "the account to be polled again")
    assert env.holder(account) == "w1"


def test_a_killed_worker_s_accounts_move_to_the_other_within_the_lease(env: Env) -> None:
    accounts = {env.link(f"ext-{n}"): f"ext-{n}" for n in range(4)}
    env.start("w1")
    env.start("w2")
    wait_for(lambda: {env.holder(a) for a in accounts} == {"w1", "w2"}, 30,
             "both workers to hold accounts")
    victims = [a for a in accounts if env.holder(a) == "w1"]
    env.procs["w1"].send_signal(signal.SIGKILL)
    env.procs["w1"].wait(10)
    killed_at = time.monotonic()
    before = {a: env.polls(accounts[a]) for a in victims}
    wait_for(lambda: all(env.holder(a) == "w2" for a in victims), LEASE + 3,
             "w2 to take over w1's accounts")
    wait_for(lambda: all(env.polls(accounts[a]) > before[a] for a in victims), 5,
             "w2 to poll them")
    assert time.monotonic() - killed_at < LEASE + 5
    assert all(env.holder(a) == "w2" for a in accounts)


def test_a_newcomer_gets_its_fair_share_well_within_a_renewal_period(env: Env) -> None:
    accounts = [env.link(f"ext-{n}") for n in range(10)]
    long_lease = {"CREATORPULSE_LEASE_TTL": "30s"}  # leases renewed every 10 s
    env.start("w1", **long_lease)
    wait_for(lambda: all(env.holder(a) == "w1" for a in accounts), 30, "w1 to hold them all")
    env.start("w2", **long_lease)
    wait_for(lambda: env.redis.zscore(f"{env.prefix}:workers", "w2") is not None, 30,
             "w2 to announce itself")
    joined = time.monotonic()
    wait_for(lambda: [env.holder(a) for a in accounts].count("w2") == 5, 8,
             "w2 to hold its fair share")
    assert time.monotonic() - joined < 8  # not one or two renewal periods (10 s each)
    assert sorted(env.holder(a) or "" for a in accounts) == ["w1"] * 5 + ["w2"] * 5


def test_each_account_is_polled_by_exactly_one_live_worker(env: Env) -> None:
    accounts = [env.link(f"ext-{n}") for n in range(6)]
    for w in ("w1", "w2", "w3"):
        env.start(w)
    wait_for(lambda: {env.holder(a) for a in accounts} == {"w1", "w2", "w3"}, 30,
             "three workers sharing the accounts")
    holders = {a: env.holder(a) for a in accounts}
    assert sorted(holders.values()).count("w1") == 2  # fair shares of 6 / 3

    def polled_by_holder() -> bool:
        rows = env.conn.execute("SELECT account_id, worker_id FROM poll_state "
                                "WHERE account_id = ANY (%s)", (accounts,)).fetchall()
        return len(rows) == 6 and all(holders[a] == w for a, w in rows)

    wait_for(polled_by_holder, 10, "each account's polls recorded by its holder")
    assert {a: env.holder(a) for a in accounts} == holders  # and the shares are stable


def test_sigterm_flushes_every_observation_and_releases_the_leases(env: Env) -> None:
    account = env.link("ext-1")
    proc = env.start("w1")
    wait_for(lambda: env.polls("ext-1") >= 3, 30, "a few polls")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0, env.log("w1")
    assert env.holder(account) is None
    served = env.polls("ext-1")

    def followers(values: list[bytes]) -> list[Observation]:
        return [o for o in map(Observation.from_json, values) if o.metric == "followers"]

    values = env.consume(env.topics[0], lambda v: len(followers(v)) >= served, timeout=15)
    followers = followers(values)
    assert len(followers) == served
    assert {o.account_id for o in followers} == {account}


def test_a_hint_polls_the_account_now(env: Env) -> None:
    env.link("ext-1", interval=timedelta(hours=1))
    env.start("w1")
    wait_for(lambda: env.polls("ext-1") == 1, 30, "the first poll")
    producer = Producer({"bootstrap.servers": env.settings.kafka_bootstrap})

    def hinted() -> bool:
        hint = PollHint(Platform.TIKTOK, "ext-1", None, "video.publish", uuid.uuid4().hex,
                        datetime.now(UTC))
        producer.produce(env.topics[2], hint.to_json(), hint.key)
        producer.flush(5)
        return env.polls("ext-1") >= 2

    wait_for(hinted, 30, "a poll triggered by the hint")


def test_an_unmappable_answer_goes_to_the_dead_letter_topic_and_polling_goes_on(
    env: Env,
) -> None:
    env.platform.accounts["ext-bad"] = {"unexpected": True}
    account = env.link("ext-bad")
    env.link("ext-ok")
    env.start("w1")
    values = env.consume(env.topics[1], lambda v: len(v) >= 1)
    letter = DeadLetter.from_json(values[0])
    assert letter.payload == b'{"unexpected": true}'
    assert (letter.platform, letter.account_id, letter.reason) == (
        Platform.TIKTOK, account, "no followers")
    wait_for(lambda: env.polls("ext-ok") >= 2 and env.polls("ext-bad") >= 2, 15,
             "polling to go on")


def test_workers_under_load_keep_to_the_platform_app_rate(env: Env) -> None:
    """Two workers, eight accounts due every second, an app limit of 4 requests per second."""
    limits = "instagram=4/1s,facebook=4/1s,youtube=4/1s,tiktok=4/1s,x=4/1s"
    for n in range(8):
        env.link(f"ext-{n}")
    env.start("w1", CREATORPULSE_APP_RATE_LIMITS=limits)
    env.start("w2", CREATORPULSE_APP_RATE_LIMITS=limits)
    wait_for(lambda: len(env.platform.times) >= 24, 30, "24 requests")
    with env.platform.lock:
        times = sorted(env.platform.times)
    # A bucket of 1 (a tenth of 4, rounded up) refilled at 4/s: at most 1 + 4 per second.
    for i, t in enumerate(times):
        assert sum(1 for u in times[i:] if u - t < 1.0) <= 5 + 1
    rate = (len(times) - 1) / (times[-1] - times[0])
    assert rate <= 4 * 1.15, f"{rate:.2f} requests/s"
    assert rate >= 4 * 0.6, f"{rate:.2f} requests/s: the limiter should not starve the workers"
    started = time.monotonic()
    for proc in env.procs.values():  # polls waiting for tokens end at once on SIGTERM
        proc.send_signal(signal.SIGTERM)
    assert [proc.wait(15) for proc in env.procs.values()] == [0, 0]
    assert time.monotonic() - started < 10
