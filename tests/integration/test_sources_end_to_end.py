"""The sources end to end: platform simulators -> connectors -> polling runtime -> Kafka.

Everything is the production wiring (``sources/runner.py``'s :func:`build_worker`) against the
real Kafka, PostgreSQL and Redis; only the platforms are the local simulators, started in this
process on ephemeral ports. Each test has its own tenant, Redis prefix and topics. The accounts
are the simulator's seeded ones, registered through ``sinks/registry.py`` with their tokens.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import redis
import requests
import uvicorn
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from psycopg_pool import ConnectionPool

from creatorpulse.observation import ContentKind, Observation, Provenance
from creatorpulse.settings import Secret, Settings
from creatorpulse.sinks import registry
from creatorpulse.sinks.registry import Credentials
from creatorpulse.sources.runner import Topics, build_worker
from creatorpulse.sources.simulator.clock import Clock, ManualClock, RealClock
from creatorpulse.sources.simulator.config import SimConfig
from creatorpulse.sources.simulator.server import Simulators, build
from creatorpulse.sources.simulator.world import round_3_significant
from creatorpulse.sources.webhooks.app import build_app
from creatorpulse.sources.webhooks.cli import receiver_config
from creatorpulse.sources.webhooks.dedup import PostgresDedup
from creatorpulse.sources.webhooks.publish import KafkaPublisher, producer_config
from creatorpulse.sources.worker import Worker
from creatorpulse.stack import Stack
from creatorpulse.stack.process import wait_until
from creatorpulse.tokens import TokenVault
from tests.waiting import wait_for

PLATFORMS = ("instagram", "facebook", "youtube", "tiktok", "x")
# Content-level metrics: the simulator's true counter each one reads (X quotes: a fifth of shares).
CONTENT_TRUTH: dict[str, Callable[[dict[str, int]], int]] = {
    "likes": lambda c: c["likes"], "comments": lambda c: c["comments"],
    "shares": lambda c: c["shares"], "saves": lambda c: c["saves"], "views": lambda c: c["views"],
    "reach": lambda c: c["reach"], "quotes": lambda c: c["shares"] // 5,
}


class Collector:
    """Every observation on a topic, read from the start by a background consumer."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self._consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap,
                                   "group.id": f"e2e-{uuid.uuid4().hex[:8]}",
                                   "auto.offset.reset": "earliest",
                                   "enable.auto.commit": False})
        self._consumer.subscribe([topic])
        self._lock = threading.Lock()
        self._items: list[Observation] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            msg = self._consumer.poll(0.2)
            if msg is not None and not msg.error():
                with self._lock:
                    self._items.append(Observation.from_json(msg.value()))
        self._consumer.close()

    def items(self, where: Callable[[Observation], bool] = lambda _: True) -> list[Observation]:
        with self._lock:
            return [o for o in self._items if where(o)]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)


