"""The benchmark's observations: accounts with posts, every counter polled in turn.

Observation ``n`` reads counter ``c = n mod C`` for the ``p = n div C``-th time (``C`` counters:
per account its followers plus six metrics of each post). Event time runs forward with ``n``, one
poll of every counter per ``poll_ms``, so a stream in ``n`` order is in event-time order on every
partition and nothing is late. A counter moves by a fixed step per poll, between -2 and 40, so
some gains are negative. The same formulas exist as Flink SQL in :func:`sql_columns`, for the
ceiling run's in-JVM generator.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

PLATFORMS = ("instagram", "facebook", "youtube", "tiktok", "x")
CONTENT_METRICS = ("likes", "comments", "shares", "saves", "views", "reach")
T0_MS = int(datetime(2026, 11, 23, 10, 0, tzinfo=UTC).timestamp() * 1000)


@dataclass(frozen=True)
class Reading:
    platform: str
    account_id: str
    influencer_id: str
    content_id: str | None
    metric: str
    value: int
    observed_ms: int

    @property
    def key(self) -> bytes:
        """The Kafka key of :class:`~creatorpulse.observation.Observation`."""
        return f"{self.platform}:{self.account_id}".encode()

    def to_json(self, event_id: str | None = None) -> bytes:
        """The Observation JSON (the same bytes as ``Observation.to_json``), built directly:
        the producer must keep up with the broker."""
        content = "null" if self.content_id is None else f'"{self.content_id}"'
        kind = "account" if self.content_id is None else "post"
        eid = event_id or self.event_id()
        return (
            f'{{"platform":"{self.platform}","account_id":"{self.account_id}",'
            f'"influencer_id":"{self.influencer_id}","content_id":{content},'
            f'"content_kind":"{kind}","metric":"{self.metric}","value":{self.value},'
            f'"observed_at":"{iso_ms(self.observed_ms)}","provenance":"measured",'
            f'"event_id":"{eid}"}}'
        ).encode()

    def event_id(self) -> str:
        """What ``creatorpulse.observation.event_id`` gives for this reading."""
        parts = (self.platform, self.account_id, self.content_id or "", self.metric,
                 iso_ms(self.observed_ms))
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


@lru_cache(maxsize=4096)
def _iso_second(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def iso_ms(ms: int) -> str:
    """``ms`` since the epoch as ``format_timestamp`` writes it: ISO 8601, milliseconds, ``Z``."""
    second, milli = divmod(ms, 1000)
    return f"{_iso_second(second)}.{milli:03d}Z"


@dataclass(frozen=True)
class Shape:
    """How many accounts, posts per account, and how often each counter is polled."""

    accounts: int = 2000
    posts: int = 3
    poll_ms: int = 60_000
    start_ms: int = T0_MS

    @property
    def per_account(self) -> int:
        return 1 + self.posts * len(CONTENT_METRICS)

    @property
    def counters(self) -> int:
        return self.accounts * self.per_account

    def reading(self, n: int, *, observed_ms: int | None = None) -> Reading:
        """Observation ``n``; ``observed_ms`` replaces its event time (a live stream's now)."""
        poll, c = divmod(n, self.counters)
        account, k = divmod(c, self.per_account)
        platform = PLATFORMS[account % len(PLATFORMS)]
        account_id = f"acct-{account}"
        if k == 0:
            content_id, metric = None, "followers"
        else:
            post, m = divmod(k - 1, len(CONTENT_METRICS))
            content_id, metric = f"acct-{account}-post-{post}", CONTENT_METRICS[m]
        if observed_ms is None:
            observed_ms = self.start_ms + poll * self.poll_ms + c * self.poll_ms // self.counters
        return Reading(platform, account_id, f"inf-{account}", content_id, metric,
                       self.value(c, poll), observed_ms)

    def readings(self, count: int) -> Iterator[Reading]:
        return (self.reading(n) for n in range(count))

    @staticmethod
    def value(c: int, poll: int) -> int:
        return (c * 7919) % 100_000 + poll * ((c * 31) % 43 - 2)

    def end_ms(self, count: int) -> int:
        """Event time of the last of ``count`` observations."""
        return self.reading(count - 1).observed_ms

    def totals(self, count: int) -> tuple[int, int]:
        """(sum of gains, readings with a gain) of the first ``count`` observations, per
        platform; the job's minute buckets hold each twice (the platform and ``all``)."""
        polls, extra = divmod(count, self.counters)
        gain = gains = 0
        for c in range(min(count, self.counters)):
            n_polls = polls + (1 if c < extra else 0)
            gain += (n_polls - 1) * ((c * 31) % 43 - 2)
            gains += n_polls - 1
        return gain, gains

    def sql_columns(self, n: str = "n") -> dict[str, str]:
        """Flink SQL for each observation column of observation ``n`` (a BIGINT column); the
        event ids are MD5 digests of ``n`` (unique, 32 hex digits like the real ones)."""
        cc, per = self.counters, self.per_account
        c = f"MOD({n}, {cc})"
        poll = f"(({n} - {c}) / {cc})"
        account = f"(({c} - MOD({c}, {per})) / {per})"
        k = f"MOD({c}, {per})"
        post = f"((({k} - 1) - MOD({k} - 1, 6)) / 6)"
        platform = " ".join(f"WHEN {i} THEN '{p}'" for i, p in enumerate(PLATFORMS))
        metric = " ".join(f"WHEN {i} THEN '{m}'" for i, m in enumerate(CONTENT_METRICS))
        offset = f"{c} * {self.poll_ms}"
        acct = f"CONCAT('acct-', CAST({account} AS STRING))"
        return {
            "platform": f"CASE MOD({account}, {len(PLATFORMS)}) {platform} END",
            "account_id": acct,
            "influencer_id": f"CONCAT('inf-', CAST({account} AS STRING))",
            "content_id": f"CASE WHEN {k} = 0 THEN CAST(NULL AS STRING) "
                          f"ELSE CONCAT({acct}, '-post-', CAST({post} AS STRING)) END",
            "content_kind": f"CASE WHEN {k} = 0 THEN 'account' ELSE 'post' END",
            "metric": f"CASE WHEN {k} = 0 THEN 'followers' ELSE CASE MOD({k} - 1, 6) {metric} "
                      f"END END",
            "value": f"CAST(MOD({c} * 7919, 100000) + {poll} * (MOD({c} * 31, 43) - 2) "
                     f"AS BIGINT)",
            "observed_at": f"TO_TIMESTAMP_LTZ({self.start_ms} + {poll} * {self.poll_ms} + "
                           f"(({offset}) - MOD({offset}, {cc})) / {cc}, 3)",
            "provenance": "'measured'",
            "event_id": f"MD5(CAST({n} AS STRING))",
        }
