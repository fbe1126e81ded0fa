"""The riskiest wiring, end to end: confluent-kafka -> Flink SQL with a watermark -> JDBC upsert.

Observations are produced to a topic of this test's own; jobs/smoke.py is submitted to the
session cluster with `flink run`, the way a data engineer would; the windowed counts it upserts
into PostgreSQL must equal the counts computed here from the same observations.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from creatorpulse.flink_jobs import FlinkRest, submit
from creatorpulse.observation import ContentKind, Observation, Platform
from creatorpulse.settings import Settings
from creatorpulse.stack.flink import Flink
from creatorpulse.stack.process import wait_until

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


@pytest.fixture
def topic(admin: AdminClient, unique: str) -> Iterator[str]:
    name = f"smoke.{unique}"
    admin.create_topics([NewTopic(name, num_partitions=2, replication_factor=1)])[name].result(30)
    yield name
    admin.delete_topics([name])[name].result(30)


@pytest.fixture
def table(db: psycopg.Connection, unique: str) -> Iterator[str]:
    name = f"smoke_counts_{unique}"
    db.execute(f"CREATE TABLE {name} (platform text, window_start timestamptz, "
               "observations bigint NOT NULL, PRIMARY KEY (platform, window_start))")
    yield name
    db.execute(f"DROP TABLE {name}")


def observations(rng: random.Random) -> list[Observation]:
    """Readings over three minutes of event time, shuffled within the watermark bound."""
    readings = []
    for i in range(300):
        at = T0 + timedelta(milliseconds=rng.randrange(180_000))
        readings.append(Observation.create(
            platform=rng.choice([Platform.X, Platform.TIKTOK, Platform.YOUTUBE]),
            account_id=f"acct-{rng.randrange(20)}", influencer_id="inf-1",
            content_id=f"post-{i}", content_kind=ContentKind.POST, metric="likes",
            value=rng.randrange(10_000), observed_at=at))
    readings.sort(key=lambda o: o.observed_at)
    # Disorder of up to 2 s, inside the job's 5 s watermark bound: nothing is late.
    for i in range(0, len(readings) - 1, 3):
        if readings[i + 1].observed_at - readings[i].observed_at < timedelta(seconds=2):
            readings[i], readings[i + 1] = readings[i + 1], readings[i]
    return readings


def produce(settings: Settings, topic: str, readings: list[Observation]) -> None:
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "acks": "all",
                         "enable.idempotence": True})
    failures: list[str] = []

    def delivered(err: object, _msg: object) -> None:
        if err is not None:
            failures.append(str(err))

    for o in readings:
        producer.produce(topic, o.to_json(), key=o.key, on_delivery=delivered)
    # One reading far ahead on every partition moves the watermark past the three minutes.
    for partition in (0, 1):
        ahead = Observation.create(
            platform=Platform.X, account_id="clock", influencer_id="inf-1", content_id="tick",
            content_kind=ContentKind.POST, metric="likes", value=0,
            observed_at=T0 + timedelta(minutes=30))
        producer.produce(topic, ahead.to_json(), key=ahead.key, partition=partition,
                         on_delivery=delivered)
    assert producer.flush(30) == 0 and failures == []


def test_windowed_counts_reach_postgres(
    settings: Settings, topic: str, table: str, db: psycopg.Connection
) -> None:
    readings = observations(random.Random(20261123))
    expected = Counter(
        (o.platform.value, o.observed_at.replace(second=0, microsecond=0)) for o in readings)
    produce(settings, topic, readings)
    rest = FlinkRest(Flink(settings, lambda _: None).address)
    job_id = submit(settings, "smoke", ["--topic", topic, "--table", table,
                                        "--group-id", f"{topic}.job"],
                    env={"CREATORPULSE_WATERMARK_DELAY": "5s"})
    try:
        def rows() -> dict[tuple[str, datetime], int] | None:
            got = {(p, w): n for p, w, n in db.execute(f"SELECT * FROM {table}").fetchall()}
            return got if got == expected else None

        wait_until(rows, part="smoke", what=f"the counts of {len(readings)} observations are in "
                   f"{table}", timeout=180)
        job = rest.call("GET", f"/jobs/{job_id}")
        assert job["state"] == "RUNNING"
        assert job["name"] == f"creatorpulse-smoke {topic}"
        # The window 30 minutes ahead has not closed: nothing beyond the three minutes is written.
        latest = db.execute(f"SELECT max(window_start) FROM {table}").fetchone()
        assert latest is not None and latest[0] == T0 + timedelta(minutes=2)
        # flink-conf/config.yaml is in force: exactly-once checkpoints, kept under the state folder.
        config = rest.call("GET", f"/jobs/{job_id}/checkpoints/config")
        assert config["mode"] == "exactly_once"
        assert config["externalization"] == {"enabled": True, "delete_on_cancellation": False}
        def completed() -> Any:
            stats = rest.call("GET", f"/jobs/{job_id}/checkpoints")
            return stats if stats["counts"]["completed"] > 0 else None

        stats = wait_until(completed, part="smoke", what="a checkpoint completes", timeout=120)
        path = stats["latest"]["completed"]["external_path"]
        assert str(settings.state_dir / "flink" / "checkpoints" / job_id) in path
    finally:
        rest.cancel(job_id)  # waits until Flink reports it cancelled
