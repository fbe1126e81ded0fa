from __future__ import annotations

from datetime import UTC, datetime, timedelta

from creatorpulse.observation import ContentKind, Observation, Platform
from creatorpulse.settings import Settings
from creatorpulse.sources.base import Content, Poll
from creatorpulse.sources.cadence import (
    Cadence,
    Policy,
    backoff_factor,
    content_interval,
    next_account_poll,
    next_content_poll,
)

M = timedelta(minutes=1)
H = timedelta(hours=1)
POLICY = Policy(fresh_interval=M, fresh_age=H, max_interval=6 * H, max_age=timedelta(days=7),
                backoff_factor=8)
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_policy_comes_from_the_settings() -> None:
    assert Policy.from_settings(Settings.from_env({}, dotenv=None)) == POLICY


def test_new_content_is_polled_often_older_less_and_past_max_age_not_at_all() -> None:
    assert content_interval(timedelta(minutes=5), POLICY) == M
    assert content_interval(H, POLICY) == M
    assert content_interval(2 * H, POLICY) == 2 * M
    assert content_interval(24 * H, POLICY) == 24 * M
    assert content_interval(timedelta(days=6), POLICY) == 144 * M
    tight = Policy(M, H, 2 * H, timedelta(days=7), 8)
    assert content_interval(timedelta(days=6), tight) == 2 * H  # capped
    assert content_interval(timedelta(days=7, seconds=1), POLICY) is None


def test_unchanged_results_back_off_up_to_the_cap() -> None:
    assert [backoff_factor(n, 8) for n in range(6)] == [1, 2, 4, 8, 8, 8]
    published = NOW - timedelta(minutes=10)
    assert next_content_poll(published, NOW, 0, POLICY) == NOW + M
    assert next_content_poll(published, NOW, 2, POLICY) == NOW + 4 * M
    assert next_content_poll(published, NOW, 9, POLICY) == NOW + 8 * M
    old = NOW - timedelta(days=3)
    assert next_content_poll(old, NOW, 3, POLICY) == NOW + 6 * H  # never past max_interval
    assert next_content_poll(NOW - timedelta(days=8), NOW, 0, POLICY) is None
    assert next_account_poll(5 * M, NOW, 0, POLICY) == NOW + 5 * M
    assert next_account_poll(5 * M, NOW, 10, POLICY) == NOW + 40 * M


def obs(content_id: str | None, value: int) -> Observation:
    kind = ContentKind.ACCOUNT if content_id is None else ContentKind.VIDEO
    return Observation.create(platform=Platform.X, account_id="a", influencer_id="i",
                              content_id=content_id, content_kind=kind,
                              metric="followers" if content_id is None else "likes",
                              value=value, observed_at=NOW)


def test_cadence_tracks_content_backs_off_when_unchanged_and_forgets_deleted() -> None:
    c = Cadence(POLICY, base_interval=5 * M)
    assert c.account_due(NOW)
    fresh = Content("v1", ContentKind.VIDEO, NOW - timedelta(minutes=30))
    old = Content("v2", ContentKind.VIDEO, NOW - timedelta(days=2))
    c.after_account_poll(NOW, Poll(observations=[obs(None, 10), obs("v1", 1), obs("v2", 7)],
                                   content=[fresh, old]))
    assert c.account_next_at == NOW + 5 * M
    assert c.tracked["v1"].next_at == NOW + M
    assert c.tracked["v2"].next_at == NOW + 48 * M
    assert c.next_wake() == NOW + M
    assert c.due_content(NOW + M) == [fresh]

    t = NOW + M
    c.after_content_poll(t, Poll(observations=[obs("v1", 1)], content=[fresh]), ["v1"])
    assert c.tracked["v1"].unchanged == 1 and c.tracked["v1"].next_at == t + 2 * M
    c.after_content_poll(t, Poll(observations=[obs("v1", 2)], content=[fresh]), ["v1"])
    assert c.tracked["v1"].unchanged == 0 and c.tracked["v1"].next_at == t + M

    c.after_account_poll(NOW + 5 * M, Poll(observations=[obs(None, 10)]))
    assert c.account_unchanged == 1 and c.account_next_at == NOW + 15 * M

    c.after_content_poll(t, Poll(deleted=["v1"]), ["v1"])
    assert "v1" not in c.tracked
    assert c.due_content(NOW + timedelta(days=6)) == []  # v2 is now past the max age
    assert c.tracked == {}


def test_a_delayed_account_waits_for_the_given_time() -> None:
    c = Cadence(POLICY, base_interval=5 * M)
    c.delay_account(NOW + H)
    assert not c.account_due(NOW) and c.account_due(NOW + H)
