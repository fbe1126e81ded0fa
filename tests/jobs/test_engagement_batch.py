"""The engagement logic of jobs/engagement.py in Flink's batch mode, against the oracle.

These run a local Flink (a JVM, no services) on files of observation JSON: the same SQL the
streaming job runs, minus the watermark, which batch mode does not have.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pyflink.table import EnvironmentSettings, TableEnvironment
from pyflink.table.expressions import col

from creatorpulse.jobs.engagement import EngagementTables, build
from creatorpulse.observation import ContentKind, Observation, Platform, flink_columns
from creatorpulse.settings import parse_windows
from tests import oracle, scenario

WINDOWS = parse_windows("5m/1m,15m/5m")


def run(tmp_path: Path, readings: list[Observation], windows=WINDOWS) -> EngagementTables:
    source = tmp_path / "observations.json"
    source.write_bytes(b"\n".join(o.to_json() for o in readings) + b"\n")
    t_env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
    t_env.get_config().set("table.local-time-zone", "UTC")
    t_env.get_config().set("parallelism.default", "2")
    columns = ", ".join(f"`{c}` {t}" for c, t in flink_columns())
    t_env.execute_sql(
        f"CREATE TABLE obs ({columns}) WITH ('connector' = 'filesystem', 'path' = '{source}', "
        "'format' = 'json', 'json.timestamp-format.standard' = 'ISO-8601')")
    return build(t_env, t_env.from_path("obs"), windows, streaming=False)


def rows(table) -> list[tuple]:
    with table.execute().collect() as results:
        return [tuple(row) for row in results]


def utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@pytest.fixture(scope="module")
def stream() -> list[Observation]:
    clean = scenario.readings(7, minutes=20)
    return scenario.with_duplicates(clean, 0.1, seed=8)


@pytest.fixture(scope="module")
def tables(stream: list[Observation], tmp_path_factory: pytest.TempPathFactory) -> EngagementTables:
    return run(tmp_path_factory.mktemp("engagement"), stream)


def test_buckets_equal_the_oracle(
    stream: list[Observation], tables: EngagementTables
) -> None:
    got = {(i, p, m, utc(b)): (g, n, prov) for i, p, m, b, g, n, prov in rows(tables.buckets)}
    assert got == oracle.buckets(oracle.gains(stream))


def test_rolling_windows_equal_the_oracle(
    stream: list[Observation], tables: EngagementTables
) -> None:
    got = {(i, p, m, w, utc(end)): (utc(start), g, s, e, prov)
           for i, p, m, w, end, start, g, s, e, prov in rows(tables.rolling)}
    far = datetime(2100, 1, 1, tzinfo=UTC)
    assert got == oracle.rolling(oracle.gains(stream), WINDOWS, until=far)


def test_derived_figures_equal_the_oracle(
    stream: list[Observation], tables: EngagementTables
) -> None:
    got = {(i, p, w, utc(end), fig, form): (num, den, pytest.approx(val))
           for i, p, w, end, fig, form, num, den, val in rows(tables.derived)}
    expected = oracle.derived(oracle.rolling(oracle.gains(stream), WINDOWS,
                                             until=datetime(2100, 1, 1, tzinfo=UTC)))
    assert got == expected
    assert {key[4:] for key in got} >= {("follower_growth", "absolute"),
                                        ("engagement_rate", "by_followers"),
                                        ("engagement_rate", "by_views")}


def test_the_raw_log_keeps_every_reading(
    stream: list[Observation], tables: EngagementTables
) -> None:
    logged = rows(tables.raw_log.select(col("event_id"), col("late")))
    assert sorted(event for event, _ in logged) == sorted({o.event_id for o in stream})
    assert not any(late for _, late in logged)  # batch mode has no watermark: nothing is late


def test_gains_follow_event_time_not_arrival(tmp_path: Path) -> None:
    def reading(seconds: int, value: int) -> Observation:
        return Observation.create(
            platform=Platform.X, account_id="a", influencer_id="i", content_id="p",
            content_kind=ContentKind.POST, metric="likes", value=value,
            observed_at=scenario.T0 + timedelta(seconds=seconds))

    # Arrival order 10, 30, 20: the reading at 20 s sits between the others in event time.
    tables = run(tmp_path, [reading(0, 10), reading(40, 30), reading(20, 25)])
    got = {(p, utc(b)): (g, n) for _, p, _, b, g, n, _ in rows(tables.buckets)}
    assert got == {("x", scenario.T0): (20, 2), ("all", scenario.T0): (20, 2)}


def test_a_falling_counter_is_a_negative_gain(tmp_path: Path) -> None:
    readings = [Observation.create(
        platform=Platform.TIKTOK, account_id="a", influencer_id="i", content_id="p",
        content_kind=ContentKind.VIDEO, metric="likes", value=v,
        observed_at=scenario.T0 + timedelta(seconds=s)) for s, v in ((0, 50), (30, 40))]
    got = [row[4] for row in rows(run(tmp_path, readings).buckets)]
    assert got == [-10, -10]


def test_rolling_windows_of_sparse_counters_equal_the_oracle(tmp_path: Path) -> None:
    # Counters read at irregular intervals, from seconds to beyond the longest window, so that
    # a counter's previous reading is sometimes in the same window, sometimes before it.
    rng = random.Random(11)
    readings = []
    for counter in range(8):
        at, value = scenario.T0 + timedelta(seconds=rng.randrange(600)), rng.randrange(1000)
        while at < scenario.T0 + timedelta(minutes=90):
            readings.append(Observation.create(
                platform=Platform.TIKTOK if counter % 2 else Platform.INSTAGRAM,
                account_id=f"a{counter % 3}", influencer_id=f"i{counter % 2}",
                content_id=f"p{counter}", content_kind=ContentKind.VIDEO,
                metric=("likes", "views", "followers")[counter % 3], value=value,
                observed_at=at))
            value += rng.randrange(-5, 50)
            at += timedelta(seconds=rng.choice((5, 40, 70, 200, 320, 700, 1000, 1300)))
    got = {(i, p, m, w, utc(end)): (utc(start), g, s, e, prov)
           for i, p, m, w, end, start, g, s, e, prov in rows(run(tmp_path, readings).rolling)}
    expected = oracle.rolling(oracle.gains(readings), WINDOWS,
                              until=datetime(2100, 1, 1, tzinfo=UTC))
    assert len(expected) > 100
    assert got == expected
