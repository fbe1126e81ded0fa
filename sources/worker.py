"""A polling worker: holds leases on accounts, polls them on their cadence, publishes the results.

One worker is one process (``creatorpulse sources run``; ``--workers N`` starts N of them). Its
main loop, on one thread:

- renews its leases every third of the lease period and counts the live workers every second
  (:mod:`.leases`): when one comes or goes, the shares are recomputed at once, and a worker
  under its share looks again each second for a few seconds, so the load settles quickly;
- syncs with the registry at once on ``NOTIFY creatorpulse_registry`` and, as a safety net, with
  each heartbeat (listing every account is O(accounts) of Python work each time): a new or
  resumed account is claimed and polled at once, a paused or unlinked one is released;
- takes poll hints (``engagement.hints``) for the accounts it holds: poll now, only the content
  named when it is tracked;
- hands due polls to a thread pool per platform, one poll at a time per account, oldest-due
  first and no more than the threads can take (:data:`QUEUE_PER_THREAD` each). A poll waiting
  for a rate limit holds its thread, so each platform has threads of its own: a throttled
  platform (Meta's hourly budgets) never starves the others.

A poll calls the platform's connector (``sources/registry.py``) through an :class:`AccountApi`,
publishes observations and dead letters, feeds the :class:`Cadence`, and records the outcome in
``poll_state``. A failing poll never stops the worker: the error is recorded (without secrets)
and the account is tried again after a backoff. SIGTERM stops the loop, lets running polls end,
releases the leases (so the others take over at once) and flushes the producer.
"""

from __future__ import annotations

import heapq
import inspect
import logging
import queue
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import psycopg
import redis

from creatorpulse.events import EventError, PollHint
from creatorpulse.observation import Platform
from creatorpulse.settings import Settings
from creatorpulse.sinks import registry
from creatorpulse.sinks.registry import PlatformAccount
from creatorpulse.sources.base import (
    Account,
    ApiError,
    Connector,
    Content,
    Gone,
    MappingError,
    Poll,
    Retry,
    SourceError,
)
from creatorpulse.sources.cadence import Cadence, Policy
from creatorpulse.sources.http import AccountApi
from creatorpulse.sources.leases import Leases, plan
from creatorpulse.sources.oauth import SessionFactory, TokenManager
from creatorpulse.sources.publisher import Publisher
from creatorpulse.sources.ratelimit import Limiter, backoff, system_random
from creatorpulse.sources.threads import PollThreads
from creatorpulse.tokens import VaultError

log = logging.getLogger(__name__)

COUNT_EVERY = 1.0  # seconds between counts of the live workers
QUICK_SYNCS = 5  # registry syncs a second apart while under the share, after a change
QUEUE_PER_THREAD = 16  # polls queued or running per poll thread, at most
ROWS_MAX_AGE = 60.0  # seconds a read of the registry serves syncs when nothing was announced
RECORD_EVERY = 1.0  # seconds between writes of the polls' state (one statement each)
RECORDS_KEPT = 100_000  # poll records kept for a retry while the database is away
_EARLIEST = datetime.min.replace(tzinfo=UTC)

Connect = Callable[[], AbstractContextManager[psycopg.Connection]]
ConnectorLookup = Callable[[Platform], Any]


def default_connectors(platform: Platform) -> Connector:
    """The platform's connector from ``sources/registry.py`` (a class or an instance)."""
    from creatorpulse.sources.registry import connector

    found = connector(platform)
    return found() if isinstance(found, type) else found


def interrupted_sleep(stop: threading.Event, seconds: float) -> None:
    """Sleep, unless ``stop`` is set first: then raise Retry so the poll ends at once."""
    if stop.wait(seconds):
        msg = "the worker is stopping"
        raise Retry(msg)


@lru_cache(maxsize=64)
def takes_since(kind: type) -> bool:
    """Whether a connector class's ``fetch_account`` has the ``since`` cutoff (older ones and
    simple fakes do not: they are called without it)."""
    try:
        return "since" in inspect.signature(kind.fetch_account).parameters
    except (AttributeError, TypeError, ValueError):
        return False


def fetch_account(connector: Connector, api: AccountApi, account: Account, now: datetime,
                  since: datetime) -> Poll:
    if takes_since(type(connector)):
        return connector.fetch_account(api, account, now, since=since)
    return connector.fetch_account(api, account, now)