@dataclass
class Env:
    """A tenant, topics, Redis prefix and simulators of this test's own; workers started on it."""

    base: Settings
    admin: AdminClient
    sims: Simulators
    clock: Clock
    tenant: str = field(default_factory=lambda: f"e2e-{uuid.uuid4().hex[:10]}")
    prefix: str = field(default_factory=lambda: f"test-e2e-{uuid.uuid4().hex[:8]}")
    suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.topics = Topics(f"e2e.obs.{self.suffix}", f"e2e.dlq.{self.suffix}",
                             f"e2e.hints.{self.suffix}")
        futures = self.admin.create_topics([
            NewTopic(t, num_partitions=2, replication_factor=1)
            for t in (self.topics.observations, self.topics.dlq, self.topics.hints)])
        for future in futures.values():
            future.result(30)
        self.settings = self.settings_with()
        self.conn = psycopg.connect(self.base.database_dsn.reveal(), autocommit=True)
        self.redis = redis.Redis.from_url(self.base.redis_dsn.reveal())
        self.vault = TokenVault.from_settings(self.settings)
        registry.ensure_tenant(self.conn, self.tenant)
        self.influencers: dict[int, str] = {}
        self.accounts: dict[str, tuple[str, int, str]] = {}  # id -> platform, index, external id
        self.collector = Collector(self.base, self.topics.observations)
        self.workers: list[tuple[Worker, threading.Thread, list[Any]]] = []

    def settings_with(self, **more: str) -> Settings:
        env = {
            "CREATORPULSE_DATABASE_URL": self.base.database_dsn.reveal(),
            "CREATORPULSE_REDIS_URL": self.base.redis_dsn.reveal(),
            "CREATORPULSE_KAFKA_BOOTSTRAP_SERVERS": self.base.kafka_bootstrap,
            "CREATORPULSE_LEASE_TTL": "3s",
            "CREATORPULSE_RETRY_BASE": "100ms",
            "CREATORPULSE_RETRY_MAX": "1s",
            **{f"CREATORPULSE_{p.upper()}_API_URL": url for p, url in self.sims.urls.items()},
            **self.extra, **more,
        }
        return Settings.from_env(env, dotenv=None)

    def register(self, platform: str, index: int, interval: timedelta = timedelta(seconds=1),
                 ) -> str:
        """The simulator's seeded account ``index`` on ``platform``, with its tokens."""
        row = self.sims.apps[platform].account_row(index)
        if index not in self.influencers:
            self.influencers[index] = registry.add_influencer(
                self.conn, self.tenant, f"creator {index}").id
        creds = Credentials(
            access_token=Secret(row["access_token"]),
            refresh_token=Secret(row["refresh_token"]) if row["refresh_token"] else None,
            expires_at=(datetime.fromtimestamp(row["expires_at"], UTC)
                        if row["expires_at"] else None))
        account = registry.link_account(self.conn, self.vault, self.tenant,
                                        self.influencers[index], platform, row["id"],
                                        handle=row["handle"], poll_interval=interval,
                                        credentials=creds)
        self.accounts[account.id] = (platform, index, row["id"])
        return account.id

    def start_worker(self, name: str, threads: int = 8) -> Worker:
        worker, clients = build_worker(self.settings, threads=threads, tenant_id=self.tenant,
                                       worker_id=f"{self.prefix}-{name}", topics=self.topics,
                                       prefix=self.prefix)
        thread = threading.Thread(target=worker.run, name=f"worker-{name}", daemon=True)
        thread.start()
        self.workers.append((worker, thread, clients))
        return worker

    def sim_get(self, platform: str, path: str) -> Any:
        r = requests.get(self.sims.urls[platform] + path, timeout=10)
        r.raise_for_status()
        return r.json()

    def sim_post(self, platform: str, path: str, body: Mapping[str, Any]) -> Any:
        r = requests.post(self.sims.urls[platform] + path, json=dict(body), timeout=30)
        r.raise_for_status()
        return r.json()

    def observed(self, platform: str, *, account_id: str | None = None,
                 content_id: str | None = None, after: datetime | None = None,
                 level: ContentKind | None = None) -> list[Observation]:
        """Observations so far; ``level`` ACCOUNT: account-level only, any other: content."""
        def keep(o: Observation) -> bool:
            return (o.platform == platform
                    and (account_id is None or o.account_id == account_id)
                    and (content_id is None or o.content_id == content_id)
                    and (after is None or o.observed_at > after)
                    and (level is None or (o.content_kind is ContentKind.ACCOUNT)
                         == (level is ContentKind.ACCOUNT)))
        return self.collector.items(keep)

    def close(self) -> None:
        for worker, _, _ in self.workers:
            worker.stop()
        for _, thread, clients in self.workers:
            thread.join(30)
            for client in clients:
                client.close()
        self.collector.close()
        self.conn.execute("DELETE FROM tenants WHERE id = %s", (self.tenant,))
        self.conn.close()
        for key in self.redis.scan_iter(f"{self.prefix}:*"):
            self.redis.delete(key)
        self.redis.close()
        topics = [self.topics.observations, self.topics.dlq, self.topics.hints]
        for future in self.admin.delete_topics(topics).values():
            future.result(30)


@pytest.fixture
def make_env(stack: Stack, settings: Settings, admin: AdminClient
             ) -> Iterator[Callable[..., Env]]:
    made: list[tuple[Env | None, Simulators]] = []

    def make(config: SimConfig, clock: Clock, suffix: str | None = None, **extra: str) -> Env:
        sims = Simulators.start(build(config, clock), ports=0)
        made.append((None, sims))
        env = Env(settings, admin, sims, clock, extra=dict(extra),
                  **({"suffix": suffix} if suffix else {}))
        made[-1] = (env, sims)
        return env

    yield make
    for env, sims in made:
        try:
            if env is not None:
                env.close()
        finally:
            sims.stop()


