"""Live aggregates: one Kafka reader per server process, fan-out shared between subscribers.

:class:`LiveHub` is started and stopped by the app's lifespan. A :class:`KafkaAggregates` thread
reads ``engagement.aggregates`` from the latest offsets (manual assignment, no consumer group:
every server process needs every record), parses each record once into an
:class:`~creatorpulse.aggregate.Aggregate` and hands batches to the event loop. For each batch
the hub

1. resolves each influencer's tenant once (:class:`TenantDirectory`, a small TTL cache over the
   database), and drops aggregates of unknown influencers (and erasure tombstones);
2. invalidates the read-through cache of every influencer in the batch;
3. for every distinct :class:`MetricKey` (the subscription's parameters plus its tenant), picks
   the matching aggregates once and hands the same tuple to all subscribers of that key;
4. for every distinct :class:`LeaderboardKey` touched by the batch, recomputes the leaderboard
   once (coalescing while a computation runs) and pushes it only when it changed.

Subscribers never block each other: each has a bounded queue. A metric subscriber whose queue is
full is dropped (its stream ends with :class:`SlowSubscriber`); a leaderboard subscriber only
ever holds the newest leaderboard. One token subject holds at most
``CREATORPULSE_API_MAX_SUBSCRIPTIONS`` subscriptions (:class:`TooManySubscriptions`). The
matching, keying and percentile helpers are pure and are tested without Kafka.

Errors: :class:`SlowSubscriber` and :class:`TooManySubscriptions` are expected API failures
(:class:`~creatorpulse.graphql.errors.ApiError`, with a code); :class:`NotFound` is the API's
``NotFoundError``. A Kafka outage is not an error of the hub: the reader retries until it can
read.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Hashable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from creatorpulse.aggregate import Aggregate, AggregateError
from creatorpulse.graphql.errors import ApiError, NotFoundError
from creatorpulse.topics import AGGREGATES

if TYPE_CHECKING:
    from confluent_kafka import Consumer
    from psycopg_pool import AsyncConnectionPool

    from creatorpulse.graphql.context import Services
    from creatorpulse.settings import Settings

log = logging.getLogger(__name__)

P = TypeVar("P")
K = TypeVar("K", bound=Hashable)

ALL_PLATFORMS = "all"


class SlowSubscriber(ApiError):
    """The subscriber fell too far behind and was dropped so that others are not held up."""

    code = "SLOW_SUBSCRIBER"


class TokenExpired(Exception):
    """The subscriber's token expired: its socket is to be closed (4403)."""


class TooManySubscriptions(ApiError):
    """The caller already holds as many live subscriptions as it may."""

    code = "TOO_MANY_SUBSCRIPTIONS"


class NotFound(NotFoundError):
    """An influencer named in a subscription does not exist in the caller's tenant."""


# --- subscription keys: what a subscriber asked for, and what matches it (pure) -------------


@dataclass(frozen=True, slots=True)
class MetricKey:
    """The parameters of a ``metricUpdates`` subscription; ``None`` means "any"."""

    tenant_id: str
    influencer_ids: frozenset[str] | None = None
    platforms: frozenset[str] | None = None
    metrics: frozenset[str] | None = None
    window: str | None = None

    @classmethod
    def of(
        cls,
        tenant_id: str,
        *,
        influencer_ids: Iterable[str] | None = None,
        platforms: Iterable[str] | None = None,
        metrics: Iterable[str] | None = None,
        window: str | None = None,
    ) -> MetricKey:
        """A key in canonical form: the order and repetition of list items do not matter."""

        def norm(items: Iterable[str] | None) -> frozenset[str] | None:
            return None if items is None else frozenset(items)

        return cls(tenant_id, norm(influencer_ids), norm(platforms), norm(metrics), window)

    def matches(self, aggregate: Aggregate) -> bool:
        """Whether ``aggregate`` is one this subscription wants (the tenant is checked apart)."""
        return (
            (self.influencer_ids is None or aggregate.influencer_id in self.influencer_ids)
            and (self.platforms is None or aggregate.platform in self.platforms)
            and (self.metrics is None or aggregate.metric in self.metrics)
            and (self.window is None or aggregate.window_name == self.window)
        )


@dataclass(frozen=True, slots=True)
class LeaderboardKey:
    """The parameters of a ``leaderboardUpdates`` subscription."""

    tenant_id: str
    metric: str
    window: str
    platform: str = ALL_PLATFORMS
    first: int = 10

    def touched_by(self, aggregate: Aggregate) -> bool:
        """Whether ``aggregate`` can change this leaderboard."""
        return (
            aggregate.metric == self.metric
            and aggregate.window_name == self.window
            and aggregate.platform == self.platform
        )


