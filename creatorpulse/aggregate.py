"""The record on ``engagement.aggregates``: one fresh rolling-window value.

The engagement job writes one JSON object per window and slide, keyed by influencer, with the
columns of its ``rolling_windows`` table (``jobs/engagement.py`` ``ROLLING_COLUMNS``). Times are
Flink ``TIMESTAMP(3)`` values in ISO 8601 without a zone; the job runs in UTC, so they are read
as UTC. :meth:`Aggregate.from_json` parses a record once into this frozen type; a malformed
record raises :class:`AggregateError` naming the field.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from creatorpulse.observation import Provenance


class AggregateError(ValueError):
    """A payload is not a valid aggregate record; the message names the field."""


@dataclass(frozen=True, slots=True)
class Aggregate:
    """One window value of one influencer x platform x metric (``platform`` may be ``all``)."""

    influencer_id: str
    platform: str
    metric: str
    window_name: str
    window_end: datetime
    window_start: datetime
    gain: int
    value_at_start: int | None
    value_at_end: int | None
    provenance: Provenance

    @classmethod
    def from_json(cls, payload: bytes | str) -> Aggregate:
        try:
            data = json.loads(payload)
        except (TypeError, ValueError, UnicodeDecodeError) as exc:
            msg = f"not JSON: {exc}"
            raise AggregateError(msg) from None
        if not isinstance(data, dict):
            msg = f"expected a JSON object, got {type(data).__name__}"
            raise AggregateError(msg)
        return cls(
            influencer_id=_text(data, "influencer_id"),
            platform=_text(data, "platform"),
            metric=_text(data, "metric"),
            window_name=_text(data, "window_name"),
            window_end=_time(data, "window_end"),
            window_start=_time(data, "window_start"),
            gain=_integer(data, "gain"),
            value_at_start=_integer(data, "value_at_start", optional=True),
            value_at_end=_integer(data, "value_at_end", optional=True),
            provenance=_provenance(data),
        )

    def to_json(self) -> bytes:
        """The JSON the engagement job writes (for tests and the benchmark's producer)."""
        data: dict[str, Any] = dataclasses.asdict(self)
        for name in ("window_end", "window_start"):
            data[name] = data[name].astimezone(UTC).replace(tzinfo=None).isoformat(
                timespec="milliseconds")
        data["provenance"] = self.provenance.value
        return json.dumps(data, separators=(",", ":")).encode()

    @property
    def key(self) -> bytes:
        """The Kafka key the job uses: the influencer id."""
        return self.influencer_id.encode()


def _field(data: dict[str, Any], name: str) -> Any:
    if name not in data:
        msg = f"{name}: missing"
        raise AggregateError(msg)
    return data[name]


def _text(data: dict[str, Any], name: str) -> str:
    value = _field(data, name)
    if not isinstance(value, str) or not value:
        msg = f"{name}: expected a non-empty string, got {value!r}"
        raise AggregateError(msg)
    return value


def _integer(data: dict[str, Any], name: str, *, optional: bool = False) -> Any:
    value = _field(data, name)
    if value is None and optional:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        msg = f"{name}: expected an integer, got {value!r}"
        raise AggregateError(msg)
    return value


def _time(data: dict[str, Any], name: str) -> datetime:
    value = _field(data, name)
    try:
        at = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        msg = f"{name}: expected an ISO 8601 time, got {value!r}"
        raise AggregateError(msg) from None
    # Flink's TIMESTAMP has no zone; the job's local time zone is UTC.
    return at.replace(tzinfo=UTC) if at.utcoffset() is None else at.astimezone(UTC)


def _provenance(data: dict[str, Any]) -> Provenance:
    value = _field(data, "provenance")
    try:
        return Provenance(value)
    except ValueError:
        msg = f"provenance: expected measured, estimated or rounded, got {value!r}"
        raise AggregateError(msg) from None