def truth(env: Env, platform: str, content_id: str) -> dict[str, int] | None:
    """The post's true counters now, from the simulator's admin surface (None: deleted)."""
    found = env.sim_get(platform, f"/_sim/content/{content_id}")
    return found["counters"]


def check_values(env: Env, observations: list[Observation], now: float) -> int:
    """Each observation against the simulator's model at ``now``; how many were checked
    (every content-level one, and the account-level followers)."""
    world = env.sims.sim.world
    checked = 0
    for o in observations:
        platform = o.platform.value
        if o.content_kind is ContentKind.ACCOUNT:
            assert o.content_id is None
            if o.metric != "followers":
                continue
            _, index, _ = env.accounts[o.account_id]
            followers = world.account(platform, index).followers(now)
            if platform == "youtube":
                assert o.provenance is Provenance.ROUNDED, o
                assert o.value == round_3_significant(followers), o
            else:
                assert o.provenance is Provenance.MEASURED, o
                assert o.value == followers, o
        else:
            post = world.find_post(platform, o.content_id or "")
            assert post is not None, o
            assert world.exists(post, now), f"an observation of a deleted post: {o}"
            counters = vars(world.counters(post, now))
            assert o.metric in CONTENT_TRUTH, o
            assert o.value == CONTENT_TRUTH[o.metric](counters), (o, counters)
        checked += 1
    return checked


# --- every platform: true values, levels named apart, rounding, deletion ---------------------


def test_observations_carry_the_simulator_s_true_counters_on_every_platform(
    make_env: Callable[..., Env],
) -> None:
    start = float(int(time.time()))
    clock = ManualClock(start)
    env = make_env(SimConfig(accounts=4, seed=7), clock,
                   CREATORPULSE_POLL_FRESH_INTERVAL="2s")
    for platform in PLATFORMS:
        for index in (0, 1):
            env.register(platform, index)
    env.start_worker("w1")

    def every_platform_seen(after: datetime | None = None) -> bool:
        return all(env.observed(p, level=ContentKind.ACCOUNT, after=after)
                   and env.observed(p, level=ContentKind.POST, after=after)
                   for p in PLATFORMS)

    wait_for(every_platform_seen, 60, "account and content observations of every platform")
    # The clock stands still: every observation so far is a reading at ``start``.
    before_advance = datetime.now(UTC)
    first = env.collector.items(lambda o: o.observed_at < before_advance)
    assert check_values(env, first, start) >= len(PLATFORMS) * 2 * 2

    # Levels named apart: no metric is reported both for an account and for its content.
    for platform in PLATFORMS:
        seen = env.observed(platform)
        account_metrics = {o.metric for o in seen if o.content_kind is ContentKind.ACCOUNT}
        content_metrics = {o.metric for o in seen if o.content_kind is not ContentKind.ACCOUNT}
        assert account_metrics and content_metrics, platform
        assert not account_metrics & content_metrics, platform
    assert {o.provenance for o in env.observed("youtube", level=ContentKind.ACCOUNT)
            if o.metric == "followers"} == {Provenance.ROUNDED}

    # A deleted post stops being polled: nothing about it is observed after the deletion.
    deleted: dict[str, str] = {}
    for platform in PLATFORMS:
        content = [o for o in env.observed(platform) if o.content_id]
        victim = max(content, key=lambda o: o.observed_at).content_id
        assert victim is not None
        env.sim_post(platform, "/_sim/delete", {"content_id": victim})
        assert truth(env, platform, victim) is None
        deleted[platform] = victim
    deleted_at = datetime.now(UTC)

    # The world moves on an hour: every later reading follows it.
    later = clock.advance(3600)
    advanced = datetime.now(UTC)
    wait_for(lambda: every_platform_seen(advanced), 60, "readings after the clock moved")
    wait_for(lambda: all(len({o.observed_at for o in env.observed(p, after=advanced)}) >= 3
                         for p in PLATFORMS), 60, "three polls of every platform since")
    second = env.collector.items(lambda o: o.observed_at > advanced)
    assert check_values(env, second, later) >= len(PLATFORMS) * 2 * 2
    for platform, victim in deleted.items():
        assert not env.observed(platform, content_id=victim, after=deleted_at), platform
    was = {(o.account_id, o.content_id, o.metric): o.value for o in first}
    now = {(o.account_id, o.content_id, o.metric): o.value for o in second}
    assert any(now[k] != v for k, v in was.items() if k in now), "the counters should move"


