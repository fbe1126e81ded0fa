"""The live hub without Kafka: record parsing, matching, tenant scoping and shared fan-out."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Collection, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from creatorpulse.aggregate import Aggregate, AggregateError
from creatorpulse.graphql.live import (
    KafkaAggregates,
    LeaderboardKey,
    LiveHub,
    MetricKey,
    NotFound,
    SlowSubscriber,
    Subscriber,
    TenantDirectory,
    TooManySubscriptions,
    match_batch,
    percentile,
)
from creatorpulse.observation import Provenance
from tests.waiting import until

pytestmark = pytest.mark.anyio

END = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
TENANTS = {"inf-a1": "tenant-a", "inf-a2": "tenant-a", "inf-b1": "tenant-b"}


def agg(influencer: str = "inf-a1", *, platform: str = "instagram", metric: str = "likes",
        window: str = "1h", gain: int = 5, end: datetime = END) -> Aggregate:
    return Aggregate(influencer, platform, metric, window, end, end - timedelta(hours=1), gain,
                     100, 100 + gain, Provenance.MEASURED)


class FakeTenants:
    def __init__(self, mapping: Mapping[str, str] = TENANTS) -> None:
        self.mapping = dict(mapping)
        self.calls: list[set[str]] = []

    async def __call__(self, ids: Collection[str]) -> Mapping[str, str]:
        self.calls.append(set(ids))
        return {i: self.mapping[i] for i in ids if i in self.mapping}


class Boards:
    """A leaderboard computed from a dict of gains; counts its computations."""

    def __init__(self) -> None:
        self.gains: dict[str, int] = {"inf-a1": 1, "inf-a2": 2}
        self.calls = 0
        self.gate: asyncio.Event | None = None

    async def __call__(self, key: LeaderboardKey) -> tuple[tuple[str, int], ...]:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        ranked = sorted(((i, g) for i, g in self.gains.items() if TENANTS[i] == key.tenant_id),
                        key=lambda item: -item[1])
        return tuple(ranked[: key.first])


def hub(boards: Boards | None = None, **kwargs: Any) -> LiveHub:
    return LiveHub(tenants=TenantDirectory(FakeTenants()), leaderboard=boards or Boards(),
                   **kwargs)


async def next_of(subscriber: Subscriber[Any]) -> Any:
    return await asyncio.wait_for(anext(subscriber), 2)


def nothing_queued(subscriber: Subscriber[Any]) -> bool:
    return subscriber._queue.empty()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --- the topic record ---


def test_aggregate_parses_the_jobs_json() -> None:
    payload = json.dumps({
        "influencer_id": "inf-1", "platform": "all", "metric": "likes", "window_name": "24h",
        "window_end": "2026-11-23T12:00:00", "window_start": "2026-11-22T12:00:00",
        "gain": -3, "value_at_start": None, "value_at_end": 40, "provenance": "rounded",
    })
    a = Aggregate.from_json(payload)
    assert a.window_end == datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    assert a.window_end.tzinfo is UTC
    assert (a.gain, a.value_at_start, a.value_at_end) == (-3, None, 40)
    assert a.provenance is Provenance.ROUNDED
    assert Aggregate.from_json(a.to_json()) == a
    assert a.key == b"inf-1"


def test_aggregate_fields_are_the_jobs_rolling_columns() -> None:
    from creatorpulse.jobs.engagement import ROLLING_COLUMNS

    names = [name for name, _ in ROLLING_COLUMNS]
    assert sorted(names) == sorted(Aggregate.__dataclass_fields__)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"gain": "5"}, "gain"),
        ({"gain": True}, "gain"),
        ({"window_end": "yesterday"}, "window_end"),
        ({"provenance": "guessed"}, "provenance"),
        ({"influencer_id": ""}, "influencer_id"),
        ({"metric": None}, "metric"),
    ],
)
def test_malformed_aggregates_name_the_field(change: dict[str, Any], field: str) -> None:
    data = json.loads(agg().to_json()) | change
    with pytest.raises(AggregateError, match=field):
        Aggregate.from_json(json.dumps(data))


def test_missing_fields_and_non_json_are_errors() -> None:
    data = json.loads(agg().to_json())
    del data["value_at_end"]
    with pytest.raises(AggregateError, match="value_at_end: missing"):
        Aggregate.from_json(json.dumps(data))
    with pytest.raises(AggregateError, match="not JSON"):
        Aggregate.from_json(b"\xff{")
    with pytest.raises(AggregateError, match="JSON object"):
        Aggregate.from_json("[1]")


class Message:
    """The part of confluent_kafka.Message the reader uses."""

    def __init__(self, value: bytes | None, offset: int = 0) -> None:
        self._value, self._offset = value, offset

    def value(self) -> bytes | None:
        return self._value

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return "engagement.aggregates"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset


def test_the_reader_parses_once_and_skips_tombstones_and_bad_records() -> None:
    reader = KafkaAggregates(lambda: None, "engagement.aggregates")  # type: ignore[arg-type,return-value]
    good = agg(gain=9)
    batch = reader._parse([Message(good.to_json()), Message(None, 1), Message(b"{oops", 2),
                           Message(b"null", 3)])
    assert batch == [good]
    assert (reader.tombstones, reader.parse_errors) == (1, 2)


class FakeConsumer:
    """A consumer whose broker is unreachable at first."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.assigned: list[Any] = []
        self.closed = False

    def list_topics(self, topic: str, timeout: float) -> Any:
        from types import SimpleNamespace

        if self.failures:
            self.failures -= 1
            raise RuntimeError("broker transport failure")
        return SimpleNamespace(topics={topic: SimpleNamespace(error=None, partitions={0: None,
                                                                                      1: None})})

    def get_watermark_offsets(self, partition: Any, timeout: float) -> tuple[int, int]:
        return 0, 40 + partition.partition

    def assign(self, partitions: list[Any]) -> None:
        self.assigned = partitions

    def poll(self, timeout: float) -> None:
        time.sleep(0.001)  # ok: a fake's poll, which blocks a moment when nothing arrives

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize("failures", [0, 2])
def test_the_reader_starts_at_the_end_and_retries_while_kafka_is_away(failures: int) -> None:
    consumer = FakeConsumer(failures)
    reader = KafkaAggregates(lambda: consumer, "engagement.aggregates",  # type: ignore[arg-type,return-value]
                             retry_interval=0.01)
    reader.start(lambda batch: True)
    try:
        assert reader.positioned.wait(5)
    finally:
        reader.request_stop()
        reader.join()
    assert [(p.partition, p.offset) for p in consumer.assigned] == [(0, 40), (1, 41)]
    assert consumer.closed


