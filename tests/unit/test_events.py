"""The records of the hints, content and dead-letter topics: JSON round trips and bad payloads."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from creatorpulse.events import ContentEvent, DeadLetter, EventError, PollHint
from creatorpulse.observation import Platform

AT = datetime(2026, 11, 25, 9, 0, 1, 123456, tzinfo=UTC)

HINT = PollHint(Platform.INSTAGRAM, "17841405309211844", "18172143295349192", "comments",
                "d1", AT)
CONTENT = ContentEvent(Platform.YOUTUBE, "UC1", "V1", "comment", "nice — ünïcode", "fan1", AT,
                       "d2")
LETTER = DeadLetter("webhook", Platform.X, None, "x: for_user_id missing", b"\x00\xffraw", AT)


@pytest.mark.parametrize("record", [HINT, CONTENT, LETTER])
def test_json_round_trip(record: PollHint | ContentEvent | DeadLetter) -> None:
    assert type(record).from_json(record.to_json()) == record


def test_times_are_utc_milliseconds_in_json() -> None:
    later = datetime(2026, 11, 25, 11, 0, 1, 123999, tzinfo=timezone(timedelta(hours=2)))
    hint = PollHint(Platform.X, "1", None, "follow_events", "d", later)
    assert hint.received_at == AT.replace(microsecond=123000)
    assert json.loads(hint.to_json())["received_at"] == "2026-11-25T09:00:01.123Z"


def test_optional_fields_round_trip_as_null() -> None:
    hint = PollHint(Platform.TIKTOK, "open1", None, "authorization.removed", "d", AT)
    assert json.loads(hint.to_json())["content_id"] is None
    assert PollHint.from_json(hint.to_json()) == hint
    letter = DeadLetter("poller", None, None, "why", b"", AT)
    assert DeadLetter.from_json(letter.to_json()) == letter


def test_dead_letter_payload_is_base64() -> None:
    data = json.loads(LETTER.to_json())
    assert base64.b64decode(data["payload"]) == b"\x00\xffraw"


def test_keys_keep_an_accounts_records_together() -> None:
    assert HINT.key == b"instagram:17841405309211844"
    assert CONTENT.key == b"youtube:UC1"
    assert DeadLetter("webhook", None, None, "r", b"", AT).key == b"-:-"


def test_a_content_event_of_an_unknown_kind_is_refused() -> None:
    with pytest.raises(EventError, match="kind"):
        ContentEvent(Platform.X, "1", "2", "liked", None, None, AT, "d")


def mutate(record: PollHint | ContentEvent | DeadLetter, **changes: object) -> bytes:
    data = json.loads(record.to_json())
    data.update(changes)
    return json.dumps(data).encode()


@pytest.mark.parametrize(("cls", "payload", "field"), [
    (PollHint, mutate(HINT, platform="myspace"), "platform"),
    (PollHint, mutate(HINT, external_account_id=17841405309211844), "external_account_id"),
    (PollHint, mutate(HINT, content_id=5), "content_id"),
    (PollHint, mutate(HINT, received_at="yesterday"), "received_at"),
    (PollHint, mutate(HINT, received_at=1764061201), "received_at"),
    (PollHint, mutate(HINT, reason=None), "reason"),
    (ContentEvent, mutate(CONTENT, kind="liked"), "kind"),
    (ContentEvent, mutate(CONTENT, text=["a"]), "text"),
    (ContentEvent, mutate(CONTENT, occurred_at=None), "occurred_at"),
    (ContentEvent, mutate(CONTENT, platform=None), "platform"),
    (DeadLetter, mutate(LETTER, payload="not base64!"), "payload"),
    (DeadLetter, mutate(LETTER, reason=3), "reason"),
    (DeadLetter, mutate(LETTER, platform="myspace"), "platform"),
])
def test_a_malformed_payload_names_the_field(cls: type, payload: bytes, field: str) -> None:
    with pytest.raises(EventError, match=field):
        cls.from_json(payload)


@pytest.mark.parametrize("cls", [PollHint, ContentEvent, DeadLetter])
def test_missing_and_unknown_fields_are_named(cls: type) -> None:
    record = {PollHint: HINT, ContentEvent: CONTENT, DeadLetter: LETTER}[cls]
    data = json.loads(record.to_json())
    first = next(iter(data))
    del data[first]
    with pytest.raises(EventError, match=rf"missing fields.*{first}"):
        cls.from_json(json.dumps(data))
    with pytest.raises(EventError, match=r"unknown fields.*extra"):
        cls.from_json(json.dumps({**json.loads(record.to_json()), "extra": 1}))


@pytest.mark.parametrize("payload", [b"not json", b"\xff\xfe", b"[]", b'"text"', b"null"])
def test_not_a_json_object(payload: bytes) -> None:
    for cls in (PollHint, ContentEvent, DeadLetter):
        with pytest.raises(EventError):
            cls.from_json(payload)
