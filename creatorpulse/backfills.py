"""Backfill requests carried out: the ranges asked for are recomputed by the reconcile job.

``requestBackfill`` (GraphQL) records a request in ``backfill_requests`` and announces it with
``NOTIFY``. :func:`run_pending` claims every request still ``requested`` (``FOR UPDATE SKIP
LOCKED``, so two runners never take the same one), merges ranges that touch into one, runs
``jobs/reconcile.py`` once per merged range (the reconcile is idempotent and recomputes every
influencer of the range from the raw observation log, the requested one among them), and sets
each request ``done`` or ``failed`` with what happened. ``creatorpulse jobs backfill`` runs it
once; ``--watch`` keeps running it whenever a request is announced (and every minute, as a
safety net). The platforms keep no history of cumulative counters, so a backfill never polls:
what it can recompute is what the raw log holds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime

import psycopg

log = logging.getLogger(__name__)

Connect = Callable[[], AbstractContextManager[psycopg.Connection]]
Reconcile = Callable[[datetime, datetime], str]  # (start, end) -> the Flink job's id


@dataclass(frozen=True)
class Claimed:
    id: str
    tenant_id: str
    influencer_id: str
    start: datetime
    end: datetime


def claim(conn: psycopg.Connection) -> list[Claimed]:
    """Every request still waiting, now ``running`` (taken by this runner only)."""
    rows = conn.execute(
        "UPDATE backfill_requests SET status = 'running', updated_at = now() "
        "WHERE id IN (SELECT id FROM backfill_requests WHERE status = 'requested' "
        "             ORDER BY requested_at FOR UPDATE SKIP LOCKED) "
        "RETURNING id, tenant_id, influencer_id, range_start, range_end").fetchall()
    return [Claimed(*row) for row in rows]


def finish(conn: psycopg.Connection, ids: Sequence[str], status: str, detail: str) -> None:
    conn.execute("UPDATE backfill_requests SET status = %s, detail = %s, updated_at = now() "
                 "WHERE id = ANY(%s)", (status, detail[:1000], list(ids)))


def merged(requests: Sequence[Claimed]) -> list[tuple[datetime, datetime, list[str]]]:
    """Ranges that overlap or touch, merged: ``(start, end, ids of the requests in it)``."""
    out: list[tuple[datetime, datetime, list[str]]] = []
    for r in sorted(requests, key=lambda r: (r.start, r.end)):
        if out and r.start <= out[-1][1]:
            start, end, ids = out[-1]
            out[-1] = (start, max(end, r.end), [*ids, r.id])
        else:
            out.append((r.start, r.end, [r.id]))
    return out


def run_pending(connect: Connect, reconcile: Reconcile, say: Callable[[str], None]) -> int:
    """Carry out every waiting request; returns how many were taken."""
    with connect() as conn:
        requests = claim(conn)
    for start, end, ids in merged(requests):
        say(f"backfill of {start.isoformat()} .. {end.isoformat()} "
            f"({len(ids)} request{'s' if len(ids) > 1 else ''})")
        try:
            job_id = reconcile(start, end)
        except Exception as exc:  # the job failed or could not be submitted: say so, go on
            log.warning("backfill %s .. %s failed: %s", start, end, exc)
            with connect() as conn:
                finish(conn, ids, "failed", str(exc))
            continue
        with connect() as conn:
            finish(conn, ids, "done", f"reconciled {start.isoformat()} .. {end.isoformat()} "
                                      f"(Flink job {job_id})")
    return len(requests)
