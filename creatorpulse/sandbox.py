"""The engagement job on Kafka topics and PostgreSQL tables of its own.

Integration tests and the benchmark run ``jobs/engagement.py`` beside the real one: every topic,
table and consumer group gets a unique suffix, :meth:`Sandbox.create` makes them (tables ``LIKE``
the real ones) and :meth:`Sandbox.remove` cancels the job and drops them again, so the running
job and its data are never touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from confluent_kafka.admin import AdminClient, NewTopic

from creatorpulse.flink_jobs import FlinkRest, JobError, submit
from creatorpulse.observation import ContentKind, Observation, Platform
from creatorpulse.settings import Settings

PARTITIONS = 4
TABLES = ("observations", "metric_buckets_1m", "rolling_windows", "derived_figures")
TOPICS = ("observations", "late", "aggregates")
CLOCK = "clock"


@dataclass
class Sandbox:
    """Names, creation and removal of one isolated run of the engagement job."""

    unique: str
    settings: Settings
    admin: AdminClient
    partitions: int = PARTITIONS
    job_id: str | None = None

    @property
    def topics(self) -> dict[str, str]:
        return {k: f"{k}.{self.unique}" for k in TOPICS}

    def table(self, name: str) -> str:
        return f"{name}_{self.unique}"

    def create(self, *, topics: Sequence[str] = TOPICS, tables: Sequence[str] = TABLES) -> None:
        if topics:
            futures = self.admin.create_topics([
                NewTopic(self.topics[t], num_partitions=self.partitions, replication_factor=1)
                for t in topics])
            for future in futures.values():
                future.result(30)
        for name in tables:
            self.query(f"CREATE TABLE {self.table(name)} (LIKE {name} INCLUDING ALL)")

    def job_args(self) -> list[str]:
        return ["--observations-topic", self.topics["observations"],
                "--late-topic", self.topics["late"],
                "--aggregates-topic", self.topics["aggregates"],
                "--raw-log-table", self.table("observations"),
                "--buckets-table", self.table("metric_buckets_1m"),
                "--rolling-table", self.table("rolling_windows"),
                "--derived-table", self.table("derived_figures"),
                "--group-id", f"engagement.{self.unique}"]

    def start(self, env: dict[str, str] | None = None) -> str:
        """Submit the job on this sandbox's names; ``env`` overrides settings for the job only."""
        self.job_id = submit(self.settings, "engagement", self.job_args(), env=env)
        return self.job_id

    def remove(self, rest: FlinkRest, *, topics: Sequence[str] = TOPICS,
               tables: Sequence[str] = TABLES) -> None:
        """Cancel the job if it still runs, then drop the tables and delete the topics."""
        if self.job_id:
            try:
                if rest.job(self.job_id)["state"] not in ("CANCELED", "FINISHED", "FAILED"):
                    rest.cancel(self.job_id)
            except JobError:
                pass  # already gone; the names below must go all the same
        for name in tables:
            self.query(f"DROP TABLE IF EXISTS {self.table(name)}")
        if topics:
            futures = self.admin.delete_topics([self.topics[t] for t in topics])
            for future in futures.values():
                future.result(30)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        # A connection per query: a test may restart PostgreSQL under the run.
        with psycopg.connect(self.settings.database_dsn.reveal(), autocommit=True) as db:
            cursor = db.execute(sql)
            return cursor.fetchall() if cursor.description else []


def clock_readings(at: datetime, partitions: Sequence[int]) -> list[tuple[int, Observation]]:
    """One reading per partition at ``at``: together they move the job's watermark to ``at``
    minus the watermark delay. Their value is always 0, so they never add a gain; their
    influencer is ``clock``."""
    return [(partition, Observation.create(
        platform=Platform.X, account_id=f"{CLOCK}-{partition}", influencer_id=CLOCK,
        content_id=None, content_kind=ContentKind.ACCOUNT, metric="followers", value=0,
        observed_at=at)) for partition in partitions]
