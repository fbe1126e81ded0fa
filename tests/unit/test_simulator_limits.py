"""Rate-limit windows and the over-limit counters."""

from __future__ import annotations

from creatorpulse.sources.simulator.limits import FixedWindow, SlidingWindow, Stats
from creatorpulse.sources.simulator.tokens import TokenStore


def test_sliding_window_refuses_without_spending_and_frees_up_as_time_passes() -> None:
    w = SlidingWindow(limit=3, seconds=60)
    assert [w.take("a", t) for t in (0, 10, 20, 30)] == [True, True, True, False]
    assert w.used("a", 30) == 3  # the refused call spent nothing
    assert w.take("b", 30)  # another key has its own window
    assert 0 < w.regain_in("a", 30) <= 31
    assert w.take("a", 61) and not w.take("a", 62)


def test_fixed_window_resets_at_its_end() -> None:
    w = FixedWindow.every(limit=2, seconds=900)
    assert w.take("k", 100) and w.take("k", 200) and not w.take("k", 899)
    assert w.remaining("k", 899) == 0 and w.reset_at(899) == 900
    assert w.take("k", 900) and w.remaining("k", 900) == 1


def test_stats_count_over_limit_per_credential_and_app() -> None:
    stats = Stats()
    stats.record("alice", "app", over_limit=False)
    stats.record("alice", "app", over_limit=True)
    stats.record("bob", "app", over_limit=False)
    snap = stats.snapshot()
    assert snap["credentials"] == {"alice": {"requests": 2, "over_limit": 1},
                                   "bob": {"requests": 1, "over_limit": 0}}
    assert snap["apps"] == {"app": {"requests": 3, "over_limit": 1}}
    assert (snap["requests"], snap["over_limit"]) == (3, 1)


def test_initial_tokens_derive_from_the_seed_and_rotation_kills_the_old_refresh() -> None:
    a = TokenStore("tiktok", seed=1, accounts=3, now=0.0, ttl=10.0, refresh_ttl=100.0)
    b = TokenStore("tiktok", seed=1, accounts=3, now=0.0, ttl=10.0, refresh_ttl=100.0)
    c = TokenStore("tiktok", seed=2, accounts=3, now=0.0, ttl=10.0, refresh_ttl=100.0)
    assert a.initial_access(2) == b.initial_access(2) != c.initial_access(2)
    assert a.check(a.initial_access(1), 5.0)[1] == ""
    assert a.check(a.initial_access(1), 10.0)[1] == "expired"
    assert a.check("act.nope", 1.0) == (None, "invalid")
    access, refresh = a.refresh(a.initial_refresh(1), 20.0, rotate=True) or ("", "")
    assert a.check(access, 21.0)[0].account == 1
    assert a.refresh(a.initial_refresh(1), 21.0, rotate=True) is None
    assert a.refresh(refresh, 200.0, rotate=True) is None  # the refresh token expired too
