"""Integration tests run against the stack that `make test` (or `creatorpulse stack up`) started.

They fail, rather than skip, when a part is down: a green run must mean the real parts ran.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from confluent_kafka.admin import AdminClient

from creatorpulse.flink_jobs import FlinkRest
from creatorpulse.settings import Settings
from creatorpulse.stack import Stack
from tests.integration.engagement import Run


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings.from_env(os.environ)


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Stack:
    stack = Stack(settings, lambda _: None)
    down = [part.name for part, health in stack.status() if not health.ok]
    if down:
        pytest.fail(f"the local stack is not healthy ({', '.join(down)} down): "
                    "run `creatorpulse stack up` (make test does)")
    return stack


@pytest.fixture
def db(stack: Stack, settings: Settings) -> Iterator[psycopg.Connection]:
    with psycopg.connect(settings.database_dsn.reveal(), autocommit=True) as conn:
        yield conn


@pytest.fixture
def admin(stack: Stack, settings: Settings) -> AdminClient:
    return AdminClient({"bootstrap.servers": settings.kafka_bootstrap})


@pytest.fixture
def unique() -> str:
    """A suffix for this test's own topic and table names."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def run(settings: Settings, stack: Stack, admin: AdminClient, unique: str) -> Iterator[Run]:
    """The engagement job on topics and tables of this test's own; cancelled and dropped after."""
    r = Run(unique, settings, admin)
    r.create()
    yield r
    r.remove(FlinkRest(stack.part("flink").address))
