"""The benchmark's pure parts: its data, the Python baseline's semantics, its figures."""

from __future__ import annotations

import json
import zlib
from datetime import UTC, datetime, timedelta

import pytest

from creatorpulse.bench.baseline import Engagement
from creatorpulse.bench.dataset import Shape, iso_ms
from creatorpulse.bench.freshness import Probes
from creatorpulse.bench.results import (
    markdown_table,
    percentile,
    results_document,
    write_results,
)
from creatorpulse.observation import Observation
from creatorpulse.sandbox import clock_readings
from tests import oracle, scenario


def test_dataset_readings_are_observations_with_their_event_ids() -> None:
    shape = Shape(accounts=7, posts=2)
    for n in (0, 1, shape.per_account, shape.counters - 1, shape.counters, 5 * shape.counters + 3):
        reading = shape.reading(n)
        parsed = Observation.from_json(reading.to_json())
        assert parsed.to_json() == reading.to_json()
        assert parsed.key == reading.key
        assert Observation.create(**{k: getattr(parsed, k) for k in (
            "platform", "account_id", "influencer_id", "content_id", "content_kind", "metric",
            "value", "observed_at")}).event_id == reading.event_id()


def test_dataset_runs_forward_in_event_time_with_every_counter_each_poll() -> None:
    shape = Shape(accounts=5, posts=1)
    readings = list(shape.readings(3 * shape.counters))
    assert [r.observed_ms for r in readings] == sorted(r.observed_ms for r in readings)
    assert len({(r.account_id, r.content_id, r.metric) for r in readings}) == shape.counters
    assert shape.end_ms(len(readings)) == readings[-1].observed_ms
    assert iso_ms(shape.start_ms + 1_234) == "2026-11-23T10:00:01.234Z"


@pytest.mark.parametrize("count", [1, 40, 95, 301])
def test_dataset_totals_equal_the_oracles_gains(count: int) -> None:
    shape = Shape(accounts=3, posts=2)
    readings = [Observation.from_json(r.to_json()) for r in shape.readings(count)]
    gains = oracle.gains(readings)
    assert shape.totals(count) == (sum(g.gain for g in gains), len(gains))


def baseline_buckets(stream: list[Observation], delay: timedelta) -> dict:
    state = Engagement(delay_ms=int(delay.total_seconds() * 1000), partitions=4)
    clock = max(o.observed_at for o in stream) + delay + timedelta(minutes=1)
    ticks = [(o, zlib.crc32(o.key) % 4) for o in stream]
    ticks += [(tick, partition) for partition, tick in clock_readings(clock, range(4))]
    for i, (o, partition) in enumerate(ticks):
        state.add(json.loads(o.to_json()), partition)
        if i % 50 == 0:
            state.advance()
    state.advance()
    _, rows = state.take()
    return {(i, p, m, datetime.fromisoformat(b)): (g, n, prov)
            for i, p, m, b, g, n, prov in rows if i != "clock"}


@pytest.mark.parametrize("case", ["clean", "duplicates", "disorder", "falling"])
def test_the_baselines_buckets_equal_the_oracle(case: str) -> None:
    clean = scenario.readings(21, minutes=10)
    stream = {
        "clean": clean,
        "duplicates": scenario.with_duplicates(clean, 0.1, seed=22),
        "disorder": scenario.shuffled_within(clean, timedelta(seconds=5), seed=23),
        "falling": scenario.readings(24, minutes=10, step=(-30, 12)),
    }[case]
    assert baseline_buckets(stream, timedelta(seconds=5)) == oracle.buckets(oracle.gains(stream))


def test_the_baseline_sets_late_readings_aside() -> None:
    state = Engagement(delay_ms=5_000, partitions=1)
    base = scenario.T0
    stream = scenario.readings(25, minutes=3, influencers=1)
    for o in stream:
        state.add(json.loads(o.to_json()), 0)
    state.advance()
    first = stream[0]
    late = Observation.create(platform=first.platform, account_id=first.account_id,
                              influencer_id=first.influencer_id, content_id=first.content_id,
                              content_kind=first.content_kind, metric=first.metric, value=99_999,
                              observed_at=base + timedelta(seconds=1, milliseconds=1))
    before = dict(state.buckets)
    state.add(json.loads(late.to_json()), 0)
    state.advance()
    raw, _ = state.take()
    assert raw[-1][0] == late.event_id and raw[-1][-1] is True
    assert state.buckets == before


