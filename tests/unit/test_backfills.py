"""Backfill requests merged into as few reconcile runs as their ranges allow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from creatorpulse.backfills import Claimed, merged

T = datetime(2026, 12, 7, tzinfo=UTC)


def req(ident: str, start_h: int, end_h: int) -> Claimed:
    return Claimed(ident, "t", "i", T + timedelta(hours=start_h), T + timedelta(hours=end_h))


def test_overlapping_and_touching_ranges_become_one_run_and_apart_ones_stay_apart() -> None:
    runs = merged([req("c", 10, 12), req("a", 0, 2), req("b", 1, 4), req("d", 4, 5),
                   req("e", 12, 13)])
    assert runs == [(T, T + timedelta(hours=5), ["a", "b", "d"]),
                    (T + timedelta(hours=10), T + timedelta(hours=13), ["c", "e"])]
    assert merged([]) == []
