"""Benchmark of the engagement pipeline on this machine: Kafka -> Flink job -> PostgreSQL.

One run measures, in turn:

1. pipeline: N observations preloaded in Kafka, the engagement job (jobs/engagement.py, on its
   own topics and tables) drains them into PostgreSQL; observations per second from the moment
   all its tasks run until the last raw-log row and the last minute bucket are written;
2. baseline: a plain Python consumer (bench/baseline.py) computes the raw log and the minute
   buckets of the same topic; the benchmark checks that its buckets equal the job's;
3. ceiling: the same SQL fed by Flink's in-JVM generator into blackhole sinks
   (bench/ceiling_job.py);
4. freshness: at a steady rate of readings stamped now, p50/p99 from a reading entering Kafka to
   its gain being visible in the current-minute bucket (bench/freshness.py).

It prints the figures and their ratios and writes them to bench/results/pipeline.json. Every
topic, table and job is its own (unique names) and is removed at the end; the running
engagement job is never touched. Run it as ``.venv/bin/python -m bench.pipeline`` or
``make bench``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from creatorpulse.bench import baseline, freshness
from creatorpulse.bench.dataset import Shape
from creatorpulse.bench.results import (
    markdown_table,
    percentile,
    results_document,
    write_results,
)
from creatorpulse.flink_jobs import FlinkRest, JobError, submit_script
from creatorpulse.sandbox import Sandbox, clock_readings
from creatorpulse.settings import Settings, SettingsError
from creatorpulse.stack.flink import Flink

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results" / "pipeline.json"
Say = Callable[[str], None]


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.pipeline", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    # 300,000: a whole run takes 4-5 minutes on the shared 2-core machine (10-15 before the
    # windows were computed from the gains; see README, Benchmarks).
    parser.add_argument("--observations", type=int, default=300_000,
                        help="N, readings preloaded for the throughput runs (default 300,000)")
    parser.add_argument("--accounts", type=int, default=Shape().accounts,
                        help="accounts of the data (each with followers and 3 posts x 6 metrics, "
                             "polled once a minute of event time; default %(default)s)")
    parser.add_argument("--freshness-rate", type=float, default=10_000,
                        help="readings per second during the freshness run (default 10,000)")
    parser.add_argument("--freshness-seconds", type=float, default=60,
                        help="measured duration of the freshness run (default 60)")
    parser.add_argument("--freshness-warmup", type=float, default=15,
                        help="unmeasured seconds at the start of the freshness run (default 15)")
    parser.add_argument("--freshness-watermark-delay", default="2s",
                        help="the job's CREATORPULSE_WATERMARK_DELAY for the freshness run "
                             "(default 2s; the throughput runs use the configured one)")
    parser.add_argument("--ceiling-set", action="append", default=[], metavar="KEY=VALUE",
                        help="a Flink option for the ceiling job only (repeatable), to try a "
                             "setting out before changing flink-conf/config.yaml")
    parser.add_argument("--skip", action="append", default=[],
                        choices=["pipeline", "baseline", "ceiling", "freshness"],
                        help="leave a part out (repeatable); its figure is null")
    parser.add_argument("--timeout", type=float, default=1800,
                        help="seconds each part may take (default 1800)")
    parser.add_argument("--results", type=Path, default=RESULTS,
                        help="where to write the figures (default bench/results/pipeline.json)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        settings = Settings.from_env(os.environ)
    except SettingsError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    started = time.monotonic()

    def say(line: str) -> None:
        print(f"[{time.monotonic() - started:6.0f}s] {line}", flush=True)

    bench = Bench(settings, args, say)
    try:
        doc = bench.run()
    except (JobError, TimeoutError, RuntimeError, psycopg.Error) as exc:
        say(f"bench: failed: {exc}")
        return 1
    finally:
        bench.clean_up()
    write_results(args.results, doc)
    print_figures(doc, say)
    say(f"written to {args.results}; for the README:")
    print(markdown_table(doc))
    return 0


class Bench:
    def __init__(self, settings: Settings, args: argparse.Namespace, say: Say) -> None:
        self.settings, self.args, self.say = settings, args, say
        self.n = args.observations
        self.shape = Shape(accounts=args.accounts)
        self.rest = FlinkRest(Flink(settings, say).address)
        self.admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
        unique = f"bench_{uuid.uuid4().hex[:8]}"
        self.job = Sandbox(unique, settings, self.admin)
        self.python = Sandbox(f"{unique}_py", settings, self.admin)
        self.fresh = Sandbox(f"{unique}_fresh", settings, self.admin)
        self.created: list[tuple[Sandbox, tuple[str, ...], tuple[str, ...]]] = []
        self.other_jobs: list[str] = []

    # --- the run ---------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        skip = set(self.args.skip)
        self.say(f"bench: {self.n:,} observations, {self.shape.counters:,} counters of "
                 f"{self.shape.accounts:,} accounts; names end in {self.job.unique}")
        figures: dict[str, float | None] = dict.fromkeys(
            ("pipeline", "baseline", "ceiling", "p50", "p99"))
        details: dict[str, Any] = {
            "cores": os.cpu_count(), "accounts": self.shape.accounts,
            "counters": self.shape.counters, "windows": [w.name for w in self.settings.windows],
            "watermark_delay_s": self.settings.watermark_delay.total_seconds(),
        }
        if not {"pipeline", "baseline"} <= skip:
            self.preload()
        if "pipeline" not in skip:
            figures["pipeline"] = self.n / self.pipeline()
        if "baseline" not in skip:
            figures["baseline"] = self.n / self.baseline()
            if "pipeline" not in skip:
                details["buckets_check"] = self.compare()
        if "ceiling" not in skip:
            figures["ceiling"] = self.n / self.ceiling()
        if "freshness" not in skip:
            latencies, missing = self.freshness()
            details.update(freshness_rate=self.args.freshness_rate,
                           freshness_seconds=self.args.freshness_seconds,
                           freshness_watermark_delay=self.args.freshness_watermark_delay,
                           freshness_probes=len(latencies), freshness_missing=missing)
            if latencies:
                figures["p50"] = percentile(latencies, 50)
                figures["p99"] = percentile(latencies, 99)
        return results_document(
            observations=self.n, pipeline=figures["pipeline"], ceiling=figures["ceiling"],
            baseline=figures["baseline"], freshness_p50=figures["p50"],
            freshness_p99=figures["p99"], measured_at=datetime.now(UTC), details=details)

    def preload(self) -> None:
        self.create(self.job)
        topic = self.job.topics["observations"]
        producer = Producer({"bootstrap.servers": self.settings.kafka_bootstrap,
                             "linger.ms": 50, "batch.size": 1_000_000,
                             "queue.buffering.max.messages": 2_000_000})
        errors: list[str] = []

        def delivered(err: object, _msg: object) -> None:
            if err is not None:
                errors.append(str(err))

        t0 = last = time.monotonic()
        for n, reading in enumerate(self.shape.readings(self.n)):
            producer.produce(topic, reading.to_json(), key=reading.key, on_delivery=delivered)
            if n % 10_000 == 0:
                producer.poll(0)
                if time.monotonic() - last >= 5:
                    last = time.monotonic()
                    self.say(f"preload: {n:,} / {self.n:,} readings produced")
        # The clock: one reading per partition past the end moves every watermark beyond it.
        end = datetime.fromtimestamp(self.shape.end_ms(self.n) / 1000, UTC)
        clock = end + self.settings.watermark_delay + timedelta(minutes=1)
        for partition, tick in clock_readings(clock, range(self.job.partitions)):
            producer.produce(topic, tick.to_json(), key=tick.key, partition=partition,
                             on_delivery=delivered)
        if producer.flush(120) or errors:
            msg = f"preload: {len(errors)} readings not delivered ({errors[:1]})"
            raise RuntimeError(msg)
        self.say(f"preload: {self.n:,} readings in {topic} "
                 f"({self.n / (time.monotonic() - t0):,.0f}/s)")

    def pipeline(self) -> float:
        """Seconds from all of the job's tasks running to the last raw-log row and bucket."""
        self.say("pipeline: submitting the engagement job")
        job_id = self.job.start()
        running = self.wait_running(job_id)
        raw, buckets = self.job.table("observations"), self.job.table("metric_buckets_1m")
        gain, gains = self.shape.totals(self.n)
        want = (self.n + self.job.partitions, 2 * gain, 2 * gains)
        query = (f"SELECT (SELECT count(*) FROM {raw}), "  # noqa: S608
                 f"(SELECT coalesce(sum(gain), 0) FROM {buckets}), "
                 f"(SELECT coalesce(sum(observations), 0) FROM {buckets})")
        last = 0.0
        with psycopg.connect(self.settings.database_dsn.reveal(), autocommit=True) as db:
            while True:
                got = db.execute(query).fetchone()
                now = time.time()
                if got == want:
                    break
                self.check_alive(job_id, now - running)
                if now - last >= 5:
                    last = now
                    self.say(f"pipeline: {got[0]:,} / {want[0]:,} raw-log rows, "
                             f"{got[2]:,} / {want[2]:,} gains in the buckets "
                             f"({now - running:,.0f} s, {got[0] / (now - running):,.0f}/s)")
                # Counting the raw log costs the database; poll finely only near the end.
                time.sleep(0.25 if got[0] >= want[0] else 1.0)
        elapsed = now - running
        self.say(f"pipeline: done in {elapsed:,.1f} s, {self.n / elapsed:,.0f} observations/s")
        self.stop(job_id)
        return elapsed

    def baseline(self) -> float:
        self.create(self.python, topics=(), tables=("observations", "metric_buckets_1m"))
        consumer = Consumer({"bootstrap.servers": self.settings.kafka_bootstrap,
                             "group.id": f"baseline.{self.python.unique}",
                             "auto.offset.reset": "earliest", "enable.auto.commit": False,
                             "fetch.max.bytes": 52_428_800})
        expected = self.n + self.job.partitions
        last = [0.0]

        def progress(consumed: int) -> None:
            if time.monotonic() - last[0] >= 5:
                last[0] = time.monotonic()
                self.say(f"baseline: {consumed:,} / {expected:,} readings consumed and written")

        self.say("baseline: the plain Python consumer reads the same topic")
        try:
            with psycopg.connect(self.settings.database_dsn.reveal()) as db:
                writer = baseline.Writer(db, self.python.table("observations"),
                                         self.python.table("metric_buckets_1m"))
                state = baseline.Engagement(
                    delay_ms=int(self.settings.watermark_delay.total_seconds() * 1000),
                    partitions=self.job.partitions)
                elapsed = baseline.run(consumer=consumer, topic=self.job.topics["observations"],
                                       writer=writer, state=state, expected=expected,
                                       progress=progress, timeout=self.args.timeout)
        finally:
            consumer.close()
        self.say(f"baseline: done in {elapsed:,.1f} s, {self.n / elapsed:,.0f} observations/s")
        return elapsed

    def compare(self) -> dict[str, Any]:
        """The job's and the baseline's minute buckets and raw logs, row by row."""
        columns = ", ".join(baseline.BUCKET_COLUMNS)
        job_b, py_b = self.job.table("metric_buckets_1m"), self.python.table("metric_buckets_1m")
        raw_columns = ", ".join(baseline.RAW_COLUMNS)
        job_r, py_r = self.job.table("observations"), self.python.table("observations")

        def differ(a: str, b: str, cols: str) -> int:
            return int(self.job.query(
                f"SELECT count(*) FROM (SELECT {cols} FROM {a} "  # noqa: S608
                f"EXCEPT ALL SELECT {cols} FROM {b}) d")[0][0])

        check = {
            "bucket_rows_job": int(self.job.query(f"SELECT count(*) FROM {job_b}")[0][0]),  # noqa: S608
            "bucket_rows_baseline": int(self.job.query(f"SELECT count(*) FROM {py_b}")[0][0]),  # noqa: S608
            "buckets_only_in_job": differ(job_b, py_b, columns),
            "buckets_only_in_baseline": differ(py_b, job_b, columns),
            "raw_rows_only_in_job": differ(job_r, py_r, raw_columns),
            "raw_rows_only_in_baseline": differ(py_r, job_r, raw_columns),
        }
        check["identical"] = not any(v for k, v in check.items() if "only" in k)
        verdict = "identical" if check["identical"] else "DIFFERENT"
        self.say(f"check: minute buckets {verdict}: job {check['bucket_rows_job']:,} rows, "
                 f"baseline {check['bucket_rows_baseline']:,} rows, "
                 f"{check['buckets_only_in_job']} only in the job, "
                 f"{check['buckets_only_in_baseline']} only in the baseline; raw logs "
                 f"{check['raw_rows_only_in_job']} / {check['raw_rows_only_in_baseline']} "
                 f"rows apart")
        return check

    def ceiling(self) -> float:
        """Seconds from all of the ceiling job's tasks running to its generator finishing."""
        self.say("ceiling: submitting the same SQL on Flink's generator with blackhole sinks")
        job_id = submit_script(self.settings, BENCH_DIR / "ceiling_job.py",
                               ["--observations", str(self.n),
                                "--accounts", str(self.shape.accounts),
                                *(f"--set={o}" for o in self.args.ceiling_set)])
        self.other_jobs.append(job_id)
        running = self.wait_running(job_id)
        source = self.rest.job(job_id)["vertices"][0]
        last = 0.0
        while True:
            vertex = self.rest.call("GET", f"/jobs/{job_id}/vertices/{source['id']}")
            if vertex["subtasks"] and all(s["status"] == "FINISHED" for s in vertex["subtasks"]):
                break
            now = time.time()
            self.check_alive(job_id, now - running)
            if now - last >= 5:
                last = now
                out = sum(s["metrics"].get("write-records", 0) for s in vertex["subtasks"])
                self.say(f"ceiling: about {out:,} / {self.n:,} generated "
                         f"({now - running:,.0f} s)")
            time.sleep(0.5)
        times = self.rest.call("GET", f"/jobs/{job_id}/vertices/{source['id']}/subtasktimes")
        finished = max(s["timestamps"]["FINISHED"] for s in times["subtasks"]) / 1000
        elapsed = finished - running
        self.say(f"ceiling: done in {elapsed:,.1f} s, {self.n / elapsed:,.0f} observations/s "
                 "(the windows' final flush after the generator's end is not timed)")
        self.stop(job_id)
        return elapsed

    def freshness(self) -> tuple[list[float], int]:
        self.create(self.fresh)
        delay = self.args.freshness_watermark_delay
        self.say(f"freshness: submitting the engagement job with a {delay} watermark delay")
        job_id = self.fresh.start(env={"CREATORPULSE_WATERMARK_DELAY": delay,
                                       "CREATORPULSE_SOURCE_IDLE_TIMEOUT": "5s"})
        self.wait_running(job_id)
        producer = Producer({"bootstrap.servers": self.settings.kafka_bootstrap,
                             "linger.ms": 5})
        probes = freshness.measure(
            producer=producer, topic=self.fresh.topics["observations"],
            dsn=self.settings.database_dsn.reveal(),
            buckets_table=self.fresh.table("metric_buckets_1m"), shape=self.shape,
            rate=self.args.freshness_rate, seconds=self.args.freshness_seconds,
            warmup=self.args.freshness_warmup, drain=60, partitions=self.fresh.partitions,
            say=self.say)
        latencies = probes.latencies(time.time())
        if latencies:
            self.say(f"freshness: {len(latencies)} probes, p50 {percentile(latencies, 50):.2f} s,"
                     f" p99 {percentile(latencies, 99):.2f} s; {probes.missing} not visible by "
                     "the end (counted at their age then)")
        self.stop(job_id)
        return latencies, probes.missing

    # --- helpers ---------------------------------------------------------------------------

    def create(self, box: Sandbox, *, topics: tuple[str, ...] = ("observations", "late",
                                                                   "aggregates"),
               tables: tuple[str, ...] = ("observations", "metric_buckets_1m", "rolling_windows",
                                          "derived_figures")) -> None:
        self.created.append((box, topics, tables))
        box.create(topics=topics, tables=tables)

    def wait_running(self, job_id: str) -> float:
        """Wait until every task of the job runs; the time the last one started running."""
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            job = self.rest.job(job_id)
            self.check_alive(job_id, 0)
            vertices = job.get("vertices", [])
            if job["state"] == "RUNNING" and vertices and all(
                    v["status"] in ("RUNNING", "FINISHED") for v in vertices):
                latest = 0
                for v in vertices:
                    times = self.rest.call("GET", f"/jobs/{job_id}/vertices/{v['id']}/subtasktimes")
                    latest = max([latest, *(s["timestamps"]["RUNNING"] for s in times["subtasks"])])
                return latest / 1000
            time.sleep(0.2)
        msg = f"job {job_id} did not start running within 300 s"
        raise TimeoutError(msg)

    def check_alive(self, job_id: str, elapsed: float) -> None:
        state = self.rest.job(job_id)["state"]
        if state in ("FAILED", "CANCELED", "FINISHED"):
            root = self.rest.call("GET", f"/jobs/{job_id}/exceptions").get("root-exception") or ""
            msg = f"job {job_id} is {state.lower()}: {root.splitlines()[0] if root else '?'}"
            raise JobError(msg)
        if elapsed > self.args.timeout:
            msg = f"job {job_id} has not finished its part after {self.args.timeout:.0f} s"
            raise TimeoutError(msg)

    def stop(self, job_id: str) -> None:
        """Cancel one of the benchmark's jobs and delete the checkpoints Flink retains of it."""
        checkpoints = self.rest.call("GET", f"/jobs/{job_id}/checkpoints")
        latest = ((checkpoints.get("latest") or {}).get("completed") or {}).get("external_path")
        if self.rest.job(job_id)["state"] not in ("CANCELED", "FINISHED", "FAILED"):
            self.rest.cancel(job_id)
        if latest:
            folder = Path(latest.removeprefix("file:")).parent
            if folder.name == job_id and folder.is_dir():
                shutil.rmtree(folder, ignore_errors=True)

    def clean_up(self) -> None:
        for job_id in [*self.other_jobs, *(b.job_id for b, _, _ in self.created if b.job_id)]:
            try:
                self.stop(job_id)
            except (JobError, TimeoutError) as exc:
                self.say(f"clean-up: job {job_id}: {exc}")
        for box, topics, tables in self.created:
            box.job_id = None
            try:
                box.remove(self.rest, topics=topics, tables=tables)
            except Exception as exc:  # report it and go on removing the rest
                self.say(f"clean-up: {box.unique}: {exc}")
        self.say("clean-up: the benchmark's jobs, topics and tables are removed")


def print_figures(doc: dict[str, Any], say: Say) -> None:
    goals = doc["goals"]

    def mark(key: str) -> str:
        return "met" if goals[key]["met"] else "NOT met"

    say(f"observations:       {doc['observations']:,}")
    say(f"pipeline:           {doc['pipeline_obs_per_s']} obs/s  (goal >= 50,000: "
        f"{mark('pipeline_obs_per_s')}; stretch 100,000: {mark('pipeline_obs_per_s_stretch')})")
    say(f"ceiling:            {doc['ceiling_obs_per_s']} obs/s  "
        f"(pipeline / ceiling = {doc['pipeline_vs_ceiling']})")
    say(f"baseline (Python):  {doc['baseline_obs_per_s']} obs/s  (pipeline / baseline = "
        f"{doc['pipeline_vs_baseline']}, goal >= 5: {mark('pipeline_vs_baseline')})")
    say(f"freshness:          p50 {doc['freshness_p50_s']} s, p99 {doc['freshness_p99_s']} s "
        f"(goal p99 <= 5 s: {mark('freshness_p99_s')})")


if __name__ == "__main__":
    sys.exit(main())