def test_percentile_interpolates_between_ranks() -> None:
    values = [4.0, 1.0, 3.0, 2.0]
    assert percentile(values, 50) == 2.5
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile([7.0], 99) == 7.0
    assert percentile(list(range(101)), 99) == pytest.approx(99.0)
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


def test_results_document_has_the_figures_ratios_and_goals(tmp_path) -> None:
    doc = results_document(
        observations=1_000_000, pipeline=60_000.0, ceiling=240_000.0, baseline=10_000.0,
        freshness_p50=2.5, freshness_p99=4.0,
        measured_at=datetime(2026, 11, 25, 10, 0, tzinfo=UTC), details={"cores": 2})
    assert doc["pipeline_obs_per_s"] == 60_000
    assert doc["pipeline_vs_baseline"] == 6.0
    assert doc["pipeline_vs_ceiling"] == 0.25
    assert doc["goals"]["pipeline_obs_per_s"] == {"goal": ">= 50000", "met": True}
    assert doc["goals"]["pipeline_vs_baseline"]["met"] is True
    assert doc["goals"]["freshness_p99_s"] == {"goal": "<= 5", "met": True}
    assert doc["measured_at"] == "2026-11-25T10:00:00+00:00"
    path = tmp_path / "results" / "pipeline.json"
    write_results(path, doc)
    assert json.loads(path.read_text()) == doc
    slow = results_document(observations=10, pipeline=1.0, ceiling=2.0, baseline=1.0,
                            freshness_p50=9.0, freshness_p99=9.5,
                            measured_at=datetime(2026, 11, 25, tzinfo=UTC), details={})
    assert not any(g["met"] for g in slow["goals"].values())


def test_probes_become_visible_by_their_minute_ordinal() -> None:
    probes = Probes(partitions=2)
    minute = 1_795_600_000_000 - 1_795_600_000_000 % 60_000
    first = probes.next_reading(0, minute + 10, measured=True, at=100.0)
    assert first.value == 0 and probes.sent == {}  # a counter's first reading has no gain
    probes.next_reading(0, minute + 20, measured=True, at=100.1)
    probes.next_reading(0, minute + 30, measured=True, at=100.2)
    probes.next_reading(1, minute + 30, measured=False, at=100.2)
    later = probes.next_reading(0, minute + 60_000, measured=True, at=101.0)
    assert later.value == 3 and later.account_id == "probe-0"
    assert set(probes.sent) == {(0, minute, 1), (0, minute, 2), (0, minute + 60_000, 1)}
    probes.observe({(0, minute): 1}, at=102.0)
    assert probes.missing == 2
    probes.observe({(0, minute): 2, (0, minute + 60_000): 1}, at=103.0)
    assert probes.missing == 0
    assert sorted(probes.latencies(until=200.0)) == pytest.approx([1.9, 2.0, 2.8])


def test_probes_never_seen_count_with_their_age() -> None:
    probes = Probes(partitions=1)
    probes.next_reading(0, 0, measured=True, at=10.0)
    probes.next_reading(0, 5, measured=True, at=11.0)
    assert probes.latencies(until=41.0) == [30.0]


def test_markdown_table_shows_each_figure_and_its_goal() -> None:
    doc = results_document(observations=1_000_000, pipeline=2_500.0, ceiling=10_000.0,
                           baseline=25_000.0, freshness_p50=30.0, freshness_p99=61.0,
                           measured_at=datetime(2026, 11, 25, tzinfo=UTC), details={})
    table = markdown_table(doc)
    assert "| pipeline throughput (Kafka → job → PostgreSQL) | 2,500 obs/s |" in table
    assert "| pipeline ÷ baseline | 0.1× | ≥ 5× | **no** |" in table
    assert "| freshness p99 | 61.0 s | ≤ 5 s | **no** |" in table
    assert len(table.splitlines()) == 9


def test_parts_left_out_are_null_with_their_ratios_and_goals() -> None:
    doc = results_document(observations=1_000, pipeline=None, ceiling=None, baseline=900.0,
                           freshness_p50=2.8, freshness_p99=4.4,
                           measured_at=datetime(2026, 11, 25, tzinfo=UTC), details={})
    assert doc["pipeline_obs_per_s"] is None and doc["pipeline_vs_baseline"] is None
    assert doc["goals"]["pipeline_obs_per_s"]["met"] is False
    assert doc["goals"]["freshness_p99_s"]["met"] is True
    assert json.loads(json.dumps(doc)) == doc  # no NaN or infinity in the file
    assert "| pipeline throughput (Kafka → job → PostgreSQL) | not run |" in markdown_table(doc)
