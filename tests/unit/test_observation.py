from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from creatorpulse.observation import (
    ContentKind,
    Observation,
    ObservationError,
    Platform,
    Provenance,
    Readings,
    flink_columns,
)

AT = datetime(2026, 11, 23, 12, 30, 15, 123456, tzinfo=UTC)


def make(**overrides: object) -> Observation:
    fields: dict[str, object] = {
        "platform": Platform.INSTAGRAM,
        "account_id": "17841400000",
        "influencer_id": "inf-1",
        "content_id": "1790001",
        "content_kind": ContentKind.REEL,
        "metric": "likes",
        "value": 1204,
        "observed_at": AT,
    }
    fields.update(overrides)
    return Observation.create(**fields)  # type: ignore[arg-type]


def test_json_round_trip_keeps_every_field() -> None:
    o = make(provenance=Provenance.ROUNDED)
    assert Observation.from_json(o.to_json()) == o


def test_json_form_is_flat_snake_case_with_utc_milliseconds() -> None:
    data = json.loads(make().to_json())
    assert data["observed_at"] == "2026-11-23T12:30:15.123Z"
    assert data["platform"] == "instagram" and data["content_kind"] == "reel"
    assert data["provenance"] == "measured"
    assert list(data) == [name for name, _ in flink_columns()]


def test_observed_at_is_normalised_to_utc_milliseconds() -> None:
    local = AT.astimezone(timezone(timedelta(hours=5, minutes=30)))
    o = make(observed_at=local)
    assert o.observed_at == AT.replace(microsecond=123000)
    assert o.observed_at.tzinfo == UTC


def test_event_id_is_stable_and_identifies_the_reading() -> None:
    assert make().event_id == make().event_id
    assert make().event_id == make(observed_at=AT.replace(microsecond=123999)).event_id
    others = {
        make(metric="comments").event_id,
        make(content_id="other").event_id,
        make(account_id="other").event_id,
        make(platform=Platform.FACEBOOK).event_id,
        make(observed_at=AT + timedelta(seconds=1)).event_id,
    }
    assert make().event_id not in others and len(others) == 5
    # The value is what was read, not what identifies the reading: a re-read is the same event.
    assert make(value=1).event_id == make(value=2).event_id


def test_account_level_counters_have_no_content_id() -> None:
    o = make(content_id=None, content_kind=ContentKind.ACCOUNT, metric="followers")
    assert Observation.from_json(o.to_json()).content_id is None
    with pytest.raises(ObservationError, match="content_id"):
        make(content_id=None)
    with pytest.raises(ObservationError, match="content_id"):
        make(content_kind=ContentKind.ACCOUNT)


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ObservationError, match="observed_at"):
        make(observed_at=datetime(2026, 11, 23, 12, 0))


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"metric": "Likes"}, "metric"),
        ({"metric": ""}, "metric"),
        ({"value": 1.5}, "value"),
        ({"value": True}, "value"),
        ({"account_id": ""}, "account_id"),
        ({"influencer_id": "x" * 300}, "influencer_id"),
    ],
)
def test_invalid_fields_are_named(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(ObservationError, match=field):
        make(**overrides)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.pop("metric"), "missing fields"),
        (lambda d: d.update(extra=1), "unknown fields"),
        (lambda d: d.update(platform="myspace"), "platform"),
        (lambda d: d.update(provenance="guessed"), "provenance"),
        (lambda d: d.update(observed_at="yesterday"), "observed_at"),
        (lambda d: d.update(observed_at="2026-11-23T12:00:00"), "observed_at"),
        (lambda d: d.update(value="12"), "value"),
        (lambda d: d.update(account_id=42), "account_id"),
    ],
)
def test_from_json_says_which_field_is_wrong(mutate: object, field: str) -> None:
    data = json.loads(make().to_json())
    mutate(data)  # type: ignore[operator]
    with pytest.raises(ObservationError, match=field):
        Observation.from_json(json.dumps(data))


@pytest.mark.parametrize("payload", [b"not json", b"[1, 2]", b"\xff\xfe"])
def test_from_json_rejects_what_is_not_an_object(payload: bytes) -> None:
    with pytest.raises(ObservationError):
        Observation.from_json(payload)


def test_flink_columns_follow_the_record() -> None:
    columns = dict(flink_columns())
    assert list(columns) == [f.name for f in dataclasses.fields(Observation)]
    assert columns["observed_at"] == "TIMESTAMP_LTZ(3) NOT NULL"
    assert columns["value"] == "BIGINT NOT NULL"
    assert columns["content_id"] == "STRING"  # nullable: account-level counters


def test_the_kafka_key_groups_an_accounts_readings() -> None:
    assert make().key == make(content_id="another", metric="views").key == b"instagram:17841400000"