def match_batch(key: MetricKey, batch: Sequence[Aggregate]) -> tuple[Aggregate, ...]:
    """The aggregates of ``batch`` (already of ``key``'s tenant) that ``key`` wants, in order."""
    return tuple(a for a in batch if key.matches(a))


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by the nearest-rank method; NaN for no values."""
    if not values:
        return math.nan
    if not 0 <= q <= 100:
        msg = f"percentile must be between 0 and 100, got {q}"
        raise ValueError(msg)
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


# --- subscribers and channels -----------------------------------------------------------------

_CLOSED = object()


class Subscriber(Generic[P]):
    """One subscriber's bounded queue of payloads, read with ``async for``.

    With ``latest_only`` the queue holds one payload and a new one replaces an unread one
    (a leaderboard is a state, only its newest value matters); otherwise a full queue drops the
    subscriber, whose iteration then raises :class:`SlowSubscriber`.
    """

    def __init__(self, maxsize: int, *, latest_only: bool = False) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue(1 if latest_only else maxsize)
        self._latest_only = latest_only
        self._error: SlowSubscriber | None = None
        self._closed = False
        self._expired = False

    @property
    def dropped(self) -> bool:
        return self._error is not None

    def offer(self, payload: P) -> bool:
        """Queue ``payload`` without waiting; False when the subscriber is (now) dropped."""
        if self._closed:
            return False
        try:
            self._queue.put_nowait(payload)
        except asyncio.QueueFull:
            if not self._latest_only:
                self._error = SlowSubscriber("the subscriber fell behind and was dropped")
                self._closed = True
                return False
            self._queue.get_nowait()
            self._queue.put_nowait(payload)
        return True

    def expire_at(self, when: float) -> asyncio.TimerHandle:
        """End the iteration with :class:`TokenExpired` at loop time ``when`` (one timer for the
        whole subscription, where a timeout around every read would cost each event)."""
        return asyncio.get_running_loop().call_at(when, self._expire)

    def _expire(self) -> None:
        if self._closed:
            return
        self._closed = self._expired = True
        while not self._queue.empty():  # nothing more is delivered on an expired token
            self._queue.get_nowait()
        self._queue.put_nowait(_CLOSED)

    def close(self) -> None:
        """End the iteration after what is already queued (the hub is stopping)."""
        if self._closed:
            return
        self._closed = True
        if self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait(_CLOSED)

    def __aiter__(self) -> Subscriber[P]:
        return self

    async def __anext__(self) -> P:
        if self._error is not None:
            raise self._error
        item = await self._queue.get()
        if item is _CLOSED:
            if self._expired:
                raise TokenExpired("the token has expired")
            raise StopAsyncIteration
        return cast("P", item)


@dataclass(eq=False)
class Channel(Generic[K, P]):
    """The subscribers of one distinct key; the payload for the key is computed once for all."""

    key: K
    subscribers: set[Subscriber[P]] = field(default_factory=set)
    last: P | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    refreshing: asyncio.Task[None] | None = None
    dirty: bool = False

    def push(self, payload: P) -> int:
        """Offer ``payload`` to every subscriber; returns how many were dropped as too slow."""
        dropped = [s for s in self.subscribers if not s.offer(payload)]
        for s in dropped:
            self.subscribers.discard(s)
        return len(dropped)


# --- tenants of influencers ---------------------------------------------------------------


TenantFetch = Callable[[Collection[str]], Awaitable[Mapping[str, str]]]
"""Given influencer ids, their tenant ids (ids that do not exist are left out)."""


class TenantDirectory:
    """Influencer -> tenant, through ``fetch`` with a small TTL cache.

    Unknown ids are remembered for a shorter time (``unknown_ttl``), so that a new influencer
    is found soon after it is added.
    """

    def __init__(
        self,
        fetch: TenantFetch,
        *,
        ttl: float = 60.0,
        unknown_ttl: float = 5.0,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._ttl = ttl
        self._unknown_ttl = unknown_ttl
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, str | None]] = OrderedDict()
        self.fetches = 0

    async def lookup(self, influencer_ids: Collection[str]) -> dict[str, str]:
        """The tenant of each known id; unknown ids are absent from the result."""
        now = self._clock()
        found: dict[str, str] = {}
        missing = []
        for influencer_id in set(influencer_ids):
            entry = self._entries.get(influencer_id)
            if entry is None or entry[0] <= now:
                missing.append(influencer_id)
            elif entry[1] is not None:
                found[influencer_id] = entry[1]
        if missing:
            self.fetches += 1
            fetched = await self._fetch(missing)
            now = self._clock()
            for influencer_id in missing:
                tenant = fetched.get(influencer_id)
                ttl = self._ttl if tenant is not None else self._unknown_ttl
                self._entries[influencer_id] = (now + ttl, tenant)
                self._entries.move_to_end(influencer_id)
                if tenant is not None:
                    found[influencer_id] = tenant
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return found

    def forget(self, influencer_id: str) -> None:
        """Drop one id from the cache (the influencer was created, moved or erased)."""
        self._entries.pop(influencer_id, None)


def pg_tenants(pool: AsyncConnectionPool[Any]) -> TenantFetch:
    """A :data:`TenantFetch` reading the ``influencers`` table through ``pool``."""

    async def fetch(influencer_ids: Collection[str]) -> Mapping[str, str]:
        async with pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT id, tenant_id FROM influencers WHERE id = ANY(%s)", [list(influencer_ids)]
            )
            return {row[0]: row[1] for row in await cursor.fetchall()}

    return fetch


# --- the hub --------------------------------------------------------------------------------


@dataclass
class HubStats:
    """Counters for tests, logs and the benchmark."""

    batches: int = 0
    aggregates: int = 0
    unknown_influencers: int = 0
    metric_payloads: int = 0
    leaderboard_computations: int = 0
    leaderboard_pushes: int = 0
    dropped_subscribers: int = 0
    invalidation_errors: int = 0


Leaderboard = Callable[[LeaderboardKey], Awaitable[Any]]
"""Computes the current leaderboard for a key; the result must compare with ``==``."""

Invalidate = Callable[[str, str | None], Awaitable[Any]]
"""Forgets the cached answers that one influencer's data may change (influencer id, tenant id
when known)."""

QUEUE_SIZE = 256
"""Batches a metric subscriber may have unread before it is dropped."""


async def _no_tenants(influencer_ids: Collection[str]) -> Mapping[str, str]:
    return {}


async def _no_leaderboard(key: LeaderboardKey) -> tuple[Any, ...]:
    return ()


def pg_leaderboard(pool: AsyncConnectionPool[Any]) -> Leaderboard:
    """Leaderboards from the service layer (:func:`creatorpulse.graphql.metrics.leaderboard`),
    as tuples of rows so that "changed" is a plain comparison."""
    from creatorpulse.graphql import metrics

    async def compute(key: LeaderboardKey) -> tuple[Any, ...]:
        async with pool.connection() as conn:
            rows = await metrics.leaderboard(conn, key.tenant_id, metric=key.metric,
                                             window=key.window, platform=key.platform,
                                             first=key.first)
        return tuple(rows)

    return compute


def create_hub(settings: Settings, *, topic: str = AGGREGATES.name) -> LiveHub:
    """The hub of one server process, reading ``topic`` (the aggregates topic by default)."""

    def consumer() -> Consumer:
        from confluent_kafka import Consumer

        return Consumer(consumer_config(settings.kafka_bootstrap))

    return LiveHub(source=KafkaAggregates(consumer, topic),
                   max_per_owner=settings.api_max_subscriptions)


class LiveHub:
    """Routes fresh aggregates to subscribers, sharing every computation per distinct key.

    ``source`` (normally :class:`KafkaAggregates`) is started by :meth:`start`; tests can leave
    it out and call :meth:`publish` directly.
    """

    def __init__(
        self,
        *,
        tenants: TenantDirectory | None = None,
        leaderboard: Leaderboard | None = None,
        invalidate: Invalidate | None = None,
        source: KafkaAggregates | None = None,
        queue_size: int = QUEUE_SIZE,
        max_per_owner: int | None = None,
    ) -> None:
        self.tenants = tenants or TenantDirectory(_no_tenants)
        self._leaderboard = leaderboard or _no_leaderboard
        self._invalidate = invalidate
        self._source = source
        self._queue_size = queue_size
        self._max_per_owner = max_per_owner
        self._held: dict[tuple[str, str], int] = {}
        self._metrics: dict[str, dict[MetricKey, Channel[MetricKey, tuple[Aggregate, ...]]]] = {}
        self._boards: dict[str, dict[LeaderboardKey, Channel[LeaderboardKey, Any]]] = {}
        self._inbox: asyncio.Queue[list[Aggregate]] | None = None
        self._pump: asyncio.Task[None] | None = None
        self.stats = HubStats()

    # -- lifecycle --

    def bind(self, services: Services) -> None:
        """Use the app's clients: tenants and leaderboards from PostgreSQL, the Redis cache."""
        self.tenants = TenantDirectory(pg_tenants(services.pool))
        self._leaderboard = pg_leaderboard(services.pool)
        self._invalidate = services.cache.invalidate

    async def start(self, services: Services | None = None) -> None:
        """Bind to ``services`` (the app's lifespan passes them), then start reading the
        aggregates; returns once the reader is positioned at the topic's end (or, when Kafka
        cannot be reached, once the reader has started retrying in the background)."""
        if services is not None:
            self.bind(services)
        if self._source is None:
            return
        loop = asyncio.get_running_loop()
        self._inbox = asyncio.Queue(maxsize=64)
        inbox = self._inbox

        def deliver(batch: list[Aggregate]) -> bool:
            # Called in the reader thread: wait for room (back-pressure onto Kafka) unless the
            # hub is stopping.
            future = asyncio.run_coroutine_threadsafe(inbox.put(batch), loop)
            while True:
                try:
                    future.result(timeout=0.5)
                except TimeoutError:
                    if self._source is None or self._source.stopping:
                        future.cancel()
                        return False
                else:
                    return True

        await asyncio.to_thread(self._source.start, deliver)
        self._pump = asyncio.create_task(self._run_pump(), name="live-hub-pump")

    async def stop(self) -> None:
        """Stop the reader and end every subscription."""
        if self._source is not None:
            self._source.request_stop()
            await asyncio.to_thread(self._source.join)
        if self._pump is not None:
            self._pump.cancel()
            await asyncio.gather(self._pump, return_exceptions=True)
        for channel in self._channels():
            if channel.refreshing is not None:
                channel.refreshing.cancel()
            for subscriber in channel.subscribers:
                subscriber.close()

    async def _run_pump(self) -> None:
        assert self._inbox is not None
        while True:
            batch = await self._inbox.get()
            # Merge what queued up meanwhile: one routing pass for all of it.
            while not self._inbox.empty():
                batch.extend(self._inbox.get_nowait())
            try:
                await self.publish(batch)
            except Exception:
                log.exception("live: could not route a batch of %d aggregates", len(batch))

    # -- subscribing --

    def _channels(self) -> list[Channel[Any, Any]]:
        return [
            *(ch for channels in self._metrics.values() for ch in channels.values()),
            *(ch for channels in self._boards.values() for ch in channels.values()),
        ]

    def subscriber_count(self) -> int:
        return sum(len(ch.subscribers) for ch in self._channels())

    def channel_count(self) -> int:
        return len(self._channels())

    async def check_influencers(self, tenant_id: str, influencer_ids: Collection[str]) -> None:
        """Raise :class:`NotFound` unless every id is an influencer of ``tenant_id``."""
        tenants = await self.tenants.lookup(influencer_ids)
        foreign = sorted(i for i in set(influencer_ids) if tenants.get(i) != tenant_id)
        if foreign:
            # Another tenant's influencer is reported exactly like one that does not exist.
            msg = f"no influencer {foreign[0]!r}"
            raise NotFound(msg)

    @contextmanager
    def _hold(self, tenant_id: str, owner: str | None) -> Iterator[None]:
        """Count one subscription of ``owner`` (a token subject) against its cap."""
        if owner is None or self._max_per_owner is None:
            yield
            return
        who = (tenant_id, owner)
        if self._held.get(who, 0) >= self._max_per_owner:
            msg = f"at most {self._max_per_owner} live subscriptions at once"
            raise TooManySubscriptions(msg)
        self._held[who] = self._held.get(who, 0) + 1
        try:
            yield
        finally:
            self._held[who] -= 1
            if not self._held[who]:
                del self._held[who]

    @asynccontextmanager
    async def metric_updates(
        self, key: MetricKey, owner: str | None = None
    ) -> AsyncIterator[Subscriber[tuple[Aggregate, ...]]]:
        """Subscribe to the aggregates ``key`` wants; each batch arrives as one tuple.

        ``owner`` (the token's subject) is counted against the per-owner cap."""
        with self._hold(key.tenant_id, owner):
            async with self._metric_updates(key) as subscriber:
                yield subscriber

    @asynccontextmanager
    async def _metric_updates(
        self, key: MetricKey
    ) -> AsyncIterator[Subscriber[tuple[Aggregate, ...]]]:
        if key.influencer_ids:
            await self.check_influencers(key.tenant_id, key.influencer_ids)
        channels = self._metrics.setdefault(key.tenant_id, {})
        channel = channels.get(key)
        if channel is None:
            channel = channels[key] = Channel(key)
        subscriber: Subscriber[tuple[Aggregate, ...]] = Subscriber(self._queue_size)
        channel.subscribers.add(subscriber)
        try:
            yield subscriber
        finally:
            self._leave(self._metrics, key, channel, subscriber)

    @asynccontextmanager
    async def leaderboard_updates(
        self, key: LeaderboardKey, owner: str | None = None
    ) -> AsyncIterator[Subscriber[Any]]:
        """Subscribe to a leaderboard: its current value first, then each change."""
        with self._hold(key.tenant_id, owner):
            async with self._leaderboard_updates(key) as subscriber:
                yield subscriber

    @asynccontextmanager
    async def _leaderboard_updates(self, key: LeaderboardKey) -> AsyncIterator[Subscriber[Any]]:
        channels = self._boards.setdefault(key.tenant_id, {})
        channel = channels.get(key)
        if channel is None:
            channel = channels[key] = Channel(key)
            channel.refreshing = asyncio.create_task(self._refresh(channel))
        subscriber: Subscriber[Any] = Subscriber(1, latest_only=True)
        channel.subscribers.add(subscriber)
        try:
            # Every subscriber that arrives while the first value is computed shares it.
            await channel.ready.wait()
            if channel.last is not None:
                subscriber.offer(channel.last)
            yield subscriber
        finally:
            self._leave(self._boards, key, channel, subscriber)

    def _leave(
        self,
        registry: dict[str, dict[Any, Channel[Any, Any]]],
        key: Any,
        channel: Channel[Any, Any],
        subscriber: Subscriber[Any],
    ) -> None:
        channel.subscribers.discard(subscriber)
        if channel.subscribers:
            return
        channels = registry.get(key.tenant_id, {})
        if channels.get(key) is channel:
            del channels[key]
            if not channels:
                registry.pop(key.tenant_id, None)
        if channel.refreshing is not None and not channel.refreshing.done():
            channel.refreshing.cancel()

    # -- routing --

    async def publish(self, batch: Sequence[Aggregate]) -> None:
        """Route one batch of fresh aggregates (called by the reader's pump, or by tests)."""
        self.stats.batches += 1
        self.stats.aggregates += len(batch)
        ids = {a.influencer_id for a in batch}
        tenants = await self.tenants.lookup(ids)
        if self._invalidate is not None:
            await self._invalidate_all({i: tenants.get(i) for i in ids})
        by_tenant: dict[str, list[Aggregate]] = {}
        for aggregate in batch:
            tenant = tenants.get(aggregate.influencer_id)
            if tenant is None:
                self.stats.unknown_influencers += 1
                continue
            by_tenant.setdefault(tenant, []).append(aggregate)
        for tenant, aggregates in by_tenant.items():
            for key, channel in list(self._metrics.get(tenant, {}).items()):
                payload = match_batch(key, aggregates)
                self.stats.metric_payloads += 1
                if payload:
                    self.stats.dropped_subscribers += channel.push(payload)
            for board_key, board in list(self._boards.get(tenant, {}).items()):
                if any(board_key.touched_by(a) for a in aggregates):
                    self._request_refresh(board)

    async def _invalidate_all(self, tenants: Mapping[str, str | None]) -> None:
        assert self._invalidate is not None
        results = await asyncio.gather(
            *(self._invalidate(i, t) for i, t in tenants.items()), return_exceptions=True
        )
        failures = [r for r in results if isinstance(r, Exception)]
        if failures:
            # A stale cache entry expires by itself; live delivery must not wait for Redis.
            self.stats.invalidation_errors += len(failures)
            log.warning("live: cache invalidation failed for %d influencers: %s",
                        len(failures), failures[0])

    def _request_refresh(self, channel: Channel[LeaderboardKey, Any]) -> None:
        if channel.refreshing is not None and not channel.refreshing.done():
            channel.dirty = True  # recompute once more when the running computation ends
            return
        channel.refreshing = asyncio.create_task(self._refresh(channel))

    async def _refresh(self, channel: Channel[LeaderboardKey, Any]) -> None:
        while True:
            channel.dirty = False
            try:
                board = await self._leaderboard(channel.key)
            except Exception:
                log.exception("live: leaderboard %s could not be computed", channel.key)
                channel.ready.set()
                return
            self.stats.leaderboard_computations += 1
            first = not channel.ready.is_set()
            if first or board != channel.last:
                channel.last = board
                if not first:
                    self.stats.leaderboard_pushes += 1
                    channel.push(board)
            channel.ready.set()
            if not channel.dirty:
                return


