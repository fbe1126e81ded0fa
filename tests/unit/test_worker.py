"""The worker's poll step with fakes: outcomes feed the cadence, Kafka and poll_state."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from creatorpulse.events import DeadLetter
from creatorpulse.observation import ContentKind, Observation, Platform
from creatorpulse.settings import Settings
from creatorpulse.sinks.registry import PlatformAccount
from creatorpulse.sources.base import Account, Content, MappingError, Poll, Retry
from creatorpulse.sources.publisher import Deliveries, Publisher
from creatorpulse.sources.worker import Held, Worker
from tests.unit.test_publisher import FakeProducer
from tests.unit.test_sources_http import FakeLimiter, FakeSession
from tests.waiting import wait_for

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
ROW = PlatformAccount(id="acc-1", tenant_id="t", influencer_id="inf", platform=Platform.X,
                      external_id="42", handle="@a", status="active",
                      poll_interval=timedelta(minutes=5), created_at=NOW, updated_at=NOW)


class FakeConn:
    def __init__(self) -> None:
        self.calls: list[Any] = []

    def execute(self, sql: str, params: Any) -> None:
        self.calls.append(params)


class FakeRedis:
    def register_script(self, script: str) -> Any:
        return lambda keys, args: []


class NoTokens:
    def current(self, account: Account) -> None:
        return None

    def forget(self, account_id: str) -> None:
        pass

    def preload(self, account_ids: Any) -> None:
        pass


class ScriptedConnector:
    platform = Platform.X

    def __init__(self, outcome: Any) -> None:
        self.outcome = outcome
        self.content_calls: list[list[str]] = []

    def fetch_account(self, api: Any, account: Account, now: datetime) -> Poll:
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome  # type: ignore[no-any-return]

    def fetch_content(self, api: Any, account: Account, content: Sequence[Content],
                      now: datetime) -> Poll:
        self.content_calls.append([c.id for c in content])
        return Poll()

    def check(self, response: Any) -> None:
        return None


def make(outcome: Any) -> tuple[Worker, Held, FakeConn, FakeProducer]:
    deliveries = Deliveries()
    conn, producer = FakeConn(), FakeProducer(deliveries)

    @contextmanager
    def connect() -> Iterator[FakeConn]:
        yield conn

    worker = Worker(settings=Settings.from_env({}, dotenv=None), connect=connect,  # type: ignore[arg-type]
                    listen_dsn="", redis_client=FakeRedis(),  # type: ignore[arg-type]
                    publisher=Publisher(producer, deliveries=deliveries, observations_topic="obs",
                                        dlq_topic="dlq", clock=lambda: NOW),
                    limiter=FakeLimiter(), tokens=NoTokens(),  # type: ignore[arg-type]
                    sessions=lambda p: FakeSession(),  # type: ignore[arg-type,return-value]
                    connectors=lambda p: ScriptedConnector(outcome), worker_id="w1",
                    clock=lambda: NOW, rand=lambda: 1.0)
    worker._adopt(ROW)
    return worker, worker._held["acc-1"], conn, producer


def test_a_successful_poll_publishes_schedules_and_records() -> None:
    video = Content("v1", ContentKind.POST, NOW - timedelta(minutes=10))
    obs = Observation.create(platform=Platform.X, account_id="acc-1", influencer_id="inf",
                             content_id="v1", content_kind=ContentKind.POST, metric="likes",
                             value=4, observed_at=NOW)
    worker, held, conn, producer = make(Poll(observations=[obs], content=[video]))
    worker._poll(held, True, set())
    assert [t for t, _, _ in producer.records] == ["obs"]
    assert held.cadence.account_next_at == NOW + timedelta(minutes=5)
    assert held.cadence.tracked["v1"].next_at == NOW + timedelta(minutes=1)
    recorded = worker._records[-1]
    assert recorded.error is None and recorded.observations == 1
    assert recorded.next_poll_at == NOW + timedelta(minutes=1)
    assert conn.calls == []  # written with the others' at the next record interval
    worker._poll(held, True, set())
    worker._record_polls()
    assert len(conn.calls) == 1 and worker._records == []
    accounts, *_, failures, observations = conn.calls[0]
    assert (accounts, failures, observations) == (["acc-1"], [0], [2])


def test_a_platform_wait_moves_the_next_poll_and_is_recorded() -> None:
    worker, held, _, _ = make(Retry("quota spent", after=timedelta(hours=3)))
    worker._poll(held, True, set())
    assert held.cadence.account_next_at == NOW + timedelta(hours=3)
    assert worker._records[-1].error == "retry: quota spent"


def test_an_unmappable_answer_is_a_dead_letter_and_a_bug_does_not_stop_the_worker() -> None:
    worker, held, _, producer = make(MappingError("bad shape", b"<xml/>"))
    worker._poll(held, True, set())
    letter = DeadLetter.from_json(producer.records[0][2])
    assert (letter.payload, letter.account_id) == (b"<xml/>", "acc-1")
    assert worker._records[-1].error == "unmappable answer: bad shape"
    assert held.cadence.account_next_at == NOW + timedelta(seconds=2)  # backoff, jitter 1.0
    worker2, held2, _, _ = make(ValueError("connector bug"))
    worker2._poll(held2, True, set())
    assert worker2._records[-1].error == "unexpected ValueError"
    assert held2.failures == 1


def test_a_hint_for_tracked_content_polls_only_that_content() -> None:
    video = Content("v1", ContentKind.POST, NOW - timedelta(minutes=10))
    worker, held, _, _ = make(Poll(content=[video]))
    worker._poll(held, True, set())
    worker._poll(held, False, {"v1"})
    assert held.connector.content_calls == [["v1"]]  # type: ignore[attr-defined]


def test_a_platform_stuck_waiting_for_its_limit_does_not_starve_the_others() -> None:
    import threading
    from dataclasses import replace

    release = threading.Event()

    class Stuck(ScriptedConnector):
        def fetch_account(self, api: Any, account: Account, now: datetime) -> Poll:
            release.wait(30)  # a poll held by a rate-limit wait
            return Poll()

    worker, _, _, _ = make(Poll())
    worker._connectors = lambda p: (
        Stuck(Poll()) if p is Platform.INSTAGRAM else ScriptedConnector(Poll()))
    worker._connector_cache.clear()
    for n in range(3 * worker.queue_limit):  # more Instagram polls than its threads take
        worker._adopt(replace(ROW, id=f"ig-{n}", platform=Platform.INSTAGRAM, external_id=str(n)))
    worker._adopt(replace(ROW, id="yt-1", platform=Platform.YOUTUBE, external_id="yt"))
    try:
        worker._dispatch()
        assert "yt-1" in worker._running
        # done while every Instagram thread still waits
        wait_for(lambda: "yt-1" not in worker._running, 10, "the YouTube poll")
        assert worker._held["yt-1"].due_at is not None  # its next wake, kept for dispatch
        assert not release.is_set()
        assert sum(1 for p in worker._running.values() if p is Platform.INSTAGRAM) == \
            worker.queue_limit
    finally:
        release.set()
        for pool in worker._pools.values():
            pool.shutdown()
