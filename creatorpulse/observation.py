"""The record on ``engagement.observations``: one cumulative counter, read once.

A poll yields one :class:`Observation` per (account, content, metric): the counter's value as the
platform reported it and the UTC time it was read. The dataclass below is the only definition:
its JSON form (:meth:`Observation.to_json` / :meth:`Observation.from_json`) and its Flink columns
(:func:`flink_columns`) are derived from the same fields, so the topic, the jobs and the sinks
cannot drift apart.

Account-level counters (followers, total views) have ``content_kind = account`` and no
``content_id``. A value the platform did not report is never an observation: missing is not zero.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any


class ObservationError(ValueError):
    """A payload is not a valid observation; the message says which field and why."""


class Platform(enum.StrEnum):
    INSTAGRAM = "instagram"
    FACEBOOK = "facebook"
    YOUTUBE = "youtube"
    TIKTOK = "tiktok"
    X = "x"


class ContentKind(enum.StrEnum):
    ACCOUNT = "account"
    POST = "post"
    REEL = "reel"
    STORY = "story"
    VIDEO = "video"
    SHORT = "short"


class Provenance(enum.StrEnum):
    """How far to trust a value: as reported, estimated by us, or rounded by the platform."""

    MEASURED = "measured"
    ESTIMATED = "estimated"
    ROUNDED = "rounded"


_METRIC = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_MAX_ID = 256


def _col(flink_type: str) -> Any:
    return field(metadata={"flink": flink_type})


@dataclass(frozen=True, slots=True)
class Observation:
    """One reading of one cumulative counter. Build with :meth:`create` to get the event id.

    >>> from datetime import datetime, UTC
    >>> o = Observation.create(platform=Platform.X, account_id="42", influencer_id="inf-1",
    ...     content_id="1790", content_kind=ContentKind.POST, metric="likes", value=17,
    ...     observed_at=datetime(2026, 11, 23, 12, 0, tzinfo=UTC))
    >>> Observation.from_json(o.to_json()) == o
    True
    """

    platform: Platform = _col("STRING NOT NULL")
    account_id: str = _col("STRING NOT NULL")
    influencer_id: str = _col("STRING NOT NULL")
    content_id: str | None = _col("STRING")
    content_kind: ContentKind = _col("STRING NOT NULL")
    metric: str = _col("STRING NOT NULL")
    value: int = _col("BIGINT NOT NULL")
    observed_at: datetime = _col("TIMESTAMP_LTZ(3) NOT NULL")
    provenance: Provenance = _col("STRING NOT NULL")
    event_id: str = _col("STRING NOT NULL")

    def __post_init__(self) -> None:
        for name in ("account_id", "influencer_id", "event_id"):
            _check_id(name, getattr(self, name))
        if (self.content_kind is ContentKind.ACCOUNT) != (self.content_id is None):
            msg = "content_id must be null exactly when content_kind is 'account'"
            raise ObservationError(msg)
        if self.content_id is not None:
            _check_id("content_id", self.content_id)
        if not _METRIC.match(self.metric):
            msg = f"metric: expected lower_snake_case of at most 64 characters, got {self.metric!r}"
            raise ObservationError(msg)
        if isinstance(self.value, bool) or not isinstance(self.value, int):
            msg = f"value: expected an integer count, got {self.value!r}"
            raise ObservationError(msg)
        # Normalised once here so equality, event ids and Flink's millisecond time agree.
        object.__setattr__(self, "observed_at", utc_millis(self.observed_at))

    @classmethod
    def create(
        cls,
        *,
        platform: Platform,
        account_id: str,
        influencer_id: str,
        content_id: str | None,
        content_kind: ContentKind,
        metric: str,
        value: int,
        observed_at: datetime,
        provenance: Provenance = Provenance.MEASURED,
    ) -> Observation:
        """An observation whose ``event_id`` is derived from what identifies the reading."""
        at = utc_millis(observed_at)
        return cls(
            platform=platform,
            account_id=account_id,
            influencer_id=influencer_id,
            content_id=content_id,
            content_kind=content_kind,
            metric=metric,
            value=value,
            observed_at=at,
            provenance=provenance,
            event_id=event_id(platform, account_id, content_id, metric, at),
        )

    @property
    def key(self) -> bytes:
        """The Kafka key: all of an account's observations share a partition, in order."""
        return f"{self.platform}:{self.account_id}".encode()

    def to_dict(self) -> dict[str, Any]:
        return {
            "platform": self.platform.value,
            "account_id": self.account_id,
            "influencer_id": self.influencer_id,
            "content_id": self.content_id,
            "content_kind": self.content_kind.value,
            "metric": self.metric,
            "value": self.value,
            "observed_at": format_timestamp(self.observed_at),
            "provenance": self.provenance.value,
            "event_id": self.event_id,
        }

    def to_json(self) -> bytes:
        """``to_dict`` as compact JSON (what ``json.dumps`` with ``(",", ":")`` separators
        writes, byte for byte), assembled directly: it runs for every record published."""
        content = "null" if self.content_id is None else _quote(self.content_id)
        # The enums are str subclasses: quoted as they are, they give their values.
        return (
            f'{{"platform":{_quote(self.platform)},"account_id":{_quote(self.account_id)},'
            f'"influencer_id":{_quote(self.influencer_id)},"content_id":{content},'
            f'"content_kind":{_quote(self.content_kind)},"metric":{_quote(self.metric)},'
            f'"value":{int.__repr__(self.value)},'
            f'"observed_at":"{format_timestamp(self.observed_at)}",'
            f'"provenance":{_quote(self.provenance)},"event_id":{_quote(self.event_id)}}}'
        ).encode()

    @classmethod
    def from_dict(cls, data: Any) -> Observation:
        """Parse the JSON form; any problem raises :class:`ObservationError` naming the field."""
        if not isinstance(data, dict):
            msg = f"expected a JSON object, got {type(data).__name__}"
            raise ObservationError(msg)
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [n for n in names if n not in data]
        extra = sorted(set(data) - set(names))
        if missing or extra:
            msg = f"missing fields {missing}" if missing else f"unknown fields {extra}"
            raise ObservationError(msg)
        text = {n: data[n] for n in names if n not in ("value", "content_id")}
        for name, value in text.items():
            if not isinstance(value, str):
                msg = f"{name}: expected a string, got {value!r}"
                raise ObservationError(msg)
        return cls(
            platform=_enum(Platform, "platform", data["platform"]),
            account_id=data["account_id"],
            influencer_id=data["influencer_id"],
            content_id=data["content_id"],
            content_kind=_enum(ContentKind, "content_kind", data["content_kind"]),
            metric=data["metric"],
            value=data["value"],
            observed_at=parse_timestamp(data["observed_at"]),
            provenance=_enum(Provenance, "provenance", data["provenance"]),
            event_id=data["event_id"],
        )

    @classmethod
    def from_json(cls, payload: bytes | str) -> Observation:
        try:
            data = json.loads(payload)
        except (ValueError, UnicodeDecodeError) as exc:
            msg = f"not JSON: {exc}"
            raise ObservationError(msg) from None
        return cls.from_dict(data)


