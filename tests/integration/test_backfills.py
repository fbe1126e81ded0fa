"""A recorded backfill request carried out by `creatorpulse jobs backfill`: the reconcile job
recomputes its range from the raw log, and the request says it is done (or why it failed)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import psycopg

from creatorpulse.graphql import management
from creatorpulse.sinks import registry
from tests.integration.engagement import CLEAN, DELAY, END, JOB_ENV, Run, expected
from tests.scenario import T0


def backfill(run: Run, *job_args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "creatorpulse.cli", "jobs", "backfill", "--timeout", "300", "--",
         *job_args], env={**os.environ, **JOB_ENV}, capture_output=True, text=True,
        timeout=600, check=False)


def test_a_backfill_request_is_reconciled_and_marked_done(run: Run,
                                                          db: psycopg.Connection) -> None:
    with db.cursor() as cur:
        cur.executemany(
            f"INSERT INTO {run.table('observations')} (platform, account_id, influencer_id, "
            "content_id, content_kind, metric, value, observed_at, provenance, event_id, late) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, false)",
            [(o.platform.value, o.account_id, o.influencer_id, o.content_id,
              o.content_kind.value, o.metric, o.value, o.observed_at, o.provenance.value,
              o.event_id) for o in CLEAN])
    tenant = f"bf-{run.unique}"
    registry.ensure_tenant(db, tenant)
    who = registry.add_influencer(db, tenant, "Backfilled")
    until = END + timedelta(minutes=20) - DELAY
    asked = management.request_backfill(db, tenant, who.id, None, T0, until, "test")
    try:
        result = backfill(run, "--raw-log-table", run.table("observations"),
                          "--buckets-table", run.table("metric_buckets_1m"),
                          "--rolling-table", run.table("rolling_windows"),
                          "--derived-table", run.table("derived_figures"))
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        want_buckets, want_rolling, want_derived = expected(CLEAN, until)
        assert run.buckets() == want_buckets
        assert run.rolling() == want_rolling
        assert run.derived() == want_derived
        status, detail = db.execute("SELECT status, detail FROM backfill_requests WHERE id = %s",
                                    (asked.id,)).fetchone()
        assert status == "done" and "Flink job" in detail
        # A request whose reconcile cannot run is failed with the reason, not left running.
        broken = management.request_backfill(db, tenant, who.id, None, T0, until, "test")
        result = backfill(run, "--raw-log-table", "no_such_table")
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        status, detail = db.execute("SELECT status, detail FROM backfill_requests WHERE id = %s",
                                    (broken.id,)).fetchone()
        assert status == "failed" and detail
    finally:
        db.execute("DELETE FROM tenants WHERE id = %s", (tenant,))