# --- rate limits under load -----------------------------------------------------------------

# Low limits, the same in the simulators and in the settings: a credential may make 5 requests
# in any 10 s (Meta's business-use-case window, TikTok's and X's per endpoint), a Meta app 40.
LOW_LIMITS = SimConfig(accounts=30, seed=3, meta_buc_limit=5, meta_buc_window=10.0,
                       meta_app_limit=40, meta_app_window=10.0, youtube_quota=300,
                       tiktok_limit=5, tiktok_window=10.0, x_limit=5, x_window=10.0)
LOW_SETTINGS = {
    "CREATORPULSE_ACCOUNT_RATE_LIMITS": "instagram=5/10s,facebook=5/10s,youtube=5/10s,"
                                        "tiktok=5/10s,x=5/10s",
    # YouTube, TikTok and X enforce no app-wide rate in the simulator (YouTube: its quota).
    "CREATORPULSE_APP_RATE_LIMITS": "instagram=40/10s,facebook=40/10s,youtube=1000/10s,"
                                    "tiktok=1000/10s,x=1000/10s",
    "CREATORPULSE_YOUTUBE_DAILY_QUOTA": "300",
}


def test_under_load_no_request_goes_over_a_limit_and_polls_still_complete(
    make_env: Callable[..., Env],
) -> None:
    """150 accounts polled every second by two workers, limits far below that demand."""
    env = make_env(LOW_LIMITS, RealClock(), **LOW_SETTINGS)
    accounts = [env.register(p, i) for p in PLATFORMS for i in range(LOW_LIMITS.accounts)]
    env.start_worker("w1")
    env.start_worker("w2")
    started = time.monotonic()

    def stats() -> dict[str, Any]:
        return {p: env.sim_get(p, "/_sim/stats") for p in PLATFORMS}

    def polled() -> dict[str, int]:
        states = registry.poll_states(env.conn, accounts)
        done = {p: 0 for p in PLATFORMS}
        for account_id, state in states.items():
            if state.last_success_at is not None:
                done[env.accounts[account_id][0]] += 1
        return done

    # Long enough for two full windows of every limit, with every credential saturated.
    wait_for(lambda: time.monotonic() - started > 25
             and all(n >= LOW_LIMITS.accounts // 2 for n in polled().values()), 90,
             "half of each platform's accounts to be polled successfully")
    seen = stats()
    for platform, answer in seen.items():
        assert answer["requests"] > LOW_LIMITS.accounts, (platform, answer["requests"])
        assert answer["over_limit"] == 0, (platform, answer["apps"])
        assert all(c["over_limit"] == 0 for c in answer["credentials"].values()), platform
    # The limits bound the load: no credential made more than its share of the run.
    elapsed = time.monotonic() - started
    for platform in ("instagram", "facebook", "tiktok", "x"):
        busiest = max(c["requests"] for c in seen[platform]["credentials"].values())
        per_endpoint = 2 if platform in ("tiktok", "x") else 1  # their windows are per endpoint
        assert busiest <= per_endpoint * 5 * (elapsed / 10 + 1), (platform, busiest)
    for platform in PLATFORMS:
        assert env.observed(platform), platform


# --- a token expiring mid-run: TikTok's rotating refresh --------------------------------------


def test_an_expiring_token_is_refreshed_once_and_polling_goes_on(
    make_env: Callable[..., Env],
) -> None:
    ttl = 6.0  # seconds: refreshed at half its life, so several times in the run
    config = SimConfig(accounts=3, seed=5, token_ttl={**SimConfig().token_ttl, "tiktok": ttl})
    env = make_env(config, RealClock())
    store = env.sims.apps["tiktok"].tokens
    outcomes: list[bool] = []
    original = store.refresh

    def counted(token: str | None, now: float, *, rotate: bool) -> tuple[str, str] | None:
        answer = original(token, now, rotate=rotate)
        outcomes.append(answer is not None)
        return answer

    store.refresh = counted  # type: ignore[method-assign]
    accounts = [env.register("tiktok", i) for i in (0, 1)]
    env.start_worker("w1")
    env.start_worker("w2")  # two workers: the refresh must still happen once per expiry

    wait_for(lambda: outcomes.count(True) >= 4, 30, "four refreshes")
    # A token the platform expires before its time: refused, refreshed, the poll goes on.
    forced = datetime.now(UTC)
    _, _, external = env.accounts[accounts[0]]
    assert env.sim_post("tiktok", "/_sim/tokens/expire", {"account": external})["expired"] >= 1
    wait_for(lambda: all(env.observed("tiktok", account_id=a, after=forced + timedelta(
        seconds=ttl)) for a in accounts), 30, "observations of both accounts after the expiry")

    assert outcomes and all(outcomes), "a refresh token was refused (used twice?)"
    assert outcomes.count(True) >= 5
    states = registry.poll_states(env.conn, accounts)
    assert all(states[a].consecutive_failures == 0 for a in accounts), states
    assert all(states[a].last_error is None for a in accounts), states
    creds = registry.load_credentials(env.conn, env.vault, accounts[0])
    assert creds is not None and creds.refresh_token is not None
    assert creds.refresh_token.reveal() != env.sims.apps["tiktok"].account_row(0)["refresh_token"]


# --- a webhook: simulator -> receiver -> hint -> the worker polls at once ---------------------


class Receiver:
    """The webhook receiver app under uvicorn in a thread, publishing to the given topics."""

    def __init__(self, settings: Settings, db: psycopg.Connection, topics: Mapping[str, str],
                 table: str) -> None:
        db.execute(f"CREATE TABLE {table} (LIKE webhook_deliveries INCLUDING ALL)")
        self.table, self.db = table, db
        config = receiver_config(settings)
        config = replace(config, hints_topic=topics["hints"], content_topic=topics["content"],
                         dlq_topic=topics["dlq"])
        self.pool = ConnectionPool(settings.database_dsn.reveal(), min_size=1, max_size=4,
                                   open=True, name="e2e-webhooks")
        self.kafka = KafkaPublisher(Producer(producer_config(settings.kafka_bootstrap, 10.0)))
        app = build_app(config, PostgresDedup(self.pool, table), self.kafka)
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0,
                                                    log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_until(lambda: self.server.started or None, part="webhooks",
                   what="uvicorn to start", timeout=15)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        self.kafka.close()
        self.pool.close()
        self.db.execute(f"DROP TABLE {self.table}")


def test_a_webhook_makes_the_worker_poll_the_account_at_once(
    make_env: Callable[..., Env], settings: Settings, admin: AdminClient,
    db: psycopg.Connection, unique: str,
) -> None:
    content_topic = f"e2e.content.{unique}"
    for future in admin.create_topics([NewTopic(content_topic, num_partitions=1,
                                                replication_factor=1)]).values():
        future.result(30)
    receiver: Receiver | None = None
    try:
        # The topics are the Env's, known only once it is made: the receiver starts first on
        # names fixed here, and the Env takes the same suffix.
        suffix = uuid.uuid4().hex[:10]
        hints = f"e2e.hints.{suffix}"
        receiver = Receiver(settings, db, {"hints": hints, "content": content_topic,
                                           "dlq": f"e2e.dlq.{suffix}"},
                            f"webhook_deliveries_{unique}")
        config = SimConfig(accounts=3, seed=9, webhooks_url=receiver.url)
        env = make_env(config, RealClock(), CREATORPULSE_POLL_FRESH_INTERVAL="1h",
                       CREATORPULSE_POLL_MAX_INTERVAL="6h", suffix=suffix)
        assert env.topics.hints == hints
        account = env.register("tiktok", 0, interval=timedelta(hours=1))
        env.start_worker("w1")
        wait_for(lambda: env.observed("tiktok", account_id=account), 30, "the first poll")
        state = wait_for(lambda: registry.poll_states(env.conn, [account]).get(account),
                         10, "the first poll recorded")
        assert state.next_poll_at is not None
        assert state.next_poll_at - datetime.now(UTC) > timedelta(minutes=30)
        sent_at = datetime.now(UTC)
        _, _, external = env.accounts[account]
        answer = env.sim_post("tiktok", "/_sim/webhooks", {"account": external})
        assert answer["deliveries"], answer
        hinted = wait_for(lambda: env.observed("tiktok", account_id=account, after=sent_at),
                          10, "a poll of the hinted account")
        assert min(o.observed_at for o in hinted) - sent_at < timedelta(seconds=10)
    finally:
        if receiver is not None:
            receiver.close()
        for future in admin.delete_topics([content_topic]).values():
            future.result(30)
