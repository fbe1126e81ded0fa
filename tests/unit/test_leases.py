from __future__ import annotations

from creatorpulse.sources.leases import plan, preference


def test_a_lone_worker_claims_everything_in_its_own_order() -> None:
    claim, release = plan("w1", ["a", "b", "c"], [], live_workers=1)
    assert sorted(claim) == ["a", "b", "c"] and release == []
    assert claim == sorted(claim, key=lambda a: preference("w1", a), reverse=True)


def test_inactive_accounts_are_released_and_the_surplus_goes_to_newcomers() -> None:
    held = ["a", "b", "c", "d", "gone"]
    claim, release = plan("w1", ["a", "b", "c", "d"], held, live_workers=2)
    assert "gone" in release
    assert len(set(held) - set(release)) == 2  # a fair share of 4 / 2
    assert claim == []


def test_a_worker_under_its_share_tries_the_unheld_accounts() -> None:
    claim, release = plan("w1", ["a", "b", "c", "d"], ["a"], live_workers=2)
    assert release == [] and sorted(claim) == ["b", "c", "d"]
    claim, _ = plan("w1", ["a", "b"], ["a"], live_workers=2)
    assert claim == []  # already at its share of 1