class Readings:
    """Builds the observations of one reading instant of one account, checking once what they
    share.

    :meth:`Observation.create` validates every field of every record; a poll makes dozens of
    records that differ only in content, metric and value. Here the account, the influencer and
    ``observed_at`` are checked (and the time normalised and formatted) once, metric names once
    per process; each record still has its content id, kind and value checked. The records are
    equal to :meth:`Observation.create`'s, event ids included.
    """

    __slots__ = ("_content", "_platform", "_time", "account_id", "influencer_id", "observed_at",
                 "platform")

    def __init__(self, platform: Platform, account_id: str, influencer_id: str,
                 observed_at: datetime) -> None:
        _check_id("account_id", account_id)
        _check_id("influencer_id", influencer_id)
        self.platform = Platform(platform)
        self.account_id = account_id
        self.influencer_id = influencer_id
        self.observed_at = utc_millis(observed_at)
        self._platform = self.platform.value
        self._time = format_timestamp(self.observed_at)
        self._content: str | None = None  # the content id checked last

    def make_many(
        self,
        content_id: str | None,
        content_kind: ContentKind,
        values: Iterable[tuple[str, int | None]],
        provenance: Provenance,
        out: list[Observation],
    ) -> None:
        """Append to ``out`` one record per ``(metric, value)`` of one content (None values are
        not reported, so no record): what the records share is checked and joined once."""
        if (content_kind is ContentKind.ACCOUNT) != (content_id is None):
            msg = "content_id must be null exactly when content_kind is 'account'"
            raise ObservationError(msg)
        if content_id is not None and content_id is not self._content:
            _check_id("content_id", content_id)
            self._content = content_id
        if content_kind.__class__ is not ContentKind:
            content_kind = ContentKind(content_kind)
        if provenance.__class__ is not Provenance:
            provenance = Provenance(provenance)
        head = f"{self._platform}\x1f{self.account_id}\x1f{content_id or ''}\x1f"
        tail = f"\x1f{self._time}"
        platform, account, influencer, at = (self.platform, self.account_id,
                                             self.influencer_id, self.observed_at)
        for metric, value in values:
            if value is None:
                continue
            if metric not in _GOOD_METRICS:
                if not _METRIC.match(metric):
                    msg = ("metric: expected lower_snake_case of at most 64 characters, "
                           f"got {metric!r}")
                    raise ObservationError(msg)
                _GOOD_METRICS.add(metric)
            if value.__class__ is not int and (isinstance(value, bool)
                                               or not isinstance(value, int)):
                msg = f"value: expected an integer count, got {value!r}"
                raise ObservationError(msg)
            record = _new(Observation)
            _set(record, "platform", platform)
            _set(record, "account_id", account)
            _set(record, "influencer_id", influencer)
            _set(record, "content_id", content_id)
            _set(record, "content_kind", content_kind)
            _set(record, "metric", metric)
            _set(record, "value", value)
            _set(record, "observed_at", at)
            _set(record, "provenance", provenance)
            _set(record, "event_id",
                 hashlib.sha256((head + metric + tail).encode()).hexdigest()[:32])
            out.append(record)

    def make(
        self,
        content_id: str | None,
        content_kind: ContentKind,
        metric: str,
        value: int,
        provenance: Provenance = Provenance.MEASURED,
    ) -> Observation:
        if (content_kind is ContentKind.ACCOUNT) != (content_id is None):
            msg = "content_id must be null exactly when content_kind is 'account'"
            raise ObservationError(msg)
        if content_id is not None and content_id is not self._content:
            _check_id("content_id", content_id)
            self._content = content_id  # a content's metrics come one after the other
        if metric not in _GOOD_METRICS:
            if not _METRIC.match(metric):
                msg = f"metric: expected lower_snake_case of at most 64 characters, got {metric!r}"
                raise ObservationError(msg)
            _GOOD_METRICS.add(metric)
        if value.__class__ is not int and (isinstance(value, bool) or not isinstance(value, int)):
            msg = f"value: expected an integer count, got {value!r}"
            raise ObservationError(msg)
        at = self.observed_at
        ident = hashlib.sha256("\x1f".join((
            self._platform, self.account_id, content_id or "", metric, self._time)).encode()
        ).hexdigest()[:32]
        record = _new(Observation)
        _set(record, "platform", self.platform)
        _set(record, "account_id", self.account_id)
        _set(record, "influencer_id", self.influencer_id)
        _set(record, "content_id", content_id)
        _set(record, "content_kind", content_kind if content_kind.__class__ is ContentKind
             else ContentKind(content_kind))
        _set(record, "metric", metric)
        _set(record, "value", value)
        _set(record, "observed_at", at)
        _set(record, "provenance", provenance if provenance.__class__ is Provenance
             else Provenance(provenance))
        _set(record, "event_id", ident)
        return record


