"""A batch of polls folded into one poll_state row per account, as one poll at a time would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from creatorpulse.sinks.registry import PollRecord, merge_polls

T = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def rec(account: str, minute: int, error: str | None = None, n: int = 0) -> PollRecord:
    at = T + timedelta(minutes=minute)
    return PollRecord(account, f"w{minute}", at, at + timedelta(minutes=5), error, n)


def test_the_newest_poll_sets_worker_and_next_poll_and_observations_add_up() -> None:
    m = merge_polls([rec("a", 0, n=3), rec("b", 0, n=1), rec("a", 1, n=4)])
    assert set(m) == {"a", "b"}
    assert (m["a"].last.worker_id, m["a"].last.next_poll_at) == ("w1", T + timedelta(minutes=6))
    assert (m["a"].observations, m["a"].success_at, m["a"].failures) == (7, T + timedelta(
        minutes=1), 0)


def test_failures_count_after_the_last_success_and_the_latest_error_is_kept() -> None:
    m = merge_polls([rec("a", 0, "boom"), rec("a", 1), rec("a", 2, "late"), rec("a", 3, "again")])
    a = m["a"]
    assert a.success_at == T + timedelta(minutes=1)  # a success in the batch: the count restarts
    assert a.failures == 2
    assert (a.error, a.error_at) == ("again", T + timedelta(minutes=3))


def test_a_batch_of_failures_only_adds_to_the_count() -> None:
    a = merge_polls([rec("a", 0, "x"), rec("a", 1, "y")])["a"]
    assert (a.success_at, a.failures, a.error) == (None, 2, "y")
