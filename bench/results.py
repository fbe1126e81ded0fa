"""The benchmark's figures: percentiles, the goals of the issue, and the results file."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

# The goals: whole-pipeline throughput (stretch 100,000/s), against the baseline, freshness.
GOALS: dict[str, tuple[str, float]] = {
    "pipeline_obs_per_s": (">=", 50_000),
    "pipeline_vs_baseline": (">=", 5),
    "freshness_p99_s": ("<=", 5),
}
STRETCH_OBS_PER_S = 100_000


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, interpolating linearly between ranks."""
    if not values:
        msg = "percentile of no values"
        raise ValueError(msg)
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def results_document(
    *,
    observations: int,
    pipeline: float | None,
    ceiling: float | None,
    baseline: float | None,
    freshness_p50: float | None,
    freshness_p99: float | None,
    measured_at: datetime,
    details: dict[str, Any],
) -> dict[str, Any]:
    """The figures, their ratios and which goals they meet, as ``pipeline.json`` holds them; a
    part left out is ``None`` (null), and so is every ratio and goal it takes part in."""

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 2) if a is not None and b else None

    def rounded(value: float | None, digits: int | None = None) -> float | None:
        return None if value is None else round(value, digits)

    doc: dict[str, Any] = {
        "observations": observations,
        "pipeline_obs_per_s": rounded(pipeline),
        "ceiling_obs_per_s": rounded(ceiling),
        "baseline_obs_per_s": rounded(baseline),
        "freshness_p50_s": rounded(freshness_p50, 3),
        "freshness_p99_s": rounded(freshness_p99, 3),
        "pipeline_vs_baseline": ratio(pipeline, baseline),
        "pipeline_vs_ceiling": ratio(pipeline, ceiling),
        "measured_at": measured_at.isoformat(),
    }
    goals = {}
    for key, (op, bound) in GOALS.items():
        value = doc[key]
        met = value is not None and (value >= bound if op == ">=" else value <= bound)
        goals[key] = {"goal": f"{op} {bound:g}", "met": met}
    stretch = doc["pipeline_obs_per_s"]
    goals["pipeline_obs_per_s_stretch"] = {
        "goal": f">= {STRETCH_OBS_PER_S}",
        "met": stretch is not None and stretch >= STRETCH_OBS_PER_S}
    doc["goals"] = goals
    doc["details"] = details
    return doc


def write_results(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")


def markdown_table(doc: dict[str, Any]) -> str:
    """The figures as the README's table: figure, value, goal, met."""
    goals = doc["goals"]

    def met(key: str) -> str:
        return "yes" if goals[key]["met"] else "**no**"

    def shown(key: str, unit: str) -> str:
        value = doc[key]
        if value is None:
            return "not run"
        return f"{value:,}{unit}" if isinstance(value, int) else f"{value}{unit}"

    rows = [
        ("pipeline throughput (Kafka → job → PostgreSQL)", shown("pipeline_obs_per_s", " obs/s"),
         "≥ 50,000 (stretch 100,000)", met("pipeline_obs_per_s")),
        ("ceiling (same SQL, generator → blackhole)", shown("ceiling_obs_per_s", " obs/s"),
         "", ""),
        ("baseline (plain Python consumer)", shown("baseline_obs_per_s", " obs/s"), "", ""),
        ("pipeline ÷ baseline", shown("pipeline_vs_baseline", "×"), "≥ 5×",
         met("pipeline_vs_baseline")),
        ("pipeline ÷ ceiling", shown("pipeline_vs_ceiling", ""), "", ""),
        ("freshness p50", shown("freshness_p50_s", " s"), "", ""),
        ("freshness p99", shown("freshness_p99_s", " s"), "≤ 5 s", met("freshness_p99_s")),
    ]
    lines = ["| figure | value | goal | met |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(lines)