# --- matching and keys ---


def test_metric_key_is_canonical_and_matches_each_filter() -> None:
    a = MetricKey.of("t", influencer_ids=["x", "y", "x"], metrics=["likes"])
    b = MetricKey.of("t", influencer_ids=("y", "x"), metrics={"likes"})
    assert a == b and hash(a) == hash(b)
    key = MetricKey.of("t", influencer_ids=["inf-a1"], platforms=["instagram"],
                       metrics=["likes", "views"], window="1h")
    assert key.matches(agg())
    assert key.matches(agg(metric="views"))
    assert not key.matches(agg("inf-a2"))
    assert not key.matches(agg(platform="x"))
    assert not key.matches(agg(metric="shares"))
    assert not key.matches(agg(window="24h"))
    assert MetricKey.of("t").matches(agg(platform="all", window="7d"))
    # An empty list asks for nothing, unlike a missing one.
    assert not MetricKey.of("t", metrics=[]).matches(agg())


def test_match_batch_keeps_order() -> None:
    batch = [agg(gain=1), agg(metric="views"), agg(gain=3)]
    assert match_batch(MetricKey.of("t", metrics=["likes"]), batch) == (batch[0], batch[2])


def test_leaderboard_key_is_touched_by_its_metric_window_and_platform() -> None:
    key = LeaderboardKey("t", "likes", "24h", "all", 5)
    assert key.touched_by(agg(platform="all", window="24h"))
    assert not key.touched_by(agg(platform="instagram", window="24h"))
    assert not key.touched_by(agg(platform="all", window="1h"))


def test_percentile_by_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([7.0], 99) == 7
    assert percentile([3.0, 1.0, 2.0], 0) == 1
    assert percentile([], 50) != percentile([], 50)  # NaN
    with pytest.raises(ValueError, match="between 0 and 100"):
        percentile([1.0], 101)


# --- tenants ---


async def test_tenant_directory_caches_known_and_unknown_ids() -> None:
    now = [0.0]
    fetch = FakeTenants()
    directory = TenantDirectory(fetch, ttl=10, clock=lambda: now[0])
    assert await directory.lookup(["inf-a1", "nobody"]) == {"inf-a1": "tenant-a"}
    assert await directory.lookup(["inf-a1", "nobody"]) == {"inf-a1": "tenant-a"}
    assert len(fetch.calls) == 1
    now[0] = 6  # unknown ids are asked again sooner: the influencer may have been added
    await directory.lookup(["inf-a1", "nobody"])
    assert fetch.calls[-1] == {"nobody"}
    now[0] = 11
    await directory.lookup(["inf-a1"])
    assert fetch.calls[-1] == {"inf-a1"}
    assert len(fetch.calls) == 3


