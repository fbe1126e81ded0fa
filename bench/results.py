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
    pipeline: float,
    ceiling: float,
    baseline: float,
    freshness_p50: float,
    freshness_p99: float,
    measured_at: datetime,
    details: dict[str, Any],
) -> dict[str, Any]:
    """The figures, their ratios and which goals they meet, as ``pipeline.json`` holds them."""
    doc: dict[str, Any] = {
        "observations": observations,
        "pipeline_obs_per_s": round(pipeline),
        "ceiling_obs_per_s": round(ceiling),
        "baseline_obs_per_s": round(baseline),
        "freshness_p50_s": round(freshness_p50, 3),
        "freshness_p99_s": round(freshness_p99, 3),
        "pipeline_vs_baseline": round(pipeline / baseline, 2) if baseline else None,
        "pipeline_vs_ceiling": round(pipeline / ceiling, 2) if ceiling else None,
        "measured_at": measured_at.isoformat(),
    }
    goals = {}
    for key, (op, bound) in GOALS.items():
        value = doc[key]
        met = value is not None and (value >= bound if op == ">=" else value <= bound)
        goals[key] = {"goal": f"{op} {bound:g}", "met": met}
    goals["pipeline_obs_per_s_stretch"] = {
        "goal": f">= {STRETCH_OBS_PER_S}", "met": doc["pipeline_obs_per_s"] >= STRETCH_OBS_PER_S}
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

    rows = [
        ("pipeline throughput (Kafka → job → PostgreSQL)",
         f"{doc['pipeline_obs_per_s']:,} obs/s", "≥ 50,000 (stretch 100,000)",
         met("pipeline_obs_per_s")),
        ("ceiling (same SQL, generator → blackhole)", f"{doc['ceiling_obs_per_s']:,} obs/s",
         "", ""),
        ("baseline (plain Python consumer)", f"{doc['baseline_obs_per_s']:,} obs/s", "", ""),
        ("pipeline ÷ baseline", f"{doc['pipeline_vs_baseline']}×", "≥ 5×",
         met("pipeline_vs_baseline")),
        ("pipeline ÷ ceiling", f"{doc['pipeline_vs_ceiling']}", "", ""),
        ("freshness p50", f"{doc['freshness_p50_s']} s", "", ""),
        ("freshness p99", f"{doc['freshness_p99_s']} s", "≤ 5 s", met("freshness_p99_s")),
    ]
    lines = ["| figure | value | goal | met |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(lines)
