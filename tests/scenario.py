"""Generated observation streams for the engagement tests: seeded, so every run is the same."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from creatorpulse.observation import ContentKind, Observation, Platform, Provenance

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
CONTENT_METRICS = ("likes", "comments", "shares", "saves", "views", "reach")


def readings(
    seed: int,
    *,
    minutes: int = 30,
    influencers: int = 3,
    posts_per_account: int = 3,
    poll_every: timedelta = timedelta(seconds=20),
    step: tuple[int, int] = (-2, 40),
    deleted_by: timedelta | None = None,
) -> list[Observation]:
    """Polls of followers and of each post's metrics, in event-time order.

    Each poll moves a post's counters by a random step in ``step`` (a negative one is an unlike
    or a deleted comment); posts are deleted at a random time (within ``deleted_by`` when given)
    and are not read again; YouTube followers are rounded to three significant digits.
    """
    rng = random.Random(seed)
    platforms = [Platform.INSTAGRAM, Platform.TIKTOK, Platform.YOUTUBE]
    result: list[Observation] = []
    for i in range(influencers):
        for platform in platforms[: 1 + i % len(platforms)]:
            account = f"{platform.value}-acct-{i}"
            followers = rng.randrange(1_000, 100_000)
            posts = {f"{account}-post-{p}": dict.fromkeys(CONTENT_METRICS, 0)
                     for p in range(posts_per_account)}
            latest = deleted_by or timedelta(minutes=minutes * 2)
            deleted_after = {post: T0 + timedelta(seconds=rng.randrange(
                int(latest.total_seconds()) // 4, int(latest.total_seconds()))) for post in posts}
            at = T0 + timedelta(milliseconds=rng.randrange(20_000))
            while at < T0 + timedelta(minutes=minutes):
                followers += rng.randrange(-3, 25)
                provenance = Provenance.MEASURED
                shown = followers
                if platform is Platform.YOUTUBE:
                    shown, provenance = int(float(f"{followers:.3g}")), Provenance.ROUNDED
                result.append(Observation.create(
                    platform=platform, account_id=account, influencer_id=f"inf-{i}",
                    content_id=None, content_kind=ContentKind.ACCOUNT, metric="followers",
                    value=shown, observed_at=at, provenance=provenance))
                for post, counts in posts.items():
                    if at > deleted_after[post]:
                        continue
                    for metric in CONTENT_METRICS:
                        counts[metric] = max(0, counts[metric] + rng.randrange(*step))
                        result.append(Observation.create(
                            platform=platform, account_id=account, influencer_id=f"inf-{i}",
                            content_id=post, content_kind=ContentKind.POST, metric=metric,
                            value=counts[metric], observed_at=at + timedelta(milliseconds=5)))
                at += poll_every + timedelta(milliseconds=rng.randrange(-2000, 2000))
    result.sort(key=lambda o: o.observed_at)
    return result


def with_duplicates(stream: list[Observation], share: float, seed: int) -> list[Observation]:
    """``stream`` with ``share`` of its readings sent again, a little later in the stream."""
    rng = random.Random(seed)
    out = list(stream)
    for index in sorted(rng.sample(range(len(stream)), int(len(stream) * share)), reverse=True):
        out.insert(min(len(out), index + rng.randrange(1, 50)), stream[index])
    return out


def shuffled_within(stream: list[Observation], bound: timedelta, seed: int) -> list[Observation]:
    """``stream`` reordered so that no reading arrives more than ``bound`` after a newer one."""
    rng = random.Random(seed)
    jitter = bound.total_seconds() * 0.8
    keyed = [(o.observed_at.timestamp() + rng.uniform(0, jitter), o) for o in stream]
    return [o for _, o in sorted(keyed, key=lambda pair: pair[0])]
