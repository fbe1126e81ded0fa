"""The Kafka topics of CreatorPulse, defined once: name, partitions and topic configuration.

``creatorpulse stack up`` creates them; sources, jobs and the API refer to them through
:data:`TOPICS` rather than by literal names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

_DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class Topic:
    name: str
    partitions: int
    purpose: str
    config: Mapping[str, str] = field(default_factory=dict)


# Four partitions for the high-volume topics: a multiple of the Flink parallelism (2 cores) with
# room to grow; observations are keyed by account so each account's readings stay in order.
OBSERVATIONS = Topic(
    "engagement.observations",
    4,
    "cumulative counter readings from the sources (Observation JSON)",
    {"retention.ms": str(7 * _DAY_MS)},
)
DLQ = Topic(
    "engagement.dlq",
    1,
    "payloads that could not be mapped, with the original bytes and the reason",
    {"retention.ms": str(30 * _DAY_MS)},
)
LATE = Topic(
    "engagement.late",
    2,
    "observations later than the allowed lateness, for reconciliation",
    {"retention.ms": str(30 * _DAY_MS)},
)
AGGREGATES = Topic(
    "engagement.aggregates",
    4,
    "fresh rolling-window values for live subscriptions",
    {"retention.ms": str(1 * _DAY_MS)},
)
CONTENT = Topic(
    "engagement.content",
    2,
    "content events from webhooks (new posts, comment text)",
    {"retention.ms": str(7 * _DAY_MS)},
)

HINTS = Topic(
    "engagement.hints",
    2,
    "poll hints from webhooks: poll this account now (never a count)",
    {"retention.ms": str(1 * _DAY_MS)},
)

TOPICS: Mapping[str, Topic] = MappingProxyType(
    {
        "observations": OBSERVATIONS,
        "dlq": DLQ,
        "late": LATE,
        "aggregates": AGGREGATES,
        "content": CONTENT,
        "hints": HINTS,
    }
)
