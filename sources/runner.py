"""The entry point of the pollers: builds a :class:`Worker` and its clients from the settings.

``creatorpulse sources run`` calls :func:`run_worker` (one worker in this process) or
:func:`run_workers` (N worker processes, supervised: SIGTERM or Ctrl-C is passed on to each and
waited for). Everything a worker uses is built here, once, and injected: the database pool, the
Redis client, the Kafka producer and hints consumer, the OAuth sessions with their timeouts,
the token vault and the shared rate limiter.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
from psycopg_pool import ConnectionPool

from creatorpulse.settings import Settings
from creatorpulse.sources.oauth import TokenManager, allow_loopback_http, make_session_factory
from creatorpulse.sources.publisher import Deliveries, Publisher, make_producer
from creatorpulse.sources.ratelimit import RedisLimiter
from creatorpulse.sources.worker import (
    ConnectorLookup,
    Worker,
    default_connectors,
    interrupted_sleep,
)
from creatorpulse.tokens import TokenVault
from creatorpulse.topics import DLQ, HINTS, OBSERVATIONS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Topics:
    observations: str = OBSERVATIONS.name
    dlq: str = DLQ.name
    hints: str = HINTS.name


def make_hints_consumer(settings: Settings, topic: str, worker_id: str) -> Any:
    """A consumer of every partition of ``topic`` from its end: each worker sees every new hint.

    Partitions are assigned, not subscribed: no consumer group to join (a join can take
    seconds), nothing committed (a hint is only useful now).
    """
    from confluent_kafka import OFFSET_END, Consumer, TopicPartition

    consumer = Consumer({
        "bootstrap.servers": settings.kafka_bootstrap,
        "group.id": f"creatorpulse-sources-{worker_id}",
        "enable.auto.commit": False,
    })
    metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
    if metadata is None or metadata.error is not None or not metadata.partitions:
        log.warning("no hints topic %s: polling on the cadence only", topic)
        consumer.close()
        return None
    consumer.assign([TopicPartition(topic, p, OFFSET_END) for p in metadata.partitions])
    return consumer


def build_worker(
    settings: Settings,
    *,
    threads: int = 8,
    tenant_id: str | None = None,
    worker_id: str | None = None,
    topics: Topics = Topics(),
    prefix: str = "creatorpulse",
    connectors: ConnectorLookup = default_connectors,
) -> tuple[Worker, list[Any]]:
    """The worker and the clients to close after it has run."""
    allow_loopback_http(settings, os.environ)
    vault = TokenVault.from_settings(settings)
    dsn = settings.database_dsn.reveal()
    pool = ConnectionPool(dsn, min_size=1, max_size=max(2, threads // 2),
                          kwargs={"autocommit": True}, open=True, name="sources")
    client = redis.Redis.from_url(settings.redis_dsn.reveal(), socket_timeout=10,
                                  health_check_interval=30)
    sessions = make_session_factory(settings)
    tokens = TokenManager(settings=settings, connect=pool.connection, vault=vault,
                          redis_client=client, sessions=sessions,
                          lock_prefix=f"{prefix}:oauth")
    deliveries = Deliveries()
    producer = make_producer(settings, deliveries)
    publisher = Publisher(producer, deliveries=deliveries, observations_topic=topics.observations,
                          dlq_topic=topics.dlq)
    stop = threading.Event()
    limiter = RedisLimiter(client, settings, prefix=f"{prefix}:rl",
                           sleep=functools.partial(interrupted_sleep, stop))
    worker_id = worker_id or f"{os.uname().nodename}-{os.getpid()}-{uuid.uuid4().hex[:4]}"
    hints = make_hints_consumer(settings, topics.hints, worker_id) if topics.hints else None
    worker = Worker(settings=settings, connect=pool.connection, listen_dsn=dsn,
                    redis_client=client, publisher=publisher, limiter=limiter, tokens=tokens,
                    sessions=sessions, connectors=connectors, hints=hints, worker_id=worker_id,
                    threads=threads, prefix=prefix, tenant_id=tenant_id, stop_event=stop)
    return worker, [pool, client, sessions]


def run_worker(settings: Settings, **options: Any) -> int:
    """Run one worker in this process until SIGTERM or SIGINT."""
    worker, clients = build_worker(settings, **options)

    def stop(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping", signum)
        worker.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        worker.run()
    finally:
        for client in clients:
            client.close()
    return 0


def run_workers(count: int, argv: Sequence[str]) -> int:
    """Start ``count`` worker processes (``argv`` plus ``--workers 1``) and supervise them."""
    children = [subprocess.Popen([sys.executable, "-m", "creatorpulse.cli", *argv,
                                  "--workers", "1"]) for _ in range(count)]
    done = threading.Event()

    def forward(signum: int, _frame: object) -> None:
        done.set()
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    codes = [child.wait() for child in children]
    return 0 if done.is_set() or all(c == 0 for c in codes) else 1
