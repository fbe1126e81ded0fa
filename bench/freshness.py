"""Freshness: how long an observation takes from Kafka to the current-minute bucket.

A steady load of the benchmark's readings, stamped ``now``, goes to every partition; among them,
on each partition, a probe counter gains 1 every ``probe_every`` seconds. The minute bucket of a
probe counts its readings with a gain (``observations``), so the k-th probe reading of a minute
is visible once that count reaches k. A poller reads the probes' buckets every ``poll_every``
seconds; a probe's latency is the start of the first poll that shows it minus the moment it was
handed to the producer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
from confluent_kafka import Producer

from creatorpulse.bench.dataset import Reading, Shape

MINUTE_MS = 60_000


@dataclass
class Probes:
    """Probe readings sent, and when each became visible; pure bookkeeping."""

    partitions: int
    sent: dict[tuple[int, int, int], float] = field(default_factory=dict)
    seen: dict[tuple[int, int, int], float] = field(default_factory=dict)
    _value: dict[int, int] = field(default_factory=dict)
    _ordinal: dict[tuple[int, int], int] = field(default_factory=dict)

    def next_reading(self, partition: int, now_ms: int, *, measured: bool,
                     at: float) -> Reading:
        """The next reading of ``partition``'s probe; recorded when ``measured`` and it gains."""
        value = self._value.get(partition, -1) + 1
        self._value[partition] = value
        minute = now_ms - now_ms % MINUTE_MS
        if value > 0:  # the first reading of a counter has no gain
            ordinal = self._ordinal.get((partition, minute), 0) + 1
            self._ordinal[(partition, minute)] = ordinal
            if measured:
                self.sent[(partition, minute, ordinal)] = at
        name = f"probe-{partition}"
        return Reading("x", name, name, None, "followers", value, now_ms)

    def observe(self, counts: dict[tuple[int, int], int], at: float) -> None:
        """``counts``: (partition, minute) -> the bucket's ``observations``, read at ``at``."""
        for key in self.sent.keys() - self.seen.keys():
            partition, minute, ordinal = key
            if counts.get((partition, minute), 0) >= ordinal:
                self.seen[key] = at

    def latencies(self, until: float) -> list[float]:
        """Every measured probe's latency; one never seen counts with its age at ``until``, a
        lower bound, so that a job that falls behind cannot look fresh."""
        return [self.seen.get(k, until) - at for k, at in self.sent.items()]

    @property
    def missing(self) -> int:
        return len(self.sent) - len(self.seen)


def measure(
    *,
    producer: Producer,
    topic: str,
    dsn: str,
    buckets_table: str,
    shape: Shape,
    rate: float,
    seconds: float,
    warmup: float,
    drain: float,
    partitions: int,
    say: Callable[[str], None],
    probe_every: float = 0.1,
    poll_every: float = 0.1,
) -> Probes:
    """Produce at ``rate`` per second for ``warmup + seconds``, probes measured after the
    warm-up; keep the load on for up to ``drain`` seconds more while the last probes arrive."""
    probes = Probes(partitions)
    lock = threading.Lock()
    stop = threading.Event()

    def poll() -> None:
        query = (f"SELECT influencer_id, bucket_start, observations FROM {buckets_table} "  # noqa: S608
                 "WHERE influencer_id LIKE 'probe-%' AND platform <> 'all' "
                 "AND bucket_start > now() - interval '3 minutes'")
        with psycopg.connect(dsn, autocommit=True) as db:
            while not stop.is_set():
                at = time.time()
                counts = {(int(i.rsplit("-", 1)[1]), int(b.timestamp() * 1000)): n
                          for i, b, n in db.execute(query).fetchall()}
                with lock:
                    probes.observe(counts, at)
                stop.wait(poll_every)

    poller = threading.Thread(target=poll, name="freshness-poller", daemon=True)
    poller.start()
    errors: list[str] = []

    def delivered(err: object, _msg: object) -> None:
        if err is not None:
            errors.append(str(err))

    started = time.time()
    sent = 0
    next_probe = started
    last_report = started
    end_measure = started + warmup + seconds
    try:
        while True:
            now = time.time()
            measuring = started + warmup <= now < end_measure
            with lock:
                drained = now >= end_measure and (probes.missing == 0 or
                                                  now >= end_measure + drain)
            if drained:
                break
            due = int((now - started) * rate)
            now_ms = int(now * 1000)
            while sent < due:
                r = shape.reading(sent, observed_ms=now_ms)
                producer.produce(topic, r.to_json(), key=r.key, on_delivery=delivered)
                sent += 1
            if now >= next_probe and now < end_measure:
                for partition in range(partitions):
                    with lock:
                        r = probes.next_reading(partition, now_ms, measured=measuring,
                                                at=time.time())
                    producer.produce(topic, r.to_json(), key=r.key, partition=partition,
                                     on_delivery=delivered)
                next_probe += probe_every
            producer.poll(0)
            if now - last_report >= 5:
                with lock:
                    seen, total = len(probes.seen), len(probes.sent)
                phase = "warm-up" if now < started + warmup else (
                    "measuring" if now < end_measure else "draining")
                say(f"freshness: {phase}, {sent:,} readings sent "
                    f"({sent / (now - started):,.0f}/s), probes visible {seen}/{total}")
                last_report = now
            time.sleep(0.002)
    finally:
        stop.set()
        poller.join(10)
        producer.flush(30)
    if errors:
        msg = f"{len(errors)} readings were not delivered, e.g. {errors[0]}"
        raise RuntimeError(msg)
    return probes
