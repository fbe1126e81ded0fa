"""Durable deduplication of webhook deliveries in PostgreSQL (table ``webhook_deliveries``).

:meth:`PostgresDedup.claim` inserts ``(platform, delivery id)`` with ``ON CONFLICT DO NOTHING``
and keeps the transaction open while the caller publishes: the row commits only when the block
ends normally, and an exception rolls it back so the platform's retry is processed. A concurrent
copy of the same delivery waits on the uncommitted row and then finds it (or, after a rollback,
wins it), so exactly one copy publishes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Protocol

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool, PoolTimeout

TABLE = "webhook_deliveries"


class StoreError(RuntimeError):
    """The deduplication store cannot be reached or refused the statement."""


class DedupStore(Protocol):
    def claim(self, platform: str, delivery_id: str) -> AbstractContextManager[bool]:
        """Yield True when this delivery is new; commit on a normal exit, forget on an error."""
        ...


class PostgresDedup:
    """:class:`DedupStore` on a PostgreSQL table (the migration's, or a test's copy of it)."""

    def __init__(self, pool: ConnectionPool, table: str = TABLE) -> None:
        self._pool = pool
        self._table = sql.Identifier(table)

    @contextmanager
    def claim(self, platform: str, delivery_id: str) -> Iterator[bool]:
        query = sql.SQL(
            "INSERT INTO {} (platform, delivery_id) VALUES (%s, %s) "
            "ON CONFLICT DO NOTHING RETURNING 1"
        ).format(self._table)
        try:
            with self._pool.connection() as conn, conn.transaction():
                first = conn.execute(query, (platform, delivery_id)).fetchone() is not None
                yield first
        except (psycopg.Error, PoolTimeout) as exc:
            msg = f"delivery store: {type(exc).__name__}"
            raise StoreError(msg) from exc

    def prune(self, before: datetime) -> int:
        """Forget deliveries received before ``before``; the number forgotten."""
        query = sql.SQL("DELETE FROM {} WHERE received_at < %s").format(self._table)
        try:
            with self._pool.connection() as conn:
                return conn.execute(query, (before,)).rowcount
        except (psycopg.Error, PoolTimeout) as exc:
            msg = f"delivery store: {type(exc).__name__}"
            raise StoreError(msg) from exc
