"""The baseline: the engagement job's raw log and minute buckets from a plain Python consumer.

What a competent Python service would do instead of Flink: one confluent-kafka consumer, the
state in dictionaries, and batched upserts through psycopg (COPY into a temporary table, then one
``INSERT .. ON CONFLICT DO UPDATE``, as the Flink JDBC sink's upserts do). The semantics are the
job's: duplicates dropped by ``event_id``; a watermark per partition ``delay`` behind its newest
event time, the smallest of them the stream's; readings older than it are late (raw log only);
the others wait for the watermark, then each counter's readings in event-time order become gains,
summed into minute buckets for the platform and for ``all``.

It does not compute the rolling windows and derived figures, which only makes it faster.
"""

from __future__ import annotations

import heapq
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from confluent_kafka import Consumer, KafkaException

from creatorpulse.bench.dataset import iso_ms

RANK = {"rounded": 0, "estimated": 1, "measured": 2}
NAME = {rank: name for name, rank in RANK.items()}
MINUTE_MS = 60_000

Counter = tuple[str, str, str | None, str]
BucketKey = tuple[str, str, str, int]


@dataclass
class Engagement:
    """The job's state in plain Python; :meth:`add` readings, then :meth:`take` what changed."""

    delay_ms: int
    partitions: int
    seen: set[str] = field(default_factory=set)
    newest: dict[int, int] = field(default_factory=dict)
    pending: list[tuple[int, int, dict[str, Any]]] = field(default_factory=list)
    counters: dict[Counter, tuple[int, int]] = field(default_factory=dict)
    buckets: dict[BucketKey, list[int]] = field(default_factory=dict)
    dirty: set[BucketKey] = field(default_factory=set)
    raw: list[tuple[Any, ...]] = field(default_factory=list)
    _arrivals: int = 0

    @property
    def watermark(self) -> int | None:
        if len(self.newest) < self.partitions:
            return None
        return min(self.newest.values()) - self.delay_ms

    def add(self, reading: dict[str, Any], partition: int) -> None:
        """One reading (the Observation JSON, parsed) from ``partition``."""
        if reading["event_id"] in self.seen:
            return
        self.seen.add(reading["event_id"])
        at = reading["observed_at"]
        ms = int(datetime.fromisoformat(at).timestamp() * 1000)
        watermark = self.watermark
        late = watermark is not None and ms < watermark
        self.raw.append((reading["event_id"], at, reading["platform"], reading["account_id"],
                         reading["influencer_id"], reading["content_id"],
                         reading["content_kind"], reading["metric"], reading["value"],
                         reading["provenance"], late))
        if not late:
            self._arrivals += 1
            heapq.heappush(self.pending, (ms, self._arrivals, reading))
        if ms > self.newest.get(partition, -(2**62)):
            self.newest[partition] = ms

    def advance(self) -> None:
        """Turn the readings the watermark has passed into gains, in event-time order."""
        watermark = self.watermark
        if watermark is None:
            return
        pending, counters, buckets, dirty = self.pending, self.counters, self.buckets, self.dirty
        while pending and pending[0][0] <= watermark:
            ms, _, r = heapq.heappop(pending)
            counter = (r["platform"], r["account_id"], r["content_id"], r["metric"])
            rank = RANK[r["provenance"]]
            previous = counters.get(counter)
            counters[counter] = (r["value"], rank)
            if previous is None:
                continue
            gain, rank = r["value"] - previous[0], min(rank, previous[1])
            minute = ms - ms % MINUTE_MS
            for platform in (r["platform"], "all"):
                key = (r["influencer_id"], platform, r["metric"], minute)
                bucket = buckets.get(key)
                if bucket is None:
                    buckets[key] = [gain, 1, rank]
                else:
                    bucket[0] += gain
                    bucket[1] += 1
                    if rank < bucket[2]:
                        bucket[2] = rank
                dirty.add(key)

    def take(self) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """Raw-log rows and changed bucket rows since the last call."""
        raw, self.raw = self.raw, []
        rows = [(i, p, m, iso_ms(b),
                 *self.buckets[(i, p, m, b)][:2], NAME[self.buckets[(i, p, m, b)][2]])
                for i, p, m, b in self.dirty]
        self.dirty = set()
        return raw, rows


RAW_COLUMNS = ("event_id", "observed_at", "platform", "account_id", "influencer_id", "content_id",
               "content_kind", "metric", "value", "provenance", "late")
BUCKET_COLUMNS = ("influencer_id", "platform", "metric", "bucket_start", "gain", "observations",
                  "provenance")


class Writer:
    """Batched upserts into the raw log and bucket tables through a staging table each."""

    def __init__(self, db: psycopg.Connection, raw_table: str, buckets_table: str) -> None:
        self.db = db
        self.targets = ((raw_table, RAW_COLUMNS, 2), (buckets_table, BUCKET_COLUMNS, 4))
        for table, _, _ in self.targets:
            db.execute(f"CREATE TEMPORARY TABLE stage_{table} (LIKE {table} INCLUDING DEFAULTS) "
                       "ON COMMIT DELETE ROWS")
        db.commit()

    def write(self, raw: list[tuple[Any, ...]], buckets: list[tuple[Any, ...]]) -> None:
        with self.db.transaction():
            for (table, columns, keys), rows in zip(self.targets, (raw, buckets), strict=True):
                if rows:
                    self._upsert(table, columns, keys, rows)

    def _upsert(self, table: str, columns: tuple[str, ...], keys: int,
                rows: Iterable[tuple[Any, ...]]) -> None:
        names = ", ".join(columns)
        with self.db.cursor() as cursor:
            with cursor.copy(f"COPY stage_{table} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns[keys:])
            cursor.execute(
                f"INSERT INTO {table} ({names}) SELECT {names} FROM stage_{table} "  # noqa: S608
                f"ON CONFLICT ({', '.join(columns[:keys])}) DO UPDATE SET {updates}")


def run(
    *,
    consumer: Consumer,
    topic: str,
    writer: Writer,
    state: Engagement,
    expected: int,
    progress: Callable[[int], None],
    flush_every: float = 1.0,
    timeout: float = 1800.0,
) -> float:
    """Consume ``expected`` messages of ``topic``, write as it goes; seconds from the subscription
    to the last commit."""
    started = time.monotonic()
    consumer.subscribe([topic])
    consumed, flushed_at = 0, started
    decode = json.loads
    while consumed < expected:
        if time.monotonic() - started > timeout:
            msg = f"the baseline read {consumed} of {expected} messages in {timeout:.0f} s"
            raise TimeoutError(msg)
        messages = consumer.consume(10_000, timeout=0.2)
        for message in messages:
            if message.error() is not None:
                raise KafkaException(message.error())
            state.add(decode(message.value()), message.partition())
        consumed += len(messages)
        now = time.monotonic()
        if now - flushed_at >= flush_every or consumed >= expected:
            state.advance()
            writer.write(*state.take())
            consumer.commit(asynchronous=False)
            flushed_at = now
            progress(consumed)
    return time.monotonic() - started