# --- reading the topic --------------------------------------------------------------------


def consumer_config(bootstrap_servers: str) -> dict[str, Any]:
    """A consumer that reads every partition itself: a group id unique to this process and
    no commits (positions are taken from the end at start, never restored)."""
    return {
        "bootstrap.servers": bootstrap_servers,
        "group.id": f"creatorpulse-api-live-{socket.gethostname()}-{os.getpid()}-"
        f"{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "latest",
        "fetch.wait.max.ms": 50,
        "client.id": "creatorpulse-api-live",
    }


class KafkaAggregates:
    """A thread that reads the aggregates topic from its current end and delivers batches."""

    def __init__(
        self,
        consumer_factory: Callable[[], Consumer],
        topic: str,
        *,
        max_batch: int = 1000,
        poll_timeout: float = 0.2,
        retry_interval: float = 5.0,
    ) -> None:
        self._factory = consumer_factory
        self.topic = topic
        self._max_batch = max_batch
        self._poll_timeout = poll_timeout
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.positioned = threading.Event()
        self.retry_interval = retry_interval
        self.parse_errors = 0
        self.tombstones = 0

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def start(self, deliver: Callable[[list[Aggregate]], bool]) -> None:
        """Assign every partition at its end offset and read in a thread (blocking call).

        When Kafka or the topic is not there yet, the API still starts: the thread retries
        every ``retry_interval`` seconds and reads from the end as of the moment it succeeds.
        """
        consumer = self._factory()
        try:
            positioned = self._assign(consumer, timeout=10)
        except Exception as exc:  # KafkaException and timeouts: keep trying in the thread
            log.warning("live: cannot read %s yet (%s); retrying every %.0f s", self.topic, exc,
                        self.retry_interval)
            positioned = False
        self._thread = threading.Thread(target=self._run, args=(consumer, deliver, positioned),
                                        name="live-aggregates", daemon=True)
        self._thread.start()

    def _assign(self, consumer: Consumer, timeout: float) -> bool:
        from confluent_kafka import TopicPartition

        metadata = consumer.list_topics(self.topic, timeout=timeout)
        topic = metadata.topics.get(self.topic)
        if topic is None or topic.error is not None or not topic.partitions:
            log.warning("live: topic %s is not available", self.topic)
            return False
        assignment = []
        for partition in sorted(topic.partitions):
            _, high = consumer.get_watermark_offsets(
                TopicPartition(self.topic, partition), timeout=timeout
            )
            assignment.append(TopicPartition(self.topic, partition, high))
        consumer.assign(assignment)
        self.positioned.set()
        log.info("live: reading %s from its end (%d partitions)", self.topic, len(assignment))
        return True

    def request_stop(self) -> None:
        self._stop.set()

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()

    def _run(self, consumer: Consumer, deliver: Callable[[list[Aggregate]], bool],
             positioned: bool) -> None:
        try:
            while not positioned and not self._stop.wait(self.retry_interval):
                try:
                    positioned = self._assign(consumer, timeout=5)
                except Exception as exc:
                    log.warning("live: cannot read %s yet: %s", self.topic, exc)
            while not self._stop.is_set():
                first = consumer.poll(self._poll_timeout)
                if first is None:
                    continue
                messages = [first, *consumer.consume(self._max_batch - 1, timeout=0)]
                batch = self._parse(messages)
                if batch and not deliver(batch):
                    return
        except Exception:
            log.exception("live: the aggregates reader stopped")
        finally:
            consumer.close()

    def _parse(self, messages: Sequence[Any]) -> list[Aggregate]:
        batch = []
        for message in messages:
            error = message.error()
            if error is not None:
                log.warning("live: %s [%s]: %s", message.topic(), message.partition(), error)
                continue
            value = message.value()
            if value is None:
                # An erasure's tombstone (the influencer's id as key): nothing to push.
                self.tombstones += 1
                continue
            try:
                batch.append(Aggregate.from_json(value))
            except AggregateError as exc:
                self.parse_errors += 1
                log.warning("live: skipping a malformed aggregate at %s [%d] offset %d: %s",
                            message.topic(), message.partition(), message.offset(), exc)
        return batch