@pytest.mark.parametrize(("content_id", "kind", "metric", "value", "provenance"), [
    (None, ContentKind.ACCOUNT, "followers", 513958, Provenance.MEASURED),
    ("1790001", ContentKind.REEL, "likes", 0, Provenance.MEASURED),
    ("v\u00e9\"\\\u2028", ContentKind.VIDEO, "views", 10**18, Provenance.ROUNDED),
])
def test_the_per_poll_fast_path_equals_the_checked_path(
    content_id: str | None, kind: ContentKind, metric: str, value: int, provenance: Provenance
) -> None:
    at = datetime(2026, 11, 23, 13, 30, 15, 123999, tzinfo=timezone(timedelta(hours=1)))
    fast = Readings(Platform.YOUTUBE, "acc-\u00e9", "inf-1", at).make(
        content_id, kind, metric, value, provenance)
    checked = Observation.create(
        platform=Platform.YOUTUBE, account_id="acc-\u00e9", influencer_id="inf-1",
        content_id=content_id, content_kind=kind, metric=metric, value=value, observed_at=at,
        provenance=provenance)
    assert fast == checked
    assert fast.to_json() == checked.to_json()
    assert fast.to_json() == json.dumps(checked.to_dict(), separators=(",", ":")).encode()
    assert Observation.from_json(fast.to_json()) == checked


@pytest.mark.parametrize("bad", [
    lambda r: r.make("1", ContentKind.ACCOUNT, "likes", 1),
    lambda r: r.make(None, ContentKind.POST, "likes", 1),
    lambda r: r.make("", ContentKind.POST, "likes", 1),
    lambda r: r.make("x" * 257, ContentKind.POST, "likes", 1),
    lambda r: r.make("1", ContentKind.POST, "Likes", 1),
    lambda r: r.make("1", ContentKind.POST, "likes", True),
    lambda r: r.make("1", ContentKind.POST, "likes", 1.5),
    lambda r: r.make("1", ContentKind.POST, "likes", "7"),
])
def test_the_fast_path_still_checks_each_record(bad: object) -> None:
    readings = Readings(Platform.X, "acc-1", "inf-1", AT)
    with pytest.raises(ObservationError):
        bad(readings)  # type: ignore[operator]


@pytest.mark.parametrize(("account_id", "influencer_id", "at"), [
    ("", "inf-1", AT),
    ("acc-1", None, AT),
    ("acc-1", "inf-1", datetime(2026, 11, 23, 12, 0)),  # naive: refused
])
def test_the_fast_path_checks_what_a_poll_shares_once(
    account_id: str, influencer_id: object, at: datetime
) -> None:
    with pytest.raises(ObservationError):
        Readings(Platform.X, account_id, influencer_id, at)  # type: ignore[arg-type]


def test_records_are_encoded_as_their_key_and_json_one_by_one_would_be() -> None:
    from creatorpulse.observation import ContentKind, Provenance, Readings, encode_records

    t1 = datetime(2026, 12, 7, 12, 0, 0, 123456, tzinfo=UTC)
    a = Readings(Platform.INSTAGRAM, "acc-1", "inf-1", t1)
    b = Readings(Platform.X, "acc-\u00e9", "inf-\"2", t1 + timedelta(seconds=1))
    records = [
        a.make(None, ContentKind.ACCOUNT, "followers", 10),
        a.make("post-1", ContentKind.POST, "likes", 3),
        a.make("post-1", ContentKind.POST, "views", 0, Provenance.ESTIMATED),
        b.make("t\\1", ContentKind.POST, "likes", 2**40),
        a.make("post-2", ContentKind.REEL, "saves", 1, Provenance.ROUNDED),
    ]
    assert list(encode_records(records)) == [(o.key, o.to_json()) for o in records]
    assert [Observation.from_json(v) for _, v in encode_records(records)] == records


def test_many_records_of_one_content_equal_the_ones_made_one_by_one() -> None:
    from creatorpulse.observation import ContentKind, Provenance, Readings

    at = datetime(2026, 12, 7, 12, 0, 0, 987654, tzinfo=UTC)
    readings = Readings(Platform.TIKTOK, "acc-1", "inf-1", at)
    out: list[Observation] = []
    readings.make_many("v1", ContentKind.VIDEO, [("likes", 5), ("shares", None), ("views", 0)],
                       Provenance.ROUNDED, out)
    readings.make_many(None, ContentKind.ACCOUNT, [("followers", 9)], Provenance.MEASURED, out)
    assert out == [
        Observation.create(platform=Platform.TIKTOK, account_id="acc-1", influencer_id="inf-1",
                           content_id=c, content_kind=k, metric=m, value=v, observed_at=at,
                           provenance=p)
        for c, k, m, v, p in (("v1", ContentKind.VIDEO, "likes", 5, Provenance.ROUNDED),
                              ("v1", ContentKind.VIDEO, "views", 0, Provenance.ROUNDED),
                              (None, ContentKind.ACCOUNT, "followers", 9, Provenance.MEASURED))]
    with pytest.raises(ObservationError, match="metric"):
        readings.make_many("v1", ContentKind.VIDEO, [("Bad Name", 1)], Provenance.MEASURED, out)
    with pytest.raises(ObservationError, match="value"):
        readings.make_many("v1", ContentKind.VIDEO, [("likes", True)], Provenance.MEASURED, out)
    with pytest.raises(ObservationError, match="content_id"):
        readings.make_many(None, ContentKind.VIDEO, [("likes", 1)], Provenance.MEASURED, out)
