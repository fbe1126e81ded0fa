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
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka import Message

from creatorpulse.observation import ContentKind, Observation, Platform
from creatorpulse.stack.process import wait_until
from tests import scenario
from tests.integration.engagement import (
    CLEAN,
    DELAY,
    END,
    IDLE_JOB_ENV,
    JOB_ENV,
    Run,
    expected,
    wait_for_oracle,
)


@pytest.mark.parametrize(
    "case",
    ["clean", "duplicates", "disorder", "falling", "deleted"],
)
def test_the_database_equals_the_oracle(run: Run, case: str) -> None:
    stream = {
        "clean": CLEAN,
        "duplicates": scenario.with_duplicates(CLEAN, 0.1, seed=12),
        "disorder": scenario.shuffled_within(CLEAN, DELAY, seed=13),
        # Counters that mostly fall: negative gains throughout.
        "falling": scenario.readings(14, minutes=20, step=(-30, 12)),
        # Every post deleted within five minutes: its counters stop mid-stream.
        "deleted": scenario.readings(15, minutes=20, deleted_by=timedelta(minutes=5)),
    }[case]
    clock = max(o.observed_at for o in stream) + timedelta(minutes=20)
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
    received = [json.loads(m.value()) for m in run.consume(
        "late", until=lambda got: len(got) >= len(late), timeout=120)]
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
    run.start(IDLE_JOB_ENV)
    wait_for_oracle(run, CLEAN, until=clock - DELAY)


def test_fresh_window_values_reach_the_aggregates_topic(run: Run) -> None:
    clock = END + timedelta(minutes=20)
    run.produce(CLEAN, clock_at=clock)
    run.start()
    _, want_rolling, _ = expected(CLEAN, clock - DELAY)
    def window_of(message: Message) -> tuple[str, str, str, str, str]:
        v = json.loads(message.value())
        return (v["influencer_id"], v["platform"], v["metric"], v["window_name"], v["window_end"])

    messages = run.consume(
        "aggregates", timeout=240,
        until=lambda got: len({window_of(m) for m in got if m.key() != b"clock"})
        >= len(want_rolling))
    seen = {window_of(m): json.loads(m.value()) for m in messages if m.key() != b"clock"}
    assert all(m.key() == json.loads(m.value())["influencer_id"].encode() for m in messages)
    assert len(seen) == len(want_rolling)
    sample = next(iter(seen.values()))
    key = (sample["influencer_id"], sample["platform"], sample["metric"], sample["window_name"],
           datetime.fromisoformat(sample["window_end"]).replace(tzinfo=UTC))
    start, gain, at_start, at_end, provenance = want_rolling[key]
    assert (sample["window_start"], sample["gain"], sample["value_at_start"],
            sample["value_at_end"], sample["provenance"]) == (
        start.replace(tzinfo=None).isoformat(), gain, at_start, at_end, provenance)
