"""Publishing what the pollers read: observations, and dead letters for what could not be mapped.

The Kafka producer is built by the entry point (:func:`make_producer`: idempotent, ``acks=all``)
and injected. Records are keyed by account (``platform:account``) so one account's readings stay
in order on one partition. The producer reports failed deliveries to :class:`Deliveries` (its
default delivery callback, set when it is built): each is logged with its topic and partition
and counted. :meth:`Publisher.flush` waits for what is in flight:
the worker calls it on SIGTERM before it exits.

A payload a connector could not map becomes a :class:`~creatorpulse.events.DeadLetter` on
``engagement.dlq``, with the original bytes, the platform, the account and the reason; polling
goes on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from creatorpulse.events import DeadLetter
from creatorpulse.observation import Observation, Platform, encode_records
from creatorpulse.settings import Settings
from creatorpulse.sources.base import Account, MappingError, Poll
from creatorpulse.topics import DLQ, OBSERVATIONS

log = logging.getLogger(__name__)


class Producer(Protocol):
    """The part of confluent_kafka.Producer the publisher uses."""

    def produce(self, topic: str, value: bytes, key: bytes) -> None: ...

    def poll(self, timeout: float) -> int: ...

    def flush(self, timeout: float) -> int: ...


class Deliveries:
    """The producer's delivery callback: a failed delivery is logged and counted.

    One callback for the producer rather than one handed to every produce call: binding it
    per record cost as much as producing the record."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.failed = 0

    def __call__(self, err: Any, msg: Any) -> None:
        if err is None:
            return
        with self._lock:
            self.failed += 1
        log.error("delivery to %s [%s] failed: %s (key %s)", msg.topic(), msg.partition(), err,
                  (msg.key() or b"").decode(errors="replace"))


def producer_config(settings: Settings, client_id: str = "creatorpulse-sources") -> dict[str, Any]:
    """Idempotent, acknowledged by all in-sync replicas, ordered per key even on retries.

    Batched for throughput: a poll produces dozens of small records at once, so up to 50 ms of
    linger and 512 KiB batches (lz4-compressed) make few large requests rather than many small
    ones; the delivery guarantees do not change. Delivery reports come for failures only: a
    Python callback for each of the thousands of records delivered every second cost more
    than the rest of publishing.
    """
    return {
        "bootstrap.servers": settings.kafka_bootstrap,
        "client.id": client_id,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 50,
        "batch.size": 512 * 1024,
        "compression.type": "lz4",
        "delivery.report.only.error": True,
    }


def make_producer(settings: Settings, deliveries: Deliveries,
                  client_id: str = "creatorpulse-sources") -> Producer:
    from confluent_kafka import Producer as KafkaProducer

    return cast(Producer, KafkaProducer(
        {**producer_config(settings, client_id), "on_delivery": deliveries}))


class Publisher:
    """Observations and dead letters onto their topics, through an injected producer."""

    def __init__(
        self,
        producer: Producer,
        *,
        deliveries: Deliveries | None = None,
        observations_topic: str = OBSERVATIONS.name,
        dlq_topic: str = DLQ.name,
        source: str = "poller",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._producer = producer
        self.observations_topic = observations_topic
        self.dlq_topic = dlq_topic
        self._source = source
        self._clock = clock
        self.deliveries = deliveries or Deliveries()  # the one the producer was built with

    def publish_poll(self, account: Account, poll: Poll) -> None:
        """A poll's observations, and a dead letter for each part it could not map."""
        self.observations(poll.observations)
        for error in poll.dead_letters:
            self.dead_letter(account.platform, account.id, error)

    def observations(self, observations: Iterable[Observation]) -> None:
        for key, value in encode_records(observations):
            self._produce(self.observations_topic, key, value)
        self._producer.poll(0)  # serve delivery callbacks

    def dead_letter(self, platform: Platform | None, account_id: str | None,
                    error: MappingError) -> None:
        letter = DeadLetter(source=self._source, platform=platform, account_id=account_id,
                            reason=error.reason, payload=error.payload, at=self._clock())
        log.warning("dead letter: %s account %s: %s (%d bytes)", platform, account_id,
                    error.reason, len(error.payload))
        self._produce(self.dlq_topic, letter.key, letter.to_json())
        self._producer.poll(0)

    def flush(self, timeout: float = 30.0) -> int:
        """Wait for every record in flight; returns how many are still undelivered."""
        left = self._producer.flush(timeout)
        if left:
            log.error("%d records still undelivered after %.0fs", left, timeout)
        return left

    def _produce(self, topic: str, key: bytes, value: bytes) -> None:
        while True:
            try:
                self._producer.produce(topic, value, key)
                return
            except BufferError:
                # The local queue is full: serve deliveries until there is room.
                self._producer.poll(0.5)

    @property
    def failed(self) -> int:
        return self.deliveries.failed
