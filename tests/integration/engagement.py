"""Running the engagement job against topics and tables of a test's own, and the oracle."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from confluent_kafka import Consumer, Message, Producer

from creatorpulse.observation import Observation
from creatorpulse.sandbox import PARTITIONS, Sandbox, clock_readings
from creatorpulse.settings import parse_windows
from creatorpulse.stack.process import StackError, wait_until
from tests import oracle, scenario

WINDOWS_TEXT = "5m/1m,15m/5m"
WINDOWS = parse_windows(WINDOWS_TEXT)
DELAY = timedelta(seconds=5)
# The source idle timeout stays at its default (30 s): every run's clock readings reach every
# partition, so no test but the idle one needs idleness. A short timeout lets a busy machine
# mark a partition idle while it still has a backlog (a replay after a restart, say); the
# watermark then passes that backlog and its readings turn late.
JOB_ENV = {"CREATORPULSE_WINDOWS": WINDOWS_TEXT, "CREATORPULSE_WATERMARK_DELAY": "5s",
           "CREATORPULSE_SOURCE_IDLE_TIMEOUT": "30s"}
# The idle-partition test: three partitions that never see a record must stop holding the
# watermark back soon.
IDLE_JOB_ENV = {**JOB_ENV, "CREATORPULSE_SOURCE_IDLE_TIMEOUT": "5s"}


class Run(Sandbox):
    """A sandboxed engagement job with the helpers the tests compare it with the oracle by."""

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
            for partition, tick in clock_readings(clock_at, partitions):
                producer.produce(self.topics["observations"], tick.to_json(), key=tick.key,
                                 partition=partition, on_delivery=delivered)
        assert producer.flush(60) == 0 and errors == []

    def start(self, env: dict[str, str] | None = None) -> str:
        return super().start(JOB_ENV if env is None else env)

    def start_on_first_half(self) -> None:
        """Produce half of CLEAN, start the job and wait until it has written buckets."""
        self.produce(CLEAN[: len(CLEAN) // 2])
        self.start()
        wait_until(lambda: self.query(f"SELECT count(*) FROM {self.table('metric_buckets_1m')}")
                   [0][0] or None, part="engagement", what="the first buckets are written",
                   timeout=180)

    def finish_second_half(self) -> None:
        """Produce the rest of CLEAN and the clock, and wait until the tables equal the oracle."""
        clock = END + timedelta(minutes=20)
        self.produce(CLEAN[len(CLEAN) // 2:], clock_at=clock)
        wait_for_oracle(self, CLEAN, until=clock - DELAY)

    def consume(self, topic: str, *, until: Callable[[list[Message]], bool],
                timeout: float) -> list[Message]:
        """Messages of one of this run's topics, from the start, until ``until`` holds."""
        consumer = Consumer({"bootstrap.servers": self.settings.kafka_bootstrap,
                             "group.id": f"reader.{topic}.{self.unique}",
                             "auto.offset.reset": "earliest"})
        consumer.subscribe([self.topics[topic]])
        received: list[Message] = []

        def enough() -> bool | None:
            received.extend(m for m in consumer.consume(500, timeout=0.5) if m.error() is None)
            return until(received) or None

        try:
            wait_until(enough, part="engagement", what=f"the expected records are on {topic}",
                       timeout=timeout)
        finally:
            consumer.close()
        return received

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
        differ = [(k, v, got.get(k)) for k, v in want_buckets.items() if got.get(k) != v]
        late = run.query(f"SELECT count(*) FROM {run.table('observations')} WHERE late")[0][0]
        pytest.fail(f"{len(differ)} buckets differ, e.g. (key, want, got) {differ[:3]}; "
                    f"rolling {len(run.rolling())}/{len(want_rolling)}, "
                    f"derived {len(run.derived())}/{len(want_derived)}; "
                    f"{late} of the readings in the raw log are flagged late")


CLEAN = scenario.readings(11, minutes=20, influencers=3)
END = max(o.observed_at for o in CLEAN)
