"""Sources benchmark: account polls per second per core against the platform simulators.

``.venv/bin/python -m bench.sources [--accounts 10000] [--seconds 60] [--workers 2]``

What runs:

- the five platform simulators in a process of their own (one event loop; real clock), seeded
  with ``--accounts / 5`` accounts per platform, with the platforms' real limits except
  YouTube's daily quota (10,000 units a day would stop 2,000 channels within seconds; it is
  raised in the simulator and in the settings alike);
- ``--accounts`` accounts (each seeded creator on every platform) registered through
  ``sinks/registry.py`` with their tokens, in a tenant of the benchmark's own;
- ``--workers`` worker processes built by the production wiring (``sources/runner.py``:
  Redis rate limiter, OAuth sessions, token vault, Kafka publisher), publishing to a topic of
  the benchmark's own; every account is due every second, so the workers poll as fast as they
  can; content polls are pushed an hour away (``POLL_FRESH_INTERVAL``), so what is measured is
  account polls (profile plus the content list with its counters).

The rate limits in the settings are the ones the simulator enforces (per credential and per app),
so the simulator's over-limit count (``/_sim/stats``) proves they were respected.

Cores: the CPU time (user + system, ``getrusage``) the worker processes used during the
measurement window, divided by the window's length; the simulator's own CPU is reported apart and
not counted. Polls per second per core = account polls per second / those cores.

Results go to ``bench/results/sources.json`` (``--out``) and are printed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform as host
import resource
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

GOAL = 500.0  # account polls per second per core
PLATFORMS = ("instagram", "facebook", "youtube", "tiktok", "x")
YOUTUBE_QUOTA = 100_000_000
RESULTS = Path(__file__).parent / "results" / "sources.json"


def say(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- the simulators' process ------------------------------------------------------------------


def sim_config(per_platform: int) -> Any:
    from creatorpulse.sources.simulator.config import SimConfig

    return SimConfig(accounts=per_platform, seed=11, youtube_quota=YOUTUBE_QUOTA)


def limit_settings(per_platform: int) -> dict[str, str]:
    """The settings' limits: what the simulator enforces (see ``sources/simulator``).

    Meta: 4,800 calls per account in a rolling day (business use case), 200 per account per hour
    for the app. YouTube: no per-second limit, the quota. TikTok: 600 per minute per endpoint
    per credential (we take the whole credential's). X: 900 per 15 minutes per user on the
    lookups and timelines we call. Where the simulator has no app-wide rate, the app limit is
    set far above the load.
    """
    meta_app = 200 * per_platform
    return {
        "CREATORPULSE_ACCOUNT_RATE_LIMITS": "instagram=4800/1d,facebook=4800/1d,youtube=100000/1m,"
                                            "tiktok=600/1m,x=900/15m",
        "CREATORPULSE_APP_RATE_LIMITS": f"instagram={meta_app}/1h,facebook={meta_app}/1h,"
                                        "youtube=10000000/1m,tiktok=10000000/1m,x=10000000/15m",
        "CREATORPULSE_YOUTUBE_DAILY_QUOTA": str(YOUTUBE_QUOTA),
    }


def run_simulators(per_platform: int, pipe: Any) -> None:
    """Serve the simulators until told to stop; answer the CPU time used when asked."""
    import logging

    from creatorpulse.sources.simulator.clock import RealClock
    from creatorpulse.sources.simulator.server import Simulators, build

    logging.basicConfig(level="WARNING")
    sims = Simulators.start(build(sim_config(per_platform), RealClock()), ports=0)
    pipe.send(sims.urls)
    while True:
        message = pipe.recv()
        if message == "cpu":
            pipe.send(cpu_seconds())
        else:
            break
    sims.stop()
    pipe.send("stopped")


# --- a worker process --------------------------------------------------------------------------


class Counting:
    """A connector that counts its polls (the benchmark's only addition to the runtime)."""

    def __init__(self, inner: Any, counts: dict[str, int], lock: threading.Lock) -> None:
        self._inner = inner
        self._counts = counts
        self._lock = lock
        self.platform = inner.platform

    def fetch_account(self, api: Any, account: Any, now: datetime,
                      since: datetime | None = None) -> Any:
        poll = self._inner.fetch_account(api, account, now, since=since)
        with self._lock:
            self._counts["account_polls"] += 1
            self._counts["observations"] += len(poll.observations)
        return poll

    def fetch_content(self, api: Any, account: Any, content: Any, now: datetime) -> Any:
        poll = self._inner.fetch_content(api, account, content, now)
        with self._lock:
            self._counts["content_polls"] += 1
            self._counts["observations"] += len(poll.observations)
        return poll

    def check(self, response: Any) -> timedelta | None:
        return self._inner.check(response)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class WorkerSpec:
    env: dict[str, str]
    tenant: str
    prefix: str
    topics: tuple[str, str]
    worker_id: str
    threads: int
    profile: str | None


def profile_threads(worker: Any) -> list[Any]:
    """cProfile every thread's polls and the main loop (cProfile sees one thread each)."""
    import cProfile

    profiles: list[Any] = []
    local = threading.local()

    def profiled(method: Any) -> Any:
        def run(*args: Any) -> Any:
            profile = getattr(local, "profile", None)
            if profile is None:
                profile = local.profile = cProfile.Profile(time.thread_time)
                profiles.append(profile)
            profile.enable()
            try:
                return method(*args)
            finally:
                profile.disable()
        return run

    worker._poll = profiled(worker._poll)
    worker._dispatch = profiled(worker._dispatch)
    worker._sync = profiled(worker._sync)
    return profiles


def run_worker(spec: WorkerSpec, reports: Any, stop: Any) -> None:
    """One worker with the production wiring; reports its counters and CPU time every second."""
    import logging

    from creatorpulse.settings import Settings
    from creatorpulse.sources.runner import Topics, build_worker
    from creatorpulse.sources.worker import default_connectors

    logging.basicConfig(level="WARNING", stream=sys.stderr,
                        format=f"%(asctime)s {spec.worker_id} %(levelname)s %(message)s")
    settings = Settings.from_env(spec.env, dotenv=None)
    counts = {"account_polls": 0, "content_polls": 0, "observations": 0}
    lock = threading.Lock()

    def connectors(platform: Any) -> Counting:
        return Counting(default_connectors(platform), counts, lock)

    worker, clients = build_worker(settings, threads=spec.threads, tenant_id=spec.tenant,
                                   worker_id=spec.worker_id, prefix=spec.prefix,
                                   topics=Topics(spec.topics[0], spec.topics[1], ""),
                                   connectors=connectors)
    profiles = profile_threads(worker) if spec.profile else None
    thread = threading.Thread(target=worker.run, name="worker", daemon=True)
    thread.start()

    def report(final: bool = False) -> None:
        with lock:
            snapshot = dict(counts)
        reports.put({"worker": spec.worker_id, "at": time.time(), "cpu": cpu_seconds(),
                     "held": len(worker.held), "final": final, **snapshot})

    while not stop.wait(1.0):
        report()
    worker.stop()
    thread.join(300)  # running polls end first; the clients are closed after
    if profiles:
        import pstats

        stats = pstats.Stats(profiles[0])
        for more in profiles[1:]:
            stats.add(more)
        stats.dump_stats(f"{spec.profile}.{spec.worker_id}")
    report(final=True)
    for client in clients:
        client.close()


# --- the benchmark -----------------------------------------------------------------------------


def register(settings: Any, tenant: str, urls: dict[str, str], per_platform: int) -> int:
    """The simulator's seeded accounts, linked with their tokens; how many."""
    import psycopg
    import requests

    from creatorpulse.settings import Secret
    from creatorpulse.sinks import registry
    from creatorpulse.sinks.registry import AccountLink, Credentials
    from creatorpulse.tokens import TokenVault

    vault = TokenVault.from_settings(settings)
    rows = {}
    for p in PLATFORMS:
        r = requests.get(f"{urls[p]}/_sim/accounts", params={"limit": per_platform}, timeout=60)
        r.raise_for_status()
        rows[p] = r.json()["accounts"]
    with psycopg.connect(settings.database_dsn.reveal(), autocommit=True) as conn:
        registry.ensure_tenant(conn, tenant)
        with conn.transaction():  # one commit: each influencer is a savepoint of it
            influencers = [registry.add_influencer(conn, tenant, f"creator {i}").id
                           for i in range(per_platform)]
        links = []
        for i, influencer in enumerate(influencers):
            for p in PLATFORMS:
                row = rows[p][i]
                creds = Credentials(
                    access_token=Secret(row["access_token"]),
                    refresh_token=Secret(row["refresh_token"]) if row["refresh_token"] else None,
                    expires_at=(datetime.fromtimestamp(row["expires_at"], UTC)
                                if row["expires_at"] else None))
                links.append(AccountLink(influencer, p, row["id"], handle=row["handle"],
                                         poll_interval=timedelta(seconds=1), credentials=creds))
        linked = len(registry.link_accounts(conn, vault, tenant, links))
    return linked


def sim_totals(urls: dict[str, str]) -> dict[str, int]:
    import requests

    totals = {"requests": 0, "over_limit": 0}
    for p in PLATFORMS:
        stats = requests.get(f"{urls[p]}/_sim/stats", timeout=60).json()
        totals["requests"] += stats["requests"]
        totals["over_limit"] += stats["over_limit"]
        over = [c for c, v in stats["credentials"].items() if v["over_limit"]]
        if over:
            say(f"{p}: {len(over)} credentials went over the limit")
    return totals


def topic_count(bootstrap: str, topic: str) -> int:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-count"})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                   for p in meta.partitions)
    finally:
        consumer.close()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.sources",
        description="Account polls per second per core of the real polling runtime against the "
                    "platform simulators (in a process of their own), with the simulator's "
                    "count of requests over its rate limits. Needs the running stack "
                    "(PostgreSQL, Redis, Kafka) named by the CREATORPULSE_* settings.")
    parser.add_argument("--accounts", type=int, default=10_000,
                        help="accounts polled, spread evenly over the five platforms "
                             "(default 10000)")
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="length of the measurement window (default 60)")
    parser.add_argument("--warmup", type=float, default=10.0,
                        help="seconds of polling before the window opens, once every account "
                             "is held (default 10)")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                        help="worker processes (default: 2, at most the machine's cores)")
    parser.add_argument("--threads", type=int, default=6,
                        help="poll threads per worker (default 6: the polls are CPU-bound "
                             "Python, more threads only contend for the GIL)")
    parser.add_argument("--out", type=Path, default=RESULTS,
                        help=f"where to write the results (default {RESULTS})")
    parser.add_argument("--profile", metavar="PREFIX",
                        help="cProfile each worker's main thread into PREFIX.<worker-id>")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from confluent_kafka.admin import AdminClient, NewTopic

    from creatorpulse.settings import Settings

    base = Settings.from_env(os.environ)
    per_platform = max(1, args.accounts // len(PLATFORMS))
    suffix = uuid.uuid4().hex[:8]
    tenant, prefix = f"bench-{suffix}", f"bench-sources-{suffix}"
    topics = (f"bench.sources.observations.{suffix}", f"bench.sources.dlq.{suffix}")
    ctx = mp.get_context("spawn")

    say(f"starting the simulators: {per_platform} accounts per platform, own process")
    pipe, child_pipe = ctx.Pipe()
    sim = ctx.Process(target=run_simulators, args=(per_platform, child_pipe), daemon=True)
    sim.start()
    if not pipe.poll(120):
        say("the simulators did not start")
        return 1
    urls: dict[str, str] = pipe.recv()
    admin = AdminClient({"bootstrap.servers": base.kafka_bootstrap})
    for future in admin.create_topics([NewTopic(topics[0], num_partitions=4,
                                                replication_factor=1),
                                       NewTopic(topics[1], num_partitions=1,
                                                replication_factor=1)]).values():
        future.result(30)
    env = {k: v for k, v in os.environ.items() if k.startswith("CREATORPULSE_")}
    env.update({f"CREATORPULSE_{p.upper()}_API_URL": u for p, u in urls.items()})
    env.update(limit_settings(per_platform))
    env["CREATORPULSE_POLL_FRESH_INTERVAL"] = "1h"
    env["CREATORPULSE_LOG_LEVEL"] = "WARNING"
    settings = Settings.from_env(env, dotenv=None)
    workers: list[Any] = []
    stop = ctx.Event()
    try:
        started = time.monotonic()
        linked = register(settings, tenant, urls, per_platform)
        say(f"registered {linked} accounts in {time.monotonic() - started:.0f}s; "
            f"starting {args.workers} workers of {args.threads} threads")
        reports: Any = ctx.Queue()
        for n in range(args.workers):
            spec = WorkerSpec(env, tenant, prefix, topics, f"bench-w{n + 1}", args.threads,
                              args.profile)
            proc = ctx.Process(target=run_worker, args=(spec, reports, stop))
            proc.start()
            workers.append(proc)
        latest: dict[str, dict[str, Any]] = {}

        def drain(wait: float) -> None:
            deadline = time.monotonic() + wait
            while True:
                left = deadline - time.monotonic()
                try:
                    item = reports.get(timeout=max(0.01, left)) if left > 0 else \
                        reports.get_nowait()
                except Exception:  # queue.Empty
                    return
                latest[item["worker"]] = item

        def totals() -> dict[str, float]:
            keys = ("account_polls", "content_polls", "observations", "cpu", "held")
            return {k: sum(r[k] for r in latest.values()) for k in keys}

        warm = time.monotonic() + 300
        while time.monotonic() < warm:
            drain(1.0)
            held = totals().get("held", 0) if len(latest) == args.workers else 0
            if held >= linked:
                break
            say(f"workers hold {int(held)} of {linked} accounts")
        say(f"every account held; warming up for {args.warmup:.0f}s")
        drain(args.warmup)
        drain(0)
        first, t0 = totals(), time.monotonic()
        load0 = os.getloadavg()[0]
        sim0, pipe_cpu0 = sim_totals(urls), None
        pipe.send("cpu")
        pipe_cpu0 = pipe.recv()
        say(f"measuring for {args.seconds:.0f}s")
        end = t0 + args.seconds
        while time.monotonic() < end:
            drain(min(5.0, max(0.0, end - time.monotonic())))
            now = totals()
            elapsed = time.monotonic() - t0
            say(f"{elapsed:5.0f}s: {(now['account_polls'] - first['account_polls']) / elapsed:.0f}"
                f" account polls/s, workers' CPU {(now['cpu'] - first['cpu']) / elapsed:.2f} "
                "cores")
        drain(0)
        last, t1 = totals(), time.monotonic()
        load1 = os.getloadavg()[0]
        sim1 = sim_totals(urls)
        pipe.send("cpu")
        sim_cpu = (pipe.recv() - pipe_cpu0) / (t1 - t0)
        window = t1 - t0
        polls = last["account_polls"] - first["account_polls"]
        cores = (last["cpu"] - first["cpu"]) / window
        stop.set()
        for proc in workers:
            proc.join(90)
        published = topic_count(base.kafka_bootstrap, topics[0])
        over = sim_totals(urls)["over_limit"]
        results = {
            "benchmark": "sources",
            "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "command": " ".join(["python -m bench.sources",
                                 *(sys.argv[1:] if argv is None else argv)]),
            "machine": f"{host.machine()}, {os.cpu_count()} cores, Python "
                       f"{host.python_version()}",
            "accounts": linked,
            "platforms": len(PLATFORMS),
            "workers": args.workers,
            "threads_per_worker": args.threads,
            "seconds": round(window, 1),
            "account_polls": int(polls),
            "content_polls": int(last["content_polls"] - first["content_polls"]),
            "polls_per_s": round(polls / window, 1),
            "cores": round(cores, 2),
            "cores_measured_as": "CPU time (user + system) of the worker processes in the "
                                 "window / window length; the simulator's not included",
            "polls_per_s_per_core": round(polls / window / cores, 1) if cores else None,
            "requests_per_s": round((sim1["requests"] - sim0["requests"]) / window, 1),
            "requests_per_poll": round((sim1["requests"] - sim0["requests"]) / polls, 2)
            if polls else None,
            "over_limit_requests": over,
            "observations_published": published,
            "observations_per_s": round((last["observations"] - first["observations"])
                                        / window, 1),
            "simulator_cores": round(sim_cpu, 2),
            # The machine may be shared: its 1-minute load average as the window opened and
            # closed (the polls' CPU cost grows with contention).
            "load_average": [round(load0, 2), round(load1, 2)],
            "goal_polls_per_s_per_core": GOAL,
        }
        per_core = results["polls_per_s_per_core"] or 0.0
        results["ratio_to_goal"] = round(per_core / GOAL, 2)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        print(json.dumps(results, indent=2))
        say(f"{results['polls_per_s']} account polls/s on {results['cores']} cores = "
            f"{per_core} polls/s per core ({results['ratio_to_goal']:.2f}x the goal of "
            f"{GOAL:.0f}); {over} over-limit requests; results in {args.out}")
        return 0
    finally:
        stop.set()
        for proc in workers:
            proc.join(30)
            if proc.is_alive():
                proc.kill()
        cleanup(settings, tenant, prefix, admin, topics)
        pipe.send("stop")
        sim.join(30)


def cleanup(settings: Any, tenant: str, prefix: str, admin: Any, topics: tuple[str, str]) -> None:
    """Remove the benchmark's tenant (its accounts cascade), Redis keys and topics."""
    import psycopg
    import redis

    with psycopg.connect(settings.database_dsn.reveal(), autocommit=True) as conn:
        conn.execute("DELETE FROM tenants WHERE id = %s", (tenant,))
    client = redis.Redis.from_url(settings.redis_dsn.reveal())
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)
    client.close()
    for future in admin.delete_topics(list(topics)).values():
        future.result(30)


if __name__ == "__main__":
    sys.exit(main())
