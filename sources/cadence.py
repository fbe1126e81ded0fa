"""When to poll: adaptive cadence per account and per piece of content. Pure: no I/O, no clock.

- Content younger than ``fresh_age`` is polled every ``fresh_interval``; older content less, in
  proportion to its age (twice as old, half as often), never less than every ``max_interval``;
  content older than ``max_age`` is no longer polled.
- An account is polled every ``poll_interval`` (its row in ``platform_accounts``).
- A poll whose counters did not change doubles the next wait, up to ``backoff_factor`` times the
  normal one (and the content wait stays within ``max_interval``); a change resets it.

:class:`Cadence` keeps that state for one account; the worker feeds it each poll's result and
asks it what is due.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from creatorpulse.observation import Observation
from creatorpulse.settings import Settings
from creatorpulse.sources.base import Content, Poll


@dataclass(frozen=True)
class Policy:
    fresh_interval: timedelta
    fresh_age: timedelta
    max_interval: timedelta
    max_age: timedelta
    backoff_factor: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(settings.poll_fresh_interval, settings.poll_fresh_age,
                   settings.poll_max_interval, settings.poll_max_age, settings.poll_backoff_factor)


def content_interval(age: timedelta, policy: Policy) -> timedelta | None:
    """How often content of this age is polled; None once it is past ``max_age``."""
    if age > policy.max_age:
        return None
    if age <= policy.fresh_age:
        return policy.fresh_interval
    return min(policy.max_interval, policy.fresh_interval * (age / policy.fresh_age))


def backoff_factor(unchanged: int, cap: int) -> int:
    """``2 ** unchanged``, at most ``cap``: the multiplier after that many unchanged polls."""
    return int(min(cap, 2 ** min(unchanged, 32)))


def next_content_poll(
    published_at: datetime, now: datetime, unchanged: int, policy: Policy
) -> datetime | None:
    interval = content_interval(now - published_at, policy)
    if interval is None:
        return None
    wait = min(interval * backoff_factor(unchanged, policy.backoff_factor),
               max(interval, policy.max_interval))
    return now + wait


def next_account_poll(base: timedelta, now: datetime, unchanged: int, policy: Policy) -> datetime:
    return now + base * backoff_factor(unchanged, policy.backoff_factor)


Fingerprint = tuple[tuple[str, int], ...]


def fingerprint(observations: Iterable[Observation], content_id: str | None) -> Fingerprint:
    """The counters one poll read for one content (None: the account), to tell a change."""
    return tuple(sorted((o.metric, o.value) for o in observations if o.content_id == content_id))


@dataclass
class Tracked:
    content: Content
    next_at: datetime
    unchanged: int = 0
    last: Fingerprint | None = None


@dataclass
class Cadence:
    """The polling schedule of one account and its content."""

    policy: Policy
    base_interval: timedelta
    account_next_at: datetime | None = None  # None: due now
    account_unchanged: int = 0
    account_last: Fingerprint | None = None
    tracked: dict[str, Tracked] = field(default_factory=dict)

    def account_due(self, now: datetime) -> bool:
        return self.account_next_at is None or self.account_next_at <= now

    def due_content(self, now: datetime) -> list[Content]:
        """The content to poll now; content past the maximum age is dropped."""
        for cid in [c for c, t in self.tracked.items()
                    if now - t.content.published_at > self.policy.max_age]:
            del self.tracked[cid]
        return [t.content for t in self.tracked.values() if t.next_at <= now]

    def next_wake(self) -> datetime | None:
        times = [t.next_at for t in self.tracked.values()]
        if self.account_next_at is not None:
            times.append(self.account_next_at)
        return min(times) if times else None

    def after_account_poll(self, now: datetime, poll: Poll) -> None:
        current = fingerprint(poll.observations, None)
        if self.account_last is not None and current == self.account_last:
            self.account_unchanged += 1
        else:
            self.account_unchanged = 0
        self.account_last = current
        self.account_next_at = next_account_poll(self.base_interval, now,
                                                 self.account_unchanged, self.policy)
        self._after(now, poll, [c.id for c in poll.content])

    def after_content_poll(self, now: datetime, poll: Poll, polled: Sequence[str]) -> None:
        self._after(now, poll, polled)

    def delay_account(self, until: datetime) -> None:
        """A failed or throttled poll: try the account again at ``until``."""
        self.account_next_at = until

    def delay_content(self, ids: Iterable[str], until: datetime) -> None:
        for cid in ids:
            if cid in self.tracked:
                self.tracked[cid].next_at = until

    def _after(self, now: datetime, poll: Poll, polled: Sequence[str]) -> None:
        for item in poll.content:
            if item.id not in self.tracked:
                self.tracked[item.id] = Tracked(item, now)
            else:
                self.tracked[item.id].content = item
        by_content: dict[str | None, list[Observation]] = {}
        for o in poll.observations:  # grouped once: a poll reads many contents
            by_content.setdefault(o.content_id, []).append(o)
        for cid in polled:
            tracked = self.tracked.get(cid)
            if tracked is None:
                continue
            current = fingerprint(by_content.get(cid, ()), cid)
            if tracked.last is not None and current == tracked.last:
                tracked.unchanged += 1
            else:
                tracked.unchanged = 0
            tracked.last = current
            at = next_content_poll(tracked.content.published_at, now, tracked.unchanged,
                                   self.policy)
            if at is None:
                del self.tracked[cid]
            else:
                tracked.next_at = at
        for cid in poll.deleted:
            self.tracked.pop(cid, None)
