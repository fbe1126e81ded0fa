"""The engagement job survives failures and still ends equal to the oracle.

Each test first proves that its fault really happened (the process died, the job restarted),
then that the final tables equal what the oracle computes from the same readings.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from creatorpulse.flink_jobs import FlinkRest
from creatorpulse.stack import Stack
from creatorpulse.stack.flink import Flink
from creatorpulse.stack.postgres import Postgres
from creatorpulse.stack.process import wait_until
from tests.integration.engagement import CLEAN, DELAY, END, JOB_ENV, Run, wait_for_oracle

HALF = len(CLEAN) // 2
OUTAGE_S = 20


def taskmanager_jvm(supervisor: int | None) -> int:
    """The pid of the TaskManager JVM that the stack's supervisor loop runs."""
    assert supervisor is not None
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def restarts(rest: FlinkRest, job_id: str) -> int:
    metrics = rest.call("GET", f"/jobs/{job_id}/metrics?get=numRestarts")
    return int(metrics[0]["value"]) if metrics else 0


def completed_checkpoints(rest: FlinkRest, job_id: str) -> int:
    return int(rest.call("GET", f"/jobs/{job_id}/checkpoints")["counts"]["completed"])


def test_a_killed_taskmanager_is_replaced_and_the_job_recovers(run: Run, stack: Stack) -> None:
    flink = stack.part("flink")
    assert isinstance(flink, Flink)
    rest = FlinkRest(flink.address)
    run.produce(CLEAN[:HALF])
    run.start()
    assert run.job_id is not None
    wait_until(lambda: completed_checkpoints(rest, run.job_id) >= 2 or None, part="faults",
               what="two checkpoints complete", timeout=180)

    _, supervisor = flink.processes()
    old_ids, old_jvm = flink.taskmanager_ids(), taskmanager_jvm(supervisor.pid())
    os.kill(old_jvm, signal.SIGKILL)
    wait_until(lambda: not Path(f"/proc/{old_jvm}").exists() or None, part="faults",
               what="the TaskManager's JVM is gone", timeout=30)
    # The stack's supervisor starts a new TaskManager, which registers under a new id.
    wait_until(lambda: (flink.taskmanager_ids() - old_ids) or None, part="faults",
               what="a new TaskManager registers", timeout=120)
    assert taskmanager_jvm(supervisor.pid()) != old_jvm

    run.produce(CLEAN[HALF:], clock_at=END + timedelta(minutes=20))
    wait_until(lambda: (rest.job(run.job_id)["state"] == "RUNNING" and
                        restarts(rest, run.job_id) >= 1) or None,
               part="faults", what="the job restarted and runs again", timeout=180)
    wait_for_oracle(run, CLEAN, until=END + timedelta(minutes=20) - DELAY)


def test_a_database_outage_delays_but_does_not_change_the_result(run: Run, stack: Stack) -> None:
    postgres = stack.part("postgres")
    assert isinstance(postgres, Postgres)
    if not postgres.managed:
        pytest.skip("PostgreSQL is external (CREATORPULSE_DATABASE_URL): not ours to stop")
    rest = FlinkRest(stack.part("flink").address)
    run.start_on_first_half()
    assert run.job_id is not None

    assert postgres.down()
    down_since = time.monotonic()
    assert not postgres.health().ok
    run.produce(CLEAN[HALF:], clock_at=END + timedelta(minutes=20))
    # The outage lasts 20 s at least, and until the job has noticed it and failed over.
    wait_until(lambda: (time.monotonic() - down_since >= OUTAGE_S
                        and restarts(rest, run.job_id) >= 1) or None,
               part="faults", what="the job fails over while the database is away",
               timeout=120)
    postgres.up()

    wait_for_oracle(run, CLEAN, until=END + timedelta(minutes=20) - DELAY)
    history = rest.call("GET", f"/jobs/{run.job_id}/exceptions?maxExceptions=50")
    messages = [entry.get("stacktrace", "") for entry in history.get("exceptionHistory", {})
                .get("entries", [])]
    assert messages, "the outage left no trace in the job's exception history"
    assert not any("duplicate key" in m for m in messages)


def test_an_upgrade_through_a_savepoint_keeps_the_counters_state(run: Run, stack: Stack) -> None:
    # If the new job started without the old one's state, the first reading of every counter
    # after the upgrade would be a baseline and its gain would be missing from the tables.
    rest = FlinkRest(stack.part("flink").address)
    run.start_on_first_half()
    assert run.job_id is not None
    result = subprocess.run(
        [sys.executable, "-m", "creatorpulse.cli", "jobs", "upgrade", "engagement",
         "--running", run.job_id, "--", *run.job_args()],
        env={**os.environ, **JOB_ENV}, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    new_id = re.search(r"upgraded: [0-9a-f]{32} -> ([0-9a-f]{32})", result.stdout)
    assert new_id, result.stdout
    assert rest.job(run.job_id)["state"] == "FINISHED"  # stopped with a savepoint
    run.job_id = new_id.group(1)
    assert "savepoint at file:" in result.stdout
    run.finish_second_half()
