"""Mutation input checks: each problem names its field and says why, never echoing a token."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from creatorpulse.graphql import validation as v
from creatorpulse.graphql.influencers import decode_cursor, encode_cursor

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


def fields(problems: list[v.Problem]) -> list[str]:
    return [p.field for p in problems]


def test_names() -> None:
    assert v.name("Ann", "input.name", required=True) == []
    assert fields(v.name(None, "input.name", required=True)) == ["input.name"]
    assert v.name(None, "input.name", required=False) == []
    assert v.name("   ", "input.name", required=True)[0].message == "must not be blank"
    assert fields(v.name("x" * 201, "input.name", required=True)) == ["input.name"]


def test_tags_point_at_the_bad_one() -> None:
    assert v.tags(["fitness", "food-2"], "input.tags") == []
    problems = v.tags(["ok", "has space", "ok"], "input.tags")
    assert fields(problems) == ["input.tags[1]", "input.tags[2]"]
    assert "duplicate" in problems[1].message
    assert fields(v.tags([f"t{i}" for i in range(21)], "input.tags")) == ["input.tags"]


def test_metadata_must_be_a_small_object() -> None:
    assert v.metadata({"country": "FR"}, "input.metadata") == []
    assert v.metadata([1, 2], "input.metadata")[0].message == "must be a JSON object"
    assert fields(v.metadata({"x": "y" * 20_000}, "input.metadata")) == ["input.metadata"]


def test_accounts() -> None:
    assert v.external_id("17841400000000", "input.externalId") == []
    assert fields(v.external_id(" ", "input.externalId")) == ["input.externalId"]
    assert fields(v.external_id("a/b", "input.externalId")) == ["input.externalId"]
    assert v.poll_interval(300, "p") == []
    assert fields(v.poll_interval(1, "p")) == ["p"]
    assert fields(v.poll_interval(90_000, "p")) == ["p"]


def test_a_bad_token_is_reported_without_echoing_it() -> None:
    problems = v.token("sekrit value", "input.accessToken")
    assert fields(problems) == ["input.accessToken"]
    assert "sekrit" not in problems[0].message
    assert v.token("abc.def-ghi", "input.accessToken") == []


def test_backfill_ranges() -> None:
    ok = v.time_range(NOW - timedelta(days=2), NOW - timedelta(days=1), NOW, "from", "to")
    assert ok == []
    assert fields(v.time_range(NOW, NOW - timedelta(hours=1), NOW, "from", "to")) == ["to"]
    assert fields(v.time_range(NOW - timedelta(days=100), NOW, NOW, "from", "to")) == ["to"]
    assert fields(v.time_range(NOW + timedelta(hours=1), NOW + timedelta(hours=2), NOW,
                               "from", "to")) == ["from"]
    naive = datetime(2026, 11, 1)
    assert fields(v.time_range(naive, NOW, NOW, "from", "to")) == ["from"]


def test_cursors_round_trip_and_garbage_is_an_input_error() -> None:
    import pytest

    from creatorpulse.graphql.errors import InputError

    cursor = encode_cursor("Ann", "id-1")
    assert decode_cursor(cursor) == ("Ann", "id-1")
    with pytest.raises(InputError) as caught:
        decode_cursor("not-a-cursor")
    assert caught.value.field == "after"