@dataclass
class Held:
    """An account this worker holds, with its schedule and what is waiting for it."""

    account: Account
    cadence: Cadence
    api: AccountApi
    connector: Connector
    hinted_account: bool = False
    hinted_content: set[str] = field(default_factory=set)
    failures: int = 0
    due_at: datetime | None = None  # the cadence's next wake after its last poll; None: now


def to_account(row: PlatformAccount) -> Account:
    return Account(id=row.id, tenant_id=row.tenant_id, influencer_id=row.influencer_id,
                   platform=row.platform, external_id=row.external_id, handle=row.handle)


class Worker:
    """One polling worker. Build it at the entry point with its clients; call :meth:`run`."""

    def __init__(
        self,
        *,
        settings: Settings,
        connect: Connect,
        listen_dsn: str,
        redis_client: redis.Redis[bytes],
        publisher: Publisher,
        limiter: Limiter,
        tokens: TokenManager,
        sessions: SessionFactory,
        connectors: ConnectorLookup = default_connectors,
        hints: Any | None = None,
        worker_id: str | None = None,
        threads: int = 8,
        prefix: str = "creatorpulse",
        tenant_id: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        rand: Callable[[], float] | None = None,
        stop_event: threading.Event | None = None,
    ) -> None:
        self.settings = settings
        self.worker_id = worker_id or f"worker-{uuid.uuid4().hex[:8]}"
        self._connect = connect
        self._listen_dsn = listen_dsn
        self._publisher = publisher
        self._limiter = limiter
        self._tokens = tokens
        self._sessions = sessions
        self._connectors = connectors
        self._connector_cache: dict[Platform, Connector] = {}
        self._no_connector: set[Platform] = set()  # left to workers that have one
        self._hints = hints  # a confluent_kafka Consumer already assigned to the hints topic
        self._tenant_id = tenant_id
        self._clock = clock
        self._rand = rand or system_random()
        self._policy = Policy.from_settings(settings)
        self.leases = Leases(redis_client, self.worker_id, settings.lease_ttl, prefix=prefix)
        self._threads = threads
        self._pools: dict[Platform, PollThreads] = {}  # one per platform, made when needed
        self.queue_limit = threads * QUEUE_PER_THREAD  # per platform
        self._running: dict[str, Platform] = {}  # accounts with a poll queued or running
        self._by_platform: dict[Platform, dict[str, Held]] = {}  # the held, per platform
        self._held: dict[str, Held] = {}
        self._hint_queue: queue.Queue[PollHint] = queue.Queue()
        self._stop = stop_event or threading.Event()
        self._dirty = True
        self._registry_dirty = True  # the registry changed since its rows were read
        self._rows: list[PlatformAccount] | None = None
        self._rows_at = 0.0
        self.polls = 0
        # Polls not yet written to poll_state: written every RECORD_EVERY seconds, in one go.
        self._records: list[registry.PollRecord] = []
        self._records_lock = threading.Lock()

    # --- lifecycle -------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to end (signal-safe: it only sets an event)."""
        self._stop.set()

    def sleep(self, seconds: float) -> None:
        """A wait that a stopping worker cuts short (the poll then ends as a Retry)."""
        interrupted_sleep(self._stop, seconds)

    @property
    def held(self) -> list[str]:
        return sorted(self._held)

    def run(self) -> None:
        """Poll until :meth:`stop`; then release the leases and flush."""
        ttl = self.settings.lease_ttl.total_seconds()
        renew_every = ttl / 3
        # Counting the live workers is one cheap round trip: doing it every second lets a
        # newcomer get its fair share within a second or two rather than a renewal period.
        count_every = min(COUNT_EVERY, renew_every)
        sync_every = renew_every  # NOTIFY brings changes at once; this is the safety net
        log.info("worker %s starting (lease %gs)", self.worker_id, ttl)
        hint_thread = None
        if self._hints is not None:
            hint_thread = threading.Thread(target=self._consume_hints, name="hints", daemon=True)
            hint_thread.start()
        listener: psycopg.Connection | None = None
        next_renew = next_count = next_sync = next_record = 0.0
        live, quick = 1, QUICK_SYNCS
        try:
            while not self._stop.is_set():
                try:
                    if listener is None:
                        listener = psycopg.connect(self._listen_dsn, autocommit=True,
                                                   connect_timeout=10)
                        listener.execute(f"LISTEN {registry.CHANNEL}")
                        self._dirty = self._registry_dirty = True  # changes may be missed
                    now = time.monotonic()
                    if now >= next_count:
                        counted = self.leases.heartbeat()
                        if counted != live:
                            self._dirty = True  # a worker came or went: shares change
                            quick = QUICK_SYNCS
                        live = counted
                        next_count = now + count_every
                    if now >= next_renew:
                        self._renew()
                        next_renew = now + renew_every
                    if now >= next_record:
                        self._record_polls()
                        next_record = now + RECORD_EVERY
                    if self._dirty or now >= next_sync:
                        self._dirty = False
                        short = self._sync(live) and quick > 0
                        # Under the share: the others release their surplus within a count, so
                        # look again soon (a few times: shares rounded up may never all fill).
                        quick -= short
                        next_sync = time.monotonic() + (count_every if short else sync_every)
                    self._take_hints()
                    backlog = self._dispatch()
                    # With polls left waiting, come back as soon as threads may be free.
                    wait = 0.05 if backlog else 0.2
                    for _ in listener.notifies(timeout=wait, stop_after=1):
                        self._dirty = self._registry_dirty = True
                except psycopg.Error as exc:
                    # The registry is unreachable: keep polling what is held, try again soon.
                    log.warning("registry unavailable (%s); retrying", type(exc).__name__)
                    if listener is not None:
                        listener.close()
                    listener = None
                    self._stop.wait(1)
                except redis.RedisError as exc:
                    log.warning("redis unavailable (%s); retrying", type(exc).__name__)
                    self._stop.wait(1)
        finally:
            if listener is not None:
                listener.close()
            self._shutdown()
            if hint_thread is not None:
                hint_thread.join(5)

    def _shutdown(self) -> None:
        log.info("worker %s stopping: waiting for %d running polls", self.worker_id,
                 len(self._running))
        for pool in self._pools.values():
            pool.shutdown(cancel_waiting=True)
        self._record_polls()
        self.leases.release(list(self._held))
        self.leases.leave()
        self._held.clear()
        self._by_platform.clear()
        left = self._publisher.flush(30)
        log.info("worker %s stopped; %d records undelivered", self.worker_id, left)

    # --- leases and registry ---------------------------------------------------------------

    def _renew(self) -> None:
        for account_id in self.leases.renew(list(self._held)):
            log.warning("lost the lease of account %s; another worker polls it now", account_id)
            self._drop(account_id)

    def _sync(self, live: int) -> bool:
        """Claim up to the fair share, release the surplus; True while under the share with
        accounts still held by others (they release them at their next count of workers)."""
        active = {r.id: r for r in self._active_rows() if r.platform not in self._no_connector}
        claim, release = plan(self.worker_id, list(active), list(self._held), live)
        for account_id in release:
            self._drop(account_id)
        self.leases.release(release)
        for account_id, held in self._held.items():  # a changed interval or handle
            row = active[account_id]
            held.cadence.base_interval = row.poll_interval
            held.account = to_account(row)
        share = -(-len(active) // max(1, live))  # ceil: this worker's fair share
        start = 0
        while len(self._held) < share and start < len(claim):
            batch = claim[start:start + share - len(self._held)]
            start += len(batch)
            claimed = self.leases.claim_many(batch)
            for account_id in claimed:
                self._adopt(active[account_id])
            try:
                self._tokens.preload(claimed)
            except (psycopg.Error, VaultError) as exc:  # each first poll reads its own then
                log.warning("could not preload tokens (%s)", type(exc).__name__)
        return len(self._held) < share and bool(claim)

    def _active_rows(self) -> list[PlatformAccount]:
        """The registry's pollable accounts (active, on a platform their tenant has not
        disabled): read again when the registry announced a change (or the
        listener reconnected), else at most ROWS_MAX_AGE old. A sync in between (leases to
        claim, a worker come or gone) plans over the same rows."""
        now = time.monotonic()
        if self._registry_dirty or self._rows is None or now - self._rows_at >= ROWS_MAX_AGE:
            self._registry_dirty = False
            with self._connect() as conn:
                self._rows = registry.pollable_accounts(conn, self._tenant_id)
            self._rows_at = now
        return self._rows

    def _adopt(self, row: PlatformAccount) -> None:
        account = to_account(row)
        try:
            connector = self._connector(account.platform)
        except Exception as exc:  # an unknown or broken connector must not stop the others
            log.error("no connector for %s (%s): its accounts are left to other workers",
                      account.platform, exc)
            self._no_connector.add(account.platform)
            self.leases.release([account.id])
            return
        api = AccountApi(account=account, connector=connector,
                         session=self._sessions(account.platform.value), tokens=self._tokens,
                         limiter=self._limiter, settings=self.settings, clock=self._clock,
                         sleep=self.sleep, rand=self._rand)
        self._held[account.id] = Held(account, Cadence(self._policy, row.poll_interval), api,
                                      connector)
        self._by_platform.setdefault(account.platform, {})[account.id] = self._held[account.id]
        log.info("worker %s now polls %s account %s (%s)", self.worker_id, account.platform,
                 account.id, account.handle or account.external_id)

    def _drop(self, account_id: str) -> None:
        held = self._held.pop(account_id, None)
        if held is not None:
            same = self._by_platform[held.account.platform]
            del same[account_id]
            if not same:
                del self._by_platform[held.account.platform]
            self._tokens.forget(account_id)
            log.info("worker %s stops polling account %s", self.worker_id, account_id)

    def _connector(self, platform: Platform) -> Connector:
        if platform not in self._connector_cache:
            self._connector_cache[platform] = self._connectors(platform)
        return self._connector_cache[platform]

    # --- hints ------------------------------------------------------------------------------

    def _consume_hints(self) -> None:
        assert self._hints is not None
        while not self._stop.is_set():
            msg = self._hints.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                log.warning("hints: %s", msg.error())
                continue
            try:
                self._hint_queue.put(PollHint.from_json(msg.value()))
            except EventError as exc:
                log.warning("hints: skipping a bad record at %s [%s] offset %s: %s",
                            msg.topic(), msg.partition(), msg.offset(), exc)
        self._hints.close()

    def _take_hints(self) -> None:
        while True:
            try:
                hint = self._hint_queue.get_nowait()
            except queue.Empty:
                return
            for held in self._held.values():
                a = held.account
                if a.platform == hint.platform and a.external_id == hint.external_account_id:
                    if hint.content_id and hint.content_id in held.cadence.tracked:
                        held.hinted_content.add(hint.content_id)
                    else:
                        held.hinted_account = True
                    log.info("hint for account %s (%s): polling now", a.id, hint.reason)

    # --- polling ----------------------------------------------------------------------------

    def _dispatch(self) -> bool:
        """Queue the due polls, per platform at most what its threads can take
        (:attr:`queue_limit` in flight), oldest-due first; the rest wait for the next pass.
        True when some were left.

        An unbounded queue would hold a poll for every due account (thousands), each run long
        after it was planned and none picking up a hint or a released lease in between.
        """
        # A copy first: poll threads take their accounts out of _running as they finish.
        busy = Counter(list(self._running.values()))
        # A pass over a platform costs O(its accounts): only platforms with half a queue free.
        ready = [p for p in self._by_platform
                 if self.queue_limit - busy[p] >= self.queue_limit // 2]
        left = len(ready) < len(self._by_platform)  # the others are busy: come back soon
        now = self._clock()
        for platform in ready:
            waiting = self._due(self._by_platform[platform], now)
            room = self.queue_limit - busy[platform]
            left |= len(waiting) > room
            for _, _, held, whole in heapq.nsmallest(max(room, 0), waiting):
                self._submit(platform, held, whole)
        return left

    def _due(self, held_here: dict[str, Held], now: datetime,
             ) -> list[tuple[datetime, int, Held, bool]]:
        """``(since, n, held, whole)`` of each due account not already queued: hinted ones
        first, then by how long they have been due."""
        due: list[tuple[datetime, int, Held, bool]] = []
        for n, held in enumerate(held_here.values()):
            if held.account.id in self._running:
                continue
            # Most accounts are not due: their next wake, kept from their last poll, says so
            # without asking the cadence (a pass looks at every account held).
            if (held.due_at is not None and held.due_at > now and not held.hinted_account
                    and not held.hinted_content):
                continue
            whole = held.hinted_account or held.cadence.account_due(now)
            if held.hinted_account or held.hinted_content:
                since = _EARLIEST
            elif whole:
                since = held.cadence.account_next_at or _EARLIEST
            elif held.cadence.due_content(now):
                since = now
            else:
                continue
            due.append((since, n, held, whole))
        return due

    def _submit(self, platform: Platform, held: Held, whole: bool) -> None:
        hinted = set(held.hinted_content)
        held.hinted_account = False
        held.hinted_content.clear()
        account_id = held.account.id
        pool = self._pools.get(platform)
        if pool is None:
            pool = self._pools[platform] = PollThreads(self._threads, f"poll-{platform.value}")
        self._running[account_id] = platform
        pool.submit(self._poll_and_release, held, whole, hinted)

    def _poll_and_release(self, held: Held, whole: bool, hinted: set[str]) -> None:
        try:
            self._poll(held, whole, hinted)
        finally:
            self._running.pop(held.account.id, None)

    def _poll(self, held: Held, whole: bool, hinted: set[str]) -> None:
        account, cadence = held.account, held.cadence
        now = self._clock()
        connector = held.connector
        poll = Poll()
        error: str | None = None
        content: list[Content] = []
        try:
            if whole:
                poll = fetch_account(connector, held.api, account, now,
                                     now - self._policy.max_age)
                cadence.after_account_poll(now, poll)
            seen = {c.id for c in poll.content}
            content = [c for c in cadence.due_content(now) if c.id not in seen]
            content += [cadence.tracked[c].content for c in hinted
                        if c in cadence.tracked and c not in seen
                        and c not in {x.id for x in content}]
            if content:
                part = connector.fetch_content(held.api, account, content, now)
                cadence.after_content_poll(now, part, [c.id for c in content])
                poll.extend(part)
            held.failures = 0
        except Retry as exc:
            error = f"retry: {exc.reason}"
            self._delay(held, content, whole, now, exc.after)
        except MappingError as exc:
            self._publisher.dead_letter(account.platform, account.id, exc)
            error = f"unmappable answer: {exc.reason}"
            self._delay(held, content, whole, now, None)
        except Gone as exc:
            if exc.content_id:
                poll.deleted.append(exc.content_id)
                cadence.tracked.pop(exc.content_id, None)
            error = f"gone: {exc}"
            self._delay(held, content, whole, now, self._policy.max_interval)
        except (ApiError, SourceError, VaultError) as exc:
            error = str(exc)
            self._delay(held, content, whole, now, None)
        except Exception as exc:  # a connector bug must not stop the worker
            log.exception("poll of %s account %s failed", account.platform, account.id)
            error = f"unexpected {type(exc).__name__}"
            self._delay(held, content, whole, now, None)
        try:
            self._publisher.publish_poll(account, poll)
        except Exception:
            log.exception("publishing the poll of account %s failed", account.id)
        self.polls += 1
        if error:
            log.warning("poll of %s account %s: %s", account.platform, account.id, error)
        held.due_at = cadence.next_wake()
        record = registry.PollRecord(account.id, self.worker_id, now, held.due_at,
                                     error, len(poll.observations))
        with self._records_lock:
            self._records.append(record)

    def _record_polls(self) -> None:
        """Write the polls since the last call to ``poll_state``, in one statement."""
        with self._records_lock:
            records, self._records = self._records, []
        if not records:
            return
        try:
            with self._connect() as conn:
                registry.record_polls(conn, records)
        except psycopg.Error as exc:
            log.warning("could not record %d polls: %s", len(records), type(exc).__name__)
            with self._records_lock:  # try again next time, within bounds
                self._records[:0] = records[-RECORDS_KEPT:]

    def _delay(self, held: Held, content: list[Content], whole: bool, now: datetime,
               after: timedelta | None) -> None:
        held.failures += 1
        if after is None:
            after = max(self.settings.retry_base,
                        backoff(held.failures, self.settings.retry_base,
                                max(self.settings.retry_max, self.settings.retry_base),
                                self._rand))
        until = now + after
        if whole:
            held.cadence.delay_account(until)
        held.cadence.delay_content([c.id for c in content], until)
