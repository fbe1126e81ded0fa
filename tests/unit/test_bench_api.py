"""The API benchmark's results file: a partial run keeps the other part's figures."""

from __future__ import annotations

import json
from pathlib import Path

from bench.api import merge_previous

EARLIER = {
    "cached_p99_ms": 9.5, "plain_rps": 700.0, "graphql_to_plain_rps_ratio": 0.8,
    "uncached_rps": 60.0, "fanout_subscribers": 1000, "fanout_p99_ms": 250.0,
    "stream_fanout_p99_ms": 90.0, "measured_at": "2026-12-01T10:00:00+00:00",
    "queries": {"cached": {"leaderboard": {}}}, "fanout": {"p99_ms": 250.0},
    "fanout_metrics_stream": {"p99_ms": 90.0},
}


def test_a_fanout_only_run_keeps_the_query_figures(tmp_path: Path) -> None:
    path = tmp_path / "api.json"
    path.write_text(json.dumps(EARLIER))
    now = "2026-12-07T12:00:00+00:00"
    run = {"fanout_subscribers": 1000, "fanout_p99_ms": 120.0, "stream_fanout_p99_ms": 40.0,
           "measured_at": now, "queries": {"cached": {}, "uncached_cache_ttl_1ms": {}},
           "fanout": {"p99_ms": 120.0}, "fanout_metrics_stream": {"p99_ms": 40.0}}
    merged = merge_previous(run, path, queries=False, fanout=True, measured_at=now)
    assert merged["fanout_p99_ms"] == 120.0 and merged["fanout"] == {"p99_ms": 120.0}
    assert merged["cached_p99_ms"] == 9.5 and merged["plain_rps"] == 700.0
    assert merged["graphql_to_plain_rps_ratio"] == 0.8 and merged["uncached_rps"] == 60.0
    assert merged["queries"] == EARLIER["queries"]
    assert merged["parts_measured_at"] == {"queries": EARLIER["measured_at"], "fanout": now}


def test_a_full_run_replaces_everything(tmp_path: Path) -> None:
    path = tmp_path / "api.json"
    path.write_text(json.dumps(EARLIER))
    now = "2026-12-07T12:00:00+00:00"
    run = {"cached_p99_ms": 4.0, "fanout_p99_ms": 100.0, "measured_at": now}
    merged = merge_previous(run, path, queries=True, fanout=True, measured_at=now)
    assert merged == {**run, "parts_measured_at": {"queries": now, "fanout": now}}


def test_without_an_earlier_file_nothing_is_invented(tmp_path: Path) -> None:
    now = "2026-12-07T12:00:00+00:00"
    run = {"fanout_p99_ms": 100.0, "measured_at": now}
    merged = merge_previous(run, tmp_path / "none.json", queries=False, fanout=True,
                            measured_at=now)
    assert merged == {**run, "parts_measured_at": {"queries": None, "fanout": now}}