async def test_tenant_directory_is_bounded() -> None:
    directory = TenantDirectory(FakeTenants(), max_entries=2)
    await directory.lookup(["inf-a1"])
    await directory.lookup(["inf-a2"])
    await directory.lookup(["inf-b1"])
    assert list(directory._entries) == ["inf-a2", "inf-b1"]


# --- fan-out ---


async def test_subscribers_of_a_tenant_get_only_their_tenants_aggregates() -> None:
    h = hub()
    async with h.metric_updates(MetricKey.of("tenant-a")) as sub_a, \
            h.metric_updates(MetricKey.of("tenant-b")) as sub_b:
        await h.publish([agg("inf-a1"), agg("inf-b1"), agg("inf-a2"), agg("stranger")])
        got_a = await next_of(sub_a)
        got_b = await next_of(sub_b)
    assert [a.influencer_id for a in got_a] == ["inf-a1", "inf-a2"]
    assert [a.influencer_id for a in got_b] == ["inf-b1"]
    assert h.stats.unknown_influencers == 1


async def test_explicit_influencers_of_another_tenant_are_not_found() -> None:
    h = hub()
    with pytest.raises(NotFound, match="inf-b1"):
        async with h.metric_updates(MetricKey.of("tenant-a", influencer_ids=["inf-b1"])):
            pass
    with pytest.raises(NotFound, match="ghost"):
        async with h.metric_updates(MetricKey.of("tenant-a", influencer_ids=["inf-a1", "ghost"])):
            pass
    assert h.subscriber_count() == 0


async def test_same_parameters_share_one_payload_computation() -> None:
    h = hub()
    n = 50
    key = MetricKey.of("tenant-a", metrics=["likes"])
    async with contexts([h.metric_updates(key) for _ in range(n)]) as subs:
        assert h.channel_count() == 1
        await h.publish([agg(gain=1), agg(metric="views"), agg(gain=2)])
        payloads = [await next_of(s) for s in subs]
    assert h.stats.metric_payloads == 1
    assert all(p is payloads[0] for p in payloads)
    assert [a.gain for a in payloads[0]] == [1, 2]
    assert h.channel_count() == 0


async def test_distinct_parameters_compute_once_each() -> None:
    h = hub()
    keys = [MetricKey.of("tenant-a", metrics=["likes"]), MetricKey.of("tenant-a"),
            MetricKey.of("tenant-a", metrics=["likes"])]
    async with contexts([h.metric_updates(k) for k in keys]) as subs:
        await h.publish([agg()])
        for s in subs:
            assert len(await next_of(s)) == 1
    assert h.stats.metric_payloads == 2


async def test_a_slow_subscriber_is_dropped_without_holding_others() -> None:
    h = hub(queue_size=2)
    async with h.metric_updates(MetricKey.of("tenant-a")) as slow, \
            h.metric_updates(MetricKey.of("tenant-a", window="1h")) as fast:
        for gain in range(4):
            await h.publish([agg(gain=gain)])
            assert (await next_of(fast))[0].gain == gain
        with pytest.raises(SlowSubscriber):
            await next_of(slow)
    assert h.stats.dropped_subscribers == 1


async def test_cache_is_invalidated_once_per_influencer_per_batch() -> None:
    invalidated: list[tuple[str, str | None]] = []

    async def invalidate(influencer_id: str, tenant_id: str | None) -> None:
        invalidated.append((influencer_id, tenant_id))
        if influencer_id == "inf-a2":
            raise ConnectionError("redis is down")

    h = hub(invalidate=invalidate)
    async with h.metric_updates(MetricKey.of("tenant-a")) as sub:
        await h.publish([agg("inf-a1"), agg("inf-a1", metric="views"), agg("inf-a2"),
                         agg("stranger")])
        assert len(await next_of(sub)) == 3
    assert sorted(invalidated, key=str) == [
        ("inf-a1", "tenant-a"), ("inf-a2", "tenant-a"), ("stranger", None)]
    assert h.stats.invalidation_errors == 1


