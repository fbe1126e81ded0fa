"""A reference implementation of the engagement semantics in plain Python, for the tests.

Deliberately simple and independent of jobs/engagement.py: sort each counter's readings, take
differences, add them up per minute and per window. Tests compare the job's output with it.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from creatorpulse.observation import Observation
from creatorpulse.settings import WindowSpec

RANK = {"rounded": 0, "estimated": 1, "measured": 2}
NAME = {rank: name for name, rank in RANK.items()}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Gain:
    influencer_id: str
    platform: str
    counter: tuple[str, str, str | None, str]
    metric: str
    at: datetime
    gain: int
    value: int
    rank: int


def gains(readings: Iterable[Observation]) -> list[Gain]:
    """Consecutive differences per counter, after dropping repeated event ids."""
    unique: dict[str, Observation] = {}
    for o in readings:
        unique.setdefault(o.event_id, o)
    by_counter: dict[tuple[str, str, str | None, str], list[Observation]] = defaultdict(list)
    for o in unique.values():
        by_counter[(o.platform.value, o.account_id, o.content_id, o.metric)].append(o)
    result = []
    for counter, series in by_counter.items():
        series.sort(key=lambda o: o.observed_at)
        for before, after in itertools.pairwise(series):
            result.append(Gain(
                after.influencer_id, after.platform.value, counter, after.metric,
                after.observed_at, after.value - before.value, after.value,
                min(RANK[before.provenance.value], RANK[after.provenance.value])))
    return result


def _with_all(all_gains: list[Gain]) -> list[Gain]:
    return all_gains + [Gain(g.influencer_id, "all", g.counter, g.metric, g.at, g.gain, g.value,
                             g.rank) for g in all_gains]


def buckets(all_gains: list[Gain]) -> dict[tuple[str, str, str, datetime], tuple[int, int, str]]:
    """(influencer, platform, metric, minute) -> (gain, readings with a gain, provenance)."""
    acc: dict[tuple[str, str, str, datetime], list[Gain]] = defaultdict(list)
    for g in _with_all(all_gains):
        minute = g.at.replace(second=0, microsecond=0)
        acc[(g.influencer_id, g.platform, g.metric, minute)].append(g)
    return {k: (sum(g.gain for g in v), len(v), NAME[min(g.rank for g in v)])
            for k, v in acc.items()}


def rolling(
    all_gains: list[Gain], windows: Sequence[WindowSpec], until: datetime
) -> dict[tuple[str, str, str, str, datetime], tuple[datetime, int, int, int, str]]:
    """(influencer, platform, metric, window, end) -> (start, gain, value at start, value at end,
    provenance), for every window that ends by ``until`` and holds at least one gain."""
    result = {}
    for spec in windows:
        acc: dict[tuple[str, str, str, datetime], list[Gain]] = defaultdict(list)
        for g in _with_all(all_gains):
            # Window ends are multiples of the slide; a gain at t is in [end - size, end).
            first_end = EPOCH + ((g.at - EPOCH) // spec.slide + 1) * spec.slide
            end = first_end
            while end - spec.size <= g.at:
                if end <= until:
                    acc[(g.influencer_id, g.platform, g.metric, end)].append(g)
                end += spec.slide
        for (influencer, platform, metric, end), members in acc.items():
            latest: dict[tuple[str, str, str | None, str], Gain] = {}
            for g in sorted(members, key=lambda g: g.at):
                latest[g.counter] = g
            total = sum(g.gain for g in members)
            at_end = sum(g.value for g in latest.values())
            result[(influencer, platform, metric, spec.name, end)] = (
                end - spec.size, total, at_end - total, at_end,
                NAME[min(g.rank for g in members)])
    return result


def derived(
    windows_values: dict[tuple[str, str, str, str, datetime], tuple[datetime, int, int, int, str]],
) -> dict[tuple[str, str, str, datetime, str, str], tuple[int, int | None, float]]:
    """(influencer, platform, window, end, figure, formula) -> (numerator, denominator, value)."""
    per_window: dict[tuple[str, str, str, datetime], dict[str, tuple[int, int, int]]] = (
        defaultdict(dict))
    for (influencer, platform, metric, name, end), (_, gain, start, at_end, _) in (
            windows_values.items()):
        per_window[(influencer, platform, name, end)][metric] = (gain, start, at_end)
    result: dict[tuple[str, str, str, datetime, str, str], tuple[int, int | None, float]] = {}
    for (influencer, platform, name, end), metrics in per_window.items():
        key = (influencer, platform, name, end)
        if "followers" in metrics:
            gain, start, _ = metrics["followers"]
            result[(*key, "follower_growth", "absolute")] = (gain, None, float(gain))
            if start > 0:
                result[(*key, "follower_growth", "relative_to_start")] = (gain, start, gain / start)
        present = [metrics[m][0] for m in ("likes", "comments", "shares", "saves") if m in metrics]
        if not present:
            continue
        engagements = sum(present)
        denominators = {
            "by_followers": metrics.get("followers", (0, 0, 0))[2],
            "by_views": metrics.get("views", (0, 0, 0))[0],
            "by_reach": metrics.get("reach", (0, 0, 0))[0],
        }
        for formula, denominator in denominators.items():
            if denominator > 0:
                result[(*key, "engagement_rate", formula)] = (
                    engagements, denominator, engagements / denominator)
    return result
