"""The helpers every connector shares: counts, paging, dead letters, waits, redaction."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from creatorpulse.observation import ContentKind, Platform
from creatorpulse.sources._common import (
    Malformed,
    Observer,
    counter,
    iso_time,
    map_each,
    pages,
    reason,
    redact,
    retry_after,
)
from creatorpulse.sources.base import ApiError, Poll
from tests.unit.fake_api import NOW, account


def test_counter_reads_counts_and_leaves_unreported_ones_missing() -> None:
    item = {"a": 3, "z": 0, "n": None, "s": "1500", "nested": {"summary": {"total_count": 41}}}
    assert counter(item, "a") == 3 and counter(item, "z") == 0
    assert counter(item, "absent") is None and counter(item, "n") is None
    assert counter(item, "nested.summary.total_count") == 41
    assert counter(item, "nested.gone.total_count") is None
    assert counter(item, "s", strings=True) == 1500


@pytest.mark.parametrize("value", ["1500", True, -1, 1.5, [3], {"count": 3}])
def test_counter_refuses_what_is_not_a_count(value: Any) -> None:
    with pytest.raises(Malformed, match="expected a non-negative count"):
        counter({"a": value}, "a")


def test_counter_refuses_a_path_through_a_non_object() -> None:
    with pytest.raises(Malformed, match=r"^shares: expected a JSON object"):
        counter({"shares": [3]}, "shares.count")


def test_iso_times_need_a_zone() -> None:
    assert iso_time({"t": "2026-11-20T19:20:02+0000"}, "t").utcoffset() == timedelta(0)
    with pytest.raises(Malformed):
        iso_time({"t": "2026-11-20T19:20:02"}, "t")
    with pytest.raises(Malformed):
        iso_time({"t": "yesterday"}, "t")


def test_map_each_keeps_an_item_only_when_all_of_it_maps() -> None:
    observe = Observer(Platform.X, account(Platform.X, "1"), NOW)

    def one(item: Any, part: Poll) -> None:
        observe.content(part, item["id"], ContentKind.POST, NOW)  # added before it fails
        observe.counts(part, item, {"likes": "likes"}, content_id=item["id"],
                       kind=ContentKind.POST)
        observe.counts(part, item, {"views": "views"}, content_id=item["id"],
                       kind=ContentKind.POST)

    poll = Poll()
    good, bad = {"id": "1", "likes": 2, "views": 9}, {"id": "2", "likes": 2, "views": "9"}
    map_each(poll, [good, bad], one, "tweet")
    assert [(o.content_id, o.metric) for o in poll.observations] == [("1", "likes"),
                                                                     ("1", "views")]
    assert [c.id for c in poll.content] == ["1"]  # what the bad item had added is taken out
    assert json.loads(poll.dead_letters[0].payload) == bad
    assert poll.dead_letters[0].reason == "tweet 2: views: expected a non-negative count, got '9'"


def split(page: Any) -> tuple[list[Any], str | None]:
    if not isinstance(page, dict):
        msg = "expected an object"
        raise Malformed(msg)
    return page["items"], page.get("next")


def test_pages_follow_empty_pages_and_stop_at_the_end() -> None:
    served = {None: {"items": [1], "next": "a"}, "a": {"items": [], "next": "b"},
              "b": {"items": [2, 3]}}
    asked: list[str | None] = []

    def fetch(cursor: str | None) -> Any:
        asked.append(cursor)
        return served[cursor]

    assert list(pages(Poll(), "things", fetch, split)) == [1, 2, 3]
    assert asked == [None, "a", "b"]


def test_pages_refuse_a_cursor_loop_and_dead_letter_a_malformed_page() -> None:
    loop = {None: {"items": [1], "next": "a"}, "a": {"items": [2], "next": "b"},
            "b": {"items": [], "next": "a"}}
    with pytest.raises(ApiError, match="same next-page cursor twice"):
        list(pages(Poll(), "things", loop.__getitem__, split))

    poll = Poll()
    broken = {None: {"items": [1], "next": "a"}, "a": ["not", "a", "page"]}
    assert list(pages(poll, "things", broken.__getitem__, split)) == [1]
    assert json.loads(poll.dead_letters[0].payload) == ["not", "a", "page"]


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after({"retry-after": "120"}, NOW) == timedelta(minutes=2)
    assert retry_after({"retry-after": "Wed, 25 Nov 2026 12:01:30 GMT"}, NOW) == timedelta(
        seconds=90)
    assert retry_after({"retry-after": "Wed, 25 Nov 2026 11:00:00 GMT"}, NOW) == timedelta(0)
    assert retry_after({"retry-after": "soon"}, NOW) is None
    assert retry_after({}, NOW) is None


def test_messages_never_carry_tokens() -> None:
    text = ("GET https://graph.facebook.com/v25.0/me?access_token=EAAB123&fields=id "
            "Authorization: Bearer act.abc.DEF key=AIzaSy-secret")
    shown = redact(text)
    for secret in ("EAAB123", "act.abc.DEF", "AIzaSy-secret"):
        assert secret not in shown
    assert "fields=id" in shown
    long = reason(Platform.X, 400, "x" * 500, "code 4")
    assert long.startswith("x: HTTP 400: xxx") and long.endswith("xx... (code 4)")
    assert len(long) == 300