_new = object.__new__
_set = object.__setattr__
_GOOD_METRICS: set[str] = set()  # metric names already matched against _METRIC
_quote = json.encoder.encode_basestring_ascii  # json.dumps' own string escaping


def encode_records(observations: Iterable[Observation]) -> Iterator[tuple[bytes, bytes]]:
    """``(o.key, o.to_json())`` of each observation, byte for byte, made faster for a poll's.

    The records of one poll share platform, account, influencer and time: the JSON before the
    content id, the time and the key are built once for each run of records sharing them."""
    shared: tuple[Any, ...] = ()
    key = head = when = b""
    for o in observations:
        ident = (o.platform, o.account_id, o.influencer_id, o.observed_at)
        if ident != shared:
            shared = ident
            key = o.key
            head = (f'{{"platform":{_quote(o.platform)},"account_id":{_quote(o.account_id)},'
                    f'"influencer_id":{_quote(o.influencer_id)},"content_id":').encode()
            when = f',"observed_at":"{format_timestamp(o.observed_at)}","provenance":'.encode()
        content = "null" if o.content_id is None else _quote(o.content_id)
        yield key, b"".join((
            head,
            (f'{content},"content_kind":{_quote(o.content_kind)},"metric":{_quote(o.metric)},'
             f'"value":{int.__repr__(o.value)}').encode(),
            when,
            f'{_quote(o.provenance)},"event_id":{_quote(o.event_id)}}}'.encode()))


def event_id(
    platform: Platform, account_id: str, content_id: str | None, metric: str, observed_at: datetime
) -> str:
    """Stable id of a reading: the same counter read at the same instant has the same id."""
    parts = (platform.value, account_id, content_id or "", metric, format_timestamp(observed_at))
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def utc_millis(at: object) -> datetime:
    """``at`` in UTC, truncated to milliseconds (Flink's event-time precision)."""
    if not isinstance(at, datetime) or at.utcoffset() is None:
        msg = f"observed_at: expected a time-zone-aware datetime, got {at!r}"
        raise ObservationError(msg)
    at = at.astimezone(UTC)
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


@lru_cache(maxsize=4096)
def format_timestamp(at: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and ``Z``, the form Flink's JSON format reads.

    Cached: every record of a poll shares its instant, and a poll makes dozens of records.
    """
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def parse_timestamp(text: str) -> datetime:
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        msg = f"observed_at: expected an ISO 8601 time, got {text!r}"
        raise ObservationError(msg) from None
    if at.utcoffset() is None:
        msg = f"observed_at: {text!r} has no time zone"
        raise ObservationError(msg)
    return at.astimezone(UTC)


def flink_columns() -> list[tuple[str, str]]:
    """``(column, Flink SQL type)`` for every field, in record order."""
    return [(f.name, f.metadata["flink"]) for f in dataclasses.fields(Observation)]


def _check_id(name: str, value: object) -> None:
    if not isinstance(value, str) or not value or len(value) > _MAX_ID:
        msg = f"{name}: expected a non-empty string of at most {_MAX_ID} characters, got {value!r}"
        raise ObservationError(msg)


def _enum(kind: type[enum.StrEnum], name: str, value: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        msg = f"{name}: expected one of {allowed}, got {value!r}"
        raise ObservationError(msg) from None
