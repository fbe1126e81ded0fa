"""Registry changes from any process evict the cached registry answers of their tenant.

The registry (``sinks/registry.py``) announces every change with ``NOTIFY creatorpulse_registry``
and a JSON payload naming the tenant, whoever made it:
this API, another API process, the CLI. :class:`RegistryListener` holds one ``LISTEN``
connection per server process and hands each change to ``on_change`` (the app passes
:meth:`~creatorpulse.graphql.cache.AggregateCache.registry_changed`). Whenever it (re)connects
it first calls ``on_connect``, which drops every registry answer: changes made while nobody
listened are never seen as notifications.

A database outage is not an error of the API: the listener retries every ``retry`` seconds, and
a connection silent for ``ping_every`` seconds is checked with ``SELECT 1``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable

import psycopg

from creatorpulse.sinks.registry import CHANNEL

log = logging.getLogger(__name__)

OnChange = Callable[[str], Awaitable[None]]


def changed_tenant(payload: str) -> str | None:
    """The tenant a registry notification names; None if it names none."""
    try:
        change = json.loads(payload)
    except ValueError:
        return None
    tenant = change.get("tenant_id") if isinstance(change, dict) else None
    return tenant if isinstance(tenant, str) else None


class RegistryListener:
    def __init__(self, dsn: str, on_change: OnChange, on_connect: Callable[[], Awaitable[None]],
                 *, retry: float = 1.0, ping_every: float = 30.0, poll: float = 0.25) -> None:
        self._dsn = dsn
        self._on_change = on_change
        self._on_connect = on_connect
        self._retry = retry
        self._ping_every = ping_every
        # Waits for notifications last at most this long, then the stop flag is looked at:
        # cancelling psycopg in the middle of a wait can leave the task stuck for seconds.
        self._poll = poll
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()  # set while a LISTEN connection is up
        self.changes = 0

    async def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name="registry-listener")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._stopping.set()
        done, _ = await asyncio.wait([self._task], timeout=self._poll + 5)
        if not done:  # stuck connecting: cancel as the last resort
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._task = None

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self._listen()
            except Exception as exc:  # the database or Redis is away: retry
                log.warning("registry listener: %s; retrying in %.0fs", exc, self._retry)
            self.listening.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._retry)

    async def _listen(self) -> None:
        async with await psycopg.AsyncConnection.connect(
                self._dsn, autocommit=True, connect_timeout=5) as conn:
            await conn.execute(f"LISTEN {CHANNEL}")
            await self._on_connect()
            self.listening.set()
            quiet = 0.0
            while not self._stopping.is_set():
                received = False
                async for note in conn.notifies(timeout=self._poll):
                    received = True
                    self.changes += 1
                    tenant = changed_tenant(note.payload)
                    if tenant is None:
                        log.warning("registry listener: a notification without a tenant; "
                                    "dropping every registry answer")
                        await self._on_connect()
                    else:
                        await self._on_change(tenant)
                quiet = 0.0 if received else quiet + self._poll
                if quiet >= self._ping_every:
                    await conn.execute("SELECT 1")  # a dead connection raises here
                    quiet = 0.0
