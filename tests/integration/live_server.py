"""The API under uvicorn on an ephemeral loopback port, its live hub on a topic of the test's own,
plus a tenant pair seeded in the real database. Shared by the live-update integration tests."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import uvicorn
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from starlette.routing import WebSocketRoute

from creatorpulse.aggregate import Aggregate
from creatorpulse.graphql.app import create_app
from creatorpulse.graphql.auth import Role, mint
from creatorpulse.graphql.live import LiveHub, create_hub
from creatorpulse.observation import Provenance
from creatorpulse.settings import Settings
from tests.waiting import wait_for

NOW = datetime.now(UTC).replace(second=0, microsecond=0)
INIT_WAIT = timedelta(seconds=1)


@dataclass
class Tenants:
    """Two tenants, A with influencers a1 and a2, B with b1; ids unique to this test."""

    a: str
    b: str
    a1: str
    a2: str
    b1: str


class Live:
    """A running API server and what a test needs around it."""

    def __init__(self, settings: Settings, topic: str, tenants: Tenants) -> None:
        self.settings = settings
        self.topic = topic
        self.tenants = tenants
        self.hub: LiveHub = create_hub(settings, topic=topic)
        self.app = create_app(settings, live=self.hub)
        # The protocol's wait for connection_init, shortened so that a test can see 4408.
        for route in self.app.routes:
            if isinstance(route, WebSocketRoute) and route.path == "/graphql":
                route.endpoint.connection_init_wait_timeout = INIT_WAIT  # type: ignore[attr-defined]
        self.producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "linger.ms": 0})
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> None:
        config = uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="warning",
                                ws="websockets-sansio", lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="api-server", daemon=True)
        self._thread.start()
        server = self._server
        wait_for(lambda: server.started or not self._thread.is_alive(), 60, "the API server", 0.02)
        assert server.started, "the API server did not start"
        self.port = server.servers[0].sockets[0].getsockname()[1]

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(30)

    def token(self, tenant: str, *, role: Role = Role.VIEWER,
              ttl: timedelta | None = None) -> str:
        return mint(self.settings, subject=f"user-of-{tenant}", tenant_id=tenant, role=role,
                    ttl=ttl)

    def produce(self, *aggregates: Aggregate, partition: int = 0) -> None:
        """Aggregates onto the test topic, in order (one partition keeps them in order)."""
        for a in aggregates:
            self.producer.produce(self.topic, a.to_json(), key=a.key, partition=partition)
        assert self.producer.flush(10) == 0

    def subscribers(self) -> int:
        return self.hub.subscriber_count()


def aggregate(influencer: str, *, gain: int = 5, metric: str = "likes", window: str = "1h",
              platform: str = "instagram", end: datetime = NOW) -> Aggregate:
    size = {"1h": timedelta(hours=1), "24h": timedelta(days=1)}.get(window, timedelta(days=7))
    return Aggregate(influencer, platform, metric, window, end, end - size, gain, 100,
                     100 + gain, Provenance.MEASURED)


@contextmanager
def seeded_tenants(dsn: str) -> Iterator[Tenants]:
    tag = uuid.uuid4().hex[:8]
    t = Tenants(a=f"ta-{tag}", b=f"tb-{tag}", a1=f"a1-{tag}", a2=f"a2-{tag}", b1=f"b1-{tag}")
    with psycopg.connect(dsn, autocommit=True) as conn:
        for tenant in (t.a, t.b):
            conn.execute("INSERT INTO tenants (id, name) VALUES (%s, %s)", [tenant, tenant])
        for influencer, tenant in ((t.a1, t.a), (t.a2, t.a), (t.b1, t.b)):
            conn.execute("INSERT INTO influencers (id, tenant_id, name) VALUES (%s, %s, %s)",
                         [influencer, tenant, f"Creator {influencer}"])
    try:
        yield t
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            ids = [t.a1, t.a2, t.b1]
            conn.execute("DELETE FROM rolling_windows WHERE influencer_id = ANY(%s)", [ids])
            conn.execute("DELETE FROM tenants WHERE id = ANY(%s)", [[t.a, t.b]])


@contextmanager
def running_api(settings: Settings, admin: AdminClient, unique: str) -> Iterator[Live]:
    topic = f"test.aggregates.{unique}"
    for future in admin.create_topics([NewTopic(topic, num_partitions=2,
                                                replication_factor=1)]).values():
        future.result(30)
    try:
        with seeded_tenants(settings.database_dsn.reveal()) as tenants:
            live = Live(settings, topic, tenants)
            live.start()
            try:
                yield live
            finally:
                live.stop()
    finally:
        for future in admin.delete_topics([topic]).values():
            future.result(30)


def graphql_message(kind: str, **fields: Any) -> str:
    return json.dumps({"type": kind, **fields})
