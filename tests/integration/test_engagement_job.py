"""The engagement job on the real Kafka, Flink and PostgreSQL, compared with the oracle.

Each case produces a generated stream to topics of its own, submits jobs/engagement.py with
`creatorpulse jobs submit` pointed at tables of its own, and waits until the database equals what
tests/oracle.py computes from the same readings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from creatorpulse.flink_jobs import FlinkRest, submit
from creatorpulse.observation import ContentKind, Observation, Platform
from creatorpulse.settings import Settings, parse_windows
from creatorpulse.stack.process import StackError, wait_until
from tests import oracle, scenario

WINDOWS_TEXT = "5m/1m,15m/5m"
WINDOWS = parse_windows(WINDOWS_TEXT)
DELAY = timedelta(seconds=5)
PARTITIONS = 4
JOB_ENV = {"CREATORPULSE_WINDOWS": WINDOWS_TEXT, "CREATORPULSE_WATERMARK_DELAY": "5s",
           "CREATORPULSE_SOURCE_IDLE_TIMEOUT": "5s"}
TABLES = ("observations", "metric_buckets_1m", "rolling_windows", "derived_figures")


@dataclass
class Run:
    unique: str
    settings: Settings
    db: psycopg.Connection
    admin: AdminClient
    job_id: str | None = None

    @property
    def topics(self) -> dict[str, str]:
        return {k: f"{k}.{self.unique}" for k in ("observations", "late", "aggregates")}

    def table(self, name: str) -> str:
        return f"{name}_{self.unique}"

    def produce(self, readings: list[Observation], *, clock_at: datetime | None = None,
                partitions: range = range(PARTITIONS)) -> None:
        """Readings keyed by account, or all into ``partitions`` when it is a single one."""
        producer = Producer({"bootstrap.servers": self.settings.kafka_bootstrap, "acks": "all",
                             "enable.idempotence": True, "linger.ms": 20})
        errors: list[str] = []

        def delivered(err: object, _msg: object) -> None:
            if err is not None:
                errors.append(str(err))

        pinned = {"partition": partitions[0]} if len(partitions) == 1 else {}
        for o in readings:
            producer.produce(self.topics["observations"], o.to_json(), key=o.key,
                             on_delivery=delivered, **pinned)
            producer.poll(0)
        if clock_at is not None:
            # One reading on every partition moves the watermark to clock_at - DELAY.
            for partition in partitions:
                tick = Observation.create(
                    platform=Platform.X, account_id=f"clock-{partition}", influencer_id="clock",
                    content_id=None, content_kind=ContentKind.ACCOUNT, metric="followers",
                    value=0, observed_at=clock_at)
                producer.produce(self.topics["observations"], tick.to_json(), key=tick.key,
                                 partition=partition, on_delivery=delivered)
        assert producer.flush(60) == 0 and errors == []

    def start(self) -> None:
        args = ["--observations-topic", self.topics["observations"],
                "--late-topic", self.topics["late"],
                "--aggregates-topic", self.topics["aggregates"],
                "--raw-log-table", self.table("observations"),
                "--buckets-table", self.table("metric_buckets_1m"),
                "--rolling-table", self.table("rolling_windows"),
                "--derived-table", self.table("derived_figures"),
                "--group-id", f"engagement.{self.unique}"]
        self.job_id = submit(self.settings, "engagement", args, env=JOB_ENV)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        return self.db.execute(sql).fetchall()

    def buckets(self) -> dict[Any, Any]:
        return {(i, p, m, b): (g, n, prov) for i, p, m, b, g, n, prov, _ in self.query(
            f"SELECT * FROM {self.table('metric_buckets_1m')} WHERE influencer_id <> 'clock'")}

    def rolling(self) -> dict[Any, Any]:
        return {(i, p, m, w, end): (start, g, s, e, prov)
                for i, p, m, w, end, start, g, s, e, prov, _ in self.query(
                    f"SELECT * FROM {self.table('rolling_windows')} "
                    "WHERE influencer_id <> 'clock'")}

    def derived(self) -> dict[Any, Any]:
        return {(i, p, w, end, fig, form): (num, den, round(val, 9))
                for i, p, w, end, fig, form, num, den, val, _ in self.query(
                    f"SELECT * FROM {self.table('derived_figures')} "
                    "WHERE influencer_id <> 'clock'")}


@pytest.fixture
def run(settings: Settings, db: psycopg.Connection, admin: AdminClient,
        unique: str) -> Iterator[Run]:
    r = Run(unique, settings, db, admin)
    futures = admin.create_topics([NewTopic(t, num_partitions=PARTITIONS, replication_factor=1)
                                   for t in r.topics.values()])
    for future in futures.values():
        future.result(30)
    for name in TABLES:
        db.execute(f"CREATE TABLE {r.table(name)} (LIKE {name} INCLUDING ALL)")
    yield r
    if r.job_id:
        FlinkRest("http://localhost:8081").cancel(r.job_id)
    for name in TABLES:
        db.execute(f"DROP TABLE {r.table(name)}")
    for future in admin.delete_topics(list(r.topics.values())).values():
        future.result(30)


def expected(readings: list[Observation], until: datetime) -> tuple[dict, dict, dict]:
    gains = oracle.gains(readings)
    rolling = oracle.rolling(gains, WINDOWS, until)
    derived = {k: (num, den, round(val, 9))
               for k, (num, den, val) in oracle.derived(rolling).items()}
    return oracle.buckets(gains), rolling, derived


def wait_for_oracle(run: Run, readings: list[Observation], until: datetime) -> None:
    want_buckets, want_rolling, want_derived = expected(readings, until)
    try:
        wait_until(lambda: run.buckets() == want_buckets or None, part="engagement",
                   what="the minute buckets equal the oracle", timeout=240)
        wait_until(lambda: run.rolling() == want_rolling or None, part="engagement",
                   what="the rolling windows equal the oracle", timeout=120)
        wait_until(lambda: run.derived() == want_derived or None, part="engagement",
                   what="the derived figures equal the oracle", timeout=60)
    except StackError:
        got = run.buckets()
        missing = {k: v for k, v in want_buckets.items() if got.get(k) != v}
        pytest.fail(f"{len(missing)} buckets differ, e.g. {list(missing.items())[:3]}; "
                    f"rolling {len(run.rolling())}/{len(want_rolling)}, "
                    f"derived {len(run.derived())}/{len(want_derived)}")


CLEAN = scenario.readings(11, minutes=20, influencers=3)
END = max(o.observed_at for o in CLEAN)


@pytest.mark.parametrize(
    "case",
    ["clean", "duplicates", "disorder"],
)
def test_the_database_equals_the_oracle(run: Run, case: str) -> None:
    stream = {
        "clean": CLEAN,
        "duplicates": scenario.with_duplicates(CLEAN, 0.1, seed=12),
        "disorder": scenario.shuffled_within(CLEAN, DELAY, seed=13),
    }[case]
    clock = END + timedelta(minutes=20)
    run.produce(stream, clock_at=clock)
    run.start()
    wait_for_oracle(run, stream, until=clock - DELAY)
    logged = run.query(f"SELECT count(*), count(*) FILTER (WHERE late) "
                       f"FROM {run.table('observations')} WHERE influencer_id <> 'clock'")
    assert logged == [(len({o.event_id for o in stream}), 0)]


def test_late_readings_are_set_aside_and_reconciled(run: Run) -> None:
    clock = END + timedelta(minutes=20)
    run.produce(CLEAN, clock_at=clock)
    run.start()
    wait_for_oracle(run, CLEAN, until=clock - DELAY)
    # Now the watermark is past END: readings from the middle of the stream are late.
    late = [Observation.create(
        platform=Platform.INSTAGRAM, account_id="instagram-acct-0", influencer_id="inf-0",
        content_id="instagram-acct-0-post-0", content_kind=ContentKind.POST, metric="likes",
        value=10_000 + i, observed_at=scenario.T0 + timedelta(minutes=5, seconds=i))
        for i in range(7)]
    run.produce(late)
    consumer = Consumer({"bootstrap.servers": run.settings.kafka_bootstrap,
                         "group.id": f"late-reader.{run.unique}", "auto.offset.reset": "earliest"})
    consumer.subscribe([run.topics["late"]])
    received: list[dict[str, Any]] = []

    def all_late_received() -> bool | None:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            received.append(json.loads(message.value()))
        return True if len(received) >= len(late) else None

    try:
        wait_until(all_late_received, part="engagement", what="the late readings are on the late "
                   "topic", timeout=120)
    finally:
        consumer.close()
    assert sorted(r["event_id"] for r in received) == sorted(o.event_id for o in late)
    assert Observation.from_dict(received[0]) in late  # the late topic carries observations
    flagged = wait_until(
        lambda: ((n := run.query(f"SELECT count(*) FROM {run.table('observations')} "
                                "WHERE late")[0][0]) == len(late) and n) or None,
        part="engagement", what="the late readings are in the raw log", timeout=60)
    assert flagged == len(late)
    # The streaming figures are still exactly the oracle's for the on-time readings ...
    want_buckets, _, _ = expected(CLEAN, clock - DELAY)
    assert run.buckets() == want_buckets
    # ... until `creatorpulse jobs reconcile` recomputes the range from the raw log.
    result = subprocess.run(
        [sys.executable, "-m", "creatorpulse.cli", "jobs", "reconcile",
         "--from", scenario.T0.isoformat(), "--to", (clock - DELAY).isoformat(),
         "--timeout", "300", "--",
         "--raw-log-table", run.table("observations"),
         "--buckets-table", run.table("metric_buckets_1m"),
         "--rolling-table", run.table("rolling_windows"),
         "--derived-table", run.table("derived_figures")],
        env={**os.environ, **JOB_ENV}, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "tasks finished" in result.stdout and "reconciled" in result.stdout
    want_buckets, want_rolling, want_derived = expected(CLEAN + late, clock - DELAY)
    assert run.buckets() == want_buckets
    assert run.rolling() == want_rolling
    assert run.derived() == want_derived


def test_windows_close_while_partitions_stay_idle(run: Run) -> None:
    # Everything goes to partition 0; the other three never see a record. With the source idle
    # timeout they stop holding the watermark back, so the windows still close.
    clock = END + timedelta(minutes=20)
    run.produce(CLEAN, clock_at=clock, partitions=range(1))
    run.start()
    wait_for_oracle(run, CLEAN, until=clock - DELAY)


def test_fresh_window_values_reach_the_aggregates_topic(run: Run) -> None:
    clock = END + timedelta(minutes=20)
    run.produce(CLEAN, clock_at=clock)
    run.start()
    _, want_rolling, _ = expected(CLEAN, clock - DELAY)
    consumer = Consumer({"bootstrap.servers": run.settings.kafka_bootstrap,
                         "group.id": f"aggregates-reader.{run.unique}",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([run.topics["aggregates"]])
    seen: dict[tuple[str, str, str, str, str], dict[str, Any]] = {}

    def all_windows_seen() -> bool | None:
        for message in consumer.consume(500, timeout=0.5):
            if message.error() is None:
                value = json.loads(message.value())
                if value["influencer_id"] != "clock":
                    assert message.key() == value["influencer_id"].encode()
                    seen[(value["influencer_id"], value["platform"], value["metric"],
                          value["window_name"], value["window_end"])] = value
        return True if len(seen) >= len(want_rolling) else None

    try:
        wait_until(all_windows_seen, part="engagement", what="every window is on the aggregates "
                   "topic", timeout=240)
    finally:
        consumer.close()
    assert len(seen) == len(want_rolling)
    sample = next(iter(seen.values()))
    key = (sample["influencer_id"], sample["platform"], sample["metric"], sample["window_name"],
           datetime.fromisoformat(sample["window_end"]).replace(tzinfo=UTC))
    start, gain, at_start, at_end, provenance = want_rolling[key]
    assert (sample["window_start"], sample["gain"], sample["value_at_start"],
            sample["value_at_end"], sample["provenance"]) == (
        start.replace(tzinfo=None).isoformat(), gain, at_start, at_end, provenance)