async def test_subscriptions_per_owner_are_capped() -> None:
    h = hub(max_per_owner=2)
    key = MetricKey.of("tenant-a")
    board = LeaderboardKey("tenant-a", "likes", "1h", "instagram", 2)
    async with h.metric_updates(key, "alice"), h.leaderboard_updates(board, "alice"):
        with pytest.raises(TooManySubscriptions, match="at most 2"):
            async with h.metric_updates(key, "alice"):
                pass
        # Another subject, or the same name in another tenant, has its own count.
        async with h.metric_updates(key, "bob"), \
                h.metric_updates(MetricKey.of("tenant-b"), "alice"):
            assert h.subscriber_count() == 4
    async with h.metric_updates(key, "alice"), h.metric_updates(key, "alice"):
        assert h._held == {("tenant-a", "alice"): 2}
    assert h._held == {}


async def test_stopping_the_hub_ends_subscriptions() -> None:
    h = hub()
    async with h.metric_updates(MetricKey.of("tenant-a")) as sub:
        await h.stop()
        with pytest.raises(StopAsyncIteration):
            await next_of(sub)


# --- leaderboards ---


async def test_leaderboard_is_computed_once_for_all_subscribers_and_pushed_on_change() -> None:
    boards = Boards()
    boards.gate = asyncio.Event()
    h = hub(boards)
    key = LeaderboardKey("tenant-a", "likes", "1h", "instagram", 2)
    n = 20
    entered: list[Subscriber[Any]] = []

    async def join() -> None:
        async with h.leaderboard_updates(key) as sub:
            entered.append(sub)
            await asyncio.Event().wait()  # held open until cancelled

    tasks = [asyncio.create_task(join()) for _ in range(n)]
    await until(lambda: h.subscriber_count() == n, 2, f"{n} subscribers", 0.001)
    boards.gate.set()
    await until(lambda: len(entered) == n, 2, f"{n} subscriptions entered", 0.001)
    first = [await next_of(s) for s in entered]
    assert boards.calls == 1
    assert first[0] == (("inf-a2", 2), ("inf-a1", 1))

    # Not touched: no computation. Touched but unchanged: computed once, not pushed.
    await h.publish([agg(metric="views")])
    await h.publish([agg(platform="instagram", window="1h")])
    await until(lambda: boards.calls == 2, 2, "the second leaderboard read", 0.001)
    assert all(nothing_queued(s) for s in entered)

    boards.gains["inf-a1"] = 9
    await h.publish([agg(platform="instagram", window="1h")])
    changed = [await next_of(s) for s in entered]
    assert boards.calls == 3
    assert all(c == (("inf-a1", 9), ("inf-a2", 2)) for c in changed)
    assert h.stats.leaderboard_pushes == 1
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert h.channel_count() == 0


async def test_leaderboard_recomputations_coalesce_while_one_runs() -> None:
    boards = Boards()
    h = hub(boards)
    key = LeaderboardKey("tenant-a", "likes", "1h", "instagram", 2)
    async with h.leaderboard_updates(key) as sub:
        await next_of(sub)
        boards.gate = asyncio.Event()
        await h.publish([agg()])
        await until(lambda: boards.calls == 2, 2, "the second leaderboard read", 0.001)
        for _ in range(4):
            await h.publish([agg()])
        boards.gains["inf-a2"] = 7
        boards.gate.set()
        assert await next_of(sub) == (("inf-a2", 7), ("inf-a1", 1))
        await until(lambda: not h._boards["tenant-a"][key].refreshing
                    or h._boards["tenant-a"][key].refreshing.done(), 2, "the refresh to end",
                    0.001)
    # One running when the batches came, one more for all of them together.
    assert boards.calls == 3


async def test_leaderboards_are_tenant_scoped() -> None:
    boards = Boards()
    h = hub(boards)
    key_b = LeaderboardKey("tenant-b", "likes", "1h", "instagram", 2)
    async with h.leaderboard_updates(key_b) as sub:
        assert await next_of(sub) == ()
        await h.publish([agg("inf-a1")])
        await asyncio.sleep(0)  # ok: one turn of the loop, for a read that must not start
        assert boards.calls == 1
        assert nothing_queued(sub)


# --- helpers ---


class contexts:
    """Enter several async context managers; exit them all."""

    def __init__(self, managers: list[Any]) -> None:
        self.managers = managers

    async def __aenter__(self) -> list[Any]:
        return [await m.__aenter__() for m in self.managers]

    async def __aexit__(self, *exc: object) -> None:
        for m in reversed(self.managers):
            await m.__aexit__(None, None, None)
