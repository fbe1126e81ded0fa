"""Publishing a delivery's records to Kafka, acknowledged before the webhook is answered.

The producer is idempotent with ``acks=all``; :meth:`KafkaPublisher.publish` waits for every
record's delivery report and raises :class:`PublishError` when one failed or did not come in time,
so the receiver answers 5xx and the platform redelivers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Message, Producer


class PublishError(RuntimeError):
    """A record was not acknowledged by Kafka."""


@dataclass(frozen=True)
class Record:
    topic: str
    key: bytes
    value: bytes


class Publisher(Protocol):
    def publish(self, records: Sequence[Record]) -> None:
        """Return once every record is acknowledged; raise :class:`PublishError` otherwise."""
        ...


def producer_config(bootstrap: str, timeout_s: float) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        # librdkafka gives up on a record after this; the receiver waits a little longer.
        "delivery.timeout.ms": int(timeout_s * 1000),
        "client.id": "creatorpulse-webhooks",
    }


class KafkaPublisher:
    """:class:`Publisher` over one shared (thread-safe) confluent-kafka producer."""

    def __init__(self, producer: Producer, timeout_s: float = 10.0) -> None:
        self._producer = producer
        self._timeout_s = timeout_s

    def publish(self, records: Sequence[Record]) -> None:
        pending = len(records)
        errors: list[str] = []
        lock, done = threading.Lock(), threading.Event()

        def report(err: KafkaError | None, msg: Message) -> None:
            nonlocal pending
            with lock:
                if err is not None:
                    errors.append(f"{msg.topic()}: {err.str()}")
                pending -= 1
                if pending == 0:
                    done.set()

        if not records:
            return
        try:
            for record in records:
                self._producer.produce(record.topic, record.value, record.key, on_delivery=report)
        except (BufferError, KafkaException) as exc:
            msg = f"produce failed: {exc}"
            raise PublishError(msg) from None
        deadline = time.monotonic() + self._timeout_s + 5
        while not done.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                msg = f"{pending} of {len(records)} records not acknowledged in time"
                raise PublishError(msg)
            # Any thread's poll serves any callback; ours set `done`.
            self._producer.poll(min(left, 0.05))
        if errors:
            msg = f"not acknowledged: {'; '.join(errors)}"
            raise PublishError(msg)

    def close(self, timeout_s: float = 10.0) -> int:
        """Flush what is queued; the number of records still undelivered."""
        return int(self._producer.flush(timeout_s))
