from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from creatorpulse.events import DeadLetter
from creatorpulse.observation import ContentKind, Observation, Platform
from creatorpulse.settings import Settings
from creatorpulse.sources.base import Account, MappingError, Poll
from creatorpulse.sources.publisher import Deliveries, Publisher, producer_config

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
ACCOUNT = Account("acc-1", "t", "inf", Platform.X, "42")


class Msg:
    def __init__(self, topic: str, key: bytes) -> None:
        self._topic, self._key = topic, key

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return 3

    def key(self) -> bytes:
        return self._key


class FakeProducer:
    """Like confluent_kafka.Producer built with ``on_delivery``: reports go to that callback."""

    def __init__(self, on_delivery: Any, fail: bool = False, full_once: bool = False) -> None:
        self.records: list[tuple[str, bytes, bytes]] = []
        self.pending: list[Any] = []
        self.on_delivery = on_delivery
        self.fail = fail
        self.full_once = full_once

    def produce(self, topic: str, value: bytes, key: bytes) -> None:
        if self.full_once:
            self.full_once = False
            raise BufferError("queue full")
        self.records.append((topic, key, value))
        self.pending.append(Msg(topic, key))

    def poll(self, timeout: float) -> int:
        served = len(self.pending)
        for msg in self.pending:
            self.on_delivery("broker down" if self.fail else None, msg)
        self.pending.clear()
        return served

    def flush(self, timeout: float) -> int:
        self.poll(timeout)
        return 0


def obs(value: int) -> Observation:
    return Observation.create(platform=Platform.X, account_id="acc-1", influencer_id="inf",
                              content_id=None, content_kind=ContentKind.ACCOUNT,
                              metric="followers", value=value, observed_at=NOW)


def test_the_producer_is_idempotent_and_waits_for_all_replicas() -> None:
    config = producer_config(Settings.from_env({}, dotenv=None))
    assert config["enable.idempotence"] is True
    assert config["acks"] == "all"


def test_a_poll_publishes_observations_keyed_by_account_and_dead_letters() -> None:
    deliveries = Deliveries()
    producer = FakeProducer(deliveries, full_once=True)
    pub = Publisher(producer, deliveries=deliveries, observations_topic="obs", dlq_topic="dlq",
                    clock=lambda: NOW)
    bad = MappingError("no followers field", b'{"weird": true}')
    pub.publish_poll(ACCOUNT, Poll(observations=[obs(1), obs(2)], dead_letters=[bad]))
    assert [(t, k) for t, k, _ in producer.records] == [
        ("obs", b"x:acc-1"), ("obs", b"x:acc-1"), ("dlq", b"x:acc-1")]
    assert Observation.from_json(producer.records[0][2]) == obs(1)
    letter = DeadLetter.from_json(producer.records[2][2])
    assert (letter.payload, letter.reason, letter.account_id, letter.platform) == (
        b'{"weird": true}', "no followers field", "acc-1", Platform.X)
    assert pub.flush() == 0
    assert pub.failed == 0


def test_failed_deliveries_are_logged_with_topic_and_partition(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR)
    deliveries = Deliveries()
    pub = Publisher(FakeProducer(deliveries, fail=True), deliveries=deliveries,
                    observations_topic="obs")
    pub.observations([obs(1)])
    assert pub.failed == 1
    assert "obs [3]" in caplog.text and "broker down" in caplog.text
